#include "wire/codec.h"

#include <algorithm>
#include <bit>

namespace sluice::wire {

double reader::f64() {
  return std::bit_cast<double>(fixed<uint64_t>());
}

wire::uuid reader::uuid() {
  wire::uuid u{};
  std::span<uint8_t> b = take(u.size());
  if (ok_) std::copy(b.begin(), b.end(), u.begin());
  return u;
}

uint64_t reader::uvarlong() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (!ok_ || pos_ >= data_.size()) {
      ok_ = false;
      return 0;
    }
    uint8_t b = data_[pos_++];
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  ok_ = false;  // more than 10 bytes: not a varlong
  return 0;
}

uint32_t reader::uvarint() {
  uint64_t v = uvarlong();
  if (v > UINT32_MAX) {
    ok_ = false;
    return 0;
  }
  return static_cast<uint32_t>(v);
}

int32_t reader::varint() {
  uint32_t v = uvarint();
  return static_cast<int32_t>((v >> 1) ^ (~(v & 1) + 1));
}

int64_t reader::varlong() {
  uint64_t v = uvarlong();
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

std::span<uint8_t> reader::take(size_t n) {
  if (!ok_ || data_.size() - pos_ < n) {
    ok_ = false;
    return {};
  }
  std::span<uint8_t> s = data_.subspan(pos_, n);
  pos_ += n;
  return s;
}

namespace {
// Validates a decoded length against what remains; -1 is null, anything below is malformed.
int32_t checked_length(reader& r, int64_t n, size_t unit) {
  if (!r.ok()) return 0;
  if (n < -1 || (n > 0 && static_cast<uint64_t>(n) > r.remaining() / unit)) {
    r.fail();
    return 0;
  }
  return static_cast<int32_t>(n);
}
}  // namespace

int32_t reader::string_length(bool compact) {
  int64_t n = compact ? static_cast<int64_t>(uvarint()) - 1 : i16();
  return checked_length(*this, n, 1);
}

int32_t reader::bytes_length(bool compact) {
  int64_t n = compact ? static_cast<int64_t>(uvarint()) - 1 : i32();
  return checked_length(*this, n, 1);
}

int32_t reader::array_length(bool compact, size_t min_element_size) {
  int64_t n = compact ? static_cast<int64_t>(uvarint()) - 1 : i32();
  return checked_length(*this, n, std::max<size_t>(min_element_size, 1));
}

std::string reader::string(bool compact) {
  int32_t n = string_length(compact);
  if (n < 0) {
    fail();  // null where the schema does not allow it
    return {};
  }
  std::span<uint8_t> b = take(static_cast<size_t>(n));
  return std::string(b.begin(), b.end());
}

std::optional<std::string> reader::nullable_string(bool compact) {
  int32_t n = string_length(compact);
  if (n < 0 || !ok_) return std::nullopt;
  std::span<uint8_t> b = take(static_cast<size_t>(n));
  return std::string(b.begin(), b.end());
}

std::vector<uint8_t> reader::bytes(bool compact) {
  int32_t n = bytes_length(compact);
  if (n < 0) {
    fail();
    return {};
  }
  std::span<uint8_t> b = take(static_cast<size_t>(n));
  return std::vector<uint8_t>(b.begin(), b.end());
}

std::optional<std::vector<uint8_t>> reader::nullable_bytes(bool compact) {
  int32_t n = bytes_length(compact);
  if (n < 0 || !ok_) return std::nullopt;
  std::span<uint8_t> b = take(static_cast<size_t>(n));
  return std::vector<uint8_t>(b.begin(), b.end());
}

wire::records reader::records(bool compact) {
  wire::records r;
  int32_t n = bytes_length(compact);
  if (n < 0) {
    r.null = true;
    return r;
  }
  r.bytes = take(static_cast<size_t>(n));
  return r;
}

void writer::f64(double v) {
  fixed<uint64_t>(std::bit_cast<uint64_t>(v));
}

void writer::uvarlong(uint64_t v) {
  while (v >= 0x80) {
    out_.bytes.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out_.bytes.push_back(static_cast<uint8_t>(v));
}

void writer::string(std::string_view s, bool compact) {
  // A classic string has an int16 length. Responses never need more (names are at most 249
  // characters; messages are short); cutting an oversized one keeps the stream in sync.
  if (!compact && s.size() > INT16_MAX) s = s.substr(0, INT16_MAX);
  if (compact) {
    uvarint(static_cast<uint32_t>(s.size() + 1));
  } else {
    i16(static_cast<int16_t>(s.size()));
  }
  raw({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

void writer::nullable_string(const std::optional<std::string>& s, bool compact) {
  if (s) return string(*s, compact);
  if (compact) {
    uvarint(0);
  } else {
    i16(-1);
  }
}

void writer::bytes(std::span<const uint8_t> b, bool compact) {
  array_length(static_cast<int32_t>(b.size()), compact);
  raw(b);
}

void writer::nullable_bytes(const std::optional<std::vector<uint8_t>>& b, bool compact) {
  if (b) return bytes(*b, compact);
  array_length(-1, compact);
}

void writer::records(const wire::records& r, bool compact) {
  if (r.null) return array_length(-1, compact);
  array_length(static_cast<int32_t>(r.size()), compact);
  raw(r.bytes);
  if (r.slices.empty()) return;
  flush_run();
  for (const file_slice& s : r.slices) {
    if (s.length <= 0) continue;
    out_.parts.push_back({true, out_.slices.size(), static_cast<size_t>(s.length)});
    out_.slices.push_back(s);
    slice_bytes_ += s.length;
  }
  run_start_ = out_.bytes.size();
}

void writer::array_length(int32_t n, bool compact) {
  if (compact) {
    uvarint(static_cast<uint32_t>(n + 1));
  } else {
    i32(n);
  }
}

int64_t writer::written() const {
  return static_cast<int64_t>(out_.bytes.size() - initial_bytes_) + slice_bytes_;
}

void writer::flush_run() {
  size_t end = out_.bytes.size();
  if (end == run_start_) return;
  // Merge with the previous byte part when contiguous, so a frame encoded by several writers
  // (header, then body) stays one run.
  if (!out_.parts.empty() && !out_.parts.back().is_slice &&
      out_.parts.back().index + out_.parts.back().length == run_start_) {
    out_.parts.back().length += end - run_start_;
  } else {
    out_.parts.push_back({false, run_start_, end - run_start_});
  }
  run_start_ = end;
}

}  // namespace sluice::wire
