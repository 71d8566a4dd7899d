// OffsetForLeaderEpoch (key 23), versions 0-4.
//
// Where a leader epoch ended in this broker's log (Kafka's Partition.lastOffsetForLeaderEpoch):
// the end offset of the largest epoch at or below the requested one, which is the start of the
// next epoch, or the log end for the current epoch. A follower truncates its log there; a consumer
// (KIP-320) checks whether its position survived a leader change. The leader-epoch-checkpoint
// answers it (storage/leader_epoch_cache.h).
//
// As in Kafka: CurrentLeaderEpoch (v2+; -1 skips the check) newer than the partition's is
// UNKNOWN_LEADER_EPOCH, older is FENCED_LEADER_EPOCH; an epoch the cache cannot place (newer than
// every epoch but the current one, or the undefined epoch -1) is NONE with leader_epoch -1 and
// end_offset -1; the answer is the same for followers and consumers (ReplicaId, v3+, is not
// read) and is not bounded by the high watermark. A partition whose log went offline is
// KAFKA_STORAGE_ERROR, one this broker does not have UNKNOWN_TOPIC_OR_PARTITION.

#include "server/handlers/handlers.h"
#include "server/partition.h"
#include "server/partition_directory.h"

namespace sluice::server {

wire::offset_for_leader_epoch_response handle_offset_for_leader_epoch(
    partition_directory& partitions, request_context&,
    wire::offset_for_leader_epoch_request& request) {
  using wire::error_code;
  wire::offset_for_leader_epoch_response response;
  for (const auto& requested_topic : request.topics) {
    auto& topic_out = response.topics.emplace_back();
    topic_out.topic = requested_topic.topic;
    for (const auto& requested : requested_topic.partitions) {
      auto& out = topic_out.partitions.emplace_back();
      out.partition = requested.partition;
      partition* p = nullptr;
      error_code ec = partitions.find_partition(requested_topic.topic, requested.partition, p);
      if (ec == error_code::none && requested.current_leader_epoch != -1 &&
          requested.current_leader_epoch != p->leader_epoch()) {
        ec = requested.current_leader_epoch < p->leader_epoch() ? error_code::fenced_leader_epoch
                                                                : error_code::unknown_leader_epoch;
      }
      if (ec != error_code::none) {
        out.error_code = static_cast<int16_t>(ec);
        continue;
      }
      auto [epoch, end_offset] = p->log().end_offset_for_epoch(requested.leader_epoch);
      if (end_offset != storage::undefined_epoch_offset) {
        out.leader_epoch = epoch;
        out.end_offset = end_offset;
      }
    }
  }
  return response;
}

}  // namespace sluice::server
