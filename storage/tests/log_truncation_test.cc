// log::truncate_to, what a diverged follower runs: bookkeeping on the owner's thread, the file
// work in one job of the log's disk queue, the result installed by its completion. The cut
// itself (whole batches, segments above deleted, indexes and producer state rewound), what waits
// for it (appends, flushes, retention, log-start moves), what readers see meanwhile, a log closed
// under it, failures and crashes at every step of its job.

#include <algorithm>
#include <fstream>

#include "storage/log.h"
#include "storage/tests/fault_injection_fs.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::batch_summary;
using testing::batches_in;
using testing::make_batch;
using testing::make_producer_batch;
using testing::seg_name;
using testing::slurp;
using entries = std::vector<epoch_entry>;
using bytes = std::vector<uint8_t>;

const int64_t batch_bytes = static_cast<int64_t>(make_batch(3).size());

// A batch as a leader would have written it: its offsets and epoch set (both outside the CRC).
bytes at(bytes b, int64_t base_offset, int32_t epoch = 0) {
  wire::mutable_record_batch m(b);
  m.set_base_offset(base_offset);
  m.set_partition_leader_epoch(epoch);
  return b;
}

// Counts every call into the file system, so that a test can tell which thread made them.
class counting_fs : public posix_file_system {
 public:
  size_t calls = 0;
  std::error_code open(const std::filesystem::path& path, int flags, file_handle& out,
                       bool* missing = nullptr) override {
    ++calls;
    return posix_file_system::open(path, flags, out, missing);
  }
  std::error_code write(int fd, std::span<const uint8_t> data, int64_t position,
                        const std::filesystem::path& path) override {
    ++calls;
    return posix_file_system::write(fd, data, position, path);
  }
  std::error_code read(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                       const std::filesystem::path& path) override {
    ++calls;
    return posix_file_system::read(fd, data, position, got, path);
  }
  std::error_code read_cached(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                              const std::filesystem::path& path, bool& would_block) override {
    ++calls;
    return posix_file_system::read_cached(fd, data, position, got, path, would_block);
  }
  bool cached(int fd, int64_t position, int64_t length) override {
    ++calls;
    return posix_file_system::cached(fd, position, length);
  }
  std::error_code truncate(int fd, int64_t size, const std::filesystem::path& path) override {
    ++calls;
    return posix_file_system::truncate(fd, size, path);
  }
  std::error_code sync(int fd, const std::filesystem::path& path) override {
    ++calls;
    return posix_file_system::sync(fd, path);
  }
  std::error_code sync_dir(const std::filesystem::path& dir) override {
    ++calls;
    return posix_file_system::sync_dir(dir);
  }
  std::error_code rename(const std::filesystem::path& from,
                         const std::filesystem::path& to) override {
    ++calls;
    return posix_file_system::rename(from, to);
  }
  std::error_code remove(const std::filesystem::path& path) override {
    ++calls;
    return posix_file_system::remove(path);
  }
  std::error_code list(const std::filesystem::path& dir, std::vector<dir_entry>& out) override {
    ++calls;
    return posix_file_system::list(dir, out);
  }
  std::error_code size(int fd, const std::filesystem::path& path, int64_t& out) override {
    ++calls;
    return posix_file_system::size(fd, path, out);
  }
  std::error_code modified_ms(int fd, const std::filesystem::path& path, int64_t& out) override {
    ++calls;
    return posix_file_system::modified_ms(fd, path, out);
  }
};

class log_truncation_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path part() { return dir_ / "t-0"; }

  std::unique_ptr<log> open_log(load_state state = testing::clean_load(),
                                file_system* fs = nullptr) {
    std::error_code ec;
    auto l = log::open(part(), {"t", 0}, cfg_, {fs != nullptr ? *fs : default_file_system(), disk_},
                       state, ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }
  append_info append(log& l, bytes batch, int32_t epoch = 0) {
    append_info info;
    std::error_code ec = testing::append_through_roll(l, disk_, batch, epoch, info);
    EXPECT_FALSE(ec) << ec.message();
    disk_.drain();
    return info;
  }
  // Eight three-record batches, three per segment, with epochs 0, 0, 0 | 2, 2, 5 | 5, 7:
  // segments based at 0, 9 and 18, offsets 0..23, every append but a segment's first indexed.
  std::unique_ptr<log> filled(file_system* fs = nullptr) {
    auto l = open_log(testing::clean_load(), fs);
    int i = 0;
    for (int32_t epoch : {0, 0, 0, 2, 2, 5, 5, 7})
      append(*l, make_batch(3, 1000 + 10 * i++), epoch);
    EXPECT_EQ(l->segment_count(), 3u);
    l->set_high_watermark(24);
    return l;
  }
  std::vector<batch_summary> read_all(const log& l, int64_t offset = 0) {
    read_info info;
    std::error_code ec = l.read(offset, INT32_MAX, INT64_MAX, true, info);
    EXPECT_FALSE(ec) << ec.message();
    return batches_in(slurp(info));
  }
  // Starts a truncation; the slot holds its result once it completed.
  std::shared_ptr<std::optional<std::error_code>> start(log& l, int64_t offset) {
    auto result = std::make_shared<std::optional<std::error_code>>();
    l.truncate_to(offset, [result](std::error_code ec) { *result = ec; });
    return result;
  }
  size_t events_containing(std::string_view needle) const {
    return static_cast<size_t>(std::count_if(events_.begin(), events_.end(), [&](const auto& e) {
      return e.find(needle) != std::string::npos;
    }));
  }
  int64_t size_of(const std::string& file) {
    return static_cast<int64_t>(std::filesystem::file_size(part() / file));
  }
  bool has(const std::string& file) { return std::filesystem::exists(part() / file); }
  std::optional<entries> epochs_on_disk() {
    std::ifstream in(part() / leader_epoch_checkpoint_file);
    if (!in) return std::nullopt;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_leader_epoch_checkpoint(text);
  }

  log_config cfg_{.segment_bytes = 3 * batch_bytes, .index_interval_bytes = 1};
};

const std::vector<batch_summary> first_five{{0, 2}, {3, 5}, {6, 8}, {9, 11}, {12, 14}};

TEST_F(log_truncation_test, a_cut_in_the_active_segment_drops_whole_batches) {
  cfg_.segment_bytes = 1 << 20;
  auto l = open_log();
  for (int i = 0; i < 4; ++i)
    append(*l, make_batch(3, 1000 + 10 * i));  // 0-2, 3-5, 6-8, 9-11
  l->set_high_watermark(12);
  ASSERT_EQ(size_of(seg_name(0, ".log")), 4 * batch_bytes);

  auto done = start(*l, 7);  // inside 6-8: that whole batch goes
  EXPECT_FALSE(done->has_value());
  EXPECT_EQ(l->log_end_offset(), 7) << "reads stop at the cut from the call on";
  EXPECT_EQ(l->high_watermark(), 7);
  EXPECT_EQ(size_of(seg_name(0, ".log")), 4 * batch_bytes) << "the files are the job's";

  disk_.drain();
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done) << (*done)->message();
  EXPECT_EQ(l->log_end_offset(), 6);
  EXPECT_EQ(l->high_watermark(), 6);
  EXPECT_EQ(l->recovery_point(), 6) << "the job synced what remains";
  EXPECT_EQ(size_of(seg_name(0, ".log")), 2 * batch_bytes);
  // The one index entry below the cut (the append ending at 5), written although the active
  // segment's entries had not been flushed yet.
  EXPECT_EQ(size_of(seg_name(0, ".index")), 8);
  EXPECT_EQ(size_of(seg_name(0, ".timeindex")), 12);
  EXPECT_EQ(read_all(*l), (std::vector<batch_summary>{{0, 2}, {3, 5}}));
  EXPECT_EQ(l->max_timestamp_and_offset().first, 1012);
  EXPECT_EQ(events_containing("truncated to offset 7: log end 12 -> 6"), 1u);

  EXPECT_EQ(append(*l, make_batch(2, 5000)).base_offset, 6);
  EXPECT_EQ(read_all(*l), (std::vector<batch_summary>{{0, 2}, {3, 5}, {6, 7}}));
  // At or past the log end: nothing to do, at once.
  auto nothing = start(*l, 8);
  ASSERT_TRUE(nothing->has_value());
  EXPECT_FALSE(**nothing);
  EXPECT_EQ(disk_.pending(), 0u);
}

TEST_F(log_truncation_test, a_cut_across_segments_deletes_those_above_and_reactivates_the_kept) {
  auto l = filled();
  ASSERT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {2, 9}, {5, 15}, {7, 21}}));
  ASSERT_TRUE(has(seg_name(9, ".snapshot")));
  ASSERT_TRUE(has(seg_name(18, ".snapshot")));
  read_info before;
  ASSERT_FALSE(l->read(18, INT32_MAX, 24, true, before));

  auto done = start(*l, 16);  // inside 15-17, in segment 9
  disk_.drain();
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done) << (*done)->message();
  EXPECT_EQ(l->log_end_offset(), 15);
  EXPECT_EQ(l->segment_count(), 2u);
  for (const char* suffix : {".log", ".index", ".timeindex", ".snapshot"})
    EXPECT_FALSE(has(seg_name(18, suffix))) << suffix;
  EXPECT_TRUE(has(seg_name(9, ".snapshot")));
  EXPECT_EQ(size_of(seg_name(9, ".log")), 2 * batch_bytes);
  // Segment 9's entries below the cut: the append ending at 14 (the one ending at 17 went).
  EXPECT_EQ(size_of(seg_name(9, ".index")), 8);
  EXPECT_EQ(size_of(seg_name(9, ".timeindex")), 12);
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {2, 9}}));
  EXPECT_EQ(epochs_on_disk(), (entries{{0, 0}, {2, 9}}));
  EXPECT_EQ(read_all(*l), first_five);
  // A slice handed out before still reads the deleted segment's bytes.
  EXPECT_EQ(batches_in(slurp(before)), (std::vector<batch_summary>{{18, 20}, {21, 23}}));

  // The next appends go into segment 9 and are found through its index.
  EXPECT_EQ(append(*l, make_batch(3, 5000), 9).base_offset, 15);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_EQ(read_all(*l, 16), (std::vector<batch_summary>{{15, 17}}));
  EXPECT_EQ(append(*l, make_batch(3, 5000), 9).base_offset, 18);
  EXPECT_EQ(l->segment_count(), 3u) << "a full segment rolls again";
}

TEST_F(log_truncation_test, producer_state_after_the_cut_is_what_it_was_at_the_cut) {
  cfg_.segment_bytes = 2 * static_cast<int64_t>(make_producer_batch(7, 0, 0, 3).size());
  auto l = open_log();
  append(*l, make_producer_batch(7, 0, 0, 3));   // 0-2
  append(*l, make_producer_batch(7, 0, 3, 3));   // 3-5
  append(*l, make_producer_batch(7, 0, 6, 3));   // 6-8, segment 6
  append(*l, make_producer_batch(7, 0, 9, 3));   // 9-11
  append(*l, make_producer_batch(8, 0, 0, 3));   // 12-14, segment 12: a producer new here
  append(*l, make_producer_batch(7, 0, 12, 3));  // 15-17
  ASSERT_EQ(l->segment_count(), 3u);
  ASSERT_TRUE(has(seg_name(12, ".snapshot")));

  ASSERT_FALSE(testing::truncate_through(*l, disk_, 9));
  EXPECT_EQ(l->log_end_offset(), 9);
  EXPECT_EQ(l->producer_state().map_end_offset(), 9);
  ASSERT_NE(l->producer_state().find(7), nullptr);
  EXPECT_EQ(l->producer_state().find(7)->last_sequence(), 8);
  EXPECT_EQ(l->producer_state().find(8), nullptr) << "it wrote only above the cut";
  EXPECT_FALSE(has(seg_name(12, ".snapshot")));
  EXPECT_TRUE(has(seg_name(6, ".snapshot")));

  // A retry of the last batch below the cut is still a duplicate; what was cut is written again,
  // at the new end, and the forgotten producer starts afresh.
  append_info retry = append(*l, make_producer_batch(7, 0, 6, 3));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.base_offset, 6);
  append_info again = append(*l, make_producer_batch(7, 0, 9, 3));
  EXPECT_FALSE(again.duplicate);
  EXPECT_EQ(again.base_offset, 9);
  append_info fresh = append(*l, make_producer_batch(8, 0, 0, 3));
  EXPECT_FALSE(fresh.duplicate);
  EXPECT_EQ(fresh.base_offset, 12);
}

TEST_F(log_truncation_test, an_unusable_snapshot_sends_the_replay_to_earlier_segments) {
  cfg_.segment_bytes = 2 * static_cast<int64_t>(make_producer_batch(7, 0, 0, 3).size());
  auto l = open_log();
  for (int32_t seq = 0; seq < 18; seq += 3)
    append(*l, make_producer_batch(7, 0, seq, 3));  // segments at 0, 6 and 12
  ASSERT_TRUE(has(seg_name(6, ".snapshot")));
  // The snapshot the replay would start from is damaged: it goes (one line), and the replay
  // reads segment 0, which the job opens by its name, then the kept one.
  testing::write_bytes(part() / seg_name(6, ".snapshot"), bytes(20, 0xab));

  ASSERT_FALSE(testing::truncate_through(*l, disk_, 9));
  EXPECT_EQ(events_containing("deleted producer snapshot " + seg_name(6, ".snapshot")), 1u);
  EXPECT_FALSE(has(seg_name(6, ".snapshot")));
  ASSERT_NE(l->producer_state().find(7), nullptr);
  EXPECT_EQ(l->producer_state().find(7)->last_sequence(), 8);
  EXPECT_EQ(l->producer_state().map_end_offset(), 9);
  EXPECT_TRUE(append(*l, make_producer_batch(7, 0, 6, 3)).duplicate);
}

TEST_F(log_truncation_test, what_arrives_during_the_job_waits_and_lands_after_the_cut) {
  auto l = filled();
  auto done = start(*l, 16);

  // Appends, both kinds, see a roll in progress and are called back once the cut is in.
  bytes batch = make_batch(2, 7000);
  append_info info;
  EXPECT_EQ(l->append(batch, 9, info), errc::roll_in_progress);
  bytes replicated = at(make_batch(1), 16, 9);
  EXPECT_EQ(l->append_replicated(replicated, info), errc::roll_in_progress);
  bool writable = false;
  l->when_writable([&] { writable = true; });
  // Log-start moves, retention, flushes and a new epoch wait too.
  int64_t start_offset = -1;
  EXPECT_EQ(l->delete_records_before(3, start_offset), errc::roll_in_progress);
  EXPECT_EQ(l->follow_leader_log_start(3, start_offset), errc::roll_in_progress);
  EXPECT_EQ(l->enforce_retention(INT64_MAX), 0u);
  EXPECT_EQ(l->log_start_offset(), 0);
  bool flushed = false;
  l->flush_async([&] { flushed = true; });
  l->assign_epoch_start(9);
  EXPECT_FALSE(writable);
  EXPECT_FALSE(flushed);

  ASSERT_TRUE(disk_.run_one());  // the truncation's job and completion
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done);
  EXPECT_TRUE(writable);
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {2, 9}, {9, 15}}))
      << "the new epoch starts at the end the cut left";
  disk_.drain();
  EXPECT_TRUE(flushed);

  ASSERT_FALSE(l->append(batch, 9, info));
  EXPECT_EQ(info.base_offset, 15);
  EXPECT_EQ(info.last_offset, 16);
  EXPECT_EQ(read_all(*l, 15), (std::vector<batch_summary>{{15, 16}}));
  // A follower's batch fetched before the cut no longer fits the log end.
  EXPECT_EQ(l->append_replicated(at(make_batch(1), 16, 9), info), errc::offset_out_of_range);
  ASSERT_FALSE(l->delete_records_before(3, start_offset));
  EXPECT_EQ(start_offset, 3);
}

TEST_F(log_truncation_test, a_reader_during_the_job_never_sees_data_from_the_cut_on) {
  auto l = filled();
  auto done = start(*l, 17);  // inside 15-17
  read_info info;
  // Before the job ran: the batch holding the cut and everything after it are out of reach.
  EXPECT_EQ(read_all(*l), first_five);
  for (int64_t offset : {15, 17}) {
    ASSERT_FALSE(l->read(offset, INT32_MAX, INT64_MAX, true, info)) << offset;
    EXPECT_TRUE(info.slices.empty()) << offset;
  }
  EXPECT_EQ(l->read(18, INT32_MAX, INT64_MAX, true, info), errc::offset_out_of_range);
  EXPECT_FALSE(l->offset_for_timestamp(0)) << "time look-ups wait for the cut";

  // The job has cut the files; its completion has not reached the log yet.
  ASSERT_TRUE(disk_.run_work_only());
  EXPECT_FALSE(done->has_value());
  EXPECT_EQ(size_of(seg_name(9, ".log")), 2 * batch_bytes);
  EXPECT_FALSE(has(seg_name(18, ".log")));
  EXPECT_EQ(read_all(*l), first_five);
  EXPECT_EQ(read_all(*l, 12), (std::vector<batch_summary>{{12, 14}}));
  // Asking inside the batch that was cut finds the file ending where it began: nothing, and no
  // complaint about an unreadable batch. (16 is found through the index and a header walk; the
  // position of 15 is remembered from the reads above.)
  for (int64_t offset : {15, 16}) {
    ASSERT_FALSE(l->read(offset, INT32_MAX, INT64_MAX, true, info)) << offset;
    EXPECT_TRUE(info.slices.empty()) << offset;
  }
  EXPECT_EQ(events_containing("unreadable batch"), 0u);

  ASSERT_TRUE(disk_.complete_one());
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done);
  ASSERT_FALSE(l->read(15, INT32_MAX, INT64_MAX, true, info));
  EXPECT_TRUE(info.slices.empty());
  EXPECT_EQ(l->read(16, INT32_MAX, INT64_MAX, true, info), errc::offset_out_of_range);
  EXPECT_EQ(l->offset_for_timestamp(0), 0);
}

TEST_F(log_truncation_test, a_log_closed_during_the_job_hears_log_closed_and_reopens_at_the_cut) {
  {
    auto l = filled();
    auto done = start(*l, 16);
    bool writable = false;
    l->when_writable([&] { writable = true; });
    l->close();
    EXPECT_TRUE(writable) << "waiting appends are released, to find the log closed";
    append_info info;
    bytes batch = make_batch(1);
    EXPECT_EQ(l->append(batch, 0, info), errc::log_closed);
    EXPECT_FALSE(has(seg_name(24, ".snapshot"))) << "close wrote nothing the job is cutting";
    disk_.drain();
    ASSERT_TRUE(done->has_value());
    EXPECT_EQ(**done, errc::log_closed);
  }
  // The job finished its file work; a crash-style open finds the log cut.
  auto again = open_log(testing::crash_load());
  EXPECT_EQ(again->log_end_offset(), 15);
  EXPECT_EQ(again->segment_count(), 2u);
  EXPECT_EQ(read_all(*again), first_five);
  EXPECT_EQ(again->leader_epochs().entries(), (entries{{0, 0}, {2, 9}}));
}

TEST_F(log_truncation_test, a_log_dropped_during_the_job_hears_log_closed) {
  std::shared_ptr<std::optional<std::error_code>> done;
  {
    auto l = filled();
    done = start(*l, 16);
  }
  EXPECT_FALSE(done->has_value());
  disk_.drain();
  ASSERT_TRUE(done->has_value());
  EXPECT_EQ(**done, errc::log_closed);
  auto again = open_log(testing::crash_load());
  EXPECT_EQ(again->log_end_offset(), 15);
  EXPECT_EQ(read_all(*again), first_five);
}

TEST_F(log_truncation_test, after_a_power_loss_the_log_ends_at_the_cut) {
  std::filesystem::create_directories(part());  // a directory entry the layer counts as durable
  testing::fault_injection_fs fs;
  int64_t recovery_point = 0;
  {
    auto l = filled(&fs);
    ASSERT_FALSE(testing::truncate_through(*l, disk_, 16));
    recovery_point = l->recovery_point();
    EXPECT_EQ(recovery_point, 15);
    // No flush, no close, no checkpoint beyond the recovery point: then the power goes.
  }
  fs.lose_power();
  auto again = open_log(testing::crash_load(recovery_point), &fs);
  EXPECT_EQ(again->log_end_offset(), 15) << "what the truncation left was all on stable storage";
  EXPECT_EQ(again->segment_count(), 2u);
  EXPECT_EQ(read_all(*again), first_five);
  EXPECT_EQ(again->leader_epochs().entries(), (entries{{0, 0}, {2, 9}}));
  EXPECT_FALSE(has(seg_name(18, ".log")));
}

// A crash at each step of the job: the log that is loaded again is whole batches from offset 0
// without a gap, cut or not (two segments lie above the cut, every byte synced), and only a
// completed truncation reports success.
TEST_F(log_truncation_test, a_crash_anywhere_in_the_job_leaves_a_log_without_a_gap) {
  bool completed_cleanly = false;
  for (size_t ops = 0; ops < 64 && !completed_cleanly; ++ops) {
    SCOPED_TRACE("crash after " + std::to_string(ops) + " operations");
    std::filesystem::remove_all(part());
    std::filesystem::create_directories(part());
    testing::fault_injection_fs fs;
    std::optional<std::error_code> result;
    {
      auto l = filled(&fs);
      ASSERT_FALSE(l->flush());
      fs.crash_after(ops);
      l->truncate_to(7, [&](std::error_code ec) { result = ec; });
      disk_.drain();
      ASSERT_TRUE(result.has_value());
      completed_cleanly = !fs.crashed();
      if (*result) {
        EXPECT_TRUE(l->offline());
        bytes batch = make_batch(1);
        append_info info;
        EXPECT_EQ(l->append(batch, 0, info), errc::log_offline);
      }
    }
    fs.lose_power();
    std::error_code ec;
    auto again = log::open(part(), {"t", 0}, cfg_, {fs, disk_}, testing::crash_load(), ec);
    ASSERT_FALSE(ec) << ec.message();
    const int64_t end = again->log_end_offset();
    if (!*result) {
      EXPECT_EQ(end, 6);
    }
    EXPECT_GE(end, 6);
    std::vector<batch_summary> batches = read_all(*again);
    int64_t next = 0;
    for (const batch_summary& b : batches) {
      EXPECT_EQ(b.base_offset, next);
      next = b.last_offset + 1;
    }
    EXPECT_EQ(next, end);
  }
  EXPECT_TRUE(completed_cleanly);
}

TEST_F(log_truncation_test, a_failed_job_takes_the_log_offline_and_installs_nothing) {
  testing::fault_injection_fs fs;
  auto l = filled(&fs);
  auto done = start(*l, 16);
  bool writable = false;
  l->when_writable([&] { writable = true; });
  fs.crash_after(0);
  disk_.drain();
  ASSERT_TRUE(done->has_value());
  EXPECT_EQ(**done, errc::io_error);
  EXPECT_TRUE(l->offline());
  EXPECT_TRUE(writable);
  append_info info;
  bytes batch = make_batch(1);
  EXPECT_EQ(l->append(batch, 0, info), errc::log_offline);
  read_info read;
  EXPECT_EQ(l->read(0, INT32_MAX, INT64_MAX, true, read), errc::log_offline);
  EXPECT_EQ(l->segment_count(), 3u) << "the old segments stay as they were";
  EXPECT_EQ(events_containing("truncation to offset 16 (writing leader-epoch-checkpoint) failed"),
            1u);
}

TEST_F(log_truncation_test, a_cut_through_the_batch_holding_the_log_start_restarts_it_there) {
  cfg_.segment_bytes = 1 << 20;
  auto l = open_log();
  append(*l, make_batch(3));  // 0-2
  append(*l, make_batch(3));  // 3-5
  l->set_high_watermark(6);
  int64_t start_offset = 0;
  ASSERT_FALSE(l->delete_records_before(4, start_offset));
  disk_.drain();
  ASSERT_EQ(l->log_start_offset(), 4);

  // 5 lies in 3-5, which holds the start too: cutting it leaves nothing at or above the start.
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 5));
  EXPECT_EQ(l->log_start_offset(), 4);
  EXPECT_EQ(l->log_end_offset(), 4);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_FALSE(has(seg_name(0, ".log")));
  EXPECT_TRUE(has(seg_name(4, ".log")));
  EXPECT_EQ(append(*l, make_batch(1)).base_offset, 4);
}

TEST_F(log_truncation_test, below_a_log_start_inside_the_first_segment_the_log_restarts_empty) {
  cfg_.segment_bytes = 1 << 20;
  auto l = open_log();
  append(*l, make_batch(3));
  append(*l, make_batch(3));
  l->set_high_watermark(6);
  int64_t start_offset = 0;
  ASSERT_FALSE(l->delete_records_before(5, start_offset));
  disk_.drain();

  // Segment 0 is where the log restarts: its files are emptied and kept, not deleted.
  auto done = start(*l, 0);
  EXPECT_EQ(l->log_end_offset(), 0);
  read_info read;
  EXPECT_EQ(l->read(5, INT32_MAX, INT64_MAX, true, read), errc::offset_out_of_range);
  disk_.drain();
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done);
  EXPECT_EQ(l->log_start_offset(), 0);
  EXPECT_EQ(l->log_end_offset(), 0);
  EXPECT_TRUE(has(seg_name(0, ".log")));
  EXPECT_EQ(size_of(seg_name(0, ".log")), 0);
  EXPECT_EQ(append(*l, make_batch(2)).base_offset, 0);
  EXPECT_EQ(read_all(*l), (std::vector<batch_summary>{{0, 1}}));
}

TEST_F(log_truncation_test, a_roll_in_flight_finishes_first) {
  cfg_.segment_bytes = 2 * batch_bytes;
  auto l = open_log();
  append(*l, make_batch(3));
  append(*l, make_batch(3));
  bytes third = make_batch(3);
  append_info info;
  ASSERT_EQ(l->append(third, 0, info), errc::roll_in_progress);
  ASSERT_EQ(disk_.pending(), 1u);
  auto done = start(*l, 4);
  EXPECT_EQ(disk_.pending(), 1u) << "the truncation waits for the roll";
  EXPECT_EQ(l->log_end_offset(), 6);
  disk_.drain();
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done);
  EXPECT_EQ(l->log_end_offset(), 3);
  EXPECT_EQ(l->segment_count(), 1u) << "the rolled segment lay above the cut";
  EXPECT_FALSE(has(seg_name(6, ".log")));
  EXPECT_FALSE(has(seg_name(6, ".snapshot")));
  ASSERT_FALSE(l->append(third, 0, info));
  EXPECT_EQ(info.base_offset, 3);
}

TEST_F(log_truncation_test, durability_waiters_past_the_cut_hear_log_closed) {
  cfg_.segment_bytes = 1 << 20;
  auto l = open_log();
  for (int i = 0; i < 4; ++i)
    append(*l, make_batch(3));
  std::optional<std::error_code> below;
  std::optional<std::error_code> above;
  std::optional<std::error_code> during;
  l->when_durable(3, [&](std::error_code ec) { below = ec; });
  l->when_durable(12, [&](std::error_code ec) { above = ec; });
  auto done = start(*l, 7);
  l->when_durable(6, [&](std::error_code ec) { during = ec; });
  disk_.drain();
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done);
  EXPECT_EQ(below, std::error_code{});
  EXPECT_EQ(above, errc::log_closed) << "offsets 6-11 are gone";
  EXPECT_EQ(during, std::error_code{});
  EXPECT_EQ(l->recovery_point(), 6);
}

TEST_F(log_truncation_test, the_owners_thread_makes_no_file_system_call) {
  counting_fs fs;
  auto l = filled(&fs);
  const size_t before = fs.calls;
  auto done = start(*l, 16);
  EXPECT_EQ(fs.calls, before) << "step 1 is bookkeeping only";
  ASSERT_TRUE(disk_.run_work_only());
  const size_t after_job = fs.calls;
  EXPECT_GT(after_job, before);
  ASSERT_TRUE(disk_.complete_one());
  ASSERT_TRUE(done->has_value());
  ASSERT_FALSE(**done);
  EXPECT_EQ(fs.calls, after_job) << "step 3 only installs what the job made";
  disk_.drain();
}

}  // namespace
}  // namespace sluice::storage
