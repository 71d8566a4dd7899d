// CreatePartitions (key 37), versions 0-3.
//
// Grows a topic to `count` partitions, as Kafka's ReplicationControlManager.createPartitions
// checks it: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION; a count equal to the current one, or
// smaller, is INVALID_PARTITIONS; assignments, when given, must name exactly the partitions being
// added, each with this broker as its only replica (else INVALID_REPLICA_ASSIGNMENT). A topic
// named twice is INVALID_REQUEST. validate_only checks and changes nothing. New partitions get
// the topic's configs and a fresh, empty log. Their files are created by disk jobs, in parallel;
// the answer waits for them. A topic still growing from an earlier request gets
// REASSIGNMENT_IN_PROGRESS (Kafka's answer to a concurrent change of partitions).
//
// In a cluster the controller decides and places the new partitions' replicas over the live
// brokers (manual assignments may name any of them), and each broker makes its own replicas.
//
// Deviations: internal topics are refused with INVALID_REQUEST (the group coordinator uses
// exactly one partition of __consumer_offsets). The timeout is not used.

#include <map>

#include "server/completion_latch.h"
#include "server/controller_channel.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

// In a cluster: the controller places and writes the new partitions (any other broker forwards
// the request to it, KIP-590), and the answer waits until this broker's state shows them.
boost::asio::awaitable<wire::create_partitions_response> grow_in_cluster(
    const metadata_view& metadata, controller_channel& channel, request_context& ctx,
    wire::create_partitions_request& request) {
  using wire::error_code;
  wire::create_partitions_response response;
  if (!channel.local_is_controller()) {
    auto answer = co_await channel.forward(request, ctx.api_version);
    if (!answer.error) co_return std::move(answer.body);
    for (const auto& t : request.topics) {
      auto& out = response.results.emplace_back();
      out.name = t.name;
      out.error_code = static_cast<int16_t>(error_code::not_controller);
      out.error_message = "No controller could be reached: " + answer.error.message();
    }
    co_return response;
  }
  std::map<std::string, int> name_count;
  for (const auto& t : request.topics)
    ++name_count[t.name];
  std::vector<std::pair<std::string, int32_t>> grown;
  for (const auto& t : request.topics) {
    auto& out = response.results.emplace_back();
    out.name = t.name;
    if (name_count[t.name] > 1) {
      out.error_code = static_cast<int16_t>(error_code::invalid_request);
      out.error_message = "Duplicate topic name.";
      continue;
    }
    if (is_internal_topic(t.name)) {
      out.error_code = static_cast<int16_t>(error_code::invalid_request);
      out.error_message = "Topic " + t.name + " is an internal topic";
      continue;
    }
    cluster::create_partitions_request ask;
    ask.name = t.name;
    ask.count = t.count;
    ask.validate_only = request.validate_only;
    if (t.assignments) {
      ask.assignments.emplace();
      for (const auto& a : *t.assignments)
        ask.assignments->push_back(a.broker_ids);
    }
    cluster::create_partitions_result r =
        co_await channel.local().create_partitions(std::move(ask));
    out.error_code = static_cast<int16_t>(r.error);
    if (r.error != error_code::none) {
      out.error_message = r.message;
    } else if (!request.validate_only) {
      grown.emplace_back(t.name, t.count);
    }
  }
  // Named: GCC 12 destroys a std::function made from a lambda inside a co_await twice.
  std::function<bool()> shown = [&] {
    const cluster::metadata_image& image = *metadata.image();
    for (const auto& [name, count] : grown) {
      std::optional<wire::uuid> id = image.topic_id(name);
      if (!id || static_cast<int32_t>(image.topic(*id)->replicas.size()) < count) return false;
    }
    return true;
  };
  co_await channel.wait_until(std::move(shown), std::chrono::milliseconds(5000));
  co_return response;
}

}  // namespace

boost::asio::awaitable<wire::create_partitions_response> handle_create_partitions(
    const metadata_view& metadata, controller_channel* controller, topic_registry& topics,
    request_context& ctx, wire::create_partitions_request& request) {
  using wire::error_code;
  if (controller != nullptr) {
    co_return co_await grow_in_cluster(metadata, *controller, ctx, request);
  }
  const int32_t node = metadata.node_id();
  wire::create_partitions_response response;
  std::map<std::string, int> name_count;
  int64_t added_partitions = 0;
  for (const auto& t : request.topics) {
    ++name_count[t.name];
    if (const topic* found = topics.find(t.name)) {
      added_partitions +=
          std::max<int64_t>(0, int64_t{t.count} - static_cast<int64_t>(found->partitions.size()));
    }
  }
  // As in CreateTopics: Kafka's cap on the partitions one request may create.
  const bool too_many = added_partitions > max_partitions_per_request;
  completion_latch grown(ctx.executor);
  response.results.reserve(request.topics.size());
  for (const auto& t : request.topics) {
    auto& out = response.results.emplace_back();
    out.name = t.name;
    auto fail = [&out](error_code code, std::string message) {
      out.error_code = static_cast<int16_t>(code);
      out.error_message = std::move(message);
    };
    if (name_count[t.name] > 1) {
      fail(error_code::invalid_request, "Duplicate topic name.");
      continue;
    }
    if (too_many) {
      fail(error_code::policy_violation, "Excessively large number of partitions per request.");
      continue;
    }
    topic* found = topics.find(t.name);
    if (found == nullptr) {
      fail(error_code::unknown_topic_or_partition, "This server does not host this topic.");
      continue;
    }
    if (found->growing) {
      fail(error_code::reassignment_in_progress,
           "Topic " + t.name + " is already being given more partitions.");
      continue;
    }
    if (found->internal) {
      fail(error_code::invalid_request,
           "Topic " + t.name + " is an internal topic; its partitions cannot be changed");
      continue;
    }
    const auto current = static_cast<int32_t>(found->partitions.size());
    if (t.count == current) {
      fail(error_code::invalid_partitions,
           "Topic already has " + std::to_string(current) + " partition(s).");
      continue;
    }
    if (t.count < current) {
      fail(error_code::invalid_partitions,
           "The topic " + t.name + " currently has " + std::to_string(current) + " partition(s); " +
               std::to_string(t.count) + " would not be an increase.");
      continue;
    }
    if (t.assignments) {
      const size_t adding = static_cast<size_t>(t.count - current);
      if (t.assignments->size() != adding) {
        fail(error_code::invalid_replica_assignment,
             "Attempted to add " + std::to_string(adding) + " additional partition(s), but only " +
                 std::to_string(t.assignments->size()) + " assignment(s) were specified.");
        continue;
      }
      bool bad = false;
      for (const auto& a : *t.assignments) {
        if (a.broker_ids.size() != 1 || a.broker_ids.front() != node) {
          bad = true;
          break;
        }
      }
      if (bad) {
        fail(error_code::invalid_replica_assignment,
             "Each new partition must have exactly one replica, broker " + std::to_string(node) +
                 ": this cluster has one broker.");
        continue;
      }
    }
    if (request.validate_only) continue;
    // `results` was reserved: `out` stays where it is until the answer.
    topics.add_partitions_async(*found, t.count, [fail, ticket = grown.add()](error_code ec) {
      if (ec != error_code::none) {
        fail(ec, "Cannot create the new partitions");
      }
      ticket.done();
    });
  }
  co_await grown.wait();
  co_return response;
}

}  // namespace sluice::server
