#include "server/errors.h"

#include "storage/log.h"
#include "wire/record_batch.h"

namespace sluice::server {

wire::error_code to_kafka_error(const std::error_code& ec) {
  using wire::error_code;
  if (!ec) return error_code::none;
  if (ec.category() == wire::batch_error_category()) {
    switch (static_cast<wire::batch_error>(ec.value())) {
      case wire::batch_error::ok:
        return error_code::none;
      case wire::batch_error::truncated:
      case wire::batch_error::invalid_length:
      case wire::batch_error::crc_mismatch:
        return error_code::corrupt_message;
      case wire::batch_error::unsupported_magic:
      case wire::batch_error::invalid_offset_delta:
      case wire::batch_error::offset_overflow:
      case wire::batch_error::record_count_mismatch:
        return error_code::invalid_record;
    }
  }
  if (ec.category() == storage::storage_category()) {
    switch (static_cast<storage::errc>(ec.value())) {
      case storage::errc::corrupt_message:
        return error_code::corrupt_message;
      case storage::errc::invalid_record:
        return error_code::invalid_record;
      case storage::errc::offset_out_of_range:
        return error_code::offset_out_of_range;
      case storage::errc::io_error:
      case storage::errc::log_closed:
      case storage::errc::log_offline:
      case storage::errc::corrupt_log:
        return error_code::kafka_storage_error;
      case storage::errc::roll_in_progress:
      case storage::errc::would_block:
        // Handled by the callers before they get here; reaching a client would be a bug.
        return error_code::unknown_server_error;
      case storage::errc::record_batch_too_large:
        return error_code::record_list_too_large;
      case storage::errc::inconsistent_topic_id:
        return error_code::inconsistent_topic_id;
      case storage::errc::invalid_topic_partition:
        return error_code::invalid_topic_exception;
      case storage::errc::record_too_large:
        return error_code::message_too_large;
      case storage::errc::out_of_order_sequence:
        return error_code::out_of_order_sequence_number;
      case storage::errc::invalid_producer_epoch:
        return error_code::invalid_producer_epoch;
      case storage::errc::invalid_txn_state:
        return error_code::invalid_txn_state;
    }
  }
  // Operating-system errors from the log's files: the disk, not the request, is at fault.
  if (ec.category() == std::system_category() || ec.category() == std::generic_category()) {
    return error_code::kafka_storage_error;
  }
  return error_code::unknown_server_error;
}

}  // namespace sluice::server
