#pragma once
// One client connection.
//
//   read_loop:  frame -> dispatch -> slot appended to `pipeline_` (request order)
//                 pauses while `pipeline_` holds queued.max.requests.per.connection slots, and
//                 before a request's body while the broker-wide request_budget has no room
//   write_loop: sends the ready prefix of `pipeline_`, strictly in order:
//                 byte runs gathered with sendmsg(2), file slices with sendfile(2)
//
// Handlers may finish out of order (a parked fetch, then a produce); the pipeline keeps responses
// in request order, which every client relies on (Java checks correlation ids). The socket is in
// non-blocking mode and the write loop calls sendmsg/sendfile itself, waiting for writability on
// EAGAIN: record bytes go from the page cache to the socket without passing through user space.
//
// Threading: the broker's io thread only. A session keeps itself alive through the shared_ptrs
// its loops and its pending handlers hold.

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server/api_registry.h"

namespace sluice::server {

struct broker_config;
struct handler_services;

class session : public response_sink, public std::enable_shared_from_this<session> {
 public:
  // `listener_name`: the listener the connection came in on; owned by `config`. `services` go to
  // the handlers of this connection's requests; `on_closed` gets `id` once the connection is
  // closed. `config`, `budget` and `services` must outlive the session.
  session(boost::asio::ip::tcp::socket socket, const broker_config& config, request_budget& budget,
          const handler_services& services, std::function<void(uint64_t)> on_closed, uint64_t id,
          std::string_view listener_name);
  ~session();

  void start();
  // Stop reading new requests, answer those already read, then close.
  void shutdown();
  // Close now; pending responses are dropped.
  void close();

  void response_ready() override;
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }

 private:
  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> write_loop();
  // `more`: further bytes follow at once (a file slice), so the kernel may hold a partial segment
  // back instead of pushing it out on its own (MSG_MORE), despite TCP_NODELAY.
  boost::asio::awaitable<bool> write_iovecs(std::vector<iovec>& iov, bool more);
  boost::asio::awaitable<bool> send_slice(const wire::file_slice& slice);
  boost::asio::awaitable<bool> wait_writable();
  boost::asio::awaitable<void> idle_loop(std::chrono::milliseconds limit);
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }

  boost::asio::ip::tcp::socket socket_;
  const broker_config& config_;
  request_budget& budget_;
  const handler_services& services_;
  std::function<void(uint64_t)> on_closed_;
  uint64_t id_;
  std::string_view listener_name_;
  std::string peer_;
  std::deque<std::shared_ptr<response_slot>> pipeline_;
  boost::asio::steady_timer writer_wake_;
  boost::asio::steady_timer reader_wake_;
  // connections.max.idle.ms: bytes moved in either direction count as activity.
  boost::asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_;
  bool reading_done_ = false;
  bool stop_reading_ = false;  // the broker is shutting down
  bool closed_ = false;
};

}  // namespace sluice::server
