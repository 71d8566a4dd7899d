// Produce (key 0), versions 3-9; advertised from 0 like Kafka 4 (KAFKA-18659), because
// librdkafka before 2.11.1 stops compressing unless Produce v0 is in the advertised range.
// v0-2 (legacy message sets) are refused by dispatch like any unsupported version: the
// connection is closed, as Kafka 4 does.
//
// Each partition's `records` must be exactly one RecordBatch v2 with base offset 0 (Kafka's rules
// for Produce v3+ from clients). The batch is validated (framing, magic, CRC-32C, offset delta vs
// record count) and appended as received: only BaseOffset and PartitionLeaderEpoch, both outside
// the CRC, are stamped in place. The bytes are written from the request buffer they arrived in.
//
// acks: 1 and -1 are answered after the local append (on a single broker the ISR is this broker,
// so -1 is satisfied at once); 0 sends nothing, and a failed acks=0 produce closes the connection,
// as Kafka does, since there is no response to carry the error. Any other acks value:
// INVALID_REQUIRED_ACKS for every partition, nothing written. Unknown topics are created when
// auto.create.topics.enable is on (the rule; Kafka leaves that to Metadata), else
// UNKNOWN_TOPIC_OR_PARTITION. Clients cannot write to internal topics (`__consumer_offsets`):
// INVALID_TOPIC_EXCEPTION, as Kafka answers.
//
// Deviations: compressed batches are not decompressed to validate inner records (Kafka does);
// offsets come from the header, so a producer that lies about lastOffsetDelta is trusted.
// Transactional and idempotent producer state is not tracked yet.

#include "server/broker.h"
#include "server/errors.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "wire/record_batch.h"

namespace sluice::server {

namespace {

using wire::error_code;

constexpr int16_t zstd_codec = 4;
constexpr int16_t first_zstd_version = 7;

// Checks Kafka applies to a client's records before the log sees them.
error_code check_client_batch(const wire::records& records, int16_t api_version,
                              int32_t max_message_bytes) {
  if (records.null || records.bytes.empty()) return error_code::invalid_record;
  wire::batch_reader reader(records.bytes);
  std::optional<wire::record_batch> batch = reader.next();
  if (!batch) {
    return reader.error() == wire::batch_error::unsupported_magic ? error_code::invalid_record
                                                                  : error_code::corrupt_message;
  }
  if (reader.position() != records.bytes.size()) return error_code::invalid_record;
  if (batch->size_bytes() > max_message_bytes) return error_code::message_too_large;
  if (batch->base_offset() != 0 || batch->is_control()) return error_code::invalid_record;
  if (batch->compression() == zstd_codec && api_version < first_zstd_version) {
    return error_code::unsupported_compression_type;
  }
  return error_code::none;
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
        ec = check_client_batch(partition_data.records, ctx.api_version,
                                b.config().message_max_bytes);
      }
      if (ec == error_code::none) {
        storage::append_info info;
        std::error_code append_ec = p->append(partition_data.records.bytes, info);
        if (append_ec) {
          ec = to_kafka_error(append_ec);
        } else {
          out.base_offset = info.base_offset;
          out.log_start_offset = p->log_start_offset();
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
