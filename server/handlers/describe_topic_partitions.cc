// DescribeTopicPartitions (key 75), version 0 (KIP-966): what current admin clients send for
// describeTopics, with paging over partitions.
//
// As Kafka's DescribeTopicPartitionsRequestHandler: an empty topic list means every topic,
// internal ones included, and then unknown topics are left out; named topics that do not exist
// answer UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an illegal name). Topics go in
// name order, starting at the cursor (topic, partition); at most min(ResponsePartitionLimit, 2000)
// partitions are returned, and NextTopicPartition says where the next page starts. A cursor
// naming a topic that was not asked for, or a negative partition, is INVALID_REQUEST for every
// requested topic. Authorized operations are every topic operation (no authorizer). A partition
// whose log is offline has no leader (LEADER_NOT_AVAILABLE, this broker in OfflineReplicas), as in
// Metadata. In a cluster the topics and partitions come from the cluster state, as Metadata's do.
// Sluice has no eligible leader replicas (KIP-966's ELR): both lists are empty.

#include <algorithm>
#include <set>

#include "server/authorized_operations.h"
#include "server/cluster/metadata_image.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

constexpr int32_t max_partitions_per_response = 2000;  // max.request.partition.size.limit

using response_t = wire::describe_topic_partitions_response;

response_t::describe_topic_partitions_response_partition describe(const partition& p) {
  response_t::describe_topic_partitions_response_partition out;
  out.partition_index = p.index();
  out.leader_id = p.leader_id();
  out.leader_epoch = p.leader_epoch();
  out.replica_nodes = p.replicas();
  out.isr_nodes = p.isr();
  out.eligible_leader_replicas.emplace();
  out.last_known_elr.emplace();
  if (p.offline()) {
    out.error_code = static_cast<int16_t>(wire::error_code::leader_not_available);
    out.leader_id = -1;
    out.isr_nodes.clear();
    out.offline_replicas = p.replicas();
  }
  return out;
}

// In a cluster, a partition as the cluster state has it (as Metadata answers it).
response_t::describe_topic_partitions_response_partition describe(
    const cluster::metadata_image& image, const wire::uuid& id, const cluster::topic_record& record,
    int32_t index) {
  response_t::describe_topic_partitions_response_partition out;
  out.partition_index = index;
  out.replica_nodes = record.replicas[static_cast<size_t>(index)];
  out.eligible_leader_replicas.emplace();
  out.last_known_elr.emplace();
  for (int32_t r : out.replica_nodes) {
    if (image.broker(r) == nullptr) out.offline_replicas.push_back(r);
  }
  const cluster::partition_state* state = image.partition(id, index);
  out.leader_epoch = state != nullptr ? state->record.leader_epoch : -1;
  if (state != nullptr) out.isr_nodes = state->record.isr;
  if (state == nullptr || state->record.leader < 0 ||
      image.broker(state->record.leader) == nullptr) {
    out.error_code = static_cast<int16_t>(wire::error_code::leader_not_available);
    out.leader_id = -1;
  } else {
    out.leader_id = state->record.leader;
  }
  return out;
}

// A topic to describe, from this broker's registry or, in a cluster, from the cluster state.
struct topic_view {
  wire::uuid id{};
  bool internal = false;
  std::vector<response_t::describe_topic_partitions_response_partition> partitions;
};

std::optional<topic_view> find_topic(const metadata_view& metadata, topic_registry& topics,
                                     const std::string& name) {
  if (const cluster::metadata_image* image = metadata.image()) {
    std::optional<wire::uuid> id = image->topic_id(name);
    if (!id) return std::nullopt;
    const cluster::topic_record& record = *image->topic(*id);
    topic_view v{*id, is_internal_topic(name), {}};
    for (size_t i = 0; i < record.replicas.size(); ++i)
      v.partitions.push_back(describe(*image, *id, record, static_cast<int32_t>(i)));
    return v;
  }
  const topic* t = topics.find(name);
  if (t == nullptr) return std::nullopt;
  topic_view v{t->id, t->internal, {}};
  for (const auto& p : t->partitions)
    v.partitions.push_back(describe(*p));
  return v;
}

}  // namespace

wire::describe_topic_partitions_response handle_describe_topic_partitions(
    const metadata_view& metadata, topic_registry& topics, request_context&,
    wire::describe_topic_partitions_request& request) {
  response_t response;
  const bool all = request.topics.empty();
  const std::string cursor_topic = request.cursor ? request.cursor->topic_name : "";

  std::set<std::string, std::less<>> names;
  if (all) {
    for (const auto& [name, t] : topics.all()) {
      if (!metadata.in_cluster()) names.insert(name);
    }
    if (const cluster::metadata_image* image = metadata.image()) {
      for (const auto& [id, record] : image->topics()) {
        if (image->topic_id(record.name) == id) names.insert(record.name);
      }
    }
  } else {
    for (const auto& r : request.topics)
      names.insert(r.name);
  }
  if (request.cursor &&
      (request.cursor->partition_index < 0 || (!all && !names.contains(cursor_topic)))) {
    for (const auto& r : request.topics) {
      auto& out = response.topics.emplace_back();
      out.error_code = static_cast<int16_t>(wire::error_code::invalid_request);
      out.name = r.name;
    }
    return response;
  }

  int32_t remaining =
      std::min(max_partitions_per_response, std::max(request.response_partition_limit, 0));
  for (auto it = names.lower_bound(cursor_topic); it != names.end(); ++it) {
    const std::string& name = *it;
    std::optional<topic_view> t = find_topic(metadata, topics, name);
    if (!t) {
      if (all) continue;
      auto& out = response.topics.emplace_back();
      out.error_code = static_cast<int16_t>(is_valid_topic_name(name)
                                                ? wire::error_code::unknown_topic_or_partition
                                                : wire::error_code::invalid_topic_exception);
      out.name = name;
      out.is_internal = is_internal_topic(name);
      continue;
    }
    if (remaining <= 0) {
      response.next_topic_partition.emplace();
      response.next_topic_partition->topic_name = name;
      response.next_topic_partition->partition_index = 0;
      break;
    }
    auto& out = response.topics.emplace_back();
    out.name = name;
    out.topic_id = t->id;
    out.is_internal = t->internal;
    out.topic_authorized_operations = topic_operations;
    const auto count = static_cast<int32_t>(t->partitions.size());
    const int32_t start = name == cursor_topic ? request.cursor->partition_index : 0;
    const int32_t end = std::min<int64_t>(count, int64_t{start} + remaining);
    for (int32_t i = start; i < end; ++i)
      out.partitions.push_back(std::move(t->partitions[static_cast<size_t>(i)]));
    remaining -= std::max(end - start, 0);
    if (end < count) {
      response.next_topic_partition.emplace();
      response.next_topic_partition->topic_name = name;
      response.next_topic_partition->partition_index = end;
      break;
    }
  }
  return response;
}

}  // namespace sluice::server
