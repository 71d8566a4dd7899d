// ListOffsets (key 2), versions 0-7.
//
// Timestamps: -2 earliest (log start offset), -1 latest (high watermark for consumers, last
// stable offset under read_committed, log end offset for a replica or the debugging id -2, whose
// isolation level Kafka ignores), -3 max timestamp (v7+,
// KIP-734: the offset of the record with the largest timestamp), otherwise the first offset whose
// record timestamp is >= the given one, through the time index; none found: offset -1 and
// timestamp -1, as Kafka answers. v0 answers in old_style_offsets with that single offset.
// current_leader_epoch (v4+) is checked like Fetch.
//
// A leader whose high watermark lags the start of its epoch (partition.h) answers a consumer
// OFFSET_NOT_AVAILABLE (LEADER_NOT_AVAILABLE before v5, which lacks the code) for the latest
// offset, and for a timestamp whose offset it cannot show below the high watermark, as Kafka's
// Partition.fetchOffsetForTimestamp does; earliest is always answered.
//
// Deviations: v0's max_num_offsets (a list of segment base offsets) is answered with one offset,
// which is what every v0 client asks for in practice. A timestamp inside a compressed batch
// resolves to that batch's first offset (storage does not decompress).

#include "server/errors.h"
#include "server/handlers/handlers.h"
#include "server/partition.h"
#include "server/partition_directory.h"

namespace sluice::server {

namespace {

using wire::error_code;

constexpr int64_t latest_timestamp = -1;
constexpr int64_t earliest_timestamp = -2;
constexpr int64_t max_timestamp = -3;
constexpr int8_t read_committed = 1;
constexpr int32_t consumer_replica_id = -1;

}  // namespace

wire::list_offsets_response handle_list_offsets(partition_directory& partitions,
                                                request_context& ctx,
                                                wire::list_offsets_request& request) {
  wire::list_offsets_response response;
  for (const auto& requested_topic : request.topics) {
    auto& topic_out = response.topics.emplace_back();
    topic_out.name = requested_topic.name;
    for (const auto& requested : requested_topic.partitions) {
      auto& out = topic_out.partitions.emplace_back();
      out.partition_index = requested.partition_index;
      out.timestamp = -1;
      out.offset = -1;
      partition* p = nullptr;
      if (error_code ec =
              partitions.find_partition(requested_topic.name, requested.partition_index, p);
          ec != error_code::none) {
        out.error_code = static_cast<int16_t>(ec);
        continue;
      }
      if (requested.current_leader_epoch != -1 &&
          requested.current_leader_epoch != p->leader_epoch()) {
        out.error_code = static_cast<int16_t>(requested.current_leader_epoch < p->leader_epoch()
                                                  ? error_code::fenced_leader_epoch
                                                  : error_code::unknown_leader_epoch);
        continue;
      }
      out.leader_epoch = p->leader_epoch();
      const bool from_consumer = request.replica_id == consumer_replica_id;
      const int64_t visible_end = !from_consumer ? p->log_end_offset()
                                  : request.isolation_level == read_committed
                                      ? p->last_stable_offset()
                                      : p->high_watermark();
      const bool lagging = from_consumer && p->high_watermark_lags_epoch_start();
      const error_code not_available = ctx.api_version >= 5 ? error_code::offset_not_available
                                                            : error_code::leader_not_available;
      switch (requested.timestamp) {
        case earliest_timestamp:
          out.offset = p->log_start_offset();
          break;
        case latest_timestamp:
          if (lagging) {
            out.error_code = static_cast<int16_t>(not_available);
          } else {
            out.offset = visible_end;
          }
          break;
        case max_timestamp: {
          auto [ts, offset] = p->log().max_timestamp_and_offset();
          if (offset >= 0 && offset < visible_end) {
            out.timestamp = ts;
            out.offset = offset;
          } else if (lagging) {
            out.error_code = static_cast<int16_t>(not_available);
          }
          break;
        }
        default: {
          auto found = p->log().timestamp_and_offset_for(requested.timestamp);
          if (found && found->second < visible_end) {
            out.timestamp = found->first;
            out.offset = found->second;
          } else if (lagging) {
            out.error_code = static_cast<int16_t>(not_available);
          }
          break;
        }
      }
      if (out.offset >= 0) out.old_style_offsets.push_back(out.offset);
    }
  }
  return response;
}

}  // namespace sluice::server
