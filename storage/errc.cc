#include "storage/errc.h"

#include <string>

namespace sluice::storage {

namespace {

class category_impl : public std::error_category {
 public:
  const char* name() const noexcept override { return "sluice.storage"; }
  std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
      case errc::corrupt_message:
        return "corrupt record batch";
      case errc::invalid_record:
        return "invalid record batch";
      case errc::offset_out_of_range:
        return "offset out of range";
      case errc::io_error:
        return "storage I/O error";
      case errc::record_batch_too_large:
        return "record batch larger than the segment size";
      case errc::inconsistent_topic_id:
        return "inconsistent topic id";
      case errc::invalid_topic_partition:
        return "invalid topic or partition";
      case errc::log_closed:
        return "log is closed";
      case errc::record_too_large:
        return "record batch larger than max.message.bytes";
      case errc::out_of_order_sequence:
        return "out of order sequence number";
      case errc::invalid_producer_epoch:
        return "producer epoch is older than the current one";
      case errc::invalid_txn_state:
        return "non-transactional batch inside an open transaction";
      case errc::log_offline:
        return "log is offline after a storage failure";
      case errc::roll_in_progress:
        return "log is rolling to a new segment";
      case errc::would_block:
        return "data is not cached; reading it would block";
      case errc::corrupt_log:
        return "invalid batch below the recovery point";
    }
    return "unknown storage error";
  }
};

}  // namespace

const std::error_category& storage_category() {
  static const category_impl category;
  return category;
}

std::error_code make_error_code(errc e) {
  return {static_cast<int>(e), storage_category()};
}

}  // namespace sluice::storage
