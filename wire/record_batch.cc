#include "wire/record_batch.h"

#include <algorithm>
#include <string>

#include "wire/crc32c.h"

namespace sluice::wire {

namespace {

class batch_error_category_impl : public std::error_category {
 public:
  const char* name() const noexcept override { return "sluice.wire.batch"; }
  std::string message(int v) const override {
    switch (static_cast<batch_error>(v)) {
      case batch_error::ok:
        return "ok";
      case batch_error::truncated:
        return "record batch truncated";
      case batch_error::invalid_length:
        return "record batch length invalid";
      case batch_error::unsupported_magic:
        return "record batch magic is not 2";
      case batch_error::crc_mismatch:
        return "record batch CRC-32C mismatch";
      case batch_error::invalid_offset_delta:
        return "record batch lastOffsetDelta is negative";
      case batch_error::offset_overflow:
        return "record batch offsets out of range (negative, or past the largest offset)";
      case batch_error::record_count_mismatch:
        return "record batch recordsCount does not match lastOffsetDelta + 1";
    }
    return "unknown record batch error";
  }
};

uint64_t load_be(std::span<const uint8_t> b, size_t at, size_t n) {
  if (at > b.size() || b.size() - at < n) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v = (v << 8) | b[at + i];
  return v;
}

void store_be(std::span<uint8_t> b, size_t at, size_t n, uint64_t v) {
  if (at > b.size() || b.size() - at < n) return;
  for (size_t i = 0; i < n; ++i)
    b[at + i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
}

// Bounded zigzag varint decoding; `max_bytes` is 5 for int32 and 10 for int64.
bool read_varlong(std::span<const uint8_t> d, size_t& pos, int max_bytes, int64_t& out) {
  uint64_t v = 0;
  for (int i = 0; i < max_bytes; ++i) {
    if (pos >= d.size()) return false;
    uint8_t b = d[pos++];
    v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      out = static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
      return true;
    }
  }
  return false;
}

bool read_varint(std::span<const uint8_t> d, size_t& pos, int32_t& out) {
  int64_t v = 0;
  if (!read_varlong(d, pos, 5, v) || v < INT32_MIN || v > INT32_MAX) return false;
  out = static_cast<int32_t>(v);
  return true;
}

// A length-prefixed nullable byte field: -1 is null, anything else below 0 or past `end` is bad.
bool read_nullable_bytes(std::span<const uint8_t> d, size_t& pos,
                         std::optional<std::span<const uint8_t>>& out) {
  int32_t len = 0;
  if (!read_varint(d, pos, len) || len < -1) return false;
  if (len == -1) {
    out.reset();
    return true;
  }
  if (d.size() - pos < static_cast<size_t>(len)) return false;
  out = d.subspan(pos, static_cast<size_t>(len));
  pos += static_cast<size_t>(len);
  return true;
}

void put_varlong(std::vector<uint8_t>& out, int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (z >= 0x80) {
    out.push_back(static_cast<uint8_t>(z | 0x80));
    z >>= 7;
  }
  out.push_back(static_cast<uint8_t>(z));
}

void put_bytes(std::vector<uint8_t>& out, const std::optional<std::span<const uint8_t>>& b) {
  if (!b) {
    put_varlong(out, -1);
    return;
  }
  put_varlong(out, static_cast<int64_t>(b->size()));
  out.insert(out.end(), b->begin(), b->end());
}

}  // namespace

const std::error_category& batch_error_category() {
  static const batch_error_category_impl category;
  return category;
}

std::error_code make_error_code(batch_error e) {
  return {static_cast<int>(e), batch_error_category()};
}

int16_t record_batch::i16(size_t at) const {
  return static_cast<int16_t>(load_be(bytes_, at, 2));
}
int32_t record_batch::i32(size_t at) const {
  return static_cast<int32_t>(load_be(bytes_, at, 4));
}
int64_t record_batch::i64(size_t at) const {
  return static_cast<int64_t>(load_be(bytes_, at, 8));
}

uint32_t record_batch::compute_crc() const {
  if (bytes_.size() < batch_field::attributes) return 0;
  return crc32c(0, bytes_.subspan(batch_field::attributes));
}

batch_error record_batch::validate(bool check_record_count) const {
  // The magic byte comes first: a legacy (v0/v1) message is shorter than a v2 header and should
  // be reported as the wrong format, not as truncated.
  if (bytes_.size() <= batch_field::magic) return batch_error::truncated;
  if (magic() != current_magic) return batch_error::unsupported_magic;
  if (!has_header()) return batch_error::truncated;
  int32_t length = batch_length();
  if (length < min_batch_length) return batch_error::invalid_length;
  if (static_cast<uint64_t>(length) + log_overhead > bytes_.size()) return batch_error::truncated;
  if (static_cast<uint64_t>(length) + log_overhead < bytes_.size()) {
    return batch_error::invalid_length;
  }
  if (compute_crc() != crc()) return batch_error::crc_mismatch;
  if (last_offset_delta() < 0) return batch_error::invalid_offset_delta;
  if (!offsets_in_range()) return batch_error::offset_overflow;
  if (check_record_count && static_cast<int64_t>(records_count()) != last_offset_delta() + 1LL) {
    return batch_error::record_count_mismatch;
  }
  return batch_error::ok;
}

void mutable_record_batch::put_i16(size_t at, int16_t v) {
  store_be(mutable_bytes_, at, 2, static_cast<uint16_t>(v));
}
void mutable_record_batch::put_i32(size_t at, int32_t v) {
  store_be(mutable_bytes_, at, 4, static_cast<uint32_t>(v));
}
void mutable_record_batch::put_i64(size_t at, int64_t v) {
  store_be(mutable_bytes_, at, 8, static_cast<uint64_t>(v));
}

void mutable_record_batch::set_base_offset(int64_t v) {
  put_i64(batch_field::base_offset, v);
}

void mutable_record_batch::set_partition_leader_epoch(int32_t v) {
  put_i32(batch_field::partition_leader_epoch, v);
}

void mutable_record_batch::set_max_timestamp_and_log_append_time(int64_t ts) {
  put_i16(batch_field::attributes,
          static_cast<int16_t>(attributes() | batch_attribute::log_append_time));
  put_i64(batch_field::max_timestamp, ts);
  update_crc();
}

void mutable_record_batch::update_crc() {
  put_i32(batch_field::crc, static_cast<int32_t>(compute_crc()));
}

std::optional<record_batch> batch_reader::next() {
  if (error_ != batch_error::ok || pos_ == data_.size()) return std::nullopt;
  std::span<const uint8_t> rest = data_.subspan(pos_);
  if (rest.size() < log_overhead) {
    error_ = batch_error::truncated;
    return std::nullopt;
  }
  if (rest.size() > batch_field::magic && static_cast<int8_t>(rest[batch_field::magic]) != 2) {
    error_ = batch_error::unsupported_magic;
    return std::nullopt;
  }
  auto length = static_cast<int32_t>(load_be(rest, batch_field::batch_length, 4));
  if (length < min_batch_length) {
    error_ = batch_error::invalid_length;
    return std::nullopt;
  }
  uint64_t size = static_cast<uint64_t>(length) + log_overhead;
  if (size > rest.size()) {
    error_ = batch_error::truncated;
    return std::nullopt;
  }
  pos_ += size;
  return record_batch(rest.first(size));
}

record_reader::record_reader(const record_batch& batch) {
  std::span<const uint8_t> b = batch.bytes();
  if (!batch.has_header() || batch.compression() != 0 || batch.records_count() < 0) {
    ok_ = false;
    return;
  }
  // Only the bytes batchLength covers, even if the view runs further.
  uint64_t size = std::min<uint64_t>(b.size(), static_cast<uint64_t>(std::max<int64_t>(
                                                   batch.size_bytes(), record_batch_header_size)));
  data_ = b.subspan(record_batch_header_size, size - record_batch_header_size);
  remaining_ = batch.records_count();
}

std::optional<record_view> record_reader::next() {
  if (!ok_ || remaining_ == 0) return std::nullopt;
  auto fail = [this]() -> std::optional<record_view> {
    ok_ = false;
    return std::nullopt;
  };
  int32_t length = 0;
  if (!read_varint(data_, pos_, length) || length < 0 ||
      data_.size() - pos_ < static_cast<size_t>(length)) {
    return fail();
  }
  std::span<const uint8_t> rec = data_.subspan(pos_, static_cast<size_t>(length));
  pos_ += static_cast<size_t>(length);
  --remaining_;

  record_view r;
  size_t p = 1;  // attributes int8, unused
  if (rec.empty()) return fail();
  int64_t offset_delta = 0;
  if (!read_varlong(rec, p, 10, r.timestamp_delta) || !read_varlong(rec, p, 5, offset_delta) ||
      offset_delta < INT32_MIN || offset_delta > INT32_MAX) {
    return fail();
  }
  r.offset_delta = static_cast<int32_t>(offset_delta);
  if (!read_nullable_bytes(rec, p, r.key) || !read_nullable_bytes(rec, p, r.value)) return fail();
  if (!read_varint(rec, p, r.header_count) || r.header_count < 0) return fail();
  r.headers = rec.subspan(p);
  // Each header needs at least its two length varints.
  if (r.headers.size() / 2 < static_cast<size_t>(r.header_count)) return fail();
  return r;
}

std::vector<uint8_t> build_record_batch(const batch_build_options& options,
                                        std::span<const record_to_build> records) {
  std::vector<uint8_t> out(record_batch_header_size, 0);
  int64_t base_ts = records.empty() ? -1 : records.front().timestamp;
  int64_t max_ts = -1;
  std::vector<uint8_t> body;
  for (size_t i = 0; i < records.size(); ++i) {
    const record_to_build& r = records[i];
    max_ts = std::max(max_ts, r.timestamp);
    body.clear();
    body.push_back(0);  // attributes
    put_varlong(body, r.timestamp - base_ts);
    put_varlong(body, static_cast<int64_t>(i));
    put_bytes(body, r.key);
    put_bytes(body, r.value);
    put_varlong(body, 0);  // headers
    put_varlong(out, static_cast<int64_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
  }
  mutable_record_batch b(out);
  b.set_base_offset(options.base_offset);
  store_be(out, batch_field::batch_length, 4, out.size() - log_overhead);
  b.set_partition_leader_epoch(options.partition_leader_epoch);
  out[batch_field::magic] = static_cast<uint8_t>(current_magic);
  store_be(out, batch_field::attributes, 2,
           static_cast<uint16_t>(options.attributes & ~batch_attribute::compression_mask));
  int32_t last_delta = records.empty() ? 0 : static_cast<int32_t>(records.size() - 1);
  store_be(out, batch_field::last_offset_delta, 4, static_cast<uint32_t>(last_delta));
  store_be(out, batch_field::base_timestamp, 8, static_cast<uint64_t>(base_ts));
  store_be(out, batch_field::max_timestamp, 8, static_cast<uint64_t>(max_ts));
  store_be(out, batch_field::producer_id, 8, static_cast<uint64_t>(options.producer_id));
  store_be(out, batch_field::producer_epoch, 2, static_cast<uint16_t>(options.producer_epoch));
  store_be(out, batch_field::base_sequence, 4, static_cast<uint32_t>(options.base_sequence));
  store_be(out, batch_field::records_count, 4, static_cast<uint32_t>(records.size()));
  b.update_crc();
  return out;
}

}  // namespace sluice::wire
