#include "wire/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

namespace sluice::wire {
namespace {

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

using crc_fn = uint32_t (*)(uint32_t, std::span<const uint8_t>);

std::vector<crc_fn> implementations() {
  std::vector<crc_fn> fns{&crc32c, &crc32c_portable};
  if (crc32c_hardware_available()) fns.push_back(&crc32c_hardware);
  return fns;
}

TEST(crc32c, check_value) {
  for (crc_fn f : implementations()) {
    EXPECT_EQ(f(0, as_bytes("123456789")), 0xE3069283u);
    EXPECT_EQ(f(0, {}), 0u);
  }
}

// The iSCSI test vectors of RFC 3720, appendix B.4.
TEST(crc32c, rfc3720_vectors) {
  std::vector<uint8_t> zeros(32, 0x00);
  std::vector<uint8_t> ones(32, 0xff);
  std::vector<uint8_t> ascending(32);
  std::vector<uint8_t> descending(32);
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<uint8_t>(i);
    descending[i] = static_cast<uint8_t>(31 - i);
  }
  for (crc_fn f : implementations()) {
    EXPECT_EQ(f(0, zeros), 0x8A9136AAu);
    EXPECT_EQ(f(0, ones), 0x62A8AB43u);
    EXPECT_EQ(f(0, ascending), 0x46DD794Eu);
    EXPECT_EQ(f(0, descending), 0x113FDB5Cu);
  }
}

TEST(crc32c, chaining_equals_one_pass) {
  std::mt19937 rng(7);
  std::vector<uint8_t> data(5000);
  for (uint8_t& b : data)
    b = static_cast<uint8_t>(rng());
  std::span<const uint8_t> all(data);
  for (crc_fn f : implementations()) {
    uint32_t whole = f(0, all);
    for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{4095}, size_t{5000}}) {
      EXPECT_EQ(f(f(0, all.first(cut)), all.subspan(cut)), whole) << cut;
    }
  }
}

TEST(crc32c, hardware_matches_portable_all_lengths_and_alignments) {
  if (!crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  std::mt19937 rng(42);
  std::vector<uint8_t> data(16 + 2048);
  for (uint8_t& b : data)
    b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 16; ++align) {
    for (size_t len = 0; len <= 2048; ++len) {
      std::span<const uint8_t> s(data.data() + align, len);
      ASSERT_EQ(crc32c_hardware(0, s), crc32c_portable(0, s))
          << "align " << align << " len " << len;
      ASSERT_EQ(crc32c_hardware(0x12345678, s), crc32c_portable(0x12345678, s));
    }
  }
}

// Lengths around the three-way block boundaries (3 x 256 and 3 x 8192 bytes) and large buffers.
TEST(crc32c, hardware_matches_portable_block_boundaries) {
  if (!crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  std::mt19937 rng(99);
  std::vector<uint8_t> data((1 << 20) + 64);
  for (uint8_t& b : data)
    b = static_cast<uint8_t>(rng());
  for (size_t len :
       {767, 768, 769, 1535, 1536, 24575, 24576, 24577, 24576 + 768, 49152 + 5, 100003, 1 << 20}) {
    for (size_t align : {0, 1, 3, 8, 13}) {
      std::span<const uint8_t> s(data.data() + align, len);
      ASSERT_EQ(crc32c_hardware(0, s), crc32c_portable(0, s))
          << "align " << align << " len " << len;
    }
  }
}

}  // namespace
}  // namespace sluice::wire
