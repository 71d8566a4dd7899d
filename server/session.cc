#include "server/session.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/config.h"
#include "server/logging.h"

namespace sluice::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
constexpr size_t read_buffer_size = 64 * 1024;
constexpr size_t max_iovecs = 64;  // well under IOV_MAX; more parts go out in another sendmsg

std::string describe(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown peer";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}
}  // namespace

session::session(tcp::socket socket, const broker_config& config, request_budget& budget,
                 const handler_services& services, std::function<void(uint64_t)> on_closed,
                 uint64_t id, std::string_view listener_name)
    : socket_(std::move(socket)),
      config_(config),
      budget_(budget),
      services_(services),
      on_closed_(std::move(on_closed)),
      id_(id),
      listener_name_(listener_name),
      peer_(describe(socket_)),
      writer_wake_(socket_.get_executor()),
      reader_wake_(socket_.get_executor()),
      idle_timer_(socket_.get_executor()) {}

session::~session() = default;

void session::start() {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.native_non_blocking(true, ec);
  if (ec) {
    log_warn("connection from ", peer_, ": cannot make socket non-blocking: ", ec.message());
    close();
    return;
  }
  auto self = shared_from_this();
  asio::co_spawn(
      socket_.get_executor(), [self]() { return self->read_loop(); }, asio::detached);
  asio::co_spawn(
      socket_.get_executor(), [self]() { return self->write_loop(); }, asio::detached);
  touch();
  if (const int64_t idle_ms = config_.connections_max_idle_ms; idle_ms >= 0) {
    asio::co_spawn(
        socket_.get_executor(),
        [self, idle_ms]() { return self->idle_loop(std::chrono::milliseconds(idle_ms)); },
        asio::detached);
  }
}

asio::awaitable<void> session::idle_loop(std::chrono::milliseconds limit) {
  boost::system::error_code ec;
  while (!closed_) {
    idle_timer_.expires_at(last_activity_ + limit);
    co_await idle_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (closed_) co_return;
    if (std::chrono::steady_clock::now() - last_activity_ >= limit) {
      log_info("closing connection from ", peer_, ": nothing read or written for ", limit.count(),
               " ms (connections.max.idle.ms)");
      close();
      co_return;
    }
  }
}

void session::shutdown() {
  if (closed_) return;
  stop_reading_ = true;
  boost::system::error_code ec;
  // Ends the pending read with EOF; the write loop then drains what was already read.
  socket_.shutdown(tcp::socket::shutdown_receive, ec);
  reader_wake_.cancel();
}

void session::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  socket_.close(ec);
  writer_wake_.cancel();
  reader_wake_.cancel();
  idle_timer_.cancel();
  if (on_closed_) on_closed_(id_);
}

void session::response_ready() {
  if (!pipeline_.empty() && pipeline_.front()->ready) writer_wake_.cancel();
}

asio::awaitable<void> session::read_loop() {
  auto self = shared_from_this();
  const int32_t max_frame = config_.socket_request_max_bytes;
  const size_t max_queued = static_cast<size_t>(config_.queued_max_requests_per_connection);
  // Held only while requests are arriving: released whenever the connection is idle between
  // requests, so that thousands of idle connections cost no read buffers (a reused heap block is
  // resident whether or not this connection touched it). Not value-initialised.
  std::unique_ptr<uint8_t[]> buffer;
  size_t begin = 0;
  size_t end = 0;
  // Whether the last read filled the space it was given, leaving bytes in the socket.
  bool more_may_be_queued = false;
  boost::system::error_code ec;
  while (!closed_) {
    while (end - begin < 4) {
      if (begin > 0) {
        std::memmove(buffer.get(), buffer.get() + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      if (!more_may_be_queued) {
        if (end == 0) buffer.reset();
        // Wait, then read: the buffer is only needed once there is something to read. (This
        // saves no system call: Asio re-arms the descriptor with epoll_ctl for a wait, where
        // async_read_some would have tried a recv that fails with EAGAIN.)
        co_await socket_.async_wait(tcp::socket::wait_read,
                                    asio::redirect_error(asio::use_awaitable, ec));
      }
      ssize_t n = 0;
      size_t space = 0;
      if (!ec && !closed_) {
        if (!buffer) buffer = std::make_unique_for_overwrite<uint8_t[]>(read_buffer_size);
        space = read_buffer_size - end;
        n = ::recv(socket_.native_handle(), buffer.get() + end, space, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          more_may_be_queued = false;
          continue;
        }
        if (n <= 0) {
          ec = n == 0 ? boost::system::error_code(asio::error::eof)
                      : boost::system::error_code(errno, boost::system::system_category());
        }
      }
      if (ec || closed_) {
        if (end - begin > 0 && !closed_) {
          log_info("connection from ", peer_, " closed in the middle of a request frame");
        }
        reading_done_ = true;
        writer_wake_.cancel();
        // A half-close (EOF) still gets the answers to what it sent; a reset connection cannot
        // take them, so it goes at once instead of waiting for parked requests to finish.
        if (ec && ec != asio::error::eof) close();
        co_return;
      }
      touch();
      more_may_be_queued = static_cast<size_t>(n) == space;
      end += static_cast<size_t>(n);
    }
    const uint8_t* p = buffer.get() + begin;
    int32_t size = static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
                                        (uint32_t{p[2]} << 8) | uint32_t{p[3]});
    if (size < 0 || size > max_frame) {
      log_warn("closing connection from ", peer_, ": request size ", size, " outside [0, ",
               max_frame, "] (socket.request.max.bytes)");
      close();
      co_return;
    }
    begin += 4;
    // queued.max.request.bytes and queued.max.requests: the body is read once it fits. Until then
    // the client is held back by TCP.
    if (!budget_.admits_request(size)) {
      boost::system::error_code woken;
      while (!budget_.admits_request(size) && !closed_ && !stop_reading_) {
        budget_.notify_when_freed([weak = weak_from_this()] {
          if (auto self = weak.lock()) self->reader_wake_.cancel();
        });
        reader_wake_.expires_at(asio::steady_timer::time_point::max());
        co_await reader_wake_.async_wait(asio::redirect_error(asio::use_awaitable, woken));
      }
      if (closed_ || stop_reading_) {
        reading_done_ = true;
        writer_wake_.cancel();
        co_return;
      }
    }
    inbound_request request;
    request.held = budget_.take_request(size);
    request.size = static_cast<size_t>(size);
    request.data = std::make_unique_for_overwrite<uint8_t[]>(request.size);
    size_t have = std::min(end - begin, request.size);
    std::memcpy(request.data.get(), buffer.get() + begin, have);
    begin += have;
    if (have < request.size) {
      // A read at a time, so that a large request arriving slowly counts as activity.
      for (size_t got = have; got < request.size && !ec && !closed_;) {
        got += co_await socket_.async_read_some(
            asio::buffer(request.data.get() + got, request.size - got),
            asio::redirect_error(asio::use_awaitable, ec));
        touch();
      }
      if (ec || closed_) {
        if (!closed_)
          log_info("connection from ", peer_, " closed in the middle of a request frame");
        reading_done_ = true;
        writer_wake_.cancel();
        if (ec && ec != asio::error::eof) close();
        co_return;
      }
    }

    auto slot = std::make_shared<response_slot>();
    pipeline_.push_back(slot);
    std::string reason;
    request_context ctx{socket_.get_executor()};
    ctx.peer = peer_;
    ctx.listener_name = listener_name_;
    if (!dispatch_request(services_, std::move(ctx), std::move(request), slot, self, reason)) {
      log_warn("closing connection from ", peer_, ": ", reason);
      close();
      co_return;
    }
    // Back-pressure: stop reading while the pipeline is full; the write loop wakes us.
    // Its own error code: a wake-up is operation_aborted, which in `ec` would read as a failed
    // read and end the connection.
    boost::system::error_code woken;
    while (pipeline_.size() >= max_queued && !closed_) {
      reader_wake_.expires_at(asio::steady_timer::time_point::max());
      co_await reader_wake_.async_wait(asio::redirect_error(asio::use_awaitable, woken));
    }
  }
}

asio::awaitable<void> session::write_loop() {
  auto self = shared_from_this();
  std::vector<iovec> iov;
  boost::system::error_code ec;
  while (!closed_) {
    if (pipeline_.empty() || !pipeline_.front()->ready) {
      if (reading_done_ && pipeline_.empty()) break;
      writer_wake_.expires_at(asio::steady_timer::time_point::max());
      co_await writer_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    // Send every ready response at the head, coalescing byte runs of consecutive responses into
    // one sendmsg; a file slice flushes the run and goes out with sendfile.
    size_t done = 0;
    bool ok = true;
    bool close_after = false;
    iov.clear();
    // By index, holding each slot: the read loop may push_back while this loop is suspended in
    // a send, which invalidates deque iterators (not the elements).
    for (size_t i = 0; i < pipeline_.size(); ++i) {
      std::shared_ptr<response_slot> slot = pipeline_[i];
      if (!slot->ready || close_after) break;
      ++done;
      close_after = slot->close_after;
      if (!slot->send) continue;
      wire::frame& f = slot->frame;
      for (const wire::frame::part& part : f.parts) {
        if (!part.is_slice) {
          iov.push_back({f.bytes.data() + part.index, part.length});
          if (iov.size() == max_iovecs && !(ok = co_await write_iovecs(iov, true))) break;
          continue;
        }
        if (!(ok = co_await write_iovecs(iov, true))) break;
        if (!(ok = co_await send_slice(f.slices[part.index]))) break;
      }
      if (!ok) break;
    }
    if (ok) ok = co_await write_iovecs(iov, false);
    if (!ok || closed_) break;
    pipeline_.erase(pipeline_.begin(), pipeline_.begin() + static_cast<ptrdiff_t>(done));
    reader_wake_.cancel();
    if (close_after) break;
  }
  close();
}

asio::awaitable<bool> session::wait_writable() {
  boost::system::error_code ec;
  co_await socket_.async_wait(tcp::socket::wait_write,
                              asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec && !closed_;
}

asio::awaitable<bool> session::write_iovecs(std::vector<iovec>& iov, bool more) {
  size_t first = 0;
  while (first < iov.size()) {
    msghdr msg{};
    msg.msg_iov = iov.data() + first;
    msg.msg_iovlen = iov.size() - first;
    ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!co_await wait_writable()) co_return false;
        continue;
      }
      co_return false;  // peer gone: close quietly
    }
    touch();
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len)
      left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  iov.clear();
  co_return true;
}

asio::awaitable<bool> session::send_slice(const wire::file_slice& slice) {
  off_t offset = static_cast<off_t>(slice.position);
  int64_t left = slice.length;
  bool use_sendfile = true;
  while (left > 0) {
    ssize_t n;
    if (use_sendfile) {
      n = ::sendfile(socket_.native_handle(), slice.fd, &offset,
                     static_cast<size_t>(std::min<int64_t>(left, 1 << 30)));
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        // A file system without sendfile support: fall back to copying through user space.
        use_sendfile = false;
        continue;
      }
    } else {
      uint8_t chunk[64 * 1024];
      ssize_t r = ::pread(slice.fd, chunk,
                          static_cast<size_t>(std::min<int64_t>(left, sizeof chunk)), offset);
      if (r <= 0) {
        n = r;
      } else {
        n = ::send(socket_.native_handle(), chunk, static_cast<size_t>(r), MSG_NOSIGNAL);
        if (n > 0) offset += n;
      }
    }
    if (n > 0) {
      touch();
      left -= n;
      continue;
    }
    if (n == 0) {
      // The file ended before the slice did: the segment was truncated under us. The frame size
      // already promised these bytes, so the stream cannot continue.
      log_error("connection from ", peer_, ": segment file shorter than the fetch response slice");
      co_return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!co_await wait_writable()) co_return false;
      continue;
    }
    co_return false;
  }
  co_return true;
}

}  // namespace sluice::server
