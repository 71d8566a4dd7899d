#pragma once
// Deadlines through an injectable service, so that code with timeouts can be unit-tested without
// waiting on the wall clock: production schedules on the io_context's steady_timers, tests on a
// clock they advance by hand (server/tests/manual_clock.h). The same service tells the wall
// clock, so that timestamps a test reads move with the deadlines it fires.
//
// Threading: io thread only. Callbacks run on the io thread, never from within schedule().

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include <boost/asio/any_io_executor.hpp>

#include "server/cancel_handle.h"

namespace sluice::server {

// One scheduled callback: cancelled with its handle (cancel_handle.h).
using timer_handle = cancel_handle;

class timer_service {
 public:
  virtual ~timer_service() = default;
  // Runs `fn` once `delay` has passed, unless the handle goes first.
  virtual timer_handle schedule(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  // Milliseconds since the Unix epoch, for timestamps that are persisted or compared with
  // persisted ones.
  virtual int64_t wall_clock_ms() = 0;
  // A monotonic reading, for deadlines that must not move with the wall clock (a long poll's).
  virtual std::chrono::milliseconds monotonic_now() = 0;
};

// Steady timers on the executor and the system clock. A cancelled timer completes at once, so an
// io_context left with nothing but cancelled timers runs out of work.
class asio_timer_service final : public timer_service {
 public:
  explicit asio_timer_service(boost::asio::any_io_executor executor);

  timer_handle schedule(std::chrono::milliseconds delay, std::function<void()> fn) override;
  int64_t wall_clock_ms() override;
  std::chrono::milliseconds monotonic_now() override;

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace sluice::server
