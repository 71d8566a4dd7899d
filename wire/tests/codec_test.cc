// Primitives of wire/codec.h: fixed-width integers, varints and zigzag, string/bytes/array length
// forms (classic, compact, null), tag sections, records with file slices, and the failure rules:
// truncated or malformed input fails cleanly and never allocates more than the input justifies.

#include "wire/codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "wire/generated/metadata_request.h"
#include "wire/generated/produce_request.h"
#include "wire/tests/allocation_counter.h"
#include "wire/tests/test_util.h"

namespace sluice::wire {
namespace {

using testing::from_hex;
using testing::to_hex;

// Encodes with `f(writer&)` and returns the bytes as hex.
template <class F>
std::string written_hex(F&& f) {
  frame out;
  {
    writer w(out);
    f(w);
  }
  return to_hex(out.bytes);
}

TEST(codec, fixed_width_integers_are_big_endian) {
  EXPECT_EQ(written_hex([](writer& w) {
              w.i8(-2);
              w.i16(0x0102);
              w.u16(0xfffe);
              w.i32(-2);
              w.u32(0x01020304);
              w.i64(0x0102030405060708);
              w.boolean(true);
              w.boolean(false);
            }),
            "fe"
            "0102"
            "fffe"
            "fffffffe"
            "01020304"
            "0102030405060708"
            "01"
            "00");

  std::vector<uint8_t> b = from_hex("fe 0102 fffe fffffffe 01020304 0102030405060708 02 00");
  reader r(b);
  EXPECT_EQ(r.i8(), -2);
  EXPECT_EQ(r.i16(), 0x0102);
  EXPECT_EQ(r.u16(), 0xfffe);
  EXPECT_EQ(r.i32(), -2);
  EXPECT_EQ(r.u32(), 0x01020304u);
  EXPECT_EQ(r.i64(), 0x0102030405060708);
  EXPECT_TRUE(r.boolean());  // any non-zero byte is true, as in Kafka
  EXPECT_FALSE(r.boolean());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(codec, extreme_fixed_values) {
  std::string hex = written_hex([](writer& w) {
    w.i16(std::numeric_limits<int16_t>::min());
    w.i32(std::numeric_limits<int32_t>::min());
    w.i64(std::numeric_limits<int64_t>::min());
    w.i64(std::numeric_limits<int64_t>::max());
  });
  EXPECT_EQ(hex,
            "8000"
            "80000000"
            "8000000000000000"
            "7fffffffffffffff");
  std::vector<uint8_t> b = from_hex(hex);
  reader r(b);
  EXPECT_EQ(r.i16(), std::numeric_limits<int16_t>::min());
  EXPECT_EQ(r.i32(), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(r.i64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(r.i64(), std::numeric_limits<int64_t>::max());
}

TEST(codec, float64_and_uuid) {
  uuid id{};
  for (size_t i = 0; i < id.size(); ++i)
    id[i] = static_cast<uint8_t>(i);
  std::string hex = written_hex([&](writer& w) {
    w.f64(1.5);
    w.uuid(id);
  });
  EXPECT_EQ(hex,
            "3ff8000000000000"
            "000102030405060708090a0b0c0d0e0f");
  std::vector<uint8_t> b = from_hex(hex);
  reader r(b);
  EXPECT_EQ(r.f64(), 1.5);
  EXPECT_EQ(r.uuid(), id);
  EXPECT_TRUE(r.ok());
}

struct uvarint_case {
  uint64_t value;
  const char* hex;
};

TEST(codec, unsigned_varint_edges) {
  const uvarint_case cases[] = {
      {0, "00"},
      {1, "01"},
      {127, "7f"},
      {128, "8001"},
      {300, "ac02"},
      {16383, "ff7f"},
      {16384, "808001"},
      {(1u << 21) - 1, "ffff7f"},
      {1u << 21, "80808001"},
      {(1u << 28) - 1, "ffffff7f"},
      {1u << 28, "8080808001"},
      {UINT32_MAX, "ffffffff0f"},
  };
  for (const uvarint_case& c : cases) {
    SCOPED_TRACE(c.hex);
    EXPECT_EQ(written_hex([&](writer& w) { w.uvarint(static_cast<uint32_t>(c.value)); }), c.hex);
    EXPECT_EQ(uvarint_size(c.value), static_cast<int64_t>(std::string(c.hex).size() / 2));
    std::vector<uint8_t> b = from_hex(c.hex);
    reader r(b);
    EXPECT_EQ(r.uvarint(), c.value);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.remaining(), 0u);
  }
}

TEST(codec, unsigned_varlong_edges) {
  EXPECT_EQ(written_hex([](writer& w) { w.uvarlong(UINT64_MAX); }), "ffffffffffffffffff01");
  EXPECT_EQ(uvarint_size(UINT64_MAX), 10);
  std::vector<uint8_t> b = from_hex("ffffffffffffffffff01");
  reader r(b);
  EXPECT_EQ(r.uvarlong(), UINT64_MAX);
  EXPECT_TRUE(r.ok());

  std::vector<uint8_t> eleven = from_hex("8080808080808080808000");  // 11 bytes: malformed
  reader r11(eleven);
  EXPECT_EQ(r11.uvarlong(), 0u);
  EXPECT_FALSE(r11.ok());
}

TEST(codec, unsigned_varint_above_32_bits_fails) {
  std::vector<uint8_t> b = from_hex("8080808010");  // 2^32
  reader r(b);
  EXPECT_EQ(r.uvarint(), 0u);
  EXPECT_FALSE(r.ok());
}

TEST(codec, truncated_varint_fails) {
  std::vector<uint8_t> b = from_hex("8080");
  reader r(b);
  r.uvarint();
  EXPECT_FALSE(r.ok());
}

TEST(codec, zigzag_varint) {
  struct zigzag_case {
    int32_t value;
    const char* hex;
  };
  const zigzag_case cases[] = {
      {0, "00"},
      {-1, "01"},
      {1, "02"},
      {-2, "03"},
      {63, "7e"},
      {-64, "7f"},
      {64, "8001"},
      {-65, "8101"},
      {INT32_MAX, "feffffff0f"},
      {INT32_MIN, "ffffffff0f"},
  };
  for (const zigzag_case& c : cases) {
    SCOPED_TRACE(c.value);
    EXPECT_EQ(written_hex([&](writer& w) { w.varint(c.value); }), c.hex);
    EXPECT_EQ(varint_size(c.value), static_cast<int64_t>(std::string(c.hex).size() / 2));
    std::vector<uint8_t> b = from_hex(c.hex);
    reader r(b);
    EXPECT_EQ(r.varint(), c.value);
    EXPECT_TRUE(r.ok());
  }
}

TEST(codec, zigzag_varlong) {
  struct zigzag_case {
    int64_t value;
    const char* hex;
  };
  const zigzag_case cases[] = {
      {0, "00"},
      {-1, "01"},
      {1, "02"},
      {INT64_MAX, "feffffffffffffffff01"},
      {INT64_MIN, "ffffffffffffffffff01"},
  };
  for (const zigzag_case& c : cases) {
    SCOPED_TRACE(c.value);
    EXPECT_EQ(written_hex([&](writer& w) { w.varlong(c.value); }), c.hex);
    EXPECT_EQ(varlong_size(c.value), static_cast<int64_t>(std::string(c.hex).size() / 2));
    std::vector<uint8_t> b = from_hex(c.hex);
    reader r(b);
    EXPECT_EQ(r.varlong(), c.value);
    EXPECT_TRUE(r.ok());
  }
}

TEST(codec, strings_classic_and_compact) {
  EXPECT_EQ(written_hex([](writer& w) { w.string("foo", false); }), "0003666f6f");
  EXPECT_EQ(written_hex([](writer& w) { w.string("foo", true); }), "04666f6f");
  EXPECT_EQ(written_hex([](writer& w) { w.string("", false); }), "0000");
  EXPECT_EQ(written_hex([](writer& w) { w.string("", true); }), "01");
  EXPECT_EQ(written_hex([](writer& w) { w.nullable_string(std::nullopt, false); }), "ffff");
  EXPECT_EQ(written_hex([](writer& w) { w.nullable_string(std::nullopt, true); }), "00");
  EXPECT_EQ(written_hex([](writer& w) { w.nullable_string("a", true); }), "0261");

  std::vector<uint8_t> b = from_hex("0003666f6f 04666f6f ffff 00 0000 01");
  reader r(b);
  EXPECT_EQ(r.string(false), "foo");
  EXPECT_EQ(r.string(true), "foo");
  EXPECT_EQ(r.nullable_string(false), std::nullopt);
  EXPECT_EQ(r.nullable_string(true), std::nullopt);
  EXPECT_EQ(r.nullable_string(false), std::optional<std::string>(""));
  EXPECT_EQ(r.nullable_string(true), std::optional<std::string>(""));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(codec, null_where_not_nullable_fails) {
  std::vector<uint8_t> classic = from_hex("ffff");
  reader r1(classic);
  r1.string(false);
  EXPECT_FALSE(r1.ok());

  std::vector<uint8_t> compact = from_hex("00");
  reader r2(compact);
  r2.string(true);
  EXPECT_FALSE(r2.ok());

  std::vector<uint8_t> bytes = from_hex("ffffffff");
  reader r3(bytes);
  r3.bytes(false);
  EXPECT_FALSE(r3.ok());
}

TEST(codec, negative_lengths_other_than_null_fail) {
  std::vector<uint8_t> b = from_hex("fffe");  // -2
  reader r(b);
  r.nullable_string(false);
  EXPECT_FALSE(r.ok());
}

TEST(codec, bytes_classic_and_compact) {
  std::vector<uint8_t> v = {1, 2, 3};
  EXPECT_EQ(written_hex([&](writer& w) { w.bytes(v, false); }), "00000003010203");
  EXPECT_EQ(written_hex([&](writer& w) { w.bytes(v, true); }), "04010203");
  EXPECT_EQ(written_hex([](writer& w) { w.nullable_bytes(std::nullopt, false); }), "ffffffff");
  EXPECT_EQ(written_hex([](writer& w) { w.nullable_bytes(std::nullopt, true); }), "00");

  std::vector<uint8_t> b = from_hex("00000003010203 04010203 ffffffff 00");
  reader r(b);
  EXPECT_EQ(r.bytes(false), v);
  EXPECT_EQ(r.bytes(true), v);
  EXPECT_EQ(r.nullable_bytes(false), std::nullopt);
  EXPECT_EQ(r.nullable_bytes(true), std::nullopt);
  EXPECT_TRUE(r.ok());
}

TEST(codec, records_are_a_view_into_the_input) {
  std::vector<uint8_t> b = from_hex("00000002abcd 03abcd ffffffff 00");
  reader r(b);
  records classic = r.records(false);
  records compact = r.records(true);
  records null_classic = r.records(false);
  records null_compact = r.records(true);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(classic.null);
  EXPECT_EQ(classic.bytes.data(), b.data() + 4);  // no copy: the broker patches batches in place
  EXPECT_EQ(classic.size(), 2);
  EXPECT_EQ(compact.bytes.data(), b.data() + 7);
  EXPECT_TRUE(null_classic.null);
  EXPECT_TRUE(null_compact.null);
}

TEST(codec, record_slices_become_frame_parts) {
  std::vector<uint8_t> inline_bytes = {0xaa, 0xbb};
  records rec;
  rec.bytes = inline_bytes;
  rec.slices.push_back({.fd = 7, .position = 100, .length = 50, .keep_alive = nullptr});
  rec.slices.push_back({.fd = 7, .position = 150, .length = 0, .keep_alive = nullptr});
  rec.slices.push_back({.fd = 8, .position = 0, .length = 20, .keep_alive = nullptr});

  frame out;
  {
    writer w(out);
    w.i32(1);
    w.records(rec, true);
    w.i16(2);
    EXPECT_EQ(w.written(), 4 + 1 + 2 + 70 + 2);
  }
  // The length prefix counts the slices; the slice bytes themselves are never copied.
  EXPECT_EQ(to_hex(out.bytes),
            "00000001"
            "49"
            "aabb"
            "0002");
  ASSERT_EQ(out.parts.size(), 4u);  // bytes, slice fd 7, slice fd 8, bytes (empty slice dropped)
  EXPECT_FALSE(out.parts[0].is_slice);
  EXPECT_EQ(out.parts[0].length, 7u);
  EXPECT_TRUE(out.parts[1].is_slice);
  EXPECT_EQ(out.slices[out.parts[1].index].fd, 7);
  EXPECT_EQ(out.parts[1].length, 50u);
  EXPECT_TRUE(out.parts[2].is_slice);
  EXPECT_EQ(out.slices[out.parts[2].index].fd, 8);
  EXPECT_FALSE(out.parts[3].is_slice);
  EXPECT_EQ(out.parts[3].index, 7u);
  EXPECT_EQ(out.parts[3].length, 2u);
  EXPECT_EQ(out.total_size(), 4 + 1 + 2 + 70 + 2);
}

TEST(codec, consecutive_writers_merge_byte_runs) {
  frame out;
  {
    writer header(out);
    header.i32(7);
  }
  {
    writer body(out);
    body.i16(1);
    EXPECT_EQ(body.written(), 2);
  }
  ASSERT_EQ(out.parts.size(), 1u);
  EXPECT_EQ(out.parts[0].length, 6u);
}

TEST(codec, array_lengths) {
  EXPECT_EQ(written_hex([](writer& w) { w.array_length(2, false); }), "00000002");
  EXPECT_EQ(written_hex([](writer& w) { w.array_length(2, true); }), "03");
  EXPECT_EQ(written_hex([](writer& w) { w.array_length(-1, false); }), "ffffffff");
  EXPECT_EQ(written_hex([](writer& w) { w.array_length(-1, true); }), "00");
  EXPECT_EQ(length_prefix_size(-1, true, true), 1);
  EXPECT_EQ(length_prefix_size(200, true, true), 2);
  EXPECT_EQ(length_prefix_size(200, false, true), 4);
  EXPECT_EQ(length_prefix_size(200, false, false), 2);

  std::vector<uint8_t> b = from_hex("00000002 0000 0000  00  ffffffff");
  reader r(b);
  EXPECT_EQ(r.array_length(false, 2), 2);
  r.take(4);
  EXPECT_EQ(r.array_length(true), -1);
  EXPECT_EQ(r.array_length(false), -1);
  EXPECT_TRUE(r.ok());
}

TEST(codec, array_count_is_checked_against_remaining_bytes) {
  // Two elements of at least 4 bytes need 8 bytes; 7 remain.
  std::vector<uint8_t> b = from_hex("00000002 00000000 000000");
  reader r(b);
  EXPECT_EQ(r.array_length(false, 4), 0);
  EXPECT_FALSE(r.ok());
}

TEST(codec, huge_array_count_on_short_buffer_fails_without_allocating) {
  // Metadata v0: topics count 2^31-1, then one 3-byte topic name.
  std::vector<uint8_t> classic = from_hex("7fffffff 0003666f6f");
  // Metadata v9: compact count 2^32-2 (uvarint ffffffff0f).
  std::vector<uint8_t> compact = from_hex("ffffffff0f 04666f6f00 010000 00");
  // Produce v3 with a partition count near 2^31.
  std::vector<uint8_t> produce = from_hex("ffff ffff 00007530 00000001 0003666f6f 7ffffff0");

  testing::allocation_counter counter;
  metadata_request m0, m9;
  reader r0(classic), r9(compact);
  bool ok0 = m0.decode(r0, 0);
  bool ok9 = m9.decode(r9, 9);
  produce_request p;
  reader rp(produce);
  bool okp = p.decode(rp, 3);
  size_t largest = counter.largest();

  EXPECT_FALSE(ok0);
  EXPECT_FALSE(ok9);
  EXPECT_FALSE(okp);
  EXPECT_LT(largest, 1024u);
}

TEST(codec, truncated_reads_fail_and_stay_failed) {
  std::vector<uint8_t> b = from_hex("0001 02");
  reader r(b);
  EXPECT_EQ(r.i16(), 1);
  EXPECT_EQ(r.i32(), 0);  // only one byte left
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
  // Sticky: the byte that is still there is not read any more.
  EXPECT_EQ(r.i8(), 0);
  EXPECT_EQ(r.string(false), "");
  EXPECT_EQ(r.array_length(false), 0);
  EXPECT_TRUE(r.take(1).empty());
  EXPECT_FALSE(r.ok());
}

TEST(codec, every_primitive_fails_on_empty_input) {
  std::vector<uint8_t> empty;
  auto check = [&](auto read) {
    reader r(empty);
    read(r);
    EXPECT_FALSE(r.ok());
  };
  check([](reader& r) { r.i8(); });
  check([](reader& r) { r.i16(); });
  check([](reader& r) { r.u16(); });
  check([](reader& r) { r.i32(); });
  check([](reader& r) { r.u32(); });
  check([](reader& r) { r.i64(); });
  check([](reader& r) { r.f64(); });
  check([](reader& r) { r.boolean(); });
  check([](reader& r) { r.uuid(); });
  check([](reader& r) { r.uvarint(); });
  check([](reader& r) { r.varlong(); });
  check([](reader& r) { r.string(true); });
  check([](reader& r) { r.nullable_string(false); });
  check([](reader& r) { r.bytes(false); });
  check([](reader& r) { r.records(true); });
  check([](reader& r) { r.array_length(true); });
}

TEST(codec, string_longer_than_input_fails) {
  std::vector<uint8_t> b = from_hex("0005 6162");
  reader r(b);
  r.string(false);
  EXPECT_FALSE(r.ok());
}

TEST(codec, tag_section_keeps_unknown_entries) {
  // Two entries: tag 0 (known, one int32) and tag 5 (unknown, two bytes).
  std::vector<uint8_t> b = from_hex("02 00 04 0000002a 05 02 beef");
  reader r(b);
  std::vector<raw_tagged_field> unknown;
  int32_t known = 0;
  r.tagged_fields(unknown, [&](uint32_t tag, reader& s) {
    if (tag != 0) return false;
    known = s.i32();
    return true;
  });
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(known, 42);
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].tag, 5u);
  EXPECT_EQ(unknown[0].data, (std::vector<uint8_t>{0xbe, 0xef}));
}

TEST(codec, known_tag_must_consume_its_whole_body) {
  std::vector<uint8_t> b = from_hex("01 00 05 0000002a ff");
  reader r(b);
  std::vector<raw_tagged_field> unknown;
  r.tagged_fields(unknown, [](uint32_t, reader& s) {
    s.i32();
    return true;
  });
  EXPECT_FALSE(r.ok());
}

TEST(codec, tag_body_longer_than_input_fails) {
  std::vector<uint8_t> b = from_hex("01 07 10 00");
  reader r(b);
  std::vector<raw_tagged_field> unknown;
  r.tagged_fields(unknown, [](uint32_t, reader&) { return false; });
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(unknown.empty());
}

// Found by fuzz/fuzz_request_decode: an unknown entry with tag UINT32_MAX (the largest a tag
// varint may carry) was counted in the section's entry count and in size() but never written,
// so the encoding was short and did not decode.
TEST(codec, unknown_tag_uint32_max_is_written) {
  metadata_request m;
  m.unknown_tagged_fields = {{5, {0x01}}, {UINT32_MAX, {0xab, 0xcd}}};
  frame out;
  {
    writer w(out);
    m.encode(w, 12);
  }
  EXPECT_EQ(m.size(12), static_cast<int64_t>(out.bytes.size()));
  // Two tagged fields: tag 5 with 1 byte, then tag UINT32_MAX with 2 bytes.
  EXPECT_TRUE(to_hex(out.bytes).ends_with("02050101ffffffff0f02abcd"));
  reader r(out.bytes);
  metadata_request back;
  ASSERT_TRUE(back.decode(r, 12));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(back, m);
}

TEST(codec, from_hex_rejects_garbage) {
  EXPECT_EQ(from_hex(" 0a\nFF\t"), (std::vector<uint8_t>{0x0a, 0xff}));
  EXPECT_THROW(from_hex("0g"), std::invalid_argument);
  EXPECT_THROW(from_hex("abc"), std::invalid_argument);
}

}  // namespace
}  // namespace sluice::wire
