// Reads that must not wait for the disk (read_mode::cached_only, what the fetch path uses) and the
// memory the indexes take: inactive segments' indexes are mapped, not on the heap, and a read of
// data that is not in the page cache says what to warm instead of blocking.

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "storage/log.h"
#include "storage/tests/fault_injection_fs.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::append_through_roll;
using testing::batch_summary;
using testing::batches_in;
using testing::fault_injection_fs;
using testing::make_batch;
using testing::slurp;

class cold_read_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path part() { return dir_ / "t-0"; }

  std::unique_ptr<log> open_log(load_state state = testing::clean_load()) {
    std::error_code ec;
    auto l = log::open(part(), {"t", 0}, cfg_, {fs_, disk_}, state, ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }

  // 40 batches of 2 records over segments of 4 batches, index entries every batch.
  std::unique_ptr<log> filled_log() {
    auto l = open_log();
    for (int i = 0; i < 40; ++i) {
      append_info info;
      std::vector<uint8_t> b = make_batch(2, 1000 + i, 100);
      EXPECT_FALSE(append_through_roll(*l, disk_, b, 0, info, 10'000));
    }
    disk_.drain();
    return l;
  }

  // Reads as the fetch path does: cached only, warming what it is told to, at most `rounds`
  // times. Returns the batches read and how many warm-ups it took.
  std::pair<std::vector<batch_summary>, int> fetch(log& l, int64_t offset, int64_t max_bytes,
                                                   int rounds = 10) {
    for (int warmed = 0; warmed <= rounds; ++warmed) {
      read_info info;
      std::error_code ec =
          l.read(offset, max_bytes, l.log_end_offset(), true, info, read_mode::cached_only);
      if (ec == errc::would_block) {
        EXPECT_TRUE(info.cold.has_value());
        EXPECT_TRUE(info.slices.empty());
        bool done = false;
        l.warm_async(*info.cold, [&](std::error_code wec) {
          EXPECT_FALSE(wec);
          done = true;
        });
        EXPECT_FALSE(done);  // warming is a disk job, not a blocking call
        disk_.drain();
        EXPECT_TRUE(done);
        continue;
      }
      EXPECT_FALSE(ec) << ec.message();
      return {batches_in(slurp(info)), warmed};
    }
    ADD_FAILURE() << "still cold after " << rounds << " warm-ups";
    return {};
  }

  log_config cfg_{.segment_bytes = 4 * static_cast<int64_t>(make_batch(2, 0, 100).size()),
                  .index_interval_bytes = 0};
  fault_injection_fs fs_;
};

TEST_F(cold_read_test, inactive_segments_keep_their_indexes_off_the_heap) {
  auto l = filled_log();
  ASSERT_EQ(l->segment_count(), 10u);
  // Only the active segment's entries are on the heap: every rolled segment was mapped once its
  // index files were complete.
  const size_t after_rolls = l->index_heap_bytes();
  EXPECT_GT(after_rolls, 0u);
  EXPECT_LT(after_rolls, 4u * (8 + 16) + 64);  // four batches' entries, and vector slack
  // Reads across mapped segments find what the model says.
  for (int64_t offset : {0, 7, 15, 33, 79}) {
    read_info info;
    ASSERT_FALSE(l->read(offset, 1, l->log_end_offset(), true, info));
    auto got = batches_in(slurp(info));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].base_offset, offset / 2 * 2);
  }
  l->close();
  l.reset();
  // After a restart too: trusted inactive segments are mapped, not read into memory.
  auto again = open_log();
  EXPECT_LE(again->index_heap_bytes(), after_rolls);
  for (int64_t offset : {1, 20, 78}) {
    read_info info;
    ASSERT_FALSE(again->read(offset, 1, again->log_end_offset(), true, info));
    EXPECT_EQ(batches_in(slurp(info))[0].base_offset, offset / 2 * 2);
  }
}

TEST_F(cold_read_test, a_read_of_evicted_data_warms_it_off_thread_instead_of_blocking) {
  auto l = filled_log();
  fs_.cold_logs = true;
  // The tail of the active segment counts as hot: a tailing consumer's fetch checks nothing.
  auto [tail, tail_warmups] = fetch(*l, 78, 1 << 20);
  EXPECT_EQ(tail_warmups, 0);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].base_offset, 78);
  // An old segment is not: the read says what to warm, the warm-up runs as a disk job, and the
  // read then finds everything in memory.
  auto [old, warmups] = fetch(*l, 10, 4 * 200);
  EXPECT_GE(warmups, 1);
  EXPECT_GE(fs_.loads_into_cache(), 1u);
  ASSERT_FALSE(old.empty());
  EXPECT_EQ(old[0].base_offset, 10);
  for (size_t i = 1; i < old.size(); ++i)
    EXPECT_EQ(old[i].base_offset, old[i - 1].last_offset + 1);
  // Once warm it stays warm.
  auto [again, again_warmups] = fetch(*l, 10, 4 * 200);
  EXPECT_EQ(again_warmups, 0);
  EXPECT_EQ(again, old);
  // A read that may block never asks.
  read_info info;
  EXPECT_FALSE(l->read(20, 1 << 20, l->log_end_offset(), true, info));
  EXPECT_FALSE(info.cold.has_value());
}

// The residency check itself, on the real file system: what the fetch path trusts to decide that
// a sendfile will not wait for the disk.
TEST_F(cold_read_test, the_page_cache_check_counts_only_pages_that_read_without_waiting) {
  file_system& real = default_file_system();
  struct statfs sfs {};
  ASSERT_EQ(::statfs(dir_.c_str(), &sfs), 0);
  if (sfs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs keeps every page in memory";
  const std::filesystem::path path = dir_ / "data";
  constexpr int64_t size = 32 << 20;
  {
    std::vector<uint8_t> bytes(size, 0x5a);
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), size);
    ASSERT_EQ(::fdatasync(fd), 0);
    ::close(fd);
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto evict = [&] { ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0); };
  auto reads_without_waiting = [&](int64_t position, int64_t length) {
    std::vector<char> buf(static_cast<size_t>(length));
    iovec iov{buf.data(), buf.size()};
    return ::preadv2(fd, &iov, 1, position, RWF_NOWAIT) == length;
  };

  evict();
  EXPECT_FALSE(real.cached(fd, 0, 1 << 20));
  ASSERT_FALSE(real.load_into_cache(fd, 0, 1 << 20, path));
  EXPECT_TRUE(real.cached(fd, 0, 1 << 20));
  EXPECT_TRUE(real.cached(fd, 4096 + 17, 100'000));
  // Far past anything readahead brought in with the first MiB.
  EXPECT_FALSE(real.cached(fd, size - (1 << 20), 1 << 20));

  // Pages that readahead has inserted but not yet filled: present, yet a sendfile from them would
  // wait. The check must never say yes while some of its range cannot be read at once.
  for (int round = 0; round < 8; ++round) {
    evict();
    ASSERT_EQ(::posix_fadvise(fd, 0, size, POSIX_FADV_WILLNEED), 0);  // starts reads, no wait
    for (int64_t position = 0; position < size; position += 1 << 20) {
      if (real.cached(fd, position, 1 << 20)) {
        EXPECT_TRUE(reads_without_waiting(position, 1 << 20)) << "at " << position;
      }
    }
  }
  ::close(fd);
}

}  // namespace
}  // namespace sluice::storage
