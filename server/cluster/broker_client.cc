#include "server/cluster/broker_client.h"

#include <algorithm>
#include <array>
#include <deque>
#include <exception>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "server/logging.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/request_header.h"
#include "wire/generated/response_header.h"

namespace sluice::server::cluster {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

class broker_client_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "broker_client"; }
  std::string message(int value) const override {
    switch (static_cast<broker_client_errc>(value)) {
      case broker_client_errc::ok:
        return "success";
      case broker_client_errc::connect_failed:
        return "cannot connect to the broker";
      case broker_client_errc::disconnected:
        return "connection to the broker lost";
      case broker_client_errc::request_timed_out:
        return "request timed out";
      case broker_client_errc::response_too_large:
        return "response larger than the configured maximum";
      case broker_client_errc::malformed_response:
        return "malformed response";
      case broker_client_errc::closed:
        return "client closed";
      case broker_client_errc::unsupported_request:
        return "request cannot be sent";
    }
    return "unknown broker_client error";
  }
};

// Coroutines wait for it on the io thread; fire() wakes all of them, now and later.
class one_shot {
 public:
  explicit one_shot(const asio::any_io_executor& executor) : timer_(executor) {
    timer_.expires_at(asio::steady_timer::time_point::max());
  }
  void fire() {
    fired_ = true;
    timer_.cancel();
  }
  asio::awaitable<void> wait() {
    while (!fired_) {
      boost::system::error_code ignored;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

 private:
  asio::steady_timer timer_;
  bool fired_ = false;
};

int32_t read_i32(const uint8_t* p) {
  return static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
                              (uint32_t{p[2]} << 8) | uint32_t{p[3]});
}

void write_i32(uint8_t* p, int32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<uint8_t>(static_cast<uint32_t>(v) >> (24 - 8 * i));
}

// Where the correlation id sits in a request frame: after the size, the API key and version.
constexpr size_t correlation_id_at = 8;

std::string api_name(int16_t api_key, int16_t api_version) {
  const wire::api_spec* spec = wire::find_api_spec(api_key);
  std::string name = spec != nullptr ? std::string(spec->name) : "API " + std::to_string(api_key);
  return name + " v" + std::to_string(api_version);
}

}  // namespace

const std::error_category& broker_client_category() {
  static const broker_client_category_impl category;
  return category;
}

std::error_code make_error_code(broker_client_errc e) {
  return {static_cast<int>(e), broker_client_category()};
}

// Everything the calls share, held by each call and loop in flight so that none of them outlives
// what it uses.
class broker_client::state : public std::enable_shared_from_this<state> {
 public:
  state(asio::any_io_executor executor, timer_service& timers, broker_client_config config)
      : executor_(std::move(executor)),
        timers_(timers),
        config_(std::move(config)),
        client_id_("sluice-broker-" + std::to_string(config_.local_node_id)),
        where_(config_.name + " (" + config_.host + ":" + std::to_string(config_.port) + ")"),
        backoff_(config_.reconnect_backoff) {}

  asio::awaitable<raw_response> send(int16_t api_key, int16_t api_version, wire::frame frame);
  void close();

  bool connected() const { return current_ != nullptr; }
  const broker_client_config& config() const { return config_; }
  const std::string& client_id() const { return client_id_; }
  const std::string& where() const { return where_; }
  const std::string& last_failure() const { return last_failure_; }

 private:
  struct pending {
    explicit pending(const asio::any_io_executor& executor) : done(executor) {}
    int16_t api_key = 0;
    int16_t api_version = 0;
    int32_t correlation_id = 0;
    std::vector<uint8_t> bytes;  // the request frame, until it is written
    raw_response result;
    bool finished = false;
    one_shot done;
    timer_handle timeout;

    void finish(raw_response r) {
      if (finished) return;
      finished = true;
      result = std::move(r);
      timeout.cancel();
      done.fire();
    }
  };

  struct connection {
    explicit connection(const asio::any_io_executor& executor)
        : socket(executor), writer_wake(executor) {}
    tcp::socket socket;
    asio::steady_timer writer_wake;
    // Oldest first: written or waiting to be, and not answered yet.
    std::deque<std::shared_ptr<pending>> in_flight;
    std::deque<std::shared_ptr<pending>> to_write;
    bool broken = false;
  };

  // One attempt to connect, which every call arriving meanwhile waits for.
  struct attempt {
    explicit attempt(const asio::any_io_executor& executor)
        : done(executor), resolver(executor), backoff_wake(executor) {}
    one_shot done;
    std::error_code error;
    tcp::resolver resolver;
    asio::steady_timer backoff_wake;
    std::shared_ptr<connection> conn;

    void cancel() {
      resolver.cancel();
      backoff_wake.cancel();
      if (conn) {
        boost::system::error_code ignored;
        conn->socket.close(ignored);
      }
    }
  };

  asio::awaitable<std::shared_ptr<connection>> connection_for_call(std::error_code& error);
  asio::awaitable<void> connect(attempt& a);
  asio::awaitable<void> read_responses(connection& c);
  asio::awaitable<void> write_requests(connection& c);
  static asio::awaitable<void> read_loop(std::shared_ptr<state> self,
                                         std::shared_ptr<connection> c);
  static asio::awaitable<void> write_loop(std::shared_ptr<state> self,
                                          std::shared_ptr<connection> c);
  // Takes the connection down: `culprit` (if any) fails with `culprit_error`, every other call in
  // flight with `disconnected` (`closed` once the client is closed).
  void fail(connection& c, pending* culprit, broker_client_errc culprit_error, std::string why);
  void connect_failed(std::string why);

  asio::any_io_executor executor_;
  timer_service& timers_;
  broker_client_config config_;
  std::string client_id_;
  std::string where_;
  std::shared_ptr<connection> current_;
  std::shared_ptr<attempt> attempt_;
  // No connection attempt starts before this (monotonic time), and the delay after a failed one.
  milliseconds next_attempt_at_{0};
  milliseconds backoff_;
  std::string last_failure_;
  int32_t next_correlation_id_ = 0;
  bool closed_ = false;
};

asio::awaitable<raw_response> broker_client::state::send(int16_t api_key, int16_t api_version,
                                                         wire::frame frame) {
  auto self = shared_from_this();
  raw_response out;
  if (!frame.slices.empty() || frame.bytes.size() < correlation_id_at + 4 ||
      frame.bytes.size() - 4 > static_cast<size_t>(INT32_MAX)) {
    out.error = broker_client_errc::unsupported_request;
    co_return out;
  }
  std::error_code error;
  std::shared_ptr<connection> c = co_await connection_for_call(error);
  if (!c) {
    out.error = error;
    co_return out;
  }
  auto p = std::make_shared<pending>(executor_);
  p->api_key = api_key;
  p->api_version = api_version;
  p->correlation_id = next_correlation_id_;
  next_correlation_id_ = next_correlation_id_ == INT32_MAX ? 0 : next_correlation_id_ + 1;
  p->bytes = std::move(frame.bytes);
  write_i32(p->bytes.data(), static_cast<int32_t>(p->bytes.size() - 4));
  write_i32(p->bytes.data() + correlation_id_at, p->correlation_id);
  // The handle belongs to the call: once it is answered or gone, the timer is too.
  p->timeout = timers_.schedule(
      config_.request_timeout,
      [weak_self = weak_from_this(), weak_conn = std::weak_ptr(c), call = p.get()] {
        auto s = weak_self.lock();
        auto conn = weak_conn.lock();
        if (!s || !conn) return;
        s->fail(*conn, call, broker_client_errc::request_timed_out,
                "no answer to " + api_name(call->api_key, call->api_version) + " within " +
                    std::to_string(s->config_.request_timeout.count()) + " ms");
      });
  c->in_flight.push_back(p);
  c->to_write.push_back(p);
  c->writer_wake.cancel();
  co_await p->done.wait();
  co_return std::move(p->result);
}

asio::awaitable<std::shared_ptr<broker_client::state::connection>>
broker_client::state::connection_for_call(std::error_code& error) {
  auto self = shared_from_this();
  for (;;) {
    if (closed_) {
      error = broker_client_errc::closed;
      co_return nullptr;
    }
    if (current_) co_return current_;
    if (attempt_) {
      std::shared_ptr<attempt> a = attempt_;
      co_await a->done.wait();
    } else {
      auto a = std::make_shared<attempt>(executor_);
      attempt_ = a;
      co_await connect(*a);
      if (attempt_ == a) attempt_.reset();
      a->done.fire();
      if (a->error) {
        error = a->error;
        co_return nullptr;
      }
      continue;
    }
    // Waited for another call's attempt: its outcome is ours.
    if (!current_ && !closed_) {
      error = broker_client_errc::connect_failed;
      co_return nullptr;
    }
  }
}

asio::awaitable<void> broker_client::state::connect(attempt& a) {
  auto self = shared_from_this();
  boost::system::error_code ec;
  if (const milliseconds wait = next_attempt_at_ - timers_.monotonic_now();
      wait > milliseconds(0)) {
    timer_handle wake = timers_.schedule(wait, [&a] { a.backoff_wake.cancel(); });
    a.backoff_wake.expires_at(asio::steady_timer::time_point::max());
    co_await a.backoff_wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (closed_) {
    a.error = broker_client_errc::closed;
    co_return;
  }

  auto c = std::make_shared<connection>(executor_);
  a.conn = c;
  bool timed_out = false;
  timer_handle deadline = timers_.schedule(config_.connect_timeout, [&a, &timed_out] {
    timed_out = true;
    a.cancel();
  });
  std::vector<tcp::endpoint> endpoints;
  ec = {};
  if (asio::ip::address address = asio::ip::make_address(config_.host, ec); !ec) {
    endpoints.emplace_back(address, config_.port);
  } else {
    ec = {};
    auto results = co_await a.resolver.async_resolve(config_.host, std::to_string(config_.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    for (const auto& r : results)
      endpoints.push_back(r.endpoint());
  }
  if (!ec && !endpoints.empty() && !closed_ && !timed_out) {
    co_await asio::async_connect(c->socket, endpoints,
                                 asio::redirect_error(asio::use_awaitable, ec));
  }
  deadline.cancel();
  a.conn.reset();
  boost::system::error_code ignored;
  if (closed_) {
    c->socket.close(ignored);
    a.error = broker_client_errc::closed;
    co_return;
  }
  if (timed_out || ec || endpoints.empty()) {
    c->socket.close(ignored);
    a.error = broker_client_errc::connect_failed;
    connect_failed(timed_out ? "cannot connect within " +
                                   std::to_string(config_.connect_timeout.count()) + " ms"
                   : endpoints.empty() ? "the name resolves to no address"
                                       : "cannot connect: " + ec.message());
    co_return;
  }
  c->socket.set_option(tcp::no_delay(true), ignored);
  backoff_ = config_.reconnect_backoff;
  current_ = c;
  log_debug("broker client: connected to ", where_);
  asio::co_spawn(executor_, read_loop(self, c), asio::detached);
  asio::co_spawn(executor_, write_loop(self, c), asio::detached);
}

void broker_client::state::connect_failed(std::string why) {
  log_debug("broker client: ", where_, ": ", why);
  last_failure_ = std::move(why);
  next_attempt_at_ = timers_.monotonic_now() + backoff_;
  backoff_ = std::min(backoff_ * 2, std::max(config_.reconnect_backoff_max, backoff_));
}

asio::awaitable<void> broker_client::state::read_loop(std::shared_ptr<state> self,
                                                      std::shared_ptr<connection> c) {
  try {
    co_await self->read_responses(*c);
  } catch (const std::exception& e) {
    self->fail(*c, nullptr, broker_client_errc::disconnected,
               std::string("reading failed: ") + e.what());
  }
}

asio::awaitable<void> broker_client::state::write_loop(std::shared_ptr<state> self,
                                                       std::shared_ptr<connection> c) {
  try {
    co_await self->write_requests(*c);
  } catch (const std::exception& e) {
    self->fail(*c, nullptr, broker_client_errc::disconnected,
               std::string("writing failed: ") + e.what());
  }
}

asio::awaitable<void> broker_client::state::read_responses(connection& c) {
  std::array<uint8_t, 4> size_bytes;
  for (;;) {
    boost::system::error_code ec;
    co_await asio::async_read(c.socket, asio::buffer(size_bytes),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (c.broken) co_return;
    if (ec) {
      fail(c, nullptr, broker_client_errc::disconnected,
           ec == asio::error::eof ? "closed by the broker" : "reading failed: " + ec.message());
      co_return;
    }
    const int32_t size = read_i32(size_bytes.data());
    if (c.in_flight.empty()) {
      log_warn("broker client: ", where_, " sent a response to no request; closing the connection");
      fail(c, nullptr, broker_client_errc::disconnected, "a response to no request");
      co_return;
    }
    std::shared_ptr<pending> head = c.in_flight.front();
    const std::string what = api_name(head->api_key, head->api_version);
    if (size < 0 || static_cast<uint64_t>(size) > config_.max_response_bytes) {
      log_warn("broker client: ", where_, " answered ", what, " with a response of ", size,
               " bytes, over the maximum of ", config_.max_response_bytes,
               "; closing the connection");
      fail(c, head.get(), broker_client_errc::response_too_large,
           "a response of " + std::to_string(size) + " bytes");
      co_return;
    }
    const auto length = static_cast<size_t>(size);
    std::shared_ptr<uint8_t[]> data = std::make_shared_for_overwrite<uint8_t[]>(length);
    co_await asio::async_read(c.socket, asio::buffer(data.get(), length),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (c.broken) co_return;
    if (ec) {
      fail(c, nullptr, broker_client_errc::disconnected,
           ec == asio::error::eof ? "closed by the broker within a response"
                                  : "reading failed: " + ec.message());
      co_return;
    }
    wire::reader r(std::span<uint8_t>(data.get(), length));
    wire::response_header header;
    if (!header.decode(r, wire::response_header_version(head->api_key, head->api_version)) ||
        header.correlation_id != head->correlation_id) {
      log_warn("broker client: ", where_, " answered ", what, " (correlation id ",
               head->correlation_id, ") with ",
               r.ok() ? "correlation id " + std::to_string(header.correlation_id)
                      : std::string("a malformed header"),
               "; closing the connection");
      fail(c, head.get(), broker_client_errc::malformed_response,
           "a response that does not match its request");
      co_return;
    }
    c.in_flight.pop_front();
    raw_response answer;
    answer.frame = response_frame{std::move(data), length, r.position()};
    head->finish(std::move(answer));
  }
}

asio::awaitable<void> broker_client::state::write_requests(connection& c) {
  std::vector<std::shared_ptr<pending>> batch;
  std::vector<asio::const_buffer> buffers;
  while (!c.broken) {
    if (c.to_write.empty()) {
      boost::system::error_code woken;
      c.writer_wake.expires_at(asio::steady_timer::time_point::max());
      co_await c.writer_wake.async_wait(asio::redirect_error(asio::use_awaitable, woken));
      continue;
    }
    // Everything queued goes out in one gathered write: pipelined calls cost one system call.
    batch.assign(c.to_write.begin(), c.to_write.end());
    c.to_write.clear();
    buffers.clear();
    for (const auto& p : batch)
      buffers.push_back(asio::buffer(p->bytes));
    boost::system::error_code ec;
    co_await asio::async_write(c.socket, buffers, asio::redirect_error(asio::use_awaitable, ec));
    if (c.broken) co_return;
    if (ec) {
      fail(c, nullptr, broker_client_errc::disconnected, "writing failed: " + ec.message());
      co_return;
    }
    for (const auto& p : batch)
      std::vector<uint8_t>().swap(p->bytes);
    batch.clear();
  }
}

void broker_client::state::fail(connection& c, pending* culprit, broker_client_errc culprit_error,
                                std::string why) {
  if (c.broken) return;
  c.broken = true;
  boost::system::error_code ignored;
  c.socket.close(ignored);
  c.writer_wake.cancel();
  std::deque<std::shared_ptr<pending>> calls = std::move(c.in_flight);
  c.in_flight.clear();
  c.to_write.clear();
  if (current_.get() == &c) {
    current_.reset();
    next_attempt_at_ =
        std::max(next_attempt_at_, timers_.monotonic_now() + config_.reconnect_backoff);
  }
  if (!closed_) {
    log_debug("broker client: connection to ", where_, " lost: ", why, " (", calls.size(),
              " calls in flight)");
    last_failure_ = std::move(why);
  }
  const broker_client_errc others =
      closed_ ? broker_client_errc::closed : broker_client_errc::disconnected;
  for (const auto& p : calls) {
    raw_response r;
    r.error = p.get() == culprit ? culprit_error : others;
    p->finish(std::move(r));
  }
}

void broker_client::state::close() {
  if (closed_) return;
  closed_ = true;
  if (current_) fail(*current_, nullptr, broker_client_errc::closed, "closed");
  if (attempt_) attempt_->cancel();
}

broker_client::broker_client(asio::any_io_executor executor, timer_service& timers,
                             broker_client_config config)
    : state_(std::make_shared<state>(std::move(executor), timers, std::move(config))) {}

broker_client::~broker_client() {
  state_->close();
}

wire::frame broker_client::begin_frame(const std::shared_ptr<state>& s, int16_t api_key,
                                       int16_t api_version) {
  wire::frame frame;
  // Room for the size, the header and a small body at once; it also spares GCC 12 a false
  // -Wstringop-overflow on a write into an empty vector.
  frame.bytes.reserve(256);
  wire::writer w(frame);
  w.i32(0);
  wire::request_header header;
  header.request_api_key = api_key;
  header.request_api_version = api_version;
  header.client_id = s->client_id();
  header.encode(w, wire::request_header_version(api_key, api_version));
  return frame;
}

asio::awaitable<raw_response> broker_client::send(std::shared_ptr<state> s, int16_t api_key,
                                                  int16_t api_version, wire::frame frame) {
  co_return co_await s->send(api_key, api_version, std::move(frame));
}

asio::awaitable<raw_response> broker_client::call_raw(int16_t api_key, int16_t api_version,
                                                      std::span<const uint8_t> body) {
  // Not a coroutine: the body is copied here, so the caller's buffer may go at once.
  wire::frame frame = begin_frame(state_, api_key, api_version);
  frame.bytes.insert(frame.bytes.end(), body.begin(), body.end());
  return send(state_, api_key, api_version, std::move(frame));
}

void broker_client::close() {
  state_->close();
}

bool broker_client::connected() const {
  return state_->connected();
}

const broker_client_config& broker_client::config() const {
  return state_->config();
}

const std::string& broker_client::last_failure() const {
  return state_->last_failure();
}

std::error_code broker_client::decode_failed(const std::shared_ptr<state>& s, int16_t api_key,
                                             int16_t api_version) {
  log_warn("broker client: ", s->where(), " answered ", api_name(api_key, api_version),
           " with a body that does not decode");
  return broker_client_errc::malformed_response;
}

}  // namespace sluice::server::cluster
