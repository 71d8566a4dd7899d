#include "server/producer_ids.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

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
  int64_t next(producer_id_allocator& a) {
    int64_t id = -1;
    EXPECT_FALSE(a.next(id));
    return id;
  }

  std::filesystem::path dir_;
};

// The block is on disk before its first id is handed out, so a restart continues after it.
TEST_F(producer_ids_test, blocks_are_reserved_before_use_and_never_reused) {
  producer_id_allocator a(dir_);
  std::string problem;
  ASSERT_FALSE(a.load(problem));
  EXPECT_EQ(next(a), 0);
  EXPECT_EQ(file(), "1000\n");
  EXPECT_EQ(next(a), 1);

  producer_id_allocator after_restart(dir_);
  ASSERT_FALSE(after_restart.load(problem));
  EXPECT_EQ(next(after_restart), 1000);
  EXPECT_EQ(file(), "2000\n");
}

TEST_F(producer_ids_test, ids_known_to_partitions_are_skipped) {
  producer_id_allocator a(dir_);
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
  producer_id_allocator a(dir_);
  std::string problem;
  EXPECT_TRUE(a.load(problem));
  EXPECT_NE(problem.find("does not hold a producer id"), std::string::npos);
}

}  // namespace
}  // namespace sluice::server
