#include "storage/log.h"

#include <random>

#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::batch_summary;
using testing::batches_in;
using testing::file_bytes;
using testing::file_text;
using testing::make_batch;
using testing::seg_name;
using testing::slurp;

class log_test : public testing::temp_dir_test {
 protected:
  std::unique_ptr<log> open_log(log_config cfg = {}) {
    std::error_code ec;
    auto l = open_log_at(dir_ / "t-0", {"t", 0}, cfg, testing::clean_load(), ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }

  append_info append(log& l, std::vector<uint8_t> batch, int32_t epoch = 0) {
    append_info info;
    std::error_code ec = testing::append_through_roll(l, disk_, batch, epoch, info);
    EXPECT_FALSE(ec) << ec.message();
    return info;
  }

  std::vector<batch_summary> read_all(const log& l, int64_t offset, int64_t max_bytes,
                                      int64_t max_offset, bool min_one = false) {
    read_info info;
    std::error_code ec = l.read(offset, max_bytes, max_offset, min_one, info);
    EXPECT_FALSE(ec) << ec.message();
    std::vector<uint8_t> bytes = slurp(info);
    EXPECT_EQ(static_cast<int64_t>(bytes.size()), info.bytes);
    return batches_in(bytes);
  }
};

TEST_F(log_test, new_log_is_empty) {
  auto l = open_log();
  EXPECT_EQ(l->log_start_offset(), 0);
  EXPECT_EQ(l->log_end_offset(), 0);
  EXPECT_EQ(l->high_watermark(), 0);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_EQ(l->size_bytes(), 0);
  EXPECT_FALSE(l->topic_id());
  EXPECT_TRUE(std::filesystem::exists(dir_ / "t-0" / seg_name(0, ".log")));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "t-0" / seg_name(0, ".index")));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "t-0" / seg_name(0, ".timeindex")));
  EXPECT_EQ(l->max_timestamp_and_offset(), std::make_pair(int64_t{-1}, int64_t{-1}));
  EXPECT_FALSE(l->offset_for_timestamp(0));
  read_info info;
  EXPECT_FALSE(l->read(0, 1000, 0, true, info));
  EXPECT_TRUE(info.slices.empty());
}

TEST_F(log_test, append_assigns_offsets_and_stamps_in_place) {
  auto l = open_log();
  std::vector<uint8_t> a = make_batch(3);
  append_info info;
  ASSERT_FALSE(l->append(a, 7, info));
  EXPECT_EQ(info.base_offset, 0);
  EXPECT_EQ(info.last_offset, 2);
  EXPECT_EQ(info.batch_count, 1);
  EXPECT_EQ(info.bytes, static_cast<int64_t>(a.size()));
  EXPECT_EQ(info.max_timestamp, 1002);
  // Patched in the caller's buffer, CRC still valid.
  wire::record_batch view(a);
  EXPECT_EQ(view.base_offset(), 0);
  EXPECT_EQ(view.partition_leader_epoch(), 7);
  EXPECT_EQ(view.validate(), wire::batch_error::ok);

  // Two batches in one append.
  std::vector<uint8_t> two = make_batch(2, 2000);
  std::vector<uint8_t> second = make_batch(4, 3000);
  two.insert(two.end(), second.begin(), second.end());
  ASSERT_FALSE(l->append(two, 8, info));
  EXPECT_EQ(info.base_offset, 3);
  EXPECT_EQ(info.last_offset, 8);
  EXPECT_EQ(info.batch_count, 2);
  EXPECT_EQ(l->log_end_offset(), 9);

  // The .log holds exactly the stamped bytes, back to back.
  std::vector<uint8_t> expected = a;
  expected.insert(expected.end(), two.begin(), two.end());
  EXPECT_EQ(file_bytes(dir_ / "t-0" / seg_name(0, ".log")), expected);
  EXPECT_EQ(batches_in(expected), (std::vector<batch_summary>{{0, 2}, {3, 4}, {5, 8}}));
}

TEST_F(log_test, append_rejects_bad_batches_and_writes_nothing) {
  auto l = open_log();
  append(*l, make_batch(1));
  auto try_append = [&](std::vector<uint8_t> bytes) {
    append_info info;
    return l->append(bytes, 0, info);
  };
  std::vector<uint8_t> crc = make_batch(2);
  crc.back() ^= 1;
  EXPECT_EQ(try_append(crc), errc::corrupt_message);

  std::vector<uint8_t> magic = make_batch(2);
  magic[16] = 1;
  EXPECT_EQ(try_append(magic), errc::invalid_record);

  std::vector<uint8_t> count = make_batch(2);
  count[60] = 3;
  wire::mutable_record_batch(count).update_crc();
  EXPECT_EQ(try_append(count), errc::invalid_record);

  std::vector<uint8_t> torn = make_batch(2);
  torn.resize(torn.size() - 5);
  EXPECT_EQ(try_append(torn), errc::corrupt_message);
  EXPECT_EQ(try_append({}), errc::invalid_record);

  // A good batch followed by a bad one: neither is written, nor is the good one stamped.
  std::vector<uint8_t> good_then_bad = make_batch(2);
  good_then_bad[0] = 0x55;
  good_then_bad.insert(good_then_bad.end(), crc.begin(), crc.end());
  EXPECT_EQ(try_append(good_then_bad), errc::corrupt_message);
  EXPECT_EQ(good_then_bad[0], 0x55);

  EXPECT_EQ(l->log_end_offset(), 1);
  EXPECT_EQ(l->size_bytes(), static_cast<int64_t>(make_batch(1).size()));
}

TEST_F(log_test, append_larger_than_a_segment_is_rejected) {
  auto l = open_log({.segment_bytes = 200, .index_interval_bytes = 4096});
  append_info info;
  std::vector<uint8_t> big = make_batch(10, 0, 50);
  EXPECT_EQ(l->append(big, 0, info), errc::record_batch_too_large);
  EXPECT_EQ(l->log_end_offset(), 0);
}

TEST_F(log_test, rolls_when_the_segment_would_exceed_segment_bytes) {
  const int64_t batch_size = static_cast<int64_t>(make_batch(5).size());
  auto l = open_log({.segment_bytes = 3 * batch_size, .index_interval_bytes = 4096});
  for (int i = 0; i < 3; ++i)
    append(*l, make_batch(5, 1000 + 10 * i));
  EXPECT_EQ(l->segment_count(), 1u);  // exactly full
  EXPECT_EQ(l->recovery_point(), 0);
  append(*l, make_batch(5, 1100));
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_EQ(l->recovery_point(), 15);  // the finished segment was fsynced
  for (int i = 0; i < 5; ++i)
    append(*l, make_batch(5, 1200 + i));
  EXPECT_EQ(l->segment_count(), 3u);
  std::filesystem::path d = dir_ / "t-0";
  EXPECT_EQ(static_cast<int64_t>(file_bytes(d / seg_name(0, ".log")).size()), 3 * batch_size);
  EXPECT_TRUE(std::filesystem::exists(d / seg_name(15, ".log")));
  EXPECT_TRUE(std::filesystem::exists(d / seg_name(30, ".log")));
  EXPECT_TRUE(std::filesystem::exists(d / seg_name(30, ".index")));
  // The rolled segment got its final time index entry: (max timestamp 1024, offset 14).
  std::vector<uint8_t> tidx = file_bytes(d / seg_name(0, ".timeindex"));
  ASSERT_EQ(tidx.size(), 12u);
  EXPECT_EQ((tidx[6] << 8) | tidx[7], 1024);
  EXPECT_EQ(tidx[11], 14);
  EXPECT_EQ(l->size_bytes(), 9 * batch_size);
}

TEST_F(log_test, offset_index_is_written_every_interval) {
  const int64_t batch_size = static_cast<int64_t>(make_batch(2).size());
  auto l = open_log({.segment_bytes = 1 << 20, .index_interval_bytes = 100});
  for (int i = 0; i < 10; ++i)
    append(*l, make_batch(2, 1000 + 2 * i));
  // Entries stay in memory until the log is flushed (recovery rebuilds an unflushed segment's).
  EXPECT_TRUE(file_bytes(dir_ / "t-0" / seg_name(0, ".index")).empty());
  ASSERT_FALSE(l->flush());
  // Kafka's rule: an entry when more than 100 bytes went in since the last one, before this
  // batch. With ~batch_size-byte batches that is every ceil(101 / batch_size) batches.
  std::vector<uint8_t> idx = file_bytes(dir_ / "t-0" / seg_name(0, ".index"));
  ASSERT_FALSE(idx.empty());
  ASSERT_EQ(idx.size() % 8, 0u);
  int64_t every = (100 / batch_size) + 1;
  // First entry: batch number `every` (0-based), mapped from its last offset to its position.
  EXPECT_EQ(idx[3], static_cast<uint8_t>(every * 2 + 1));
  int64_t pos = every * batch_size;
  EXPECT_EQ((idx[6] << 8) | idx[7], pos);
  EXPECT_EQ(static_cast<int64_t>(idx.size() / 8), (10 - 1) / every);
}

// 10,000 partitions must fit in a descriptor limit of a few ten thousands: a log keeps only its
// segments' .log files open, never the indexes.
TEST_F(log_test, holds_one_descriptor_per_segment) {
  auto open_fds = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                         std::filesystem::directory_iterator{});
  };
  const int64_t batch_size = static_cast<int64_t>(make_batch(4).size());
  auto before = open_fds();
  auto l = open_log({.segment_bytes = 2 * batch_size, .index_interval_bytes = 10});
  EXPECT_EQ(open_fds() - before, 1);
  for (int i = 0; i < 5; ++i)
    append(*l, make_batch(4, 1000 + i));
  ASSERT_FALSE(l->flush());
  ASSERT_EQ(l->segment_count(), 3u);
  EXPECT_EQ(open_fds() - before, 3);
}

TEST_F(log_test, reads_whole_batches_across_segments) {
  const int64_t batch_size = static_cast<int64_t>(make_batch(4).size());
  auto l = open_log({.segment_bytes = 2 * batch_size, .index_interval_bytes = 4096});
  for (int i = 0; i < 5; ++i)
    append(*l, make_batch(4, 1000 + i));
  ASSERT_EQ(l->segment_count(), 3u);
  read_info info;
  ASSERT_FALSE(l->read(0, 1 << 20, l->log_end_offset(), false, info));
  EXPECT_EQ(info.slices.size(), 3u);
  EXPECT_EQ(info.bytes, 5 * batch_size);
  EXPECT_EQ(batches_in(slurp(info)),
            (std::vector<batch_summary>{{0, 3}, {4, 7}, {8, 11}, {12, 15}, {16, 19}}));
  // From the middle of a batch in the middle segment: starts with the batch holding the offset.
  EXPECT_EQ(read_all(*l, 10, 1 << 20, 20),
            (std::vector<batch_summary>{{8, 11}, {12, 15}, {16, 19}}));
}

TEST_F(log_test, max_bytes_and_min_one) {
  const int64_t s = static_cast<int64_t>(make_batch(2).size());
  auto l = open_log();
  for (int i = 0; i < 4; ++i)
    append(*l, make_batch(2));
  EXPECT_EQ(read_all(*l, 0, 2 * s + s / 2, 8), (std::vector<batch_summary>{{0, 1}, {2, 3}}));
  EXPECT_EQ(read_all(*l, 0, 2 * s, 8), (std::vector<batch_summary>{{0, 1}, {2, 3}}));
  EXPECT_EQ(read_all(*l, 0, s - 1, 8, true), (std::vector<batch_summary>{{0, 1}}));
  EXPECT_TRUE(read_all(*l, 0, s - 1, 8, false).empty());
  EXPECT_EQ(read_all(*l, 3, 0, 8, true), (std::vector<batch_summary>{{2, 3}}));
  EXPECT_TRUE(read_all(*l, 3, 0, 8, false).empty());
}

TEST_F(log_test, min_one_from_the_end_of_a_segment) {
  const int64_t s = static_cast<int64_t>(make_batch(2).size());
  auto l = open_log({.segment_bytes = s, .index_interval_bytes = 4096});
  append(*l, make_batch(2));
  append(*l, make_batch(2));
  // Reading on from a segment boundary, with and without minOneMessage.
  EXPECT_EQ(read_all(*l, 0, 1 << 20, 2), (std::vector<batch_summary>{{0, 1}}));
  EXPECT_EQ(read_all(*l, 2, 0, 4, true), (std::vector<batch_summary>{{2, 3}}));
  EXPECT_TRUE(read_all(*l, 2, 0, 4, false).empty());
  EXPECT_EQ(read_all(*l, 0, INT64_MAX, INT64_MAX).size(), 2u);
}

TEST_F(log_test, max_offset_bound) {
  auto l = open_log();
  for (int i = 0; i < 4; ++i)
    append(*l, make_batch(2));  // batches 0-1, 2-3, 4-5, 6-7
  EXPECT_EQ(read_all(*l, 0, 1 << 20, 4), (std::vector<batch_summary>{{0, 1}, {2, 3}}));
  // A batch that only reaches max_offset with its last record is left out.
  EXPECT_EQ(read_all(*l, 0, 1 << 20, 5), (std::vector<batch_summary>{{0, 1}, {2, 3}}));
  EXPECT_TRUE(read_all(*l, 4, 1 << 20, 4).empty());        // offset == max_offset
  EXPECT_TRUE(read_all(*l, 0, 1 << 20, 1, true).empty());  // even with min_one
  EXPECT_EQ(read_all(*l, 0, 1 << 20, 100).size(), 4u);     // clamped to the log end
}

TEST_F(log_test, out_of_range_offsets) {
  auto l = open_log();
  append(*l, make_batch(3));
  read_info info;
  EXPECT_EQ(l->read(4, 100, 3, false, info), errc::offset_out_of_range);
  EXPECT_EQ(l->read(-1, 100, 3, false, info), errc::offset_out_of_range);
  EXPECT_FALSE(l->read(3, 100, 3, false, info));  // the log end: empty, not an error
  EXPECT_TRUE(info.slices.empty());
}

TEST_F(log_test, truncation_across_segments_then_append) {
  const int64_t s = static_cast<int64_t>(make_batch(3).size());
  auto l = open_log({.segment_bytes = 2 * s, .index_interval_bytes = 1});
  for (int i = 0; i < 6; ++i)
    append(*l, make_batch(3, 1000 + 10 * i));  // 0..17, 3 segments
  l->set_high_watermark(18);
  ASSERT_EQ(l->segment_count(), 3u);
  std::filesystem::path d = dir_ / "t-0";

  ASSERT_FALSE(testing::truncate_through(*l, disk_, 100));  // beyond the end: nothing
  EXPECT_EQ(l->log_end_offset(), 18);

  ASSERT_FALSE(testing::truncate_through(*l, disk_, 7));  // inside batch 6-8: that whole batch goes
  EXPECT_EQ(l->log_end_offset(), 6);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_EQ(l->high_watermark(), 6);
  EXPECT_FALSE(std::filesystem::exists(d / seg_name(12, ".log")));
  EXPECT_FALSE(std::filesystem::exists(d / seg_name(12, ".index")));
  EXPECT_EQ(static_cast<int64_t>(file_bytes(d / seg_name(6, ".log")).size()), 0);
  EXPECT_EQ(l->max_timestamp_and_offset().first, 1012);

  EXPECT_EQ(append(*l, make_batch(2, 5000)).base_offset, 6);
  EXPECT_EQ(read_all(*l, 0, 1 << 20, 100), (std::vector<batch_summary>{{0, 2}, {3, 5}, {6, 7}}));

  ASSERT_FALSE(testing::truncate_through(*l, disk_, 1));  // within the first segment
  EXPECT_EQ(l->log_end_offset(), 0);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_EQ(append(*l, make_batch(1)).base_offset, 0);
  EXPECT_EQ(l->max_timestamp_and_offset().second, 0);
}

TEST_F(log_test, truncate_below_log_start_restarts_the_log) {
  // A partition directory whose only segment starts at 100.
  std::filesystem::create_directories(dir_ / "t-0");
  testing::write_bytes(dir_ / "t-0" / seg_name(100, ".log"), {});
  auto l = open_log();
  EXPECT_EQ(l->log_start_offset(), 100);
  EXPECT_EQ(append(*l, make_batch(3)).base_offset, 100);
  read_info info;
  EXPECT_EQ(l->read(99, 100, 103, false, info), errc::offset_out_of_range);

  ASSERT_FALSE(testing::truncate_through(*l, disk_, 50));
  EXPECT_EQ(l->log_start_offset(), 50);
  EXPECT_EQ(l->log_end_offset(), 50);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "t-0" / seg_name(100, ".log")));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "t-0" / seg_name(50, ".log")));
  EXPECT_EQ(append(*l, make_batch(1)).base_offset, 50);
}

TEST_F(log_test, slices_outlive_deleted_segments) {
  const int64_t s = static_cast<int64_t>(make_batch(3).size());
  auto l = open_log({.segment_bytes = s, .index_interval_bytes = 4096});
  append(*l, make_batch(3));
  append(*l, make_batch(3));
  read_info info;
  ASSERT_FALSE(l->read(3, 1 << 20, 6, false, info));
  ASSERT_EQ(info.slices.size(), 1u);
  // Deletes the segment the slice points into.
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 1));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "t-0" / seg_name(3, ".log")));
  EXPECT_EQ(batches_in(slurp(info)), (std::vector<batch_summary>{{3, 5}}));
}

TEST_F(log_test, offset_for_timestamp_is_record_exact) {
  auto l = open_log({.segment_bytes = 1 << 20, .index_interval_bytes = 1});
  append(*l, make_batch(3, 100, 10, 10));  // offsets 0-2: ts 100, 110, 120
  append(*l, make_batch(3, 50, 10, 1));    // offsets 3-5: ts 50, 51, 52 (older)
  append(*l, make_batch(3, 200, 10, 5));   // offsets 6-8: ts 200, 205, 210
  EXPECT_EQ(l->offset_for_timestamp(0), 0);
  EXPECT_EQ(l->offset_for_timestamp(51), 0);  // first record >= 51 in offset order
  EXPECT_EQ(l->offset_for_timestamp(100), 0);
  EXPECT_EQ(l->offset_for_timestamp(101), 1);
  EXPECT_EQ(l->offset_for_timestamp(120), 2);
  EXPECT_EQ(l->offset_for_timestamp(121), 6);
  EXPECT_EQ(l->offset_for_timestamp(206), 8);
  EXPECT_EQ(l->offset_for_timestamp(210), 8);
  EXPECT_FALSE(l->offset_for_timestamp(211));
  auto both = l->timestamp_and_offset_for(101);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->first, 110);
  EXPECT_EQ(both->second, 1);
}

TEST_F(log_test, offset_for_timestamp_equal_timestamps_in_earlier_batches) {
  // Kafka starts at the last time index entry <= ts and can miss an equal timestamp in a batch
  // before it; the search here starts after the last entry strictly below ts.
  auto l = open_log({.segment_bytes = 1 << 20, .index_interval_bytes = 1});
  append(*l, make_batch(1, 500));
  append(*l, make_batch(1, 500));
  append(*l, make_batch(1, 500));
  append(*l, make_batch(1, 700));
  EXPECT_EQ(l->offset_for_timestamp(500), 0);
  EXPECT_EQ(l->offset_for_timestamp(501), 3);
}

TEST_F(log_test, offset_for_timestamp_compressed_and_log_append_time) {
  auto l = open_log();
  std::vector<uint8_t> compressed = make_batch(3, 100, 10, 10);
  compressed[22] |= 0x04;  // zstd: storage never decompresses
  wire::mutable_record_batch(compressed).update_crc();
  append(*l, compressed);  // offsets 0-2, max ts 120
  log_config cfg = l->config();
  cfg.message_timestamp_type = timestamp_type::log_append_time;
  l->set_config(cfg);
  std::vector<uint8_t> append_time = make_batch(3, 100, 10, 10);
  append_info info;
  ASSERT_FALSE(l->append(append_time, 0, info, /*now_ms=*/900));  // offsets 3-5, all at 900
  EXPECT_EQ(l->offset_for_timestamp(110), 0);  // the compressed batch's base offset
  EXPECT_EQ(l->offset_for_timestamp(121), 3);
  EXPECT_EQ(l->offset_for_timestamp(900), 3);
  EXPECT_EQ(l->timestamp_and_offset_for(500)->first, 900);
  EXPECT_EQ(l->max_timestamp_and_offset(), std::make_pair(int64_t{900}, int64_t{3}));
}

TEST_F(log_test, max_timestamp_is_the_first_record_carrying_it) {
  auto l = open_log({.segment_bytes = 1 << 20, .index_interval_bytes = 1});
  append(*l, make_batch(2, 10));
  std::vector<std::vector<uint8_t>> values(3, std::vector<uint8_t>(4, 'v'));
  std::vector<wire::record_to_build> rs{
      {20, std::nullopt, values[0]}, {90, std::nullopt, values[1]}, {30, std::nullopt, values[2]}};
  append(*l, wire::build_record_batch({}, rs));  // offsets 2-4, max 90 at offset 3
  append(*l, make_batch(2, 50));
  EXPECT_EQ(l->max_timestamp_and_offset(), std::make_pair(int64_t{90}, int64_t{3}));
}

TEST_F(log_test, topic_id_is_written_to_partition_metadata) {
  auto l = open_log();
  wire::uuid id{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  std::error_code ec;
  l->set_topic_id(id, ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(file_text(dir_ / "t-0" / "partition.metadata"),
            "version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw\n");
  l->set_topic_id(id, ec);
  EXPECT_FALSE(ec);
  wire::uuid other = id;
  other[0] = 9;
  l->set_topic_id(other, ec);
  EXPECT_EQ(ec, errc::inconsistent_topic_id);
  l.reset();
  auto again = open_log();
  ASSERT_TRUE(again->topic_id());
  EXPECT_EQ(*again->topic_id(), id);
}

TEST_F(log_test, high_watermark_is_clamped) {
  auto l = open_log();
  append(*l, make_batch(3));
  l->set_high_watermark(100);
  EXPECT_EQ(l->high_watermark(), 3);
  l->set_high_watermark(-4);
  EXPECT_EQ(l->high_watermark(), 0);
}

TEST_F(log_test, flush_moves_the_recovery_point) {
  auto l = open_log();
  append(*l, make_batch(3));
  EXPECT_EQ(l->recovery_point(), 0);
  ASSERT_FALSE(l->flush());
  EXPECT_EQ(l->recovery_point(), 3);
}

TEST_F(log_test, close_is_idempotent_and_final) {
  auto l = open_log();
  append(*l, make_batch(3));
  l->close();
  l->close();
  EXPECT_TRUE(l->closed());
  append_info info;
  std::vector<uint8_t> b = make_batch(1);
  EXPECT_EQ(l->append(b, 0, info), errc::log_closed);
  read_info r;
  EXPECT_EQ(l->read(0, 100, 3, true, r), errc::log_closed);
  EXPECT_EQ(l->log_end_offset(), 3);
  EXPECT_EQ(l->recovery_point(), 3);
}

// Reads at random offsets and bounds against a model of the log, with a tiny index interval and
// small segments so index look-ups, header scans, the position cache and segment hops all
// take part.
TEST_F(log_test, random_reads_match_a_model) {
  std::mt19937 rng(2024);
  auto l = open_log({.segment_bytes = 3000, .index_interval_bytes = 200});
  struct model_batch {
    int64_t base, last, size;
  };
  std::vector<model_batch> model;
  for (int i = 0; i < 120; ++i) {
    int n = 1 + static_cast<int>(rng() % 6);
    std::vector<uint8_t> b = make_batch(n, 1000 + i, 5 + rng() % 60);
    append_info info = append(*l, b);
    model.push_back({info.base_offset, info.last_offset, info.bytes});
  }
  ASSERT_GT(l->segment_count(), 5u);
  const int64_t leo = l->log_end_offset();
  for (int q = 0; q < 3000; ++q) {
    int64_t offset = static_cast<int64_t>(rng() % (leo + 1));
    int64_t max_offset = static_cast<int64_t>(rng() % (leo + 2));
    int64_t max_bytes = static_cast<int64_t>(rng() % 4000);
    bool min_one = rng() % 2;
    // The model: whole batches from the one holding `offset`, within budget and below max_offset.
    std::vector<batch_summary> expected;
    int64_t used = 0;
    if (offset < max_offset) {
      for (const model_batch& m : model) {
        if (m.last < offset) continue;
        if (m.last >= max_offset) break;
        if (used + m.size > max_bytes && !(min_one && expected.empty())) break;
        expected.push_back({m.base, m.last});
        used += m.size;
        if (used > max_bytes) break;
      }
    }
    ASSERT_EQ(read_all(*l, offset, max_bytes, max_offset, min_one), expected)
        << "offset " << offset << " max_offset " << max_offset << " max_bytes " << max_bytes
        << " min_one " << min_one;
    // A tailing consumer: continue from where that read ended.
    if (!expected.empty()) {
      int64_t next = expected.back().last_offset + 1;
      auto again = read_all(*l, next, 1 << 20, leo);
      ASSERT_EQ(again.empty() ? leo : again.front().base_offset, next);
    }
  }
}

TEST_F(log_test, random_timestamp_lookups_match_a_model) {
  std::mt19937 rng(77);
  auto l = open_log({.segment_bytes = 2500, .index_interval_bytes = 150});
  struct rec {
    int64_t offset, ts;
  };
  std::vector<rec> records;
  for (int i = 0; i < 100; ++i) {
    int n = 1 + static_cast<int>(rng() % 4);
    int64_t first = 1000 + static_cast<int64_t>(rng() % 500);
    int64_t step = static_cast<int64_t>(rng() % 7) - 2;
    append_info info = append(*l, make_batch(n, first, 8, step));
    for (int k = 0; k < n; ++k)
      records.push_back({info.base_offset + k, first + k * step});
  }
  for (int64_t ts = 990; ts <= 1520; ++ts) {
    std::optional<int64_t> expected;
    for (const rec& r : records) {
      if (r.ts >= ts) {
        expected = r.offset;
        break;
      }
    }
    ASSERT_EQ(l->offset_for_timestamp(ts), expected) << ts;
  }
  int64_t max_ts = -1;
  int64_t max_off = -1;
  for (const rec& r : records) {
    if (r.ts > max_ts) {
      max_ts = r.ts;
      max_off = r.offset;
    }
  }
  EXPECT_EQ(l->max_timestamp_and_offset(), std::make_pair(max_ts, max_off));
}

}  // namespace
}  // namespace sluice::storage
