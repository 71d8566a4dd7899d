// ControlledShutdown (key 7), versions 1-3: a broker that is stopping asks the controller to move
// its leaderships away (cluster::controller::controlled_shutdown) and is told which partitions it
// still leads; it asks again until none are left or its retries run out (broker::stop).
//
// Served by the broker that is the controller; any other broker, and a broker that runs alone,
// answers NOT_CONTROLLER, and the stopping broker asks again once the cluster state names the
// controller. A broker epoch that is not the registered one is STALE_BROKER_EPOCH.

#include "server/controller_channel.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

boost::asio::awaitable<wire::controlled_shutdown_response> handle_controlled_shutdown(
    controller_channel* controller, request_context&, wire::controlled_shutdown_request& request) {
  wire::controlled_shutdown_response response;
  if (controller == nullptr || !controller->local_is_controller()) {
    response.error_code = static_cast<int16_t>(wire::error_code::not_controller);
    co_return response;
  }
  cluster::controlled_shutdown_request ask;
  ask.broker_id = request.broker_id;
  ask.broker_epoch = request.broker_epoch;
  cluster::controlled_shutdown_result result =
      co_await controller->local().controlled_shutdown(ask);
  response.error_code = static_cast<int16_t>(result.error);
  for (const auto& [topic, partition] : result.remaining) {
    auto& out = response.remaining_partitions.emplace_back();
    out.topic_name = topic;
    out.partition_index = partition;
  }
  co_return response;
}

}  // namespace sluice::server
