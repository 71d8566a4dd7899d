#pragma once
// Helpers for byte-level wire tests. Golden vectors are written as hex strings, one field per
// line with a comment, e.g.
//
//   const auto bytes = from_hex(
//       "0003"        // api_key
//       "ffff");      // client_id: null
//
// Vectors captured from real clients (kcat, librdkafka) are checked the same way:
//   expect_golden<produce_request>(hex, 9, expected);  // decode == expected, encode == bytes
//   expect_roundtrip<produce_request>(hex, 9);         // decode, re-encode, same bytes
//   expect_request_frame_roundtrip<produce_request>(hex);  // size prefix, header and body

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "wire/codec.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/request_header.h"
#include "wire/generated/response_header.h"

namespace sluice::wire::testing {

// Parses hex digits; whitespace is ignored so that captures can be pasted as they are. Throws
// std::invalid_argument on anything else or an odd digit count.
inline std::vector<uint8_t> from_hex(std::string_view hex) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    int d = digit(c);
    if (d < 0) throw std::invalid_argument("from_hex: not a hex digit: " + std::string(1, c));
    if (high < 0) {
      high = d;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | d));
      high = -1;
    }
  }
  if (high >= 0) throw std::invalid_argument("from_hex: odd number of digits");
  return out;
}

inline std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xf]);
  }
  return out;
}

// Encodes into plain bytes. Messages in these tests carry no file slices.
template <class M>
std::vector<uint8_t> encode_bytes(const M& m, int16_t version) {
  frame f;
  {
    writer w(f);
    m.encode(w, version);
  }
  EXPECT_TRUE(f.slices.empty());
  return f.bytes;
}

// Every proper prefix of a valid encoding is truncated and must fail to decode.
template <class M>
void expect_prefixes_fail(std::span<const uint8_t> bytes, int16_t version) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    reader r(prefix);
    M m;
    EXPECT_FALSE(m.decode(r, version)) << "prefix of " << n << " of " << bytes.size() << " bytes";
  }
}

// Decodes, re-encodes, compares bytes and size(), and checks that every proper prefix fails. With
// `expected`, the decoded struct must equal it. (Nothing decoded is returned: its records would
// point into a buffer that is gone.)
template <class M>
void expect_roundtrip(std::span<const uint8_t> bytes, int16_t version,
                      const M* expected = nullptr) {
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  reader r(copy);
  M m;
  EXPECT_TRUE(m.decode(r, version)) << "decode failed at byte " << r.position();
  EXPECT_EQ(r.remaining(), 0u) << "trailing bytes";
  if (expected != nullptr) {
    EXPECT_TRUE(m == *expected) << "decoded struct differs from the expected one";
  }
  std::vector<uint8_t> again = encode_bytes(m, version);
  EXPECT_EQ(to_hex(again), to_hex(bytes));
  EXPECT_EQ(m.size(version), static_cast<int64_t>(bytes.size()));
  expect_prefixes_fail<M>(bytes, version);
}

template <class M>
void expect_roundtrip(std::string_view hex, int16_t version) {
  expect_roundtrip<M>(from_hex(hex), version);
}

// A golden vector: bytes decode to `expected` and `expected` encodes to the bytes.
template <class M>
void expect_golden(std::span<const uint8_t> bytes, int16_t version, const M& expected) {
  expect_roundtrip<M>(bytes, version, &expected);
  EXPECT_EQ(to_hex(encode_bytes(expected, version)), to_hex(bytes));
  EXPECT_EQ(expected.size(version), static_cast<int64_t>(bytes.size()));
}

template <class M>
void expect_golden(std::string_view hex, int16_t version, const M& expected) {
  expect_golden<M>(from_hex(hex), version, expected);
}

// A whole request as captured on the wire: int32 size, request header (its version follows from
// the API key and version), body of type M. Checks that both parts round-trip byte for byte and
// returns the header.
template <class M>
request_header expect_request_frame_roundtrip(std::string_view hex) {
  std::vector<uint8_t> bytes = from_hex(hex);
  reader r(bytes);
  int32_t size = r.i32();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(static_cast<size_t>(size), r.remaining()) << "size prefix";
  // Request header v1 is a prefix of v2, so it tells the key and version of either.
  std::vector<uint8_t> rest(bytes.begin() + 4, bytes.end());
  request_header probe;
  reader pr(rest);
  EXPECT_TRUE(probe.decode(pr, 1));
  EXPECT_EQ(probe.request_api_key, M::api_key);
  int16_t version = probe.request_api_version;
  int16_t header_version = request_header_version(M::api_key, version);
  request_header header;
  reader hr(rest);
  EXPECT_TRUE(header.decode(hr, header_version));
  std::vector<uint8_t> header_bytes(rest.begin(),
                                    rest.begin() + static_cast<ptrdiff_t>(hr.position()));
  EXPECT_EQ(to_hex(encode_bytes(header, header_version)), to_hex(header_bytes));
  std::span<const uint8_t> body(rest.data() + hr.position(), rest.size() - hr.position());
  expect_roundtrip<M>(body, version);
  return header;
}

}  // namespace sluice::wire::testing
