#pragma once
// Values for the generated test samples (wire/generated/testing/message_samples.cc): every
// overload gives a value that differs from any spec default (0, -1, INT32_MAX, "", null), so that
// tagged fields are really written and a field that is silently dropped shows up as a mismatch.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wire/codec.h"

namespace sluice::wire {

inline void sample(int s, int8_t& x) {
  x = static_cast<int8_t>(10 + s % 100);
}
inline void sample(int s, int16_t& x) {
  x = static_cast<int16_t>(100 + s * 7);
}
inline void sample(int s, uint16_t& x) {
  x = static_cast<uint16_t>(100 + s * 7);
}
inline void sample(int s, int32_t& x) {
  x = 1000 + s * 7;
}
inline void sample(int s, uint32_t& x) {
  x = static_cast<uint32_t>(1000 + s * 7);
}
inline void sample(int s, int64_t& x) {
  x = int64_t{1} << 40 | s;
}
inline void sample(int s, double& x) {
  x = 0.5 + s;
}
inline void sample(int s, uuid& x) {
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<uint8_t>(s + 1 + static_cast<int>(i));
}
inline void sample(int s, std::string& x) {
  // Built aside and moved in: GCC 12 at -O2 reports a false -Wrestrict (PR 105329) when a string
  // is assigned from a literal and then grown in place.
  std::string v(1, 'v');
  v.append(std::to_string(s));
  x = std::move(v);
}
inline void sample(int s, std::vector<uint8_t>& x) {
  x = {static_cast<uint8_t>(s), 0xbe, 0xef};
}

// Record data is a view, so samples point into one static buffer (at different lengths); the
// codec treats it as opaque bytes.
inline records sample_records(int s, bool nullable) {
  static std::array<uint8_t, 64> data = [] {
    std::array<uint8_t, 64> d{};
    for (size_t i = 0; i < d.size(); ++i)
      d[i] = static_cast<uint8_t>(0xa0 + i);
    return d;
  }();
  records r;
  if (nullable && s % 3 == 2) {
    r.null = true;
    return r;
  }
  r.bytes = std::span<uint8_t>(data).first(static_cast<size_t>(5 + s % 40));
  return r;
}

// Tags from 40 up are unused by every spec in wire/schema, so these stay unknown.
inline std::vector<raw_tagged_field> sample_unknown_tags(int s) {
  return {{static_cast<uint32_t>(40 + s % 8), {static_cast<uint8_t>(s), 0x5a}}};
}

}  // namespace sluice::wire
