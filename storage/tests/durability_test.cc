// The durability contract at the storage level: group commit (when_durable), the recovery point
// following completed syncs only, segment rolls made by disk jobs, a failed sync taking the log
// offline, and recovery that reads only the tail after the recovery point and never truncates
// what lies below it.

#include <fcntl.h>

#include "storage/log.h"
#include "storage/tests/fault_injection_fs.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::append_through_roll;
using testing::crash_load;
using testing::fault_injection_fs;
using testing::file_bytes;
using testing::make_batch;
using testing::make_producer_batch;
using testing::seg_name;
using testing::write_bytes;

class durability_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path part() { return dir_ / "t-0"; }

  std::unique_ptr<log> open_log(log_config cfg = {}, load_state state = testing::clean_load()) {
    std::error_code ec;
    auto l = log::open(part(), {"t", 0}, cfg, {fs_, disk_}, state, ec);
    EXPECT_FALSE(ec) << ec.message();
    // As the broker does when it makes the partition leader: the epoch's checkpoint is written
    // before the tests count the jobs their appends cause.
    l->assign_epoch_start(0);
    disk_.drain();
    return l;
  }

  append_info append(log& l, std::vector<uint8_t> batch) {
    append_info info;
    std::error_code ec = append_through_roll(l, disk_, batch, 0, info);
    EXPECT_FALSE(ec) << ec.message();
    return info;
  }

  size_t events_containing(std::string_view needle) const {
    size_t n = 0;
    for (const std::string& e : events_)
      n += e.find(needle) != std::string::npos;
    return n;
  }

  fault_injection_fs fs_;
};

TEST_F(durability_test, one_sync_covers_every_waiter_appended_before_it) {
  auto l = open_log();
  std::vector<std::error_code> results;
  std::vector<int64_t> ends;
  for (int i = 0; i < 3; ++i)
    ends.push_back(append(*l, make_batch(2)).last_offset + 1);
  for (int64_t end : ends)
    l->when_durable(end, [&](std::error_code ec) { results.push_back(ec); });
  EXPECT_TRUE(results.empty());  // nothing acknowledged before the sync completed
  EXPECT_EQ(disk_.pending(), 1u);
  EXPECT_EQ(l->recovery_point(), 0);
  disk_.drain();
  ASSERT_EQ(results.size(), 3u);
  for (auto ec : results)
    EXPECT_FALSE(ec);
  EXPECT_EQ(l->sync_count(), 1u);
  EXPECT_EQ(l->synced_waiters(), 3u);
  EXPECT_EQ(l->recovery_point(), 6);
  // Already durable: answered at once, no job.
  bool answered = false;
  l->when_durable(6, [&](std::error_code ec) { answered = !ec; });
  EXPECT_TRUE(answered);
  EXPECT_EQ(disk_.pending(), 0u);
}

TEST_F(durability_test, appends_during_a_sync_share_the_next_one) {
  auto l = open_log();
  int acked = 0;
  append_info first = append(*l, make_batch(1));
  l->when_durable(first.last_offset + 1, [&](std::error_code ec) { acked += !ec; });
  // While that sync is in flight, three more producers wait.
  for (int i = 0; i < 3; ++i) {
    append_info info = append(*l, make_batch(1));
    l->when_durable(info.last_offset + 1, [&](std::error_code ec) { acked += !ec; });
  }
  EXPECT_EQ(disk_.pending(), 1u);
  ASSERT_TRUE(disk_.run_one());
  EXPECT_EQ(acked, 1);  // the first sync only covered the first append
  EXPECT_EQ(l->recovery_point(), 1);
  EXPECT_EQ(disk_.pending(), 1u);  // one more sync for the three that waited
  disk_.drain();
  EXPECT_EQ(acked, 4);
  EXPECT_EQ(l->sync_count(), 2u);
  EXPECT_EQ(l->recovery_point(), 4);
}

TEST_F(durability_test, a_failed_sync_is_never_acknowledged_and_takes_the_log_offline) {
  auto l = open_log();
  fs_.fail_sync_if = [](const std::filesystem::path& p) { return p.extension() == ".log"; };
  std::vector<std::error_code> results;
  append_info info = append(*l, make_batch(2));
  l->when_durable(info.last_offset + 1, [&](std::error_code ec) { results.push_back(ec); });
  disk_.drain();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0], errc::log_offline);
  EXPECT_TRUE(l->offline());
  EXPECT_EQ(l->recovery_point(), 0);
  EXPECT_EQ(events_containing("t-0: fsync failed"), 1u);
  // Nothing more is taken or served, and no later sync pretends the data made it.
  fs_.fail_sync_if = {};
  append_info more;
  std::vector<uint8_t> b = make_batch(1);
  EXPECT_EQ(l->append(b, 0, more), errc::log_offline);
  read_info read;
  EXPECT_EQ(l->read(0, 1 << 20, 2, true, read), errc::log_offline);
  bool late = false;
  l->when_durable(2, [&](std::error_code ec) { late = ec == errc::log_offline; });
  EXPECT_TRUE(late);
  EXPECT_EQ(disk_.pending(), 0u);
}

TEST_F(durability_test, a_roll_creates_the_next_segment_in_a_job_and_appends_wait_for_it) {
  const int64_t size = static_cast<int64_t>(make_batch(3).size());
  auto l = open_log({.segment_bytes = 2 * size});
  append(*l, make_batch(3));
  append(*l, make_batch(3));
  std::vector<uint8_t> third = make_batch(3);
  std::vector<uint8_t> untouched = third;
  append_info info;
  ASSERT_EQ(l->append(third, 0, info), errc::roll_in_progress);
  EXPECT_EQ(third, untouched);  // nothing stamped, nothing written
  EXPECT_EQ(l->log_end_offset(), 6);
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(6, ".log")));
  // Every later append waits too, and the log says when it can take them.
  EXPECT_EQ(l->append(third, 0, info), errc::roll_in_progress);
  bool writable = false;
  l->when_writable([&] { writable = true; });
  EXPECT_FALSE(writable);
  ASSERT_TRUE(disk_.run_one());  // the new segment's files
  EXPECT_TRUE(writable);
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(6, ".log")));
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(6, ".index")));
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(6, ".timeindex")));
  EXPECT_EQ(l->recovery_point(), 0);  // the old segment is not flushed yet
  ASSERT_FALSE(l->append(third, 0, info));
  EXPECT_EQ(info.base_offset, 6);
  disk_.drain();  // the old segment's flush
  EXPECT_EQ(l->recovery_point(), 6);
  EXPECT_EQ(l->segment_count(), 2u);
}

TEST_F(durability_test, producer_snapshot_of_a_roll_is_written_after_the_data_it_covers) {
  const int64_t size = static_cast<int64_t>(make_producer_batch(7, 0, 0, 2).size());
  auto l = open_log({.segment_bytes = size});
  append(*l, make_producer_batch(7, 0, 0, 2));
  std::vector<uint8_t> next = make_producer_batch(7, 0, 2, 2);
  append_info info;
  ASSERT_EQ(l->append(next, 0, info), errc::roll_in_progress);
  ASSERT_TRUE(disk_.run_one());  // files of the new segment
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(2, ".snapshot")));
  ASSERT_TRUE(disk_.run_one());  // flush of the old segment, then the snapshot
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(2, ".snapshot")));
}

TEST_F(durability_test, the_periodic_flush_moves_the_recovery_point_and_writes_index_entries) {
  auto l = open_log({.index_interval_bytes = 0});
  for (int i = 0; i < 4; ++i)
    append(*l, make_batch(2));
  EXPECT_EQ(file_bytes(part() / seg_name(0, ".index")).size(), 0u);
  l->flush_async();
  EXPECT_EQ(l->recovery_point(), 0);
  disk_.drain();
  EXPECT_EQ(l->recovery_point(), 8);
  EXPECT_EQ(file_bytes(part() / seg_name(0, ".index")).size(), 3u * 8);
  l->flush_async();  // nothing unsynced: no job
  EXPECT_EQ(disk_.pending(), 0u);
}

TEST_F(durability_test, removing_the_log_answers_its_waiters) {
  auto l = open_log();
  append_info info = append(*l, make_batch(1));
  std::error_code result;
  l->when_durable(info.last_offset + 1, [&](std::error_code ec) { result = ec; });
  l->mark_removed();
  EXPECT_EQ(result, errc::log_closed);
  disk_.drain();  // the sync's completion finds the log removed and does nothing
  EXPECT_EQ(result, errc::log_closed);
}

// Recovery -----------------------------------------------------------------------------------

TEST_F(durability_test, recovery_reads_only_the_tail_after_the_last_index_entry) {
  std::vector<uint8_t> big(64 << 10, 'x');
  {
    auto l = open_log({.index_interval_bytes = 4096});
    for (int i = 0; i < 64; ++i)
      append(*l, make_batch(4, 1000 + i, 1000));
    l->flush_async();
    disk_.drain();
    EXPECT_EQ(l->recovery_point(), 256);
    append(*l, make_batch(4, 2000));  // after the flush: not durable
  }                                   // crash
  events_.clear();
  auto l = open_log({.index_interval_bytes = 4096}, crash_load(256));
  EXPECT_EQ(l->log_end_offset(), 260);
  const int64_t file_size =
      static_cast<int64_t>(std::filesystem::file_size(part() / seg_name(0, ".log")));
  ASSERT_EQ(events_containing("t-0: recovered " + seg_name(0, ".log")), 1u);
  for (const std::string& e : events_) {
    if (e.find("recovered") == std::string::npos) continue;
    // The checked part starts at an index entry near the end, not at byte 0.
    size_t from = e.find("from byte ");
    ASSERT_NE(from, std::string::npos) << e;
    int64_t start = std::stoll(e.substr(from + 10));
    EXPECT_GT(start, file_size - 16 * 1024) << e;
  }
  // The head's timestamps survived the shortcut: the largest is still known.
  EXPECT_EQ(l->max_timestamp_and_offset().first, 2003);
}

TEST_F(durability_test, an_invalid_batch_below_the_recovery_point_stops_the_load) {
  {
    auto l = open_log();
    for (int i = 0; i < 3; ++i)
      append(*l, make_batch(2));
    l->flush_async();
    disk_.drain();
    append(*l, make_batch(2));  // offsets 6-7, not synced
  }
  // Damage the record bytes of the second batch (offsets 2-3), below the recovery point 6.
  std::filesystem::path file = part() / seg_name(0, ".log");
  std::vector<uint8_t> bytes = file_bytes(file);
  const size_t batch = make_batch(2).size();
  bytes[batch + batch - 2] ^= 0x01;
  write_bytes(file, bytes);
  std::error_code ec;
  auto l = log::open(part(), {"t", 0}, {}, {fs_, disk_}, crash_load(6), ec);
  EXPECT_EQ(ec, errc::corrupt_log);
  EXPECT_EQ(l, nullptr);
  EXPECT_EQ(events_containing("holds an invalid batch below the recovery point"), 1u);
  // Nothing was cut: the damaged file is still whole for an operator to inspect.
  EXPECT_EQ(file_bytes(file).size(), bytes.size());

  // The same damage above the recovery point is a torn write: the log ends before it.
  events_.clear();
  auto above = open_log({}, crash_load(2));
  EXPECT_EQ(above->log_end_offset(), 2);
  EXPECT_EQ(events_containing("recovery truncated"), 1u);
}

TEST_F(durability_test, a_batch_whose_offsets_overflow_ends_the_log_instead_of_wrapping_it) {
  {
    auto l = open_log();
    append(*l, make_batch(3));
    append(*l, make_batch(3));
    l->close();
  }
  // A CRC-valid batch appended to the cleanly stopped segment, claiming a base offset near
  // INT64_MAX: its last offset would wrap the log end offset negative.
  std::vector<uint8_t> evil = make_batch(5);
  {
    wire::mutable_record_batch b(evil);
    b.set_base_offset(INT64_MAX - 2);
  }
  std::filesystem::path file = part() / seg_name(0, ".log");
  std::vector<uint8_t> bytes = file_bytes(file);
  bytes.insert(bytes.end(), evil.begin(), evil.end());
  write_bytes(file, bytes);

  load_state state = testing::clean_load();
  state.recovery_point = 6;  // what the clean shutdown checkpointed
  auto l = open_log({}, state);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->log_end_offset(), 6);
  EXPECT_EQ(l->log_start_offset(), 0);
  EXPECT_EQ(events_containing("deleting all segments"), 0u);
  EXPECT_EQ(events_containing("recovery truncated"), 1u);
  // The next append gets the next offset, not 0.
  EXPECT_EQ(append(*l, make_batch(1)).base_offset, 6);
}

TEST_F(durability_test, wire_checks_offsets_for_range_and_overflow) {
  std::vector<uint8_t> b = make_batch(5);
  {
    wire::mutable_record_batch m(b);
    m.set_base_offset(INT64_MAX - 4);
  }
  // The CRC does not cover the base offset: only the range check catches it.
  EXPECT_EQ(wire::record_batch(b).validate(/*check_record_count=*/false),
            wire::batch_error::offset_overflow);
  {
    wire::mutable_record_batch m(b);
    m.set_base_offset(INT64_MAX - 5);
  }
  EXPECT_EQ(wire::record_batch(b).validate(false), wire::batch_error::ok);
  {
    wire::mutable_record_batch m(b);
    m.set_base_offset(-1);
  }
  EXPECT_EQ(wire::record_batch(b).validate(false), wire::batch_error::offset_overflow);
}

}  // namespace
}  // namespace sluice::storage
