// Produce (key 0), versions 3-13; advertised from 0 like Kafka 4 (KAFKA-18659), because
// librdkafka before 2.11.1 stops compressing unless Produce v0 is in the advertised range.
// v0-2 (legacy message sets) are refused by dispatch like any unsupported version: the
// connection is closed, as Kafka 4 does. v10 adds CurrentLeader and NodeEndpoints to answer a
// NOT_LEADER_OR_FOLLOWER, which a single broker never gives; v11 and v12 change only transactions,
// which are refused here; v13 names topics by id (KIP-516).
//
// Each partition's `records` must be exactly one RecordBatch v2 with base offset 0 (Kafka's rules
// for Produce v3+ from clients). The batch is validated (framing, magic, CRC-32C, offset delta vs
// record count) and appended as received, from the request buffer it arrived in: the log stamps
// BaseOffset and PartitionLeaderEpoch in place, both outside the CRC, and under LogAppendTime
// (or when a client set that attribute on a CreateTime topic) the timestamp fields and the CRC.
//
// acks: 1 is answered after the local append (into the page cache). -1 is answered once the
// append is durable as the broker's contract says (README "Durability"): by default, since this
// broker is every partition's only in-sync replica, after the fdatasync that covers it, shared
// with every append made meanwhile (group commit); with log.flush.on.ack=never, after the append
// as in Kafka. min.insync.replicas above the ISR's size is NOT_ENOUGH_REPLICAS, nothing written.
// flush.messages, once reached, makes every append wait for its fsync, whatever the acks. A failed
// fsync is never acknowledged: KAFKA_STORAGE_ERROR, and the partition goes offline. 0 sends
// nothing, and a failed acks=0 produce closes the connection, as Kafka does, since there is no
// response to carry the error. Any other acks value: INVALID_REQUIRED_ACKS for every partition,
// nothing written. Unknown topics are created when auto.create.topics.enable is on (Kafka leaves
// that to Metadata) and answer LEADER_NOT_AVAILABLE until their files exist, as does a topic that
// CreateTopics is still creating; else UNKNOWN_TOPIC_OR_PARTITION. Clients cannot write to
// internal topics (`__consumer_offsets`): INVALID_TOPIC_EXCEPTION, as Kafka answers.
//
// An append waits while its partition rolls to a new segment (the new files are made by a disk
// job); appends to one partition stay in arrival order.
//
// Idempotent producers: the log checks each batch's producer id, epoch and sequence. A retry of
// one of the producer's last five batches is answered NONE with the offsets of the first write
// and writes nothing (one log line: rare, and worth seeing); a gap is
// OUT_OF_ORDER_SEQUENCE_NUMBER and an older epoch INVALID_PRODUCER_EPOCH. The topic's
// max.message.bytes bounds each batch (MESSAGE_TOO_LARGE), and under
// message.timestamp.type=LogAppendTime the answer carries the time stamped into the batch.
//
// Deviations: compressed batches are not decompressed to validate inner records (Kafka does);
// offsets come from the header, so a producer that lies about lastOffsetDelta is trusted.
// Transactional batches are refused with INVALID_RECORD: there is no transaction coordinator.

#include <charconv>

#include "server/broker_stats.h"
#include "server/completion_latch.h"
#include "server/errors.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "server/partition_directory.h"
#include "server/timers.h"
#include "server/topic_config.h"
#include "server/topics.h"
#include "wire/record_batch.h"

namespace sluice::server {

namespace {

using wire::error_code;

constexpr int16_t zstd_codec = 4;
constexpr int16_t first_zstd_version = 7;

// Checks Kafka applies to a client's records before the log sees them. The log checks the rest
// (CRC, sizes against the topic's max.message.bytes, producer state).
// The topic a Produce names: by id from v13 (KIP-516; an unknown id is UNKNOWN_TOPIC_ID, and
// nothing is created for it), else by name, created on first use. Internal topics hold the
// broker's own records (Kafka: INVALID_TOPIC_EXCEPTION).
error_code resolve_topic(topic_registry& topics, partition_directory& partitions,
                         wire::produce_request::topic_produce_data& data, int16_t api_version,
                         topic*& t) {
  if (api_version >= 13) {
    t = topics.find_by_id(data.topic_id);
    if (t == nullptr) return error_code::unknown_topic_id;
    data.name = t->name;
  } else if (error_code ec = partitions.find_or_create_topic(data.name, true, t);
             ec != error_code::none) {
    return ec;
  }
  return t->internal ? error_code::invalid_topic_exception : error_code::none;
}

error_code check_client_batch(const wire::records& records, int16_t api_version) {
  if (records.null || records.bytes.empty()) return error_code::invalid_record;
  wire::batch_reader reader(records.bytes);
  std::optional<wire::record_batch> batch = reader.next();
  if (!batch) {
    return reader.error() == wire::batch_error::unsupported_magic ? error_code::invalid_record
                                                                  : error_code::corrupt_message;
  }
  if (reader.position() != records.bytes.size()) return error_code::invalid_record;
  if (batch->base_offset() != 0 || batch->is_control()) return error_code::invalid_record;
  // Transactions need a transaction coordinator, which this broker does not have; InitProducerId
  // never hands out a transactional id's producer id, so this is a misbehaving client.
  if (batch->is_transactional()) return error_code::invalid_record;
  if (batch->compression() == zstd_codec && api_version < first_zstd_version) {
    return error_code::unsupported_compression_type;
  }
  return error_code::none;
}

using partition_response = wire::produce_response::partition_produce_response;

// A partition appended to, for the waits that follow.
struct appended {
  partition_response* out;
  std::shared_ptr<partition> p;
  const std::string* topic;
  int64_t end_offset;
  int32_t min_insync_replicas;
};

using fail_fn = std::function<void(partition_response&, const std::string&, error_code)>;

// Waits until each replicated partition's ISR has its batch, or timeout_ms passes
// (REQUEST_TIMED_OUT for the partitions still waiting). A partition led alone answers at once.
// `executor` by reference: GCC 12 may destroy twice a copy made inside the caller's co_await.
boost::asio::awaitable<void> wait_for_replicas(const boost::asio::any_io_executor& executor,
                                               timer_service& timers, int32_t timeout_ms,
                                               std::vector<appended>& partitions,
                                               const fail_fn& fail) {
  struct waiting {
    appended* a;
    completion_latch::ticket ticket;
    bool answered = false;
  };
  completion_latch replicated(executor);
  std::vector<std::shared_ptr<waiting>> waits;
  for (appended& a : partitions) {
    if (a.p->tracker() == nullptr) continue;
    auto w = std::make_shared<waiting>(waiting{&a, replicated.add()});
    waits.push_back(w);
    // May run after this coroutine returned (the deadline answered first): `answered` is all it
    // looks at then.
    a.p->when_replicated(a.end_offset, a.min_insync_replicas, [w, &fail](error_code ec) {
      if (w->answered) return;
      w->answered = true;
      if (ec != error_code::none) fail(*w->a->out, *w->a->topic, ec);
      w->ticket.done();
    });
  }
  if (waits.empty()) co_return;
  timer_handle deadline =
      timers.schedule(std::chrono::milliseconds(std::max(0, timeout_ms)), [&waits, &fail] {
        for (auto& w : waits) {
          if (w->answered) continue;
          w->answered = true;
          fail(*w->a->out, *w->a->topic, error_code::request_timed_out);
          w->ticket.done();
        }
      });
  co_await replicated.wait();
  std::erase_if(partitions, [](const appended& a) { return a.out->error_code != 0; });
}

}  // namespace

boost::asio::awaitable<std::optional<wire::produce_response>> handle_produce(
    const broker_config& config, topic_registry& topics, partition_directory& partitions,
    timer_service& timers, broker_stats& stats, request_context& ctx,
    wire::produce_request& request) {
  wire::produce_response response;
  const bool valid_acks = request.acks == 0 || request.acks == 1 || request.acks == -1;
  const int16_t acks = request.acks;
  bool failed = false;
  auto fail = [&ctx, &failed](partition_response& out, const std::string& topic, error_code ec) {
    out.error_code = static_cast<int16_t>(ec);
    out.base_offset = -1;
    out.log_append_time_ms = -1;
    out.log_start_offset = -1;
    failed = true;
    if (ec == error_code::corrupt_message || ec == error_code::invalid_record ||
        ec == error_code::kafka_storage_error) {
      log_warn("produce to ", topic, "-", out.index, " from ", ctx.peer, " (client ",
               log_safe(ctx.client_id.value_or("")), ") rejected: ", wire::error_name(ec));
    }
  };
  std::vector<appended> done_appending;
  completion_latch appends(ctx.executor);
  // Reserved: callbacks of appends that wait for a roll write through pointers into these.
  response.responses.reserve(request.topic_data.size());
  for (auto& topic_data : request.topic_data) {
    topic* t = nullptr;
    const error_code topic_error =
        valid_acks ? resolve_topic(topics, partitions, topic_data, ctx.api_version, t)
                   : error_code::invalid_required_acks;
    auto& topic_out = response.responses.emplace_back();
    topic_out.name = topic_data.name;
    topic_out.topic_id = topic_data.topic_id;
    topic_out.partition_responses.reserve(topic_data.partition_data.size());
    for (auto& partition_data : topic_data.partition_data) {
      auto& out = topic_out.partition_responses.emplace_back();
      out.index = partition_data.index;
      out.base_offset = -1;
      out.log_append_time_ms = -1;
      out.log_start_offset = -1;
      error_code ec = topic_error;
      partition* p = nullptr;
      if (ec == error_code::none) {
        p = topics.find_partition(topic_data.name, partition_data.index);
        if (p == nullptr) {
          ec = error_code::unknown_topic_or_partition;
        } else if (p->offline()) {
          ec = error_code::kafka_storage_error;
        } else if (!p->is_leader()) {
          ec = error_code::not_leader_or_follower;
        }
      }
      if (ec == error_code::none) {
        ec = check_client_batch(partition_data.records, ctx.api_version);
      }
      // acks=all promises min.insync.replicas copies (Kafka checks before appending).
      int32_t min_isr = 1;
      if (ec == error_code::none && acks == -1) {
        min_isr = min_insync_replicas(config, *t);
        if (static_cast<int64_t>(p->isr().size()) < min_isr) ec = error_code::not_enough_replicas;
      }
      if (ec != error_code::none) {
        fail(out, topic_data.name, ec);
        continue;
      }
      p->append(
          partition_data.records.bytes,
          [&, min_isr, out = &out, p = p->shared_from_this(), topic = &topic_data.name,
           ticket = appends.add()](std::error_code append_ec, const storage::append_info& info) {
            if (append_ec) {
              fail(*out, *topic,
                   p->deleted()      ? error_code::unknown_topic_or_partition
                   : !p->is_leader() ? error_code::not_leader_or_follower
                                     : to_kafka_error(append_ec));
            } else {
              out->base_offset = info.base_offset;
              out->log_append_time_ms = info.log_append_time;
              out->log_start_offset = info.log_start_offset;
              if (info.duplicate) {
                log_info("produce to ", *topic, "-", out->index, " from ", ctx.peer, " (client ",
                         log_safe(ctx.client_id.value_or("")), "): duplicate of offsets ",
                         info.base_offset, "-", info.last_offset,
                         ", answered with the original offsets");
              } else if (acks == -1) {
                stats.count_acks_all_batches(info.batch_count);
              }
              done_appending.push_back({out, p, topic, info.last_offset + 1, min_isr});
            }
            ticket.done();
          });
    }
  }
  co_await appends.wait();

  // acks=all in a cluster: every in-sync replica must have the batch first (Kafka's
  // DelayedProduce), for at most the request's timeout_ms.
  if (acks == -1) {
    co_await wait_for_replicas(ctx.executor, timers, request.timeout_ms, done_appending, fail);
  }

  // The durability the contract asks for (a duplicate waits too: its original may not be synced).
  completion_latch durable(ctx.executor);
  for (const appended& a : done_appending) {
    a.p->when_acknowledgeable(
        a.end_offset, acks, [&fail, a, ticket = durable.add()](std::error_code ec) {
          if (ec) {
            fail(*a.out, *a.topic,
                 a.p->deleted() ? error_code::unknown_topic_or_partition : to_kafka_error(ec));
          }
          ticket.done();
        });
  }
  co_await durable.wait();
  if (acks == 0) {
    ctx.close_connection = failed;
    co_return std::nullopt;
  }
  co_return response;
}

}  // namespace sluice::server
