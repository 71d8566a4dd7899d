#pragma once
// Kafka protocol primitives: big-endian fixed-width integers, zigzag and unsigned varints,
// strings, bytes, arrays (classic int16/int32 lengths and compact unsigned-varint N+1 lengths),
// UUIDs and tagged-field sections.
//
// `reader` never throws and never reads out of bounds. The first malformed or truncated read sets
// a sticky failure: every later read returns a zero value and every length returns 0, so generated
// decoders run to the end without branching on each field and the caller checks `ok()` once.
// Lengths and counts from the wire are checked against the bytes that remain before anything is
// allocated for them.

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wire/frame.h"
#include "wire/records.h"

namespace sluice::wire {

using uuid = std::array<uint8_t, 16>;

// A tagged field this codec does not know: kept verbatim so that decode-then-encode reproduces the
// input, and a newer client's extras pass through unharmed.
struct raw_tagged_field {
  uint32_t tag = 0;
  std::vector<uint8_t> data;
  bool operator==(const raw_tagged_field&) const = default;
};

class reader {
 public:
  explicit reader(std::span<uint8_t> data) : data_(data) {}

  bool ok() const { return ok_; }
  size_t position() const { return pos_; }
  size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }
  void fail() { ok_ = false; }

  int8_t i8() { return static_cast<int8_t>(fixed<uint8_t>()); }
  int16_t i16() { return static_cast<int16_t>(fixed<uint16_t>()); }
  int32_t i32() { return static_cast<int32_t>(fixed<uint32_t>()); }
  int64_t i64() { return static_cast<int64_t>(fixed<uint64_t>()); }
  uint16_t u16() { return fixed<uint16_t>(); }
  uint32_t u32() { return fixed<uint32_t>(); }
  bool boolean() { return fixed<uint8_t>() != 0; }
  double f64();
  wire::uuid uuid();

  uint32_t uvarint();
  uint64_t uvarlong();
  int32_t varint();   // zigzag
  int64_t varlong();  // zigzag

  // Length prefixes. Return -1 for null, else a length already checked against remaining().
  // `compact` selects the unsigned-varint N+1 form of flexible versions.
  int32_t string_length(bool compact);
  int32_t bytes_length(bool compact);
  // Array element count, checked so that count * min_element_size fits in the remaining bytes.
  int32_t array_length(bool compact, size_t min_element_size = 1);

  std::string string(bool compact);
  std::optional<std::string> nullable_string(bool compact);
  std::vector<uint8_t> bytes(bool compact);
  std::optional<std::vector<uint8_t>> nullable_bytes(bool compact);
  wire::records records(bool compact);

  // A view of the next n bytes (n checked), advancing past them.
  std::span<uint8_t> take(size_t n);

  // Reads a tag section: calls `on_tag(tag, sub_reader)` for each entry; an entry the callback
  // does not consume (returns false) is appended to `unknown`.
  template <class F>
  void tagged_fields(std::vector<raw_tagged_field>& unknown, F&& on_tag) {
    uint32_t count = uvarint();
    for (uint32_t i = 0; i < count && ok_; ++i) {
      uint32_t tag = uvarint();
      uint32_t size = uvarint();
      std::span<uint8_t> body = take(size);
      if (!ok_) return;
      reader sub(body);
      if (!on_tag(tag, sub)) {
        unknown.push_back({tag, std::vector<uint8_t>(body.begin(), body.end())});
      } else if (!sub.ok() || sub.remaining() != 0) {
        fail();
      }
    }
  }

 private:
  template <class T>
  T fixed() {
    if (!ok_ || data_.size() - pos_ < sizeof(T)) {
      ok_ = false;
      return 0;
    }
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      v = static_cast<T>((v << 8) | data_[pos_ + i]);
    pos_ += sizeof(T);
    return v;
  }

  std::span<uint8_t> data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Appends to a frame. Byte runs are written into frame.bytes; `records` with file slices close
// the current run and append the slices as their own parts.
class writer {
 public:
  explicit writer(frame& out) : out_(out), run_start_(out.bytes.size()) {}
  ~writer() { flush_run(); }
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  void i8(int8_t v) { fixed<uint8_t>(static_cast<uint8_t>(v)); }
  void i16(int16_t v) { fixed<uint16_t>(static_cast<uint16_t>(v)); }
  void i32(int32_t v) { fixed<uint32_t>(static_cast<uint32_t>(v)); }
  void i64(int64_t v) { fixed<uint64_t>(static_cast<uint64_t>(v)); }
  void u16(uint16_t v) { fixed<uint16_t>(v); }
  void u32(uint32_t v) { fixed<uint32_t>(v); }
  void boolean(bool v) { fixed<uint8_t>(v ? 1 : 0); }
  void f64(double v);
  void uuid(const wire::uuid& v) { raw(v); }

  void uvarint(uint32_t v) { uvarlong(v); }
  void uvarlong(uint64_t v);
  void varint(int32_t v) {
    uvarlong(
        static_cast<uint32_t>((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31)));
  }
  void varlong(int64_t v) {
    uvarlong((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }

  void string(std::string_view s, bool compact);
  void nullable_string(const std::optional<std::string>& s, bool compact);
  void bytes(std::span<const uint8_t> b, bool compact);
  void nullable_bytes(const std::optional<std::vector<uint8_t>>& b, bool compact);
  void records(const wire::records& r, bool compact);
  // Length prefix of an array; -1 for null.
  void array_length(int32_t n, bool compact);
  void raw(std::span<const uint8_t> b) { out_.bytes.insert(out_.bytes.end(), b.begin(), b.end()); }

  // Bytes written so far through this writer, slices included.
  int64_t written() const;

 private:
  template <class T>
  void fixed(T v) {
    uint8_t b[sizeof(T)];
    for (size_t i = 0; i < sizeof(T); ++i)
      b[i] = static_cast<uint8_t>(v >> (8 * (sizeof(T) - 1 - i)));
    out_.bytes.insert(out_.bytes.end(), b, b + sizeof(T));
  }
  void flush_run();

  frame& out_;
  size_t run_start_;
  int64_t slice_bytes_ = 0;
  size_t initial_bytes_ = out_.bytes.size();
};

// Size of the unsigned varint encoding of v: used by generated size() functions.
constexpr int64_t uvarint_size(uint64_t v) {
  int64_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
constexpr int64_t varint_size(int32_t v) {
  return uvarint_size((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31));
}
constexpr int64_t varlong_size(int64_t v) {
  return uvarint_size((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
// Size of a string/bytes/array length prefix for length n (n = -1 for null).
constexpr int64_t length_prefix_size(int64_t n, bool compact, bool is_array_or_bytes) {
  if (compact) return uvarint_size(static_cast<uint64_t>(n + 1));
  return is_array_or_bytes ? 4 : 2;
}

}  // namespace sluice::wire
