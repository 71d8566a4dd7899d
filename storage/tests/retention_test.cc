// The log start offset moving up: DeleteRecords, time and size retention, and the start offset
// surviving a restart through log-start-offset-checkpoint.

#include "storage/log.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::batch_summary;
using testing::batches_in;
using testing::make_batch;
using testing::make_producer_batch;
using testing::seg_name;
using testing::slurp;

class retention_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path part() { return dir_ / "t-0"; }

  std::unique_ptr<log> open_log(log_config cfg) {
    std::error_code ec;
    auto l = open_log_at(part(), {"t", 0}, cfg, testing::clean_load(), ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }

  // One batch of three 100-byte records per segment: batch i holds offsets 3i..3i+2 with
  // timestamps 1000i..1000i+2, and `batches` segments are written (the last one active).
  std::unique_ptr<log> segmented_log(int batches, log_config cfg = {}) {
    batch_bytes_ = static_cast<int64_t>(make_batch(3, 0, 100).size());
    cfg.segment_bytes = batch_bytes_;
    auto l = open_log(cfg);
    for (int i = 0; i < batches; ++i) {
      std::vector<uint8_t> b = make_batch(3, 1000 * i, 100);
      append_info info;
      EXPECT_FALSE(testing::append_through_roll(*l, disk_, b, 0, info, 0));
    }
    EXPECT_EQ(l->segment_count(), static_cast<size_t>(batches));
    l->set_high_watermark(l->log_end_offset());
    return l;
  }

  bool segment_on_disk(int64_t base) {
    return std::filesystem::exists(part() / seg_name(base, ".log")) ||
           std::filesystem::exists(part() / seg_name(base, ".index")) ||
           std::filesystem::exists(part() / seg_name(base, ".timeindex"));
  }

  std::error_code read_at(const log& l, int64_t offset, std::vector<batch_summary>& out) {
    read_info info;
    std::error_code ec = l.read(offset, INT32_MAX, l.log_end_offset(), true, info);
    out = batches_in(slurp(info));
    return ec;
  }

  int64_t batch_bytes_ = 0;
};

TEST_F(retention_test, delete_records_moves_the_start_inside_a_segment_and_deletes_those_below) {
  auto l = segmented_log(4);  // segments at 0, 3, 6, 9
  int64_t start = -1;
  ASSERT_FALSE(l->delete_records_before(7, start));
  disk_.drain();
  EXPECT_EQ(start, 7);
  EXPECT_EQ(l->log_start_offset(), 7);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_FALSE(segment_on_disk(0));
  EXPECT_FALSE(segment_on_disk(3));
  EXPECT_TRUE(segment_on_disk(6));

  std::vector<batch_summary> got;
  EXPECT_EQ(read_at(*l, 6, got), errc::offset_out_of_range);
  EXPECT_EQ(read_at(*l, 0, got), errc::offset_out_of_range);
  // The batch holding the start is served whole, as Kafka serves it.
  ASSERT_FALSE(read_at(*l, 7, got));
  EXPECT_EQ(got, (std::vector<batch_summary>{{6, 8}, {9, 11}}));

  // Never down.
  ASSERT_FALSE(l->delete_records_before(4, start));
  disk_.drain();
  EXPECT_EQ(start, 7);
  EXPECT_EQ(l->log_start_offset(), 7);
}

TEST_F(retention_test, delete_records_is_bounded_by_the_high_watermark) {
  auto l = segmented_log(3);
  l->set_high_watermark(5);
  int64_t start = -1;
  EXPECT_EQ(l->delete_records_before(6, start), errc::offset_out_of_range);
  disk_.drain();
  EXPECT_EQ(l->delete_records_before(-2, start), errc::offset_out_of_range);
  disk_.drain();
  EXPECT_EQ(l->log_start_offset(), 0);
  // -1 is DeleteRecordsRequest.HIGH_WATERMARK.
  ASSERT_FALSE(l->delete_records_before(-1, start));
  disk_.drain();
  EXPECT_EQ(start, 5);
  EXPECT_EQ(l->segment_count(), 2u);
}

TEST_F(retention_test, delete_records_up_to_the_log_end_keeps_the_active_segment) {
  auto l = segmented_log(3);
  int64_t start = -1;
  ASSERT_FALSE(l->delete_records_before(9, start));
  disk_.drain();
  EXPECT_EQ(start, 9);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_TRUE(segment_on_disk(6));
  std::vector<batch_summary> got;
  EXPECT_EQ(read_at(*l, 8, got), errc::offset_out_of_range);
  ASSERT_FALSE(read_at(*l, 9, got));
  EXPECT_TRUE(got.empty());
  // Appends go on at the log end.
  append_info info;
  std::vector<uint8_t> b = make_batch(1);
  ASSERT_FALSE(testing::append_through_roll(*l, disk_, b, 0, info, 0));
  EXPECT_EQ(info.base_offset, 9);
  EXPECT_EQ(info.log_start_offset, 9);
}

TEST_F(retention_test, time_retention_deletes_expired_segments_but_never_the_active_one) {
  auto l = segmented_log(4, {.retention_ms = 1500});
  // Largest timestamps 2, 1002, 2002, 3002. At now = 3400 the first two are more than 1500 ms
  // old; later the third is too, and the active one, though expired, stays.
  EXPECT_EQ(l->enforce_retention(3400), 2u);
  disk_.drain();
  EXPECT_EQ(l->log_start_offset(), 6);
  EXPECT_FALSE(segment_on_disk(0));
  EXPECT_FALSE(segment_on_disk(3));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_NE(events_[0].find("t-0: deleted 2 segment(s), " + std::to_string(2 * batch_bytes_) +
                            " bytes (retention.ms 1500 breached); log start offset 6"),
            std::string::npos)
      << events_[0];

  EXPECT_EQ(l->enforce_retention(1'000'000), 1u);
  disk_.drain();
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_EQ(l->log_start_offset(), 9);
  EXPECT_TRUE(segment_on_disk(9));
  EXPECT_EQ(l->enforce_retention(1'000'000), 0u);
  disk_.drain();
}

TEST_F(retention_test, time_retention_stops_at_the_first_segment_not_expired) {
  batch_bytes_ = static_cast<int64_t>(make_batch(3, 0, 100).size());
  auto l = open_log({.segment_bytes = batch_bytes_, .retention_ms = 1000});
  for (int64_t ts : {100, 5000, 200, 300}) {  // the second segment is new, the third old again
    std::vector<uint8_t> b = make_batch(3, ts, 100);
    append_info info;
    ASSERT_FALSE(testing::append_through_roll(*l, disk_, b, 0, info, 0));
  }
  l->set_high_watermark(l->log_end_offset());
  EXPECT_EQ(l->enforce_retention(3000), 1u);
  disk_.drain();
  EXPECT_EQ(l->log_start_offset(), 3);
  EXPECT_EQ(l->segment_count(), 3u);
}

TEST_F(retention_test, retention_minus_one_keeps_everything) {
  auto l = segmented_log(3, {.retention_ms = -1, .retention_bytes = -1});
  EXPECT_EQ(l->enforce_retention(INT64_MAX / 2), 0u);
  disk_.drain();
  EXPECT_EQ(l->segment_count(), 3u);
}

TEST_F(retention_test, size_retention_deletes_oldest_segments_while_the_rest_stays_large_enough) {
  auto l = segmented_log(5, {.retention_ms = -1});
  log_config cfg = l->config();
  // 5 segments of B bytes, limit 2.5 B: deleting two leaves 3 B >= 2.5 B, a third would not.
  cfg.retention_bytes = batch_bytes_ * 5 / 2;
  l->set_config(cfg);
  EXPECT_EQ(l->enforce_retention(0), 2u);
  disk_.drain();
  EXPECT_EQ(l->segment_count(), 3u);
  EXPECT_EQ(l->log_start_offset(), 6);
  EXPECT_FALSE(segment_on_disk(3));
  EXPECT_TRUE(segment_on_disk(6));
  EXPECT_NE(events_.back().find("retention.bytes"), std::string::npos);

  // A limit of 0 still keeps the active segment.
  cfg.retention_bytes = 0;
  l->set_config(cfg);
  EXPECT_EQ(l->enforce_retention(0), 2u);
  disk_.drain();
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_TRUE(segment_on_disk(12));
}

TEST_F(retention_test, retention_never_deletes_above_the_high_watermark) {
  auto l = segmented_log(4, {.retention_ms = 0});
  l->set_high_watermark(4);  // inside the second segment
  EXPECT_EQ(l->enforce_retention(1'000'000), 1u);
  disk_.drain();
  EXPECT_EQ(l->log_start_offset(), 3);
}

TEST_F(retention_test, slices_of_deleted_segments_stay_readable) {
  auto l = segmented_log(3, {.retention_ms = 0});
  read_info info;
  ASSERT_FALSE(l->read(0, INT32_MAX, l->log_end_offset(), true, info));
  EXPECT_EQ(l->enforce_retention(1'000'000), 2u);
  disk_.drain();
  EXPECT_EQ(batches_in(slurp(info)), (std::vector<batch_summary>{{0, 2}, {3, 5}, {6, 8}}));
}

TEST_F(retention_test, producer_snapshots_below_the_start_are_deleted_but_the_newest_two_kept) {
  int64_t b = static_cast<int64_t>(make_producer_batch(7, 0, 0, 3).size());
  auto l = open_log({.segment_bytes = b});
  for (int i = 0; i < 5; ++i) {
    std::vector<uint8_t> batch = make_producer_batch(7, 0, 3 * i, 3);
    append_info info;
    ASSERT_FALSE(testing::append_through_roll(*l, disk_, batch, 0, info, 0));
  }
  // A snapshot at each roll: 3, 6, 9, 12.
  l->set_high_watermark(l->log_end_offset());
  int64_t start = -1;
  ASSERT_FALSE(l->delete_records_before(13, start));
  disk_.drain();
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(3, ".snapshot")));
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(6, ".snapshot")));
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(9, ".snapshot")));
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(12, ".snapshot")));
  // The producer is still known: its retry is a duplicate.
  std::vector<uint8_t> retry = make_producer_batch(7, 0, 12, 3);
  append_info info;
  ASSERT_FALSE(testing::append_through_roll(*l, disk_, retry, 0, info, 0));
  EXPECT_TRUE(info.duplicate);
}

class retention_manager_test : public retention_test {
 protected:
  std::unique_ptr<log_manager> manager() {
    auto m = std::make_unique<log_manager>(dir_ / "data", log_config{}, env());
    std::error_code ec = m->load();
    EXPECT_FALSE(ec) << ec.message();
    return m;
  }
  log_config small_segments() {
    return {.segment_bytes = static_cast<int64_t>(make_batch(3, 0, 100).size()),
            .retention_ms = 1000};
  }
  void fill(log& l, int batches) {
    for (int i = 0; i < batches; ++i) {
      std::vector<uint8_t> b = make_batch(3, 1000 * i, 100);
      append_info info;
      ASSERT_FALSE(testing::append_through_roll(l, disk_, b, 0, info, 0));
    }
    l.set_high_watermark(l.log_end_offset());
  }
  wire::uuid id_{1};
};

TEST_F(retention_manager_test, create_takes_a_per_log_config_and_retention_runs_over_all_logs) {
  auto m = manager();
  std::error_code ec;
  log* a = m->create({"a", 0}, id_, small_segments(), ec);
  ASSERT_FALSE(ec);
  log* b = m->create({"b", 0}, id_, ec);  // broker defaults: one big segment, 7-day retention
  ASSERT_FALSE(ec);
  EXPECT_EQ(a->config().retention_ms, 1000);
  EXPECT_EQ(b->config().retention_ms, log_config{}.retention_ms);
  fill(*a, 3);
  fill(*b, 3);
  EXPECT_EQ(m->enforce_retention(10'000), 2u);
  disk_.drain();
  EXPECT_EQ(a->log_start_offset(), 6);
  EXPECT_EQ(b->log_start_offset(), 0);
  // An existing log keeps its config.
  log* again = m->create({"a", 0}, id_, ec);
  EXPECT_EQ(again, a);
  EXPECT_EQ(a->config().retention_ms, 1000);
}

TEST_F(retention_manager_test, log_start_offset_survives_clean_and_unclean_restarts) {
  {
    auto m = manager();
    std::error_code ec;
    log* l = m->create({"t", 0}, id_, small_segments(), ec);
    ASSERT_FALSE(ec);
    fill(*l, 3);
    int64_t start = -1;
    ASSERT_FALSE(l->delete_records_before(4, start));
    disk_.drain();
    ASSERT_FALSE(m->shutdown());
  }
  {
    auto m = manager();
    log* l = m->find({"t", 0});
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->log_start_offset(), 4);
    std::vector<batch_summary> got;
    EXPECT_EQ(read_at(*l, 3, got), errc::offset_out_of_range);
    l->set_high_watermark(l->log_end_offset());
    int64_t start = -1;
    ASSERT_FALSE(l->delete_records_before(5, start));
    disk_.drain();
    ASSERT_FALSE(m->checkpoint());
    // No shutdown: the next load recovers, and still starts at the checkpointed 5.
  }
  auto m = manager();
  log* l = m->find({"t", 0});
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->log_start_offset(), 5);
  EXPECT_EQ(l->high_watermark(), 9);
}

TEST_F(retention_manager_test, a_checkpointed_start_past_the_log_end_restarts_the_log_there) {
  {
    auto m = manager();
    std::error_code ec;
    log* l = m->create({"t", 0}, id_, ec);
    ASSERT_FALSE(ec);
    fill(*l, 2);
    int64_t start = -1;
    ASSERT_FALSE(l->delete_records_before(6, start));
    disk_.drain();
    ASSERT_FALSE(m->checkpoint());
    // Lose the tail behind the checkpoint's back, as a crash that cost unflushed data would.
    ASSERT_FALSE(testing::truncate_through(*l, disk_, 3));
  }
  auto m = manager();
  log* l = m->find({"t", 0});
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->log_start_offset(), 6);
  EXPECT_EQ(l->log_end_offset(), 6);
  EXPECT_EQ(l->segment_count(), 1u);
}

}  // namespace
}  // namespace sluice::storage
