#pragma once
// What the controller's operations share across its source files: the queue that runs them one
// at a time, and the answers every operation gives the same way. Not for use outside
// server/cluster/controller*.cc.
#include <deque>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/cluster/controller.h"

namespace sluice::server::cluster {

// Operations waiting for their turn, oldest first. A waiter sleeps on a timer that never expires
// and is woken by cancelling it; the turn passes straight to it (`busy` stays set), so an
// operation arriving meanwhile queues behind it instead of slipping in.
struct controller::queue {
  class turn {
   public:
    explicit turn(std::shared_ptr<queue> q) : q_(std::move(q)) {}
    turn(turn&& other) noexcept = default;
    turn& operator=(turn&&) = delete;
    ~turn() {
      if (q_) q_->release();
    }

   private:
    std::shared_ptr<queue> q_;
  };

  // Shared with the turns: an operation still in flight when the controller goes releases its
  // turn into a queue that outlives it.
  static boost::asio::awaitable<turn> take(std::shared_ptr<queue> q) {
    if (q->busy) {
      auto wake = std::make_shared<boost::asio::steady_timer>(
          co_await boost::asio::this_coro::executor, boost::asio::steady_timer::time_point::max());
      q->waiting.push_back(wake);
      co_await wake->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    q->busy = true;
    co_return turn(std::move(q));
  }

  void release() {
    if (waiting.empty()) {
      busy = false;
      return;
    }
    std::shared_ptr<boost::asio::steady_timer> next = std::move(waiting.front());
    waiting.pop_front();
    next->cancel();
  }

  // Wakes every waiter; each finds the controller gone and returns.
  void close() {
    for (auto& w : waiting)
      w->cancel();
    waiting.clear();
  }

  bool busy = false;
  std::deque<std::shared_ptr<boost::asio::steady_timer>> waiting;
};

namespace internal {

constexpr char not_controller_message[] = "This is not the correct controller for this cluster.";

// An operation whose controller went while it waited (the broker is stopping): whatever it
// did or did not write, it answers NOT_CONTROLLER, never the success its result starts as.
template <class Result>
Result stopped(Result result) {
  result.error = wire::error_code::not_controller;
  if constexpr (requires { result.message; }) result.message = not_controller_message;
  return result;
}

inline std::string format_ids(const std::vector<int32_t>& ids) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < ids.size(); ++i)
    os << (i ? "," : "") << ids[i];
  os << ']';
  return os.str();
}

}  // namespace internal

template <class Result>
boost::asio::awaitable<std::shared_ptr<void>> controller::take_turn(Result& result) {
  std::weak_ptr<bool> alive = alive_;
  queue::turn taken = co_await queue::take(queue_);
  auto my_turn = std::make_shared<queue::turn>(std::move(taken));
  failure refused;
  if (!alive.expired()) refused = co_await ready();
  if (alive.expired()) {
    result = internal::stopped(std::move(result));
    co_return nullptr;
  }
  if (refused) {
    result.error = refused.code;
    result.message = std::move(refused.message);
    co_return nullptr;
  }
  co_return my_turn;
}

}  // namespace sluice::server::cluster
