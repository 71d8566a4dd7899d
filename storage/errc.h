#pragma once
// Errors of the storage layer. The server maps them to Kafka error codes in one switch; the Kafka
// code each one usually becomes is noted beside it.

#include <system_error>
#include <type_traits>

namespace sluice::storage {

enum class errc {
  // A batch's size or CRC-32C is wrong (CORRUPT_MESSAGE).
  corrupt_message = 1,
  // A well-framed batch breaks a rule: magic, offsets, record count (INVALID_RECORD).
  invalid_record,
  // A read outside [log_start_offset, log_end_offset] (OFFSET_OUT_OF_RANGE).
  offset_out_of_range,
  // The file system failed; the details went to the log sink (KAFKA_STORAGE_ERROR).
  io_error,
  // One append larger than segment_bytes (RECORD_LIST_TOO_LARGE).
  record_batch_too_large,
  // partition.metadata names another topic id (INCONSISTENT_TOPIC_ID).
  inconsistent_topic_id,
  // A topic name or partition that cannot name a directory (INVALID_TOPIC_EXCEPTION).
  invalid_topic_partition,
  // The log was closed: shutdown in progress (KAFKA_STORAGE_ERROR).
  log_closed,
  // One batch larger than the log's max_message_bytes (MESSAGE_TOO_LARGE, 10: Kafka's
  // RecordTooLargeException; RECORD_LIST_TOO_LARGE is record_batch_too_large above).
  record_too_large,
  // An idempotent producer skipped or repeated a sequence number, or a new epoch did not start at
  // sequence 0 (OUT_OF_ORDER_SEQUENCE_NUMBER, 45).
  out_of_order_sequence,
  // A batch from an older epoch of its producer id: a fenced zombie (INVALID_PRODUCER_EPOCH, 47).
  invalid_producer_epoch,
  // A non-transactional batch while its producer has a transaction open (INVALID_TXN_STATE, 48).
  invalid_txn_state,
  // A write or fsync of this log failed: it takes nothing more until the broker restarts and
  // recovers it, since a failed fsync leaves the page cache in a state nobody can vouch for
  // (KAFKA_STORAGE_ERROR, as for Kafka's offline log directories).
  log_offline,
  // The active segment is full and its successor is being created by the disk executor: nothing
  // was written; the append can be made once log::when_writable() calls back. Never leaves the
  // broker.
  roll_in_progress,
  // The data needed is not in memory or in the page cache: reading it now would block on the
  // disk. read_info::cold says what to warm first (log::warm). Never leaves the broker.
  would_block,
  // A batch below the recovery point (data that was fsynced, so acknowledged) is invalid:
  // recovery refuses to truncate it away, and the log cannot be loaded.
  corrupt_log,
};

const std::error_category& storage_category();
std::error_code make_error_code(errc e);

}  // namespace sluice::storage

template <>
struct std::is_error_code_enum<sluice::storage::errc> : std::true_type {};
