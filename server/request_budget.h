#pragma once
// The broker-wide bound on what clients can make it hold: queued.max.request.bytes (bytes of
// requests read and not yet done with, plus responses built and not yet sent) and
// queued.max.requests (requests whose bytes are still held). A connection reads a request's size
// prefix, then waits here until the request fits before it reads the body; meanwhile TCP stops
// the client. Kafka's MemoryPool does the same for its network threads.
//
// What counts: a request's bytes from the moment they are read until the handler no longer needs
// them. Most requests are decoded into structs of their own and their bytes freed at once; a
// Produce keeps its bytes (the log writes the batches from them) until it is answered. A parked
// long poll therefore holds nothing here. A response's bytes (not its file slices: those are
// sendfile'd from the page cache) count from the moment it is built until it is sent, so a client
// that stops reading cannot make the broker pile up answers either.
//
// A request larger than the whole budget is still read when nothing else is held, or it could
// never be served (socket.request.max.bytes bounds it).
//
// Threading: io thread only.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace sluice::server {

class request_budget {
  struct state {
    state(int64_t b, int32_t r) : max_bytes(b), max_requests(r) {}
    int64_t max_bytes;     // <= 0: no limit on bytes
    int32_t max_requests;  // requests whose bytes are held
    int64_t bytes = 0;
    int32_t requests = 0;
    int64_t peak_bytes = 0;
    std::vector<std::function<void()>> waiting;
  };

 public:
  request_budget(int64_t max_bytes, int32_t max_requests)
      : state_(std::make_shared<state>(max_bytes, max_requests)) {}

  // Held bytes (and a held request); given back when destroyed or released.
  class ticket {
   public:
    ticket() = default;
    ticket(ticket&& o) noexcept
        : state_(std::move(o.state_)), bytes_(o.bytes_), request_(o.request_) {
      o.state_.reset();
    }
    ticket& operator=(ticket&& o) noexcept {
      if (this != &o) {
        release();
        state_ = std::move(o.state_);
        bytes_ = o.bytes_;
        request_ = o.request_;
        o.state_.reset();
      }
      return *this;
    }
    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;
    ~ticket() { release(); }

    void release() {
      if (!state_) return;
      std::shared_ptr<state> s = std::move(state_);
      s->bytes -= bytes_;
      s->requests -= request_ ? 1 : 0;
      // Everyone waiting looks again; those that still do not fit wait again.
      std::vector<std::function<void()>> waiting = std::move(s->waiting);
      s->waiting.clear();
      for (auto& wake : waiting)
        wake();
    }
    int64_t bytes() const { return bytes_; }

   private:
    friend class request_budget;
    ticket(std::shared_ptr<state> s, int64_t bytes, bool request)
        : state_(std::move(s)), bytes_(bytes), request_(request) {}
    std::shared_ptr<state> state_;
    int64_t bytes_ = 0;
    bool request_ = false;
  };

  // Whether a request of `bytes` may be read now.
  bool admits_request(int64_t bytes) const {
    const state& s = *state_;
    if (s.bytes == 0 && s.requests == 0) return true;
    if (s.requests >= s.max_requests) return false;
    return s.max_bytes <= 0 || s.bytes + bytes <= s.max_bytes;
  }
  ticket take_request(int64_t bytes) { return take(bytes, true); }
  // Response bytes: always taken (a handler cannot be refused its answer), so they may go over
  // the limit, and then no request is read until they are sent.
  ticket take_response(int64_t bytes) { return take(bytes, false); }

  // Calls `wake` once, the next time something is given back.
  void notify_when_freed(std::function<void()> wake) { state_->waiting.push_back(std::move(wake)); }

  int64_t bytes() const { return state_->bytes; }
  int32_t requests() const { return state_->requests; }
  int64_t peak_bytes() const { return state_->peak_bytes; }

 private:
  ticket take(int64_t bytes, bool request) {
    state_->bytes += bytes;
    state_->requests += request ? 1 : 0;
    state_->peak_bytes = std::max(state_->peak_bytes, state_->bytes);
    return ticket(state_, bytes, request);
  }

  std::shared_ptr<state> state_;
};

}  // namespace sluice::server
