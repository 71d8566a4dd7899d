// The broker's disk executor: queue order, completions on the io thread, and the CPU share of
// background jobs.

#include "server/disk_executor.h"

#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace sluice::server {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Spins until the calling thread has used `cpu` of CPU time; returns what it used.
std::chrono::nanoseconds burn(std::chrono::nanoseconds cpu) {
  const auto start = thread_cpu();
  volatile uint64_t sink = 0;
  while (thread_cpu() - start < cpu)
    for (int i = 0; i < 1000; ++i)
      sink = sink + static_cast<uint64_t>(i);
  return thread_cpu() - start;
}

// Runs completions until `finished` says so (a job that has not started yet holds no work on
// the io_context, so run() alone could return at once).
template <typename Finished>
void run_until(boost::asio::io_context& io, Finished finished) {
  auto guard = boost::asio::make_work_guard(io);
  while (!finished())
    io.run_one_for(100ms);
}

TEST(disk_executor, jobs_of_a_queue_run_in_order_and_complete_on_the_io_thread) {
  boost::asio::io_context io;
  std::vector<int> ran;
  std::vector<int> completed;
  const auto io_thread = std::this_thread::get_id();
  {
    thread_pool_disk_executor disk(io, 4);
    for (int i = 0; i < 50; ++i) {
      disk.submit(
          "q", [&ran, i] { ran.push_back(i); },
          [&completed, i, io_thread] {
            EXPECT_EQ(std::this_thread::get_id(), io_thread);
            completed.push_back(i);
          });
    }
    run_until(io, [&] { return completed.size() == 50; });
    EXPECT_EQ(disk.in_flight(), 0u);
  }
  ASSERT_EQ(ran.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(ran[static_cast<size_t>(i)], i);
    EXPECT_EQ(completed[static_cast<size_t>(i)], i);
  }
}

TEST(disk_executor, a_background_job_is_held_to_its_share_of_a_core) {
  boost::asio::io_context io;
  std::chrono::nanoseconds used{};
  clock_type::time_point first_end;
  clock_type::time_point second_start;
  clock_type::time_point other_start;
  {
    thread_pool_disk_executor disk(io, 2);
    disk.submit_background(
        "bg",
        [&] {
          used = burn(20ms);
          first_end = clock_type::now();
        },
        [] {});
    disk.submit_background(
        "bg", [&] { second_start = clock_type::now(); }, [] {});
    // Another queue is not held back.
    int done = 0;
    disk.submit(
        "other", [&] { other_start = clock_type::now(); }, [&] { ++done; });
    disk.submit(
        "bg", [] {}, [&] { ++done; });
    run_until(io, [&] { return done == 2; });
  }
  const int percent = thread_pool_disk_executor::background_cpu_percent;
  const auto pause = used * (100 - percent) / percent;
  EXPECT_GE(second_start - first_end, pause);
  EXPECT_LT(other_start, second_start);
}

}  // namespace
}  // namespace sluice::server
