// Produce (key 0), versions 3-9; advertised from 0 like Kafka 4 (KAFKA-18659), because
// librdkafka before 2.11.1 stops compressing unless Produce v0 is in the advertised range.
// v0-2 (legacy message sets) are refused by dispatch like any unsupported version: the
// connection is closed, as Kafka 4 does.
//
// Each partition's `records` must be exactly one RecordBatch v2 with base offset 0 (Kafka's rules
// for Produce v3+ from clients). The batch is validated (framing, magic, CRC-32C, offset delta vs
// record count) and appended as received, from the request buffer it arrived in: the log stamps
// BaseOffset and PartitionLeaderEpoch in place, both outside the CRC, and under LogAppendTime
// (or when a client set that attribute on a CreateTime topic) the timestamp fields and the CRC.
//
// acks: 1 and -1 are answered after the local append (on a single broker the ISR is this broker,
// so -1 is satisfied at once, unless the topic's min.insync.replicas asks for more copies than
// the ISR has: NOT_ENOUGH_REPLICAS, nothing written); 0 sends nothing, and a failed acks=0 produce
// closes the connection, as Kafka does, since there is no response to carry the error. Any other
// acks value: INVALID_REQUIRED_ACKS for every partition, nothing written. Unknown topics are
// created when auto.create.topics.enable is on (the rule; Kafka leaves that to Metadata),
// else UNKNOWN_TOPIC_OR_PARTITION. Clients cannot write to internal topics (`__consumer_offsets`):
// INVALID_TOPIC_EXCEPTION, as Kafka answers.
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

#include "server/broker.h"
#include "server/errors.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "server/topic_config.h"
#include "wire/record_batch.h"

namespace sluice::server {

namespace {

using wire::error_code;

constexpr int16_t zstd_codec = 4;
constexpr int16_t first_zstd_version = 7;

// Checks Kafka applies to a client's records before the log sees them. The log checks the rest
// (CRC, sizes against the topic's max.message.bytes, producer state).
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

int64_t min_insync_replicas(const broker_config& config, const topic& t) {
  static const topic_config_spec* spec = find_topic_config("min.insync.replicas");
  int64_t value = 1;
  std::string text = effective_value(config, t.configs, *spec);
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

}  // namespace

std::optional<wire::produce_response> handle_produce(request_context& ctx,
                                                     wire::produce_request& request) {
  broker& b = ctx.broker;
  wire::produce_response response;
  const bool valid_acks = request.acks == 0 || request.acks == 1 || request.acks == -1;
  bool failed = false;
  for (auto& topic_data : request.topic_data) {
    auto& topic_out = response.responses.emplace_back();
    topic_out.name = topic_data.name;
    topic* t = nullptr;
    error_code topic_error = error_code::none;
    if (!valid_acks) {
      topic_error = error_code::invalid_required_acks;
    } else {
      topic_error = b.find_or_create_topic(topic_data.name, true, t);
      // Internal topics hold the broker's own records (Kafka: INVALID_TOPIC_EXCEPTION).
      if (topic_error == error_code::none && t->internal) {
        topic_error = error_code::invalid_topic_exception;
      }
    }
    for (auto& partition_data : topic_data.partition_data) {
      auto& out = topic_out.partition_responses.emplace_back();
      out.index = partition_data.index;
      out.base_offset = -1;
      out.log_append_time_ms = -1;
      out.log_start_offset = -1;
      error_code ec = topic_error;
      partition* p = nullptr;
      if (ec == error_code::none) {
        p = b.topics().find_partition(topic_data.name, partition_data.index);
        if (p == nullptr) ec = error_code::unknown_topic_or_partition;
      }
      if (ec == error_code::none) {
        ec = check_client_batch(partition_data.records, ctx.api_version);
      }
      // acks=all promises min.insync.replicas copies (Kafka checks before appending).
      if (ec == error_code::none && request.acks == -1 &&
          static_cast<int64_t>(p->isr().size()) < min_insync_replicas(b.config(), *t)) {
        ec = error_code::not_enough_replicas;
      }
      if (ec == error_code::none) {
        storage::append_info info;
        std::error_code append_ec = p->append(partition_data.records.bytes, info);
        if (append_ec) {
          ec = to_kafka_error(append_ec);
        } else {
          out.base_offset = info.base_offset;
          out.log_append_time_ms = info.log_append_time;
          out.log_start_offset = info.log_start_offset;
          if (info.duplicate) {
            log_info("produce to ", topic_data.name, "-", partition_data.index, " from ", ctx.peer,
                     " (client ", ctx.client_id.value_or(""), "): duplicate of offsets ",
                     info.base_offset, "-", info.last_offset,
                     ", answered with the original offsets");
          }
        }
      }
      if (ec != error_code::none) {
        out.error_code = static_cast<int16_t>(ec);
        failed = true;
        if (ec == error_code::corrupt_message || ec == error_code::invalid_record ||
            ec == error_code::kafka_storage_error) {
          log_warn("produce to ", topic_data.name, "-", partition_data.index, " from ", ctx.peer,
                   " (client ", ctx.client_id.value_or(""), ") rejected: ", wire::error_name(ec));
        }
      }
    }
  }
  if (request.acks == 0) {
    ctx.close_connection = failed;
    return std::nullopt;
  }
  return response;
}

}  // namespace sluice::server
