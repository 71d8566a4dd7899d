// ElectLeaders (key 43), versions 0-2 (v0 has no ElectionType: preferred).
//
// In a cluster the controller elects (cluster::controller::elect_leaders, Kafka's rules and error
// codes); any other broker forwards the request to it as Kafka's brokers do (KIP-590), and the
// answer waits until this broker's own state shows the new leaders, bounded by the request's
// timeout, so that the client's next Metadata request finds them.
//
// A broker that runs alone leads every partition it has, each of one replica: every election
// named is ELECTION_NOT_NEEDED, and a request for all partitions answers with none.
//
// Errors as Kafka: an ElectionType other than 0 or 1 is INVALID_REQUEST; an unknown topic or
// partition is UNKNOWN_TOPIC_OR_PARTITION. A failure of the whole request (no controller reached)
// is the top-level error from v1, and every named partition's error.

#include <algorithm>
#include <map>

#include "server/controller_channel.h"
#include "server/handlers/handlers.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

using wire::error_code;

void add_result(wire::elect_leaders_response& response, const std::string& topic, int32_t partition,
                error_code error, const std::string& message) {
  auto& results = response.replica_election_results;
  auto it =
      std::find_if(results.begin(), results.end(), [&](const auto& r) { return r.topic == topic; });
  if (it == results.end()) {
    it = results.emplace(results.end());
    it->topic = topic;
  }
  auto& out = it->partition_result.emplace_back();
  out.partition_id = partition;
  out.error_code = static_cast<int16_t>(error);
  if (!message.empty()) out.error_message = message;
}

// Every named partition answers `error`, and the request too (v1+).
wire::elect_leaders_response fail_all(const wire::elect_leaders_request& request, error_code error,
                                      const std::string& message) {
  wire::elect_leaders_response response;
  response.error_code = static_cast<int16_t>(error);
  if (request.topic_partitions) {
    for (const auto& t : *request.topic_partitions) {
      for (int32_t p : t.partition_id)
        add_result(response, t.topic, p, error, message);
    }
  }
  return response;
}

wire::elect_leaders_response elect_alone(topic_registry& topics,
                                         const wire::elect_leaders_request& request) {
  wire::elect_leaders_response response;
  if (!request.topic_partitions) return response;
  for (const auto& t : *request.topic_partitions) {
    const topic* found = topics.find(t.topic);
    for (int32_t p : t.partition_id) {
      if (found == nullptr) {
        add_result(response, t.topic, p, error_code::unknown_topic_or_partition,
                   "No such topic as " + t.topic);
      } else if (found->find_partition(p) == nullptr) {
        add_result(response, t.topic, p, error_code::unknown_topic_or_partition,
                   "No such partition as " + t.topic + "-" + std::to_string(p));
      } else {
        add_result(response, t.topic, p, error_code::election_not_needed, "");
      }
    }
  }
  return response;
}

}  // namespace

boost::asio::awaitable<wire::elect_leaders_response> handle_elect_leaders(
    controller_channel* controller, topic_registry& topics, request_context& ctx,
    wire::elect_leaders_request& request) {
  if (request.election_type != 0 && request.election_type != 1) {
    co_return fail_all(request, error_code::invalid_request,
                       "Unknown election type " + std::to_string(request.election_type));
  }
  if (controller == nullptr) co_return elect_alone(topics, request);
  if (!controller->local_is_controller()) {
    auto answer = co_await controller->forward(request, ctx.api_version);
    if (!answer.error) co_return std::move(answer.body);
    co_return fail_all(request, error_code::not_controller,
                       "No controller could be reached: " + answer.error.message());
  }

  cluster::elect_leaders_request ask;
  ask.type = request.election_type == 0 ? cluster::election_type::preferred
                                        : cluster::election_type::unclean;
  if (request.topic_partitions) {
    ask.partitions.emplace();
    for (const auto& t : *request.topic_partitions) {
      std::vector<int32_t>& ps = (*ask.partitions)[t.topic];
      ps.insert(ps.end(), t.partition_id.begin(), t.partition_id.end());
    }
  }
  cluster::elect_leaders_result result = co_await controller->local().elect_leaders(std::move(ask));
  if (result.error != error_code::none) co_return fail_all(request, result.error, result.message);

  wire::elect_leaders_response response;
  for (const auto& r : result.partitions)
    add_result(response, r.topic, r.partition, r.error, r.message);
  if (result.revision > 0)
    co_await controller->wait_for_revision(result.revision, request.timeout_ms);
  co_return response;
}

}  // namespace sluice::server
