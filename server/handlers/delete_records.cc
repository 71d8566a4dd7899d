// DeleteRecords (key 21), versions 0-2: moves partitions' log start offsets forward.
//
// Kafka's rules (ReplicaManager.deleteRecordsOnLocalLog, Partition.deleteRecordsOnLeader): offset
// -1 means the high watermark; an offset below 0 or above the high watermark is
// OFFSET_OUT_OF_RANGE; the log start offset never moves back, and the answer's low_watermark is
// the log start offset afterwards. Whole segments below it are deleted at once; the part of a
// segment below it stays on disk but is unreadable (fetches below it get OFFSET_OUT_OF_RANGE).
// Internal topics are refused with INVALID_TOPIC_EXCEPTION, as Kafka refuses clients.
//
// The answer waits until the new log start offsets are durable (the checkpoint written), so that
// a crash cannot bring deleted records back; the segment files go in the background. On one
// broker there are no followers to wait for, so the answer does not wait for timeout_ms.

#include "server/completion_latch.h"
#include "server/errors.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

using wire::error_code;

}  // namespace

boost::asio::awaitable<wire::delete_records_response> handle_delete_records(
    topic_registry& topics, request_context& ctx, wire::delete_records_request& request) {
  wire::delete_records_response response;
  bool moved = false;
  completion_latch deleted(ctx.executor);
  // Reserved: deletion callbacks write through pointers into these.
  response.topics.reserve(request.topics.size());
  for (const auto& topic_in : request.topics) {
    auto& topic_out = response.topics.emplace_back();
    topic_out.name = topic_in.name;
    topic_out.partitions.reserve(topic_in.partitions.size());
    topic* t = topics.find(topic_in.name);
    for (const auto& partition_in : topic_in.partitions) {
      auto& out = topic_out.partitions.emplace_back();
      out.partition_index = partition_in.partition_index;
      out.low_watermark = -1;
      error_code ec = error_code::none;
      partition* p = nullptr;
      if (t == nullptr) {
        ec = error_code::unknown_topic_or_partition;
      } else if (t->internal) {
        ec = error_code::invalid_topic_exception;
      } else if ((p = topics.find_partition(topic_in.name, partition_in.partition_index)) ==
                 nullptr) {
        ec = error_code::unknown_topic_or_partition;
      } else if (!p->is_leader()) {
        ec = error_code::not_leader_or_follower;
      }
      if (ec == error_code::none) {
        // The log applies Kafka's rules (-1 = the high watermark, else [0, high watermark]).
        int64_t before = p->log_start_offset();
        int64_t new_start = -1;
        auto files_deleted = [out = &out, ticket = deleted.add()](std::error_code fec) {
          if (fec) out->error_code = static_cast<int16_t>(error_code::kafka_storage_error);
          ticket.done();
        };
        if (std::error_code dec =
                p->log().delete_records_before(partition_in.offset, new_start, files_deleted)) {
          ec = to_kafka_error(dec);
          files_deleted({});  // the log kept no copy: nothing to wait for
        } else {
          out.low_watermark = new_start;
          if (new_start != before) {
            moved = true;
            log_info("DeleteRecords from ", ctx.peer, " (client ",
                     log_safe(ctx.client_id.value_or("")), "): ", topic_in.name, "-",
                     partition_in.partition_index, " log start offset ", before, " -> ", new_start);
          }
        }
      }
      if (ec != error_code::none) out.error_code = static_cast<int16_t>(ec);
    }
  }
  co_await deleted.wait();
  if (moved) {
    completion_latch checkpointed(ctx.executor);
    std::error_code failed;
    topics.checkpoint_async([&failed, ticket = checkpointed.add()](std::error_code ec) {
      failed = ec;
      ticket.done();
    });
    co_await checkpointed.wait();
    if (failed) {
      // Not durable: the deletion may not survive a restart, so it is not reported as done.
      for (auto& t : response.topics) {
        for (auto& p : t.partitions) {
          if (p.error_code == 0)
            p.error_code = static_cast<int16_t>(error_code::kafka_storage_error);
        }
      }
    }
  }
  co_return response;
}

}  // namespace sluice::server
