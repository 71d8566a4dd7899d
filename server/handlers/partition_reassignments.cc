// AlterPartitionReassignments (key 45) and ListPartitionReassignments (key 46), v0 (KIP-455).
//
// In a cluster the controller decides (cluster::controller::alter_partition_reassignments and
// list_partition_reassignments, KRaft's rules and errors); any other broker forwards the request
// to it, as Kafka's brokers do. An alteration that wrote something is answered once this
// broker's own state shows it, bounded by the request's timeout, so that the client's next
// Metadata or ListPartitionReassignments finds it.
//
// A broker that runs alone is a cluster of one broker, itself: a partition's only possible
// replica list is [this broker], which is what it has, so a reassignment to it completes at once
// (NONE) and any other list is refused as Kafka refuses one naming unregistered brokers
// (INVALID_REPLICA_ASSIGNMENT); nothing is ever in progress, so a cancel is
// NO_REASSIGNMENT_IN_PROGRESS and the list is always empty.
//
// A failure of the whole request (no controller reached, the controller's store not answering)
// is the top-level error and every partition's, as Kafka's AlterPartitionReassignmentsRequest.
// getErrorResponse answers; ListPartitionReassignments then has the top-level error alone.

#include <map>

#include "server/cluster/reassignment.h"
#include "server/controller_channel.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

using wire::error_code;
using alter_response = wire::alter_partition_reassignments_response;
using list_response = wire::list_partition_reassignments_response;

void add_result(alter_response& response, const std::string& topic, int32_t partition,
                error_code error, const std::string& message) {
  if (response.responses.empty() || response.responses.back().name != topic) {
    response.responses.emplace_back().name = topic;
  }
  auto& out = response.responses.back().partitions.emplace_back();
  out.partition_index = partition;
  out.error_code = static_cast<int16_t>(error);
  // Null, not the spec's default "", when there is none: Kafka's ApiError.NONE has no message.
  out.error_message = message.empty() ? std::nullopt : std::optional<std::string>(message);
}

// Null top-level messages on success, as KRaft's controller sets them.
alter_response alter_ok() {
  alter_response response;
  response.error_message = std::nullopt;
  return response;
}

list_response list_ok() {
  list_response response;
  response.error_message = std::nullopt;
  return response;
}

alter_response fail_all(const wire::alter_partition_reassignments_request& request,
                        error_code error, const std::string& message) {
  alter_response response;
  response.error_code = static_cast<int16_t>(error);
  response.error_message = message;
  for (const auto& t : request.topics) {
    for (const auto& p : t.partitions)
      add_result(response, t.name, p.partition_index, error, message);
  }
  return response;
}

alter_response alter_alone(int32_t self, topic_registry& topics,
                           const wire::alter_partition_reassignments_request& request) {
  const cluster::broker_predicate registered = [self](int32_t id) { return id == self; };
  alter_response response = alter_ok();
  for (const auto& t : request.topics) {
    const topic* found = topics.find(t.name);
    for (const auto& p : t.partitions) {
      const int32_t index = p.partition_index;
      if (found == nullptr) {
        add_result(response, t.name, index, error_code::unknown_topic_or_partition,
                   "Unable to find a topic named " + t.name + ".");
      } else if (found->find_partition(index) == nullptr) {
        add_result(response, t.name, index, error_code::unknown_topic_or_partition,
                   "Unable to find partition " + t.name + ":" + std::to_string(index) + ".");
      } else if (!p.replicas) {
        add_result(response, t.name, index, error_code::no_reassignment_in_progress,
                   "No partition reassignment is in progress.");
      } else if (std::string why = cluster::invalid_replica_list(*p.replicas, registered);
                 !why.empty()) {
        add_result(response, t.name, index, error_code::invalid_replica_assignment, why);
      } else {
        add_result(response, t.name, index, error_code::none, "");
      }
    }
  }
  return response;
}

}  // namespace

boost::asio::awaitable<alter_response> handle_alter_partition_reassignments(
    const metadata_view& metadata, controller_channel* controller, topic_registry& topics,
    request_context& ctx, wire::alter_partition_reassignments_request& request) {
  if (controller == nullptr) co_return alter_alone(metadata.node_id(), topics, request);
  if (!controller->local_is_controller()) {
    auto answer = co_await controller->forward(request, ctx.api_version);
    if (!answer.error) co_return std::move(answer.body);
    co_return fail_all(request, error_code::not_controller,
                       "No controller could be reached: " + answer.error.message());
  }

  std::vector<cluster::reassignment_request> ask;
  for (const auto& t : request.topics) {
    for (const auto& p : t.partitions)
      ask.push_back({t.name, p.partition_index, p.replicas});
  }
  cluster::alter_reassignments_result result =
      co_await controller->local().alter_partition_reassignments(std::move(ask));
  if (result.error != error_code::none) co_return fail_all(request, result.error, result.message);

  alter_response response = alter_ok();
  for (const auto& r : result.partitions)
    add_result(response, r.topic, r.partition, r.error, r.message);
  if (result.revision > 0)
    co_await controller->wait_for_revision(result.revision, request.timeout_ms);
  co_return response;
}

boost::asio::awaitable<list_response> handle_list_partition_reassignments(
    controller_channel* controller, request_context& ctx,
    wire::list_partition_reassignments_request& request) {
  if (controller == nullptr) co_return list_ok();
  const auto fail = [](error_code error, std::string message) {
    list_response response;
    response.error_code = static_cast<int16_t>(error);
    response.error_message = std::move(message);
    return response;
  };
  if (!controller->local_is_controller()) {
    auto answer = co_await controller->forward(request, ctx.api_version);
    if (!answer.error) co_return std::move(answer.body);
    co_return fail(error_code::not_controller,
                   "No controller could be reached: " + answer.error.message());
  }

  std::optional<std::map<std::string, std::vector<int32_t>>> which;
  if (request.topics) {
    which.emplace();
    for (const auto& t : *request.topics) {
      std::vector<int32_t>& ps = (*which)[t.name];
      ps.insert(ps.end(), t.partition_indexes.begin(), t.partition_indexes.end());
    }
  }
  cluster::list_reassignments_result result =
      co_await controller->local().list_partition_reassignments(std::move(which));
  if (result.error != error_code::none) co_return fail(result.error, result.message);
  list_response response = list_ok();
  for (const auto& r : result.partitions) {
    if (response.topics.empty() || response.topics.back().name != r.topic) {
      response.topics.emplace_back().name = r.topic;
    }
    auto& out = response.topics.back().partitions.emplace_back();
    out.partition_index = r.partition;
    out.replicas = r.replicas;
    out.adding_replicas = r.adding;
    out.removing_replicas = r.removing;
  }
  co_return response;
}

}  // namespace sluice::server
