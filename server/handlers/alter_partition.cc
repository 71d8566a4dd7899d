// AlterPartition (key 56), versions 2-3: a partition leader asks the controller to change the
// ISR (Kafka's AlterPartitionManager -> the controller). Served by the broker that is the
// controller; any other broker, and a broker that runs alone, answers NOT_CONTROLLER at the top
// level, and the leader asks again once the cluster state names the controller.
//
// v3's NewIsrWithEpochs is read as the list of broker ids: Sluice checks the broker epoch of the
// requesting leader, not of each member. The partition epoch travels as its low 32 bits
// (controller_channel.h).

#include "server/controller_channel.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"

namespace sluice::server {

boost::asio::awaitable<wire::alter_partition_response> handle_alter_partition(
    const metadata_view& metadata, controller_channel* controller, request_context&,
    wire::alter_partition_request& request) {
  wire::alter_partition_response response;
  if (controller == nullptr || !controller->local_is_controller()) {
    response.error_code = static_cast<int16_t>(wire::error_code::not_controller);
    co_return response;
  }
  const cluster::metadata_image& image = *metadata.image();
  for (const auto& topic_in : request.topics) {
    auto& topic_out = response.topics.emplace_back();
    topic_out.topic_id = topic_in.topic_id;
    for (const auto& partition_in : topic_in.partitions) {
      cluster::alter_partition_request change;
      change.broker_id = request.broker_id;
      change.broker_epoch = request.broker_epoch;
      change.topic_id = topic_in.topic_id;
      change.partition = partition_in.partition_index;
      change.leader_epoch = partition_in.leader_epoch;
      change.new_isr = partition_in.new_isr;
      for (const auto& member : partition_in.new_isr_with_epochs)
        change.new_isr.push_back(member.broker_id);
      // The full epoch whose low bits the leader sent, if it is the current one; else what was
      // sent, which then fails the controller's check as stale.
      const cluster::partition_state* now =
          image.partition(topic_in.topic_id, partition_in.partition_index);
      change.partition_epoch = now != nullptr && wire_partition_epoch(now->partition_epoch) ==
                                                     partition_in.partition_epoch
                                   ? now->partition_epoch
                                   : partition_in.partition_epoch;
      cluster::alter_partition_result result =
          co_await controller->local().alter_partition(std::move(change));
      auto& out = topic_out.partitions.emplace_back();
      out.partition_index = partition_in.partition_index;
      out.error_code = static_cast<int16_t>(result.error);
      out.leader_id = result.leader;
      out.leader_epoch = result.leader_epoch;
      out.isr = std::move(result.isr);
      out.partition_epoch = wire_partition_epoch(result.partition_epoch);
    }
  }
  co_return response;
}

}  // namespace sluice::server
