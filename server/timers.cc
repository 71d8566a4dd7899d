#include "server/timers.h"

#include <boost/asio/steady_timer.hpp>

namespace sluice::server {

namespace {

class asio_timer final : public timer_handle::state {
 public:
  asio_timer(boost::asio::any_io_executor executor, std::function<void()> fn)
      : timer_(std::move(executor)), fn_(std::move(fn)) {}

  static void start(const std::shared_ptr<asio_timer>& self, std::chrono::milliseconds delay) {
    self->timer_.expires_after(delay);
    // The wait owns the state: the handle may be gone by the time the timer completes.
    self->timer_.async_wait([self](boost::system::error_code ec) {
      if (ec || !self->fn_) return;
      // Moved out first: the callback may cancel or replace the handle that owns this timer.
      std::function<void()> fn = std::move(self->fn_);
      self->fn_ = nullptr;
      fn();
    });
  }

  void cancel() override {
    fn_ = nullptr;
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  std::function<void()> fn_;
};

}  // namespace

asio_timer_service::asio_timer_service(boost::asio::any_io_executor executor)
    : executor_(std::move(executor)) {}

timer_handle asio_timer_service::schedule(std::chrono::milliseconds delay,
                                          std::function<void()> fn) {
  auto timer = std::make_shared<asio_timer>(executor_, std::move(fn));
  asio_timer::start(timer, delay);
  return timer_handle(std::move(timer));
}

int64_t asio_timer_service::wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::milliseconds asio_timer_service::monotonic_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

}  // namespace sluice::server
