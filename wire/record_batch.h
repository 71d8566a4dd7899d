#pragma once
// RecordBatch v2 (magic 2): views over batch bytes as they arrive in Produce, sit in `.log` files
// and leave in Fetch. No I/O and no copies: a view reads big-endian fields at fixed offsets of a
// span it does not own, and the mutable view patches the few fields the broker owns in place.
//
// Layout (all big-endian; shared/kafka-protocol/README.md section 2.1):
//
//    0  baseOffset           int64   } outside the CRC: the broker stamps these
//    8  batchLength          int32   } (batchLength = bytes after this field)
//   12  partitionLeaderEpoch int32   }
//   16  magic                int8    }
//   17  crc                  uint32  CRC-32C of bytes 21..end
//   21  attributes           int16
//   23  lastOffsetDelta      int32
//   27  baseTimestamp        int64
//   35  maxTimestamp         int64
//   43  producerId           int64
//   51  producerEpoch        int16
//   53  baseSequence         int32
//   57  recordsCount         int32
//   61  records...           (one compressed blob when attributes & 7 != 0)
//
// Sizes and counts read from the wire are never trusted: `batch_reader` and `record_reader`
// check every length against the bytes actually present before using it.
//
// Threading: plain values over caller-owned memory; no shared state.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <type_traits>
#include <vector>

namespace sluice::wire {

// Byte offsets of the header fields inside a batch.
namespace batch_field {
inline constexpr size_t base_offset = 0;
inline constexpr size_t batch_length = 8;
inline constexpr size_t partition_leader_epoch = 12;
inline constexpr size_t magic = 16;
inline constexpr size_t crc = 17;
inline constexpr size_t attributes = 21;
inline constexpr size_t last_offset_delta = 23;
inline constexpr size_t base_timestamp = 27;
inline constexpr size_t max_timestamp = 35;
inline constexpr size_t producer_id = 43;
inline constexpr size_t producer_epoch = 51;
inline constexpr size_t base_sequence = 53;
inline constexpr size_t records_count = 57;
inline constexpr size_t records = 61;
}  // namespace batch_field

// Kafka's RECORD_BATCH_OVERHEAD: the fixed header in front of the records.
inline constexpr size_t record_batch_header_size = 61;
// Kafka's LOG_OVERHEAD: baseOffset + batchLength, the part not counted in batchLength.
inline constexpr size_t log_overhead = 12;
// Smallest legal batchLength: a header with no records.
inline constexpr int32_t min_batch_length = record_batch_header_size - log_overhead;
inline constexpr int8_t current_magic = 2;

// Attribute bits (README section 2.2).
namespace batch_attribute {
inline constexpr int16_t compression_mask = 0x07;
inline constexpr int16_t log_append_time = 0x08;
inline constexpr int16_t transactional = 0x10;
inline constexpr int16_t control = 0x20;
inline constexpr int16_t delete_horizon = 0x40;
}  // namespace batch_attribute

// Why a batch was rejected. 0 is success so that it converts to an empty std::error_code.
enum class batch_error {
  ok = 0,
  truncated,              // the buffer ends before the header or before batchLength says
  invalid_length,         // batchLength < 49, or the view is longer than batchLength + 12
  unsupported_magic,      // magic byte (16) is not 2
  crc_mismatch,           // CRC-32C of bytes 21..end differs from the crc field
  invalid_offset_delta,   // lastOffsetDelta < 0
  offset_overflow,        // baseOffset < 0, or baseOffset + lastOffsetDelta + 1 overflows int64
  record_count_mismatch,  // recordsCount != lastOffsetDelta + 1 (producer batches)
};

const std::error_category& batch_error_category();
std::error_code make_error_code(batch_error e);

// A read-only view of one batch. Header accessors need only the first 61 bytes (storage reads just
// the header with pread); validate(), records and CRC work need the whole batch. An accessor whose
// field lies beyond the view returns 0 rather than reading out of bounds.
class record_batch {
 public:
  record_batch() = default;
  explicit record_batch(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  std::span<const uint8_t> bytes() const { return bytes_; }
  // True when the view holds at least a full header, the precondition of every accessor below.
  bool has_header() const { return bytes_.size() >= record_batch_header_size; }

  int64_t base_offset() const { return i64(batch_field::base_offset); }
  int32_t batch_length() const { return i32(batch_field::batch_length); }
  int32_t partition_leader_epoch() const { return i32(batch_field::partition_leader_epoch); }
  int8_t magic() const {
    return bytes_.size() > batch_field::magic ? static_cast<int8_t>(bytes_[batch_field::magic]) : 0;
  }
  uint32_t crc() const { return static_cast<uint32_t>(i32(batch_field::crc)); }
  int16_t attributes() const { return i16(batch_field::attributes); }
  int32_t last_offset_delta() const { return i32(batch_field::last_offset_delta); }
  int64_t base_timestamp() const { return i64(batch_field::base_timestamp); }
  int64_t max_timestamp() const { return i64(batch_field::max_timestamp); }
  int64_t producer_id() const { return i64(batch_field::producer_id); }
  int16_t producer_epoch() const { return i16(batch_field::producer_epoch); }
  int32_t base_sequence() const { return i32(batch_field::base_sequence); }
  int32_t records_count() const { return i32(batch_field::records_count); }

  // Derived from the header. Both fields come from the wire, so the sums wrap as Java's longs do
  // (a baseOffset near INT64_MAX gives a negative last offset) rather than overflow, which would
  // be undefined behaviour; offsets_in_range() says whether the results mean anything.
  int64_t last_offset() const { return wrapping_add(base_offset(), last_offset_delta()); }
  int64_t next_offset() const { return wrapping_add(last_offset(), 1); }
  // baseOffset >= 0, lastOffsetDelta >= 0, and the offset after the batch still fits an int64.
  // validate() checks it; storage checks it wherever it reads a batch back (recovery, replay,
  // index rebuild): a CRC-valid batch can still carry offsets that would wrap the log end offset
  // negative.
  bool offsets_in_range() const {
    int64_t base = base_offset();
    int32_t delta = last_offset_delta();
    return base >= 0 && delta >= 0 && base < INT64_MAX - delta;
  }
  // Whole batch on the wire: batchLength + 12. Only meaningful once batch_length() was checked.
  int64_t size_bytes() const { return static_cast<int64_t>(batch_length()) + log_overhead; }
  int compression() const { return attributes() & batch_attribute::compression_mask; }
  bool is_log_append_time() const { return attributes() & batch_attribute::log_append_time; }
  bool is_transactional() const { return attributes() & batch_attribute::transactional; }
  bool is_control() const { return attributes() & batch_attribute::control; }

  // CRC-32C of bytes 21..end of the view, i.e. what crc() should be.
  uint32_t compute_crc() const;

  // Checks, in this order: enough bytes for the magic byte, magic 2, a full header, batchLength
  // >= 49 and equal to the view's size - 12, the CRC, lastOffsetDelta >= 0, offsets_in_range()
  // and, when `check_record_count` (producer batches), recordsCount == lastOffsetDelta + 1. Never
  // reads past the view.
  batch_error validate(bool check_record_count = true) const;

 protected:
  int16_t i16(size_t at) const;
  int32_t i32(size_t at) const;
  int64_t i64(size_t at) const;

  std::span<const uint8_t> bytes_;

 private:
  static int64_t wrapping_add(int64_t a, int64_t b) {
    return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  }
};

// A view that may patch the broker-owned fields of a batch in place.
class mutable_record_batch : public record_batch {
 public:
  explicit mutable_record_batch(std::span<uint8_t> bytes)
      : record_batch(bytes), mutable_bytes_(bytes) {}

  std::span<uint8_t> mutable_bytes() const { return mutable_bytes_; }

  // Outside the CRC: no checksum work.
  void set_base_offset(int64_t v);
  void set_partition_leader_epoch(int32_t v);
  // LogAppendTime: sets attribute bit 3 and maxTimestamp, then recomputes the CRC over the whole
  // batch (the view must hold all of it).
  void set_max_timestamp_and_log_append_time(int64_t ts);
  // Recomputes and stores the CRC after any edit from byte 21 on.
  void update_crc();

 private:
  void put_i16(size_t at, int16_t v);
  void put_i32(size_t at, int32_t v);
  void put_i64(size_t at, int64_t v);

  std::span<uint8_t> mutable_bytes_;
};

// Splits a buffer of concatenated batches (a Produce `records` field, a chunk of a `.log`) into
// batches, checking each size against the bytes that remain. It does not verify CRCs; call
// record_batch::validate() on each batch for that.
class batch_reader {
 public:
  explicit batch_reader(std::span<const uint8_t> data) : data_(data) {}

  // The next whole batch, or nullopt at the end of the data or at the first batch whose framing is
  // bad; error() then says which (ok at a clean end). Stops for good after an error.
  std::optional<record_batch> next();
  batch_error error() const { return error_; }
  // Where the next batch starts: after an error, the start of the offending batch, i.e. the
  // length of the well-framed prefix.
  size_t position() const { return pos_; }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  batch_error error_ = batch_error::ok;
};

// One record of an uncompressed batch (README section 2.3). Spans point into the batch.
struct record_view {
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  std::optional<std::span<const uint8_t>> key;    // nullopt: null key
  std::optional<std::span<const uint8_t>> value;  // nullopt: null value
  int32_t header_count = 0;
  std::span<const uint8_t> headers;  // the encoded headers, undecoded
};

// Iterates the records of an UNCOMPRESSED batch (e.g. for timestamp look-ups). For a compressed
// batch, or a malformed record, next() returns nullopt with ok() false. At most recordsCount
// records are returned; every varint and length is bounds-checked.
class record_reader {
 public:
  explicit record_reader(const record_batch& batch);

  std::optional<record_view> next();
  // False once a record was malformed, the batch is compressed, or the data ended before
  // recordsCount records.
  bool ok() const { return ok_; }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  int32_t remaining_ = 0;
  bool ok_ = true;
};

// Input for build_record_batch: one record without headers.
struct record_to_build {
  int64_t timestamp = 0;
  std::optional<std::span<const uint8_t>> key;
  std::optional<std::span<const uint8_t>> value;
};

struct batch_build_options {
  int64_t base_offset = 0;
  int32_t partition_leader_epoch = -1;
  // Copied into the header, except the compression bits, which are forced to 0: records are
  // always written uncompressed.
  int16_t attributes = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
};

// Encodes a complete, CRC-valid uncompressed batch: offset deltas 0..n-1, baseTimestamp = the
// first record's timestamp, maxTimestamp = the largest. For broker-written batches (e.g. control
// markers) and tests.
std::vector<uint8_t> build_record_batch(const batch_build_options& options,
                                        std::span<const record_to_build> records);

}  // namespace sluice::wire

template <>
struct std::is_error_code_enum<sluice::wire::batch_error> : std::true_type {};
