// OffsetCommit (key 8), versions 0-8.
//
// Commits offsets with their metadata string and leader epoch (v6+). Group members are checked
// against the generation; generation -1 with no member id is a standalone commit, allowed only
// while the group is empty (Kafka's rule). The answer waits until the coordinator's store has
// made the commit durable; a failed append answers its error for every partition.
//
// A partition that does not exist is answered UNKNOWN_TOPIC_OR_PARTITION here, before the
// coordinator sees the commit, and nothing is stored for it (KafkaApis checks its metadata cache
// the same way). When no partition is left the coordinator is not asked at all, so such a
// request gets no group error either, as in Kafka.

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"
#include "server/topics.h"

namespace sluice::server {

boost::asio::awaitable<wire::offset_commit_response> handle_offset_commit(
    topic_registry& topics, group_coordinator& groups, request_context& ctx,
    wire::offset_commit_request& request) {
  std::vector<std::vector<bool>> exists(request.topics.size());
  bool all_exist = true;
  for (size_t ti = 0; ti < request.topics.size(); ++ti) {
    const auto& t = request.topics[ti];
    for (const auto& p : t.partitions) {
      const bool known = topics.find_partition(t.name, p.partition_index) != nullptr;
      exists[ti].push_back(known);
      all_exist = all_exist && known;
    }
  }
  if (all_exist) co_return co_await groups.commit_offsets(request, ctx.api_version);

  wire::offset_commit_request known = request;
  known.topics.clear();
  for (size_t ti = 0; ti < request.topics.size(); ++ti) {
    wire::offset_commit_request::offset_commit_request_topic t = request.topics[ti];
    t.partitions.clear();
    for (size_t pi = 0; pi < request.topics[ti].partitions.size(); ++pi) {
      if (exists[ti][pi]) t.partitions.push_back(request.topics[ti].partitions[pi]);
    }
    if (!t.partitions.empty()) known.topics.push_back(std::move(t));
  }
  wire::offset_commit_response committed;
  if (!known.topics.empty()) {
    committed = co_await groups.commit_offsets(known, ctx.api_version);
  }

  // The answer in the request's order: the coordinator's for the partitions it saw (its response
  // follows `known`, in order), UNKNOWN_TOPIC_OR_PARTITION for the rest.
  wire::offset_commit_response response;
  response.throttle_time_ms = committed.throttle_time_ms;
  size_t next_known_topic = 0;
  for (size_t ti = 0; ti < request.topics.size(); ++ti) {
    const auto& t = request.topics[ti];
    auto& out = response.topics.emplace_back();
    out.name = t.name;
    const wire::offset_commit_response::offset_commit_response_topic* from = nullptr;
    if (std::find(exists[ti].begin(), exists[ti].end(), true) != exists[ti].end()) {
      from = &committed.topics.at(next_known_topic++);
    }
    size_t next_known_partition = 0;
    for (size_t pi = 0; pi < t.partitions.size(); ++pi) {
      if (exists[ti][pi]) {
        out.partitions.push_back(from->partitions.at(next_known_partition++));
      } else {
        auto& p = out.partitions.emplace_back();
        p.partition_index = t.partitions[pi].partition_index;
        p.error_code = static_cast<int16_t>(wire::error_code::unknown_topic_or_partition);
      }
    }
  }
  co_return response;
}

}  // namespace sluice::server
