#pragma once
// Waits for callbacks. A handler that starts several callback-style operations (an append per
// partition, then a durability wait per partition) takes a ticket per operation with add(), each
// callback calls its ticket's done(), and the handler's coroutine waits until all have run. When
// they all ran before the wait (the usual case: appends complete at once), the wait does not
// suspend.
//
// The state is shared with the tickets, so a callback that runs after the waiting coroutine was
// abandoned (broker shutdown) touches nothing freed.
//
// Threading: io thread only.

#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::server {

class completion_latch {
  struct state {
    explicit state(boost::asio::any_io_executor ex) : timer(std::move(ex)) {}
    int pending = 0;
    boost::asio::steady_timer timer;
  };

 public:
  explicit completion_latch(boost::asio::any_io_executor executor)
      : state_(std::make_shared<state>(std::move(executor))) {}

  // A callback still to come: its done() must be called exactly once.
  class ticket {
   public:
    void done() const {
      if (--state_->pending == 0) state_->timer.cancel();
    }

   private:
    friend class completion_latch;
    explicit ticket(std::shared_ptr<state> s) : state_(std::move(s)) {}
    std::shared_ptr<state> state_;
  };

  ticket add() {
    ++state_->pending;
    return ticket(state_);
  }

  boost::asio::awaitable<void> wait() {
    while (state_->pending > 0) {
      state_->timer.expires_at(boost::asio::steady_timer::time_point::max());
      boost::system::error_code ignored;
      co_await state_->timer.async_wait(
          boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
    }
  }

 private:
  std::shared_ptr<state> state_;
};

}  // namespace sluice::server
