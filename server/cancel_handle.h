#pragma once
// Ownership of something that calls back later: a timer, a watch, a lease keep-alive. Once the
// handle is cancelled, destroyed or assigned another, the callback never runs again and its
// captures are released, so an owner may capture `this` in a callback whose handle it holds (and
// may cancel from within the callback itself).
//
// Threading: the thread that owns the callbacks (the io thread).

#include <memory>
#include <utility>

namespace sluice::server {

class cancel_handle {
 public:
  // What an implementation keeps for one registered callback.
  class state {
   public:
    virtual ~state() = default;
    virtual void cancel() = 0;
  };

  cancel_handle() = default;
  explicit cancel_handle(std::shared_ptr<state> s) : state_(std::move(s)) {}
  cancel_handle(cancel_handle&& other) noexcept = default;
  cancel_handle& operator=(cancel_handle&& other) noexcept {
    if (this != &other) {
      cancel();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  cancel_handle(const cancel_handle&) = delete;
  cancel_handle& operator=(const cancel_handle&) = delete;
  ~cancel_handle() { cancel(); }

  explicit operator bool() const { return state_ != nullptr; }
  void cancel() {
    if (state_) {
      state_->cancel();
      state_.reset();
    }
  }

 private:
  std::shared_ptr<state> state_;
};

}  // namespace sluice::server
