#pragma once
// A timer_service for unit tests: time stands still until the test advances it. Advancing fires
// every timer that falls due, in due order (timers due at the same instant in the order they were
// scheduled), each with the clock reading its due time, so a callback that schedules another
// timer schedules it from the right instant. The wall clock moves with it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "server/timers.h"

namespace sluice::server::testing {

class manual_clock final : public timer_service {
 public:
  explicit manual_clock(int64_t wall_start_ms = 1'700'000'000'000)
      : wall_start_ms_(wall_start_ms) {}

  timer_handle schedule(std::chrono::milliseconds delay, std::function<void()> fn) override {
    auto e = std::make_shared<entry>();
    e->fn = std::move(fn);
    queue_.emplace(std::pair(elapsed_ + std::max(delay, std::chrono::milliseconds(0)), next_seq_++),
                   e);
    return timer_handle(std::move(e));
  }

  int64_t wall_clock_ms() override { return wall_start_ms_ + elapsed_.count(); }
  std::chrono::milliseconds monotonic_now() override { return elapsed_; }

  // Time since the clock was made.
  std::chrono::milliseconds elapsed() const { return elapsed_; }

  // Moves time forward by `d`. `after_each` runs after each timer fired: a test drains its
  // io_context there, so that what a callback posted runs before the next timer, as it would on
  // the io thread.
  void advance(std::chrono::milliseconds d, const std::function<void()>& after_each = {}) {
    const std::chrono::milliseconds until = elapsed_ + d;
    while (!queue_.empty() && queue_.begin()->first.first <= until) {
      auto it = queue_.begin();
      std::shared_ptr<entry> e = std::move(it->second);
      elapsed_ = it->first.first;
      queue_.erase(it);
      if (!e->fn) continue;  // cancelled
      // Moved out first: the callback may cancel or replace the handle of its own timer.
      std::function<void()> fn = std::move(e->fn);
      e->fn = nullptr;
      fn();
      if (after_each) after_each();
    }
    elapsed_ = until;
  }

  // Timers scheduled that have neither fired nor been cancelled.
  size_t pending() const {
    size_t n = 0;
    for (const auto& [due, e] : queue_)
      n += e->fn ? 1 : 0;
    return n;
  }

 private:
  struct entry final : timer_handle::state {
    std::function<void()> fn;
    void cancel() override { fn = nullptr; }
  };

  int64_t wall_start_ms_;
  std::chrono::milliseconds elapsed_{0};
  uint64_t next_seq_ = 0;
  std::map<std::pair<std::chrono::milliseconds, uint64_t>, std::shared_ptr<entry>> queue_;
};

}  // namespace sluice::server::testing
