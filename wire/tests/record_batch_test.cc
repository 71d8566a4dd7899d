#include "wire/record_batch.h"

#include <gtest/gtest.h>

#include <random>
#include <string_view>
#include <vector>

#include "wire/crc32c.h"

namespace sluice::wire {
namespace {

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Big-endian and varint writers independent of the code under test, to hand-assemble batches.
struct byte_writer {
  std::vector<uint8_t> out;
  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void raw(std::initializer_list<uint8_t> b) { out.insert(out.end(), b); }
};

// One batch, two records, assembled byte by byte from the README's table:
//   record 0: ts 1000, key "k", value "v1"; record 1: ts 1005, null key, value "v2".
std::vector<uint8_t> hand_built_batch() {
  byte_writer w;
  w.be(0, 8);           // baseOffset
  w.be(0, 4);           // batchLength, patched below
  w.be(0xffffffff, 4);  // partitionLeaderEpoch -1
  w.raw({2});           // magic
  w.be(0, 4);           // crc, patched below
  w.be(0, 2);           // attributes
  w.be(1, 4);           // lastOffsetDelta
  w.be(1000, 8);        // baseTimestamp
  w.be(1005, 8);        // maxTimestamp
  w.be(UINT64_MAX, 8);  // producerId -1
  w.be(0xffff, 2);      // producerEpoch -1
  w.be(0xffffffff, 4);  // baseSequence -1
  w.be(2, 4);           // recordsCount
  // record 0: attributes 0, tsDelta 0, offsetDelta 0, key len 1 'k', value len 2 "v1", 0 headers
  // body = 00 00 00 02 'k' 04 'v' '1' 00 -> 9 bytes, length varint zigzag(9) = 18
  w.raw({18, 0x00, 0x00, 0x00, 0x02, 'k', 0x04, 'v', '1', 0x00});
  // record 1: tsDelta 5 (zigzag 10), offsetDelta 1 (zigzag 2), key null (zigzag -1 = 1),
  // value "v2" -> body 00 0a 02 01 04 'v' '2' 00 = 8 bytes, length zigzag(8) = 16
  w.raw({16, 0x00, 0x0a, 0x02, 0x01, 0x04, 'v', '2', 0x00});
  uint32_t len = static_cast<uint32_t>(w.out.size() - 12);
  for (int i = 0; i < 4; ++i)
    w.out[8 + i] = static_cast<uint8_t>(len >> (8 * (3 - i)));
  uint32_t crc = crc32c(0, std::span<const uint8_t>(w.out).subspan(21));
  for (int i = 0; i < 4; ++i)
    w.out[17 + i] = static_cast<uint8_t>(crc >> (8 * (3 - i)));
  return w.out;
}

std::vector<uint8_t> built_batch(int n, int64_t first_ts = 1000) {
  std::vector<std::vector<uint8_t>> values;
  std::vector<record_to_build> records;
  values.reserve(n);
  for (int i = 0; i < n; ++i)
    values.push_back(std::vector<uint8_t>(10 + i, uint8_t('a' + i)));
  for (int i = 0; i < n; ++i) {
    records.push_back({first_ts + i * 10, std::nullopt, std::span<const uint8_t>(values[i])});
  }
  return build_record_batch({}, records);
}

TEST(record_batch, constants_match_the_layout) {
  EXPECT_EQ(record_batch_header_size, 61u);
  EXPECT_EQ(log_overhead, 12u);
  EXPECT_EQ(min_batch_length, 49);
  EXPECT_EQ(batch_field::crc, 17u);
  EXPECT_EQ(batch_field::attributes, 21u);
  EXPECT_EQ(batch_field::records_count, 57u);
}

TEST(record_batch, accessors_on_hand_built_batch) {
  std::vector<uint8_t> bytes = hand_built_batch();
  record_batch b(bytes);
  ASSERT_EQ(b.validate(), batch_error::ok);
  EXPECT_EQ(b.base_offset(), 0);
  EXPECT_EQ(b.batch_length(), static_cast<int32_t>(bytes.size() - 12));
  EXPECT_EQ(b.size_bytes(), static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(b.partition_leader_epoch(), -1);
  EXPECT_EQ(b.magic(), 2);
  EXPECT_EQ(b.crc(), b.compute_crc());
  EXPECT_EQ(b.attributes(), 0);
  EXPECT_EQ(b.last_offset_delta(), 1);
  EXPECT_EQ(b.base_timestamp(), 1000);
  EXPECT_EQ(b.max_timestamp(), 1005);
  EXPECT_EQ(b.producer_id(), -1);
  EXPECT_EQ(b.producer_epoch(), -1);
  EXPECT_EQ(b.base_sequence(), -1);
  EXPECT_EQ(b.records_count(), 2);
  EXPECT_EQ(b.last_offset(), 1);
  EXPECT_EQ(b.next_offset(), 2);
  EXPECT_EQ(b.compression(), 0);
  EXPECT_FALSE(b.is_log_append_time());
  EXPECT_FALSE(b.is_transactional());
  EXPECT_FALSE(b.is_control());
}

TEST(record_batch, builder_matches_hand_built_bytes) {
  std::vector<record_to_build> records{
      {1000, as_bytes("k"), as_bytes("v1")},
      {1005, std::nullopt, as_bytes("v2")},
  };
  EXPECT_EQ(build_record_batch({}, records), hand_built_batch());
}

TEST(record_batch, records_of_hand_built_batch) {
  std::vector<uint8_t> bytes = hand_built_batch();
  record_batch b(bytes);
  record_reader r(b);
  auto r0 = r.next();
  ASSERT_TRUE(r0);
  EXPECT_EQ(r0->offset_delta, 0);
  EXPECT_EQ(r0->timestamp_delta, 0);
  ASSERT_TRUE(r0->key);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(r0->key->data()), r0->key->size()), "k");
  ASSERT_TRUE(r0->value);
  EXPECT_EQ(r0->value->size(), 2u);
  auto r1 = r.next();
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->offset_delta, 1);
  EXPECT_EQ(r1->timestamp_delta, 5);
  EXPECT_FALSE(r1->key);
  EXPECT_EQ(r1->header_count, 0);
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.ok());
}

TEST(record_batch, validate_rejects_each_kind_of_damage) {
  const std::vector<uint8_t> good = built_batch(3);
  ASSERT_EQ(record_batch(good).validate(), batch_error::ok);

  auto with = [&](auto edit) {
    std::vector<uint8_t> b = good;
    edit(b);
    return record_batch(b).validate();
  };
  EXPECT_EQ(with([](auto& b) { b[16] = 1; }), batch_error::unsupported_magic);
  EXPECT_EQ(with([](auto& b) { b[b.size() - 1] ^= 0x01; }), batch_error::crc_mismatch);
  EXPECT_EQ(with([](auto& b) { b[40] ^= 0x80; }), batch_error::crc_mismatch);
  EXPECT_EQ(with([](auto& b) { b[17] ^= 0x01; }), batch_error::crc_mismatch);
  EXPECT_EQ(with([](auto& b) { b.push_back(0); }), batch_error::invalid_length);
  EXPECT_EQ(with([](auto& b) { b.pop_back(); }), batch_error::truncated);
  EXPECT_EQ(with([](auto& b) {
              b[8] = b[9] = b[10] = 0;
              b[11] = 48;
            }),
            batch_error::invalid_length);
  EXPECT_EQ(with([](auto& b) { b[8] = 0x80; }), batch_error::invalid_length);  // negative
  EXPECT_EQ(with([](auto& b) {
              mutable_record_batch m(b);
              b[23] = b[24] = b[25] = b[26] = 0xff;  // lastOffsetDelta -1
              m.update_crc();
            }),
            batch_error::invalid_offset_delta);
  EXPECT_EQ(with([](auto& b) {
              mutable_record_batch m(b);
              b[60] = 7;  // recordsCount 7 with lastOffsetDelta 2
              m.update_crc();
            }),
            batch_error::record_count_mismatch);
  {
    std::vector<uint8_t> b = good;
    mutable_record_batch m(b);
    b[60] = 7;
    m.update_crc();
    EXPECT_EQ(record_batch(b).validate(/*check_record_count=*/false), batch_error::ok);
  }
  // Every proper prefix is rejected, without reading past it.
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> prefix(good.begin(), good.begin() + n);
    EXPECT_NE(record_batch(prefix).validate(), batch_error::ok) << n;
  }
}

TEST(record_batch, broker_fields_outside_crc) {
  std::vector<uint8_t> b = built_batch(2);
  uint32_t crc_before = record_batch(b).crc();
  mutable_record_batch m(b);
  m.set_base_offset(0x0102030405060708);
  m.set_partition_leader_epoch(77);
  EXPECT_EQ(m.base_offset(), 0x0102030405060708);
  EXPECT_EQ(m.partition_leader_epoch(), 77);
  EXPECT_EQ(m.crc(), crc_before);
  EXPECT_EQ(m.validate(), batch_error::ok);
  EXPECT_EQ(m.last_offset(), 0x0102030405060708 + 1);
}

// Found by fuzz/fuzz_record_batch: baseOffset and lastOffsetDelta come from the wire, and their
// sum overflowed int64 (undefined behaviour, reported by UBSan) for a baseOffset near INT64_MAX.
// It wraps now, as Java's long arithmetic does, and validate() refuses such a batch: storage
// would otherwise compute a negative log end offset from it.
TEST(record_batch, offsets_near_int64_max_wrap_instead_of_overflowing) {
  std::vector<uint8_t> b = built_batch(3);  // lastOffsetDelta 2
  mutable_record_batch m(b);
  m.set_base_offset(INT64_MAX - 1);
  EXPECT_EQ(m.validate(), batch_error::offset_overflow);
  EXPECT_FALSE(m.offsets_in_range());
  EXPECT_EQ(m.last_offset(), INT64_MIN);
  EXPECT_EQ(m.next_offset(), INT64_MIN + 1);

  std::vector<uint8_t> one = built_batch(1);  // lastOffsetDelta 0
  mutable_record_batch at_max(one);
  at_max.set_base_offset(INT64_MAX);
  EXPECT_EQ(at_max.last_offset(), INT64_MAX);
  EXPECT_EQ(at_max.next_offset(), INT64_MIN);
  EXPECT_FALSE(at_max.offsets_in_range());  // the offset after it does not exist
  at_max.set_base_offset(INT64_MAX - 1);
  EXPECT_TRUE(at_max.offsets_in_range());
}

TEST(record_batch, log_append_time_recomputes_crc) {
  std::vector<uint8_t> b = built_batch(2);
  mutable_record_batch m(b);
  m.set_max_timestamp_and_log_append_time(123456789);
  EXPECT_TRUE(m.is_log_append_time());
  EXPECT_EQ(m.max_timestamp(), 123456789);
  EXPECT_EQ(m.validate(), batch_error::ok);
  EXPECT_EQ(m.compression(), 0);
}

TEST(record_batch, accessors_never_read_past_a_short_view) {
  std::vector<uint8_t> b = built_batch(1);
  record_batch short_view(std::span<const uint8_t>(b).first(20));
  EXPECT_FALSE(short_view.has_header());
  EXPECT_EQ(short_view.records_count(), 0);
  EXPECT_EQ(short_view.magic(), 2);
  EXPECT_EQ(record_batch().magic(), 0);
  EXPECT_EQ(record_batch().validate(), batch_error::truncated);
}

TEST(batch_reader, splits_concatenated_batches) {
  std::vector<uint8_t> all;
  std::vector<size_t> sizes;
  for (int n : {1, 5, 2}) {
    std::vector<uint8_t> b = built_batch(n);
    sizes.push_back(b.size());
    all.insert(all.end(), b.begin(), b.end());
  }
  batch_reader r(all);
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto b = r.next();
    ASSERT_TRUE(b);
    EXPECT_EQ(b->bytes().size(), sizes[i]);
    EXPECT_EQ(b->validate(), batch_error::ok);
  }
  EXPECT_FALSE(r.next());
  EXPECT_EQ(r.error(), batch_error::ok);
  EXPECT_EQ(r.position(), all.size());
}

TEST(batch_reader, stops_at_a_torn_tail) {
  std::vector<uint8_t> a = built_batch(2);
  std::vector<uint8_t> all = a;
  all.insert(all.end(), a.begin(), a.begin() + 30);
  batch_reader r(all);
  ASSERT_TRUE(r.next());
  EXPECT_FALSE(r.next());
  EXPECT_EQ(r.error(), batch_error::truncated);
  EXPECT_EQ(r.position(), a.size());
  EXPECT_FALSE(r.next());  // sticky
}

TEST(batch_reader, reports_bad_framing) {
  std::vector<uint8_t> a = built_batch(1);
  a[16] = 1;
  batch_reader legacy(a);
  EXPECT_FALSE(legacy.next());
  EXPECT_EQ(legacy.error(), batch_error::unsupported_magic);

  std::vector<uint8_t> tiny(12, 0);  // batchLength 0, too short to even hold the magic
  batch_reader small(tiny);
  EXPECT_FALSE(small.next());
  EXPECT_EQ(small.error(), batch_error::invalid_length);

  std::vector<uint8_t> huge = built_batch(1);
  huge[8] = 0x7f;  // batchLength ~2 GiB, far past the buffer
  batch_reader big(huge);
  EXPECT_FALSE(big.next());
  EXPECT_EQ(big.error(), batch_error::truncated);
}

TEST(record_reader, compressed_batches_are_not_iterated) {
  std::vector<uint8_t> b = built_batch(2);
  b[22] |= 0x01;  // gzip
  mutable_record_batch(b).update_crc();
  record_reader r{record_batch(b)};
  EXPECT_FALSE(r.next());
  EXPECT_FALSE(r.ok());
}

TEST(record_reader, count_larger_than_records_fails_cleanly) {
  std::vector<uint8_t> b = built_batch(2);
  b[60] = 5;
  record_reader r{record_batch(b)};
  EXPECT_TRUE(r.next());
  EXPECT_TRUE(r.next());
  EXPECT_FALSE(r.next());
  EXPECT_FALSE(r.ok());
}

// Random damage must never make the reader or the validators read out of bounds (run under
// ASan in CI), whatever they return.
TEST(record_batch, garbage_never_reads_out_of_bounds) {
  std::mt19937 rng(1234);
  std::vector<uint8_t> good;
  for (int n : {3, 1, 4}) {
    std::vector<uint8_t> b = built_batch(n);
    good.insert(good.end(), b.begin(), b.end());
  }
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> buf;
    if (iter % 4 == 0) {
      buf.resize(rng() % 200);
      for (uint8_t& x : buf)
        x = static_cast<uint8_t>(rng());
    } else {
      buf = good;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e)
        buf[rng() % buf.size()] = static_cast<uint8_t>(rng());
      buf.resize(rng() % (buf.size() + 1));
    }
    // Exact-size copies so ASan sees any overrun.
    batch_reader r(buf);
    while (auto b = r.next()) {
      std::vector<uint8_t> copy(b->bytes().begin(), b->bytes().end());
      record_batch v(copy);
      (void)v.validate();
      record_reader rr(v);
      int guard = 0;
      while (rr.next())
        ASSERT_LT(++guard, 100000);
    }
    ASSERT_LE(r.position(), buf.size());
  }
}

}  // namespace
}  // namespace sluice::wire
