#include "server/producer_ids.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "storage/tests/test_util.h"

namespace sluice::server {
namespace {

class producer_ids_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-pids-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string file() const {
    std::ifstream in(dir_ / producer_id_allocator::file_name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // The next id, running the disk jobs a new block needs.
  int64_t next(producer_id_allocator& a) {
    int64_t id = -1;
    std::error_code failed;
    a.next([&](std::error_code ec, int64_t next) {
      failed = ec;
      id = next;
    });
    disk_.drain();
    EXPECT_FALSE(failed);
    return id;
  }

  std::filesystem::path dir_;
  storage::testing::manual_disk_executor disk_;
};

// The block is on disk before its first id is handed out, so a restart continues after it.
TEST_F(producer_ids_test, blocks_are_reserved_before_use_and_never_reused) {
  producer_id_allocator a(dir_, disk_);
  std::string problem;
  ASSERT_FALSE(a.load(problem));
  // No id before its block is on disk.
  int64_t first = -1;
  a.next([&](std::error_code, int64_t id) { first = id; });
  EXPECT_EQ(first, -1);
  EXPECT_FALSE(std::filesystem::exists(dir_ / producer_id_allocator::file_name));
  disk_.drain();
  EXPECT_EQ(first, 0);
  EXPECT_EQ(file(), "1000\n");
  EXPECT_EQ(next(a), 1);

  producer_id_allocator after_restart(dir_, disk_);
  ASSERT_FALSE(after_restart.load(problem));
  EXPECT_EQ(next(after_restart), 1000);
  EXPECT_EQ(file(), "2000\n");
}

// The next block is reserved once the current one is half used, before anyone waits for it.
TEST_F(producer_ids_test, the_next_block_is_reserved_ahead) {
  producer_id_allocator a(dir_, disk_);
  std::string problem;
  ASSERT_FALSE(a.load(problem));
  for (int64_t i = 0; i < 501; ++i)
    EXPECT_EQ(next(a), i);
  EXPECT_EQ(file(), "2000\n");
  int64_t id = -1;
  for (int64_t i = 501; i < 1500; ++i) {
    a.next([&](std::error_code, int64_t n) { id = n; });
    EXPECT_EQ(id, i);  // answered at once: no disk job needed
    disk_.drain();
  }
}

TEST_F(producer_ids_test, a_failed_reservation_fails_the_waiting_callers) {
  // The directory is gone: the write fails, and nobody gets an id from an unreserved block.
  producer_id_allocator a(dir_ / "missing", disk_);
  std::string problem;
  ASSERT_FALSE(a.load(problem));
  std::error_code failed;
  int64_t id = 0;
  a.next([&](std::error_code ec, int64_t n) {
    failed = ec;
    id = n;
  });
  disk_.drain();
  EXPECT_TRUE(failed);
  EXPECT_EQ(id, -1);
}

TEST_F(producer_ids_test, ids_known_to_partitions_are_skipped) {
  producer_id_allocator a(dir_, disk_);
  std::string problem;
  ASSERT_FALSE(a.load(problem));
  a.skip_through(4999);
  EXPECT_EQ(next(a), 5000);
  EXPECT_EQ(file(), "6000\n");
  a.skip_through(10);  // below: no effect
  EXPECT_EQ(next(a), 5001);
}

TEST_F(producer_ids_test, a_malformed_file_is_an_error_not_a_guess) {
  std::ofstream(dir_ / producer_id_allocator::file_name) << "12x\n";
  producer_id_allocator a(dir_, disk_);
  std::string problem;
  EXPECT_TRUE(a.load(problem));
  EXPECT_NE(problem.find("does not hold a producer id"), std::string::npos);
}

}  // namespace
}  // namespace sluice::server
