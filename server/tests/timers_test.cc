// The timer services: the manual clock that unit tests advance, and the production one on the
// io_context (only what needs no real time to pass: cancellation).

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "server/tests/manual_clock.h"
#include "server/timers.h"

namespace sluice::server {
namespace {

using namespace std::chrono_literals;

TEST(manual_clock_test, fires_due_timers_in_order_at_their_due_time) {
  testing::manual_clock clock(1'000);
  std::vector<std::string> fired;
  timer_handle late = clock.schedule(
      30ms, [&] { fired.push_back("late@" + std::to_string(clock.wall_clock_ms())); });
  timer_handle first =
      clock.schedule(10ms, [&] { fired.push_back("a@" + std::to_string(clock.wall_clock_ms())); });
  timer_handle tie =
      clock.schedule(10ms, [&] { fired.push_back("b@" + std::to_string(clock.wall_clock_ms())); });
  clock.advance(9ms);
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(clock.pending(), 3u);
  int settled = 0;
  clock.advance(21ms, [&] { ++settled; });
  EXPECT_EQ(fired, (std::vector<std::string>{"a@1010", "b@1010", "late@1030"}));
  EXPECT_EQ(settled, 3);
  EXPECT_EQ(clock.elapsed(), 30ms);
  EXPECT_EQ(clock.pending(), 0u);
}

TEST(manual_clock_test, a_callback_rescheduling_counts_from_its_due_time) {
  testing::manual_clock clock(0);
  std::vector<int64_t> at;
  timer_handle h;
  std::function<void()> tick = [&] {
    at.push_back(clock.wall_clock_ms());
    h = clock.schedule(20ms, tick);  // replaces the handle of the timer now running
  };
  h = clock.schedule(20ms, tick);
  clock.advance(65ms);
  EXPECT_EQ(at, (std::vector<int64_t>{20, 40, 60}));
  EXPECT_EQ(clock.pending(), 1u);
}

TEST(manual_clock_test, cancelled_replaced_and_destroyed_timers_do_not_fire) {
  testing::manual_clock clock;
  int fired = 0;
  timer_handle cancelled = clock.schedule(1ms, [&] { ++fired; });
  cancelled.cancel();
  timer_handle replaced = clock.schedule(1ms, [&] { fired += 10; });
  replaced = clock.schedule(2ms, [&] { fired += 100; });
  {
    timer_handle dropped = clock.schedule(1ms, [&] { fired += 1000; });
  }
  EXPECT_EQ(clock.pending(), 1u);
  clock.advance(5ms);
  EXPECT_EQ(fired, 100);
}

TEST(asio_timer_service_test, a_cancelled_timer_never_runs_and_leaves_no_work) {
  boost::asio::io_context io;
  asio_timer_service timers(io.get_executor());
  bool fired = false;
  timer_handle h = timers.schedule(1h, [&] { fired = true; });
  {
    timer_handle dropped = timers.schedule(1h, [&] { fired = true; });
  }
  h.cancel();
  io.poll();
  EXPECT_FALSE(fired);
  EXPECT_TRUE(io.stopped());
  EXPECT_GT(timers.wall_clock_ms(), 1'600'000'000'000);
}

}  // namespace
}  // namespace sluice::server
