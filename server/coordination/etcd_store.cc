#include "server/coordination/etcd_store.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <exception>
#include <optional>
#include <set>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>

#include "server/logging.h"

namespace sluice::server::coordination {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Answers' headers are a few hundred bytes; anything near this is not etcd.
constexpr uint32_t header_limit = 16 * 1024;
// Between attempts to renew a lease that could not be renewed.
constexpr milliseconds renew_retry_interval{250};
constexpr size_t watch_read_chunk = 16 * 1024;

// gRPC status codes, as the gateway reports them in "code".
constexpr int64_t grpc_invalid_argument = 3;
constexpr int64_t grpc_not_found = 5;
constexpr int64_t grpc_resource_exhausted = 8;
constexpr int64_t grpc_failed_precondition = 9;
constexpr int64_t grpc_out_of_range = 11;

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Protobuf's JSON mapping of `bytes`: standard alphabet, padded.
std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << 16 |
                 static_cast<uint32_t>(static_cast<uint8_t>(in[i + 1])) << 8 |
                 static_cast<uint8_t>(in[i + 2]);
    out += base64_alphabet[n >> 18];
    out += base64_alphabet[(n >> 12) & 63];
    out += base64_alphabet[(n >> 6) & 63];
    out += base64_alphabet[n & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t n = static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << 16;
    if (rest == 2) n |= static_cast<uint32_t>(static_cast<uint8_t>(in[i + 1])) << 8;
    out += base64_alphabet[n >> 18];
    out += base64_alphabet[(n >> 12) & 63];
    out += rest == 2 ? base64_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0) return false;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t n = 0;
    int padding = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = in[i + j];
      uint32_t sextet = 0;
      if (c == '=') {
        // Only at the end, and only as the last one or two.
        if (i + 4 != in.size() || j < 2) return false;
        ++padding;
      } else {
        if (padding > 0) return false;
        auto pos = base64_alphabet.find(c);
        if (pos == std::string_view::npos) return false;
        sextet = static_cast<uint32_t>(pos);
      }
      n = n << 6 | sextet;
    }
    out += static_cast<char>(n >> 16);
    if (padding < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (padding < 1) out += static_cast<char>(n & 0xff);
  }
  return true;
}

// etcd's range for "every key starting with prefix": [prefix, range_end). An empty prefix, or one
// of 0xff bytes only, has no upper bound, which etcd spells "\0"; an empty key is "\0" too, as in
// etcd's Go client.
std::pair<std::string, std::string> prefix_range(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto last = static_cast<uint8_t>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return {prefix, end};
    }
    end.pop_back();
  }
  return {prefix.empty() ? std::string(1, '\0') : prefix, std::string(1, '\0')};
}

// An int64 field: a JSON string (protobuf's mapping of int64) or, leniently, a number. Absent is
// zero, as the gateway leaves zero values out.
bool read_int64(const json::object& o, std::string_view name, int64_t& out) {
  out = 0;
  const json::value* v = o.if_contains(name);
  if (v == nullptr) return true;
  if (const json::string* s = v->if_string()) {
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), out);
    return ec == std::errc() && end == s->data() + s->size();
  }
  if (const int64_t* i = v->if_int64()) {
    out = *i;
    return true;
  }
  if (const uint64_t* u = v->if_uint64(); u != nullptr && *u <= INT64_MAX) {
    out = static_cast<int64_t>(*u);
    return true;
  }
  return false;
}

bool read_bytes(const json::object& o, std::string_view name, std::string& out) {
  out.clear();
  const json::value* v = o.if_contains(name);
  if (v == nullptr) return true;
  const json::string* s = v->if_string();
  return s != nullptr && base64_decode(*s, out);
}

bool read_bool(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v != nullptr && v->is_bool() && v->get_bool();
}

std::string read_string(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr || !v->is_string()) return {};
  return std::string(v->get_string());
}

const json::object* read_object(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v == nullptr ? nullptr : v->if_object();
}

bool read_header_revision(const json::object& body, int64_t& revision) {
  const json::object* header = read_object(body, "header");
  return header != nullptr && read_int64(*header, "revision", revision);
}

bool read_key_value(const json::object& o, key_value& kv) {
  return read_bytes(o, "key", kv.key) && read_bytes(o, "value", kv.value) &&
         read_int64(o, "create_revision", kv.create_revision) &&
         read_int64(o, "mod_revision", kv.mod_revision) && read_int64(o, "version", kv.version) &&
         read_int64(o, "lease", kv.lease);
}

const char* compare_target_name(compare_target t) {
  switch (t) {
    case compare_target::version:
      return "VERSION";
    case compare_target::create_revision:
      return "CREATE";
    case compare_target::mod_revision:
      return "MOD";
    case compare_target::value:
      return "VALUE";
  }
  return "VERSION";
}

const char* compare_op_name(compare_op op) {
  switch (op) {
    case compare_op::equal:
      return "EQUAL";
    case compare_op::not_equal:
      return "NOT_EQUAL";
    case compare_op::greater:
      return "GREATER";
    case compare_op::less:
      return "LESS";
  }
  return "EQUAL";
}

json::object to_json(const compare& c) {
  json::object o;
  o["key"] = base64_encode(c.key);
  o["target"] = compare_target_name(c.target);
  o["result"] = compare_op_name(c.op);
  switch (c.target) {
    case compare_target::version:
      o["version"] = std::to_string(c.number);
      break;
    case compare_target::create_revision:
      o["create_revision"] = std::to_string(c.number);
      break;
    case compare_target::mod_revision:
      o["mod_revision"] = std::to_string(c.number);
      break;
    case compare_target::value:
      o["value"] = base64_encode(c.value);
      break;
  }
  return o;
}

json::object to_json(const operation& op) {
  json::object request;
  json::object out;
  switch (op.what) {
    case operation::kind::put:
      request["key"] = base64_encode(op.key);
      request["value"] = base64_encode(op.value);
      if (op.lease != 0) request["lease"] = std::to_string(op.lease);
      out["request_put"] = std::move(request);
      break;
    case operation::kind::erase_key:
      request["key"] = base64_encode(op.key);
      out["request_delete_range"] = std::move(request);
      break;
    case operation::kind::erase_prefix: {
      auto [key, end] = prefix_range(op.key);
      request["key"] = base64_encode(key);
      request["range_end"] = base64_encode(end);
      out["request_delete_range"] = std::move(request);
      break;
    }
  }
  return out;
}

json::array to_json(const std::vector<operation>& ops) {
  json::array out;
  for (const auto& op : ops)
    out.push_back(to_json(op));
  return out;
}

milliseconds until(clock_type::time_point deadline) {
  return std::max(milliseconds(0),
                  std::chrono::duration_cast<milliseconds>(deadline - clock_type::now()));
}

void enable_tcp_keepalive(tcp::socket& socket, std::chrono::seconds idle) {
  const int fd = socket.native_handle();
  const int on = 1;
  const int idle_s = static_cast<int>(std::max<int64_t>(1, idle.count()));
  const int interval_s = std::max(1, idle_s / 2);
  const int probes = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(interval_s));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
}

}  // namespace

bool parse_etcd_endpoints(std::string_view list, std::vector<etcd_endpoint>& out,
                          std::string& problem) {
  out.clear();
  constexpr std::string_view scheme = "http://";
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view entry = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!entry.empty() && entry.front() == ' ')
      entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ')
      entry.remove_suffix(1);
    if (entry.empty()) continue;
    const std::string quoted = "'" + log_safe(entry) + "'";
    if (!entry.starts_with(scheme)) {
      problem = "etcd endpoint " + quoted + " is not http://host:port (TLS is not supported)";
      return false;
    }
    std::string_view authority = entry.substr(scheme.size());
    if (authority.ends_with('/')) authority.remove_suffix(1);
    etcd_endpoint ep;
    std::string_view port;
    if (authority.starts_with('[')) {
      auto close = authority.find(']');
      if (close == std::string_view::npos || authority.substr(close + 1).size() < 2 ||
          authority[close + 1] != ':') {
        problem = "etcd endpoint " + quoted + " has no port";
        return false;
      }
      ep.host = std::string(authority.substr(1, close - 1));
      port = authority.substr(close + 2);
    } else {
      auto colon = authority.rfind(':');
      if (colon == std::string_view::npos) {
        problem = "etcd endpoint " + quoted + " has no port";
        return false;
      }
      ep.host = std::string(authority.substr(0, colon));
      port = authority.substr(colon + 1);
    }
    uint32_t number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ep.host.empty() || ep.host.find_first_of("/@ ") != std::string::npos || ec != std::errc() ||
        end != port.data() + port.size() || number == 0 || number > 65535) {
      problem = "etcd endpoint " + quoted + " is not http://host:port";
      return false;
    }
    ep.port = std::string(port);
    ep.url = std::string(scheme) + std::string(authority);
    out.push_back(std::move(ep));
  }
  if (out.empty()) {
    problem = "no etcd endpoint given";
    return false;
  }
  return true;
}

// All the state of the store, shared with every coroutine in flight so that none of them outlives
// what it uses.
class etcd_store::client : public std::enable_shared_from_this<client> {
 public:
  // One HTTP/1.1 connection to one endpoint, known to its client while it exists, so that
  // closing the store closes it whichever coroutine holds it.
  struct connection {
    connection(client& c, size_t ep) : owner(c), endpoint(ep), stream(c.executor_) {
      owner.live_.insert(this);
    }
    ~connection() { owner.live_.erase(this); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    client& owner;
    size_t endpoint;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
  };

  struct watch_state final : subscription::state {
    std::string prefix;
    int64_t start_revision = 0;
    watch_callbacks callbacks;
    bool cancelled = false;
    connection* conn = nullptr;  // the stream, once open

    void cancel() override {
      cancelled = true;
      if (conn != nullptr) conn->stream.close();
    }
  };

  struct keep_alive_state final : subscription::state {
    explicit keep_alive_state(const asio::any_io_executor& executor) : timer(executor) {}
    int64_t lease = 0;
    int64_t ttl_seconds = 0;
    std::function<void(std::error_code)> lost;
    bool cancelled = false;
    asio::steady_timer timer;  // until the next renewal

    void cancel() override {
      cancelled = true;
      timer.cancel();
    }
  };

  client(asio::any_io_executor executor, etcd_config config)
      : executor_(std::move(executor)),
        config_(std::move(config)),
        idle_(config_.endpoints.size()) {}

  asio::awaitable<range_result> range(std::string key, bool prefix);
  asio::awaitable<txn_result> txn(txn_request request);
  asio::awaitable<lease_grant_result> grant(int64_t ttl_seconds);
  asio::awaitable<std::error_code> revoke(int64_t lease);
  subscription start_keep_alive(int64_t lease, int64_t ttl_seconds,
                                std::function<void(std::error_code)> lost);
  subscription start_watch(std::string prefix, int64_t start_revision, watch_callbacks callbacks);
  void close();

 private:
  struct answer {
    std::error_code error;
    json::object body;    // a 200's
    size_t endpoint = 0;  // the last one tried, for log lines
  };
  struct exchange_result {
    boost::system::error_code error;
    bool sent = false;  // the whole request went out
    unsigned status = 0;
    bool keep_alive = false;
    std::string body;
  };

  // POSTs `body` to `path` and reads the whole answer, failing over as etcd_store.h describes.
  // `repeatable`: the request may be sent again after an unanswered attempt (reads, renewals).
  asio::awaitable<answer> call(std::string what, std::string path, std::string body,
                               bool repeatable,
                               std::optional<clock_type::time_point> deadline = std::nullopt);
  asio::awaitable<exchange_result> exchange(connection& c, http::request<http::string_body> request,
                                            milliseconds timeout);
  // A pooled connection to endpoint `ep` if one is still open, else a new one (null on failure).
  asio::awaitable<std::unique_ptr<connection>> open(size_t ep, milliseconds timeout, bool& reused,
                                                    boost::system::error_code& ec);
  void release(std::unique_ptr<connection> c);
  void fail_over(size_t ep, const std::string& why);
  http::request<http::string_body> make_request(size_t ep, const std::string& path,
                                                std::string body) const;
  const std::string& url(size_t ep) const { return config_.endpoints[ep].url; }
  void track(const std::shared_ptr<subscription::state>& loop);

  static asio::awaitable<void> run_watch(std::shared_ptr<client> self,
                                         std::shared_ptr<watch_state> w);
  asio::awaitable<void> watch(watch_state& w, watch_end& end);
  // Returns false once the watch is over (`end` says why) or cancelled.
  bool on_watch_message(watch_state& w, size_t ep, const json::value& message, watch_end& end);
  static asio::awaitable<void> run_keep_alive(std::shared_ptr<client> self,
                                              std::shared_ptr<keep_alive_state> k);
  // Renews until the lease is lost (returns why) or the keep-alive is cancelled (returns no error).
  asio::awaitable<std::error_code> keep_alive(keep_alive_state& k);

  asio::any_io_executor executor_;
  etcd_config config_;
  size_t current_ = 0;  // the endpoint calls go to first
  bool closed_ = false;
  std::set<connection*> live_;
  std::vector<std::vector<std::unique_ptr<connection>>> idle_;  // per endpoint
  std::vector<std::weak_ptr<subscription::state>> loops_;       // watches and keep-alives
};

void etcd_store::client::close() {
  closed_ = true;
  for (const auto& weak : loops_) {
    if (auto loop = weak.lock()) loop->cancel();
  }
  loops_.clear();
  for (connection* c : live_)
    c->stream.close();
  for (auto& idle : idle_)
    idle.clear();
}

void etcd_store::client::track(const std::shared_ptr<subscription::state>& loop) {
  std::erase_if(loops_, [](const auto& weak) { return weak.expired(); });
  loops_.push_back(loop);
}

void etcd_store::client::fail_over(size_t ep, const std::string& why) {
  const size_t next = (ep + 1) % config_.endpoints.size();
  if (next == ep) {
    log_warn("etcd ", url(ep), ": ", why);
  } else {
    log_warn("etcd ", url(ep), ": ", why, "; next: ", url(next));
  }
  if (current_ == ep) current_ = next;
}

http::request<http::string_body> etcd_store::client::make_request(size_t ep,
                                                                  const std::string& path,
                                                                  std::string body) const {
  http::request<http::string_body> request{http::verb::post, path, 11};
  // The URL without "http://": host:port, with an IPv6 host still bracketed.
  request.set(http::field::host, std::string_view(url(ep)).substr(7));
  request.set(http::field::content_type, "application/json");
  request.keep_alive(true);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

asio::awaitable<std::unique_ptr<etcd_store::client::connection>> etcd_store::client::open(
    size_t ep, milliseconds timeout, bool& reused, boost::system::error_code& ec) {
  auto& idle = idle_[ep];
  while (!idle.empty()) {
    std::unique_ptr<connection> c = std::move(idle.back());
    idle.pop_back();
    // A closed idle connection (etcd restarted, or dropped it) has its FIN waiting: reading it
    // now spares a request sent into a dead socket.
    char byte;
    ssize_t r = ::recv(c->stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      reused = true;
      co_return c;
    }
  }
  reused = false;
  const auto deadline = clock_type::now() + timeout;
  const etcd_endpoint& e = config_.endpoints[ep];
  std::vector<tcp::endpoint> targets;
  boost::system::error_code not_literal;
  auto address = asio::ip::make_address(e.host, not_literal);
  const auto port = static_cast<uint16_t>(std::stoul(e.port));
  if (!not_literal) {
    targets.emplace_back(address, port);
  } else {
    auto resolver = std::make_shared<tcp::resolver>(executor_);
    asio::steady_timer guard(executor_);
    guard.expires_at(deadline);
    guard.async_wait([resolver](boost::system::error_code waited) {
      if (!waited) resolver->cancel();
    });
    auto results = co_await resolver->async_resolve(e.host, e.port,
                                                    asio::redirect_error(asio::use_awaitable, ec));
    guard.cancel();
    if (ec) co_return nullptr;
    for (const auto& r : results)
      targets.push_back(r.endpoint());
  }
  auto c = std::make_unique<connection>(*this, ep);
  c->stream.expires_at(deadline);
  co_await c->stream.async_connect(targets, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return nullptr;
  boost::system::error_code ignored;
  c->stream.socket().set_option(tcp::no_delay(true), ignored);
  co_return c;
}

void etcd_store::client::release(std::unique_ptr<connection> c) {
  auto& idle = idle_[c->endpoint];
  if (closed_ || idle.size() >= config_.max_idle_connections || c->buffer.size() != 0) return;
  idle.push_back(std::move(c));
}

asio::awaitable<etcd_store::client::exchange_result> etcd_store::client::exchange(
    connection& c, http::request<http::string_body> request, milliseconds timeout) {
  exchange_result out;
  c.stream.expires_after(std::max(timeout, milliseconds(1)));
  co_await http::async_write(c.stream, request,
                             asio::redirect_error(asio::use_awaitable, out.error));
  if (out.error) co_return out;
  out.sent = true;
  http::response_parser<http::string_body> parser;
  parser.header_limit(header_limit);
  parser.body_limit(config_.max_response_bytes);
  co_await http::async_read(c.stream, c.buffer, parser,
                            asio::redirect_error(asio::use_awaitable, out.error));
  if (out.error) co_return out;
  c.stream.expires_never();
  auto& response = parser.get();
  out.status = response.result_int();
  out.keep_alive = response.keep_alive();
  out.body = std::move(response.body());
  co_return out;
}

asio::awaitable<etcd_store::client::answer> etcd_store::client::call(
    std::string what, std::string path, std::string body, bool repeatable,
    std::optional<clock_type::time_point> deadline) {
  auto self = shared_from_this();
  answer out;
  out.error = store_errc::unavailable;
  size_t attempts = 0;
  bool retried_stale = false;
  while (attempts < config_.endpoints.size() && !closed_) {
    milliseconds connect_timeout = config_.connect_timeout;
    milliseconds request_timeout = config_.request_timeout;
    if (deadline) {
      const milliseconds left = until(*deadline);
      if (left <= milliseconds(0)) break;
      connect_timeout = std::min(connect_timeout, left);
      request_timeout = std::min(request_timeout, left);
    }
    const size_t ep = current_;
    out.endpoint = ep;
    bool reused = false;
    boost::system::error_code ec;
    std::unique_ptr<connection> conn = co_await open(ep, connect_timeout, reused, ec);
    if (closed_) break;
    if (!conn) {
      ++attempts;
      fail_over(ep, "cannot connect: " + ec.message());
      continue;
    }
    exchange_result x = co_await exchange(*conn, make_request(ep, path, body), request_timeout);
    if (closed_) break;
    if (x.error) {
      if (x.error == http::error::body_limit) {
        log_error("etcd ", url(ep), ": the answer to ", what, " is over the cap of ",
                  config_.max_response_bytes, " bytes");
        out.error = store_errc::response_too_large;
        co_return out;
      }
      // A pooled connection that etcd closed after the check in open(): once more, on a new one.
      if (reused && !retried_stale && (!x.sent || repeatable)) {
        retried_stale = true;
        continue;
      }
      if (x.sent && !repeatable) {
        log_warn("etcd ", url(ep), ": no answer to ", what, " (", x.error.message(),
                 "); it may or may not have been applied");
        out.error = store_errc::outcome_unknown;
        co_return out;
      }
      ++attempts;
      fail_over(ep, what + " failed: " + x.error.message());
      continue;
    }
    if (x.keep_alive) release(std::move(conn));
    boost::system::error_code json_error;
    json::value parsed = json::parse(x.body, json_error);
    const json::object* object = json_error ? nullptr : parsed.if_object();
    if (x.status == 200) {
      if (object == nullptr) {
        log_warn("etcd ", url(ep), ": the answer to ", what, " is not a JSON object");
        out.error = store_errc::bad_response;
        co_return out;
      }
      out.error = {};
      out.body = std::move(parsed.get_object());
      co_return out;
    }
    int64_t code = -1;
    std::string message;
    if (object != nullptr) {
      read_int64(*object, "code", code);
      message = read_string(*object, "message");
    }
    const std::string answered = what + " answered HTTP " + std::to_string(x.status) +
                                 (message.empty() ? "" : ": " + log_safe(message));
    if (code == grpc_not_found) {
      // An answer the caller expects now and then (a lease that ended), not an incident.
      log_debug("etcd ", url(ep), ": ", answered);
      out.error = store_errc::lease_not_found;
      co_return out;
    }
    if (code == grpc_invalid_argument || code == grpc_failed_precondition ||
        code == grpc_out_of_range) {
      log_warn("etcd ", url(ep), ": ", answered);
      out.error = store_errc::rejected;
      co_return out;
    }
    if (code == grpc_resource_exhausted) {
      log_warn("etcd ", url(ep), ": ", answered);
      out.error = store_errc::unavailable;
      co_return out;
    }
    // Refused before it was proposed: safe to send elsewhere even if it is a write.
    const bool not_applied = message == "etcdserver: no leader";
    if (!repeatable && !not_applied) {
      log_warn("etcd ", url(ep), ": ", answered, "; it may or may not have been applied");
      out.error = store_errc::outcome_unknown;
      co_return out;
    }
    ++attempts;
    fail_over(ep, answered);
  }
  out.error = store_errc::unavailable;
  co_return out;
}

asio::awaitable<range_result> etcd_store::client::range(std::string key, bool prefix) {
  json::object request;
  if (prefix) {
    auto [from, end] = prefix_range(key);
    request["key"] = base64_encode(from);
    request["range_end"] = base64_encode(end);
  } else {
    request["key"] = base64_encode(key);
  }
  answer a = co_await call(prefix ? "range of a prefix" : "range of a key", "/v3/kv/range",
                           json::serialize(request), true);
  range_result out;
  out.error = a.error;
  if (a.error) co_return out;
  bool ok = read_header_revision(a.body, out.revision);
  if (const json::value* kvs = a.body.if_contains("kvs")) {
    const json::array* list = kvs->if_array();
    ok = ok && list != nullptr;
    if (list != nullptr) {
      for (const json::value& item : *list) {
        key_value kv;
        ok = ok && item.is_object() && read_key_value(item.get_object(), kv);
        out.kvs.push_back(std::move(kv));
      }
    }
  }
  if (!ok) {
    log_warn("etcd ", url(a.endpoint), ": malformed answer to a range");
    out = {};
    out.error = store_errc::bad_response;
  }
  co_return out;
}

asio::awaitable<txn_result> etcd_store::client::txn(txn_request request) {
  json::object body;
  json::array compares;
  for (const auto& c : request.compares)
    compares.push_back(to_json(c));
  body["compare"] = std::move(compares);
  body["success"] = to_json(request.success);
  body["failure"] = to_json(request.failure);
  answer a = co_await call("txn", "/v3/kv/txn", json::serialize(body), false);
  txn_result out;
  out.error = a.error;
  if (a.error) co_return out;
  out.succeeded = read_bool(a.body, "succeeded");
  if (!read_header_revision(a.body, out.revision)) {
    log_warn("etcd ", url(a.endpoint), ": malformed answer to a txn");
    out = {};
    out.error = store_errc::bad_response;
  }
  co_return out;
}

asio::awaitable<lease_grant_result> etcd_store::client::grant(int64_t ttl_seconds) {
  json::object body;
  body["TTL"] = std::to_string(ttl_seconds);
  answer a = co_await call("lease grant", "/v3/lease/grant", json::serialize(body), false);
  lease_grant_result out;
  out.error = a.error;
  if (a.error) co_return out;
  if (std::string refused = read_string(a.body, "error"); !refused.empty()) {
    log_warn("etcd ", url(a.endpoint), ": lease grant refused: ", log_safe(refused));
    out.error = store_errc::rejected;
    co_return out;
  }
  if (!read_int64(a.body, "ID", out.id) || !read_int64(a.body, "TTL", out.ttl_seconds) ||
      out.id == 0 || out.ttl_seconds <= 0) {
    log_warn("etcd ", url(a.endpoint), ": malformed answer to a lease grant");
    out = {};
    out.error = store_errc::bad_response;
  }
  co_return out;
}

asio::awaitable<std::error_code> etcd_store::client::revoke(int64_t lease) {
  json::object body;
  body["ID"] = std::to_string(lease);
  answer a = co_await call("revoke of lease " + std::to_string(lease), "/v3/lease/revoke",
                           json::serialize(body), false);
  co_return a.error;
}

subscription etcd_store::client::start_keep_alive(int64_t lease, int64_t ttl_seconds,
                                                  std::function<void(std::error_code)> lost) {
  auto k = std::make_shared<keep_alive_state>(executor_);
  k->lease = lease;
  k->ttl_seconds = std::max<int64_t>(1, ttl_seconds);
  k->lost = std::move(lost);
  track(k);
  asio::co_spawn(executor_, run_keep_alive(shared_from_this(), k), asio::detached);
  return subscription(k);
}

asio::awaitable<void> etcd_store::client::run_keep_alive(std::shared_ptr<client> self,
                                                         std::shared_ptr<keep_alive_state> k) {
  // co_spawn may start the coroutine inside start_keep_alive(); nothing runs within the call.
  co_await asio::post(self->executor_, asio::use_awaitable);
  std::error_code lost;
  try {
    lost = co_await self->keep_alive(*k);
  } catch (const std::exception& e) {
    log_error("etcd ", self->url(self->current_), ": keep-alive of lease ", k->lease,
              " failed: ", e.what());
    lost = store_errc::bad_response;
  }
  if (!lost || k->cancelled || self->closed_) co_return;
  k->lost(lost);
}

asio::awaitable<std::error_code> etcd_store::client::keep_alive(keep_alive_state& k) {
  // Until a renewal is confirmed, the lease is presumed alive for a TTL from now: the grant was
  // answered moments ago.
  auto confirmed_until = clock_type::now() + std::chrono::seconds(k.ttl_seconds);
  std::error_code last = store_errc::unavailable;
  json::object request;
  request["ID"] = std::to_string(k.lease);
  const std::string body = json::serialize(request);
  const std::string what = "keep-alive of lease " + std::to_string(k.lease);
  for (;;) {
    if (clock_type::now() >= confirmed_until) {
      log_warn("etcd ", url(current_), ": lease ", k.lease, " lost: no renewal confirmed for ",
               k.ttl_seconds, " s (", last.message(), ")");
      co_return last;
    }
    // The lease runs from when etcd renewed it, after this.
    const auto sent = clock_type::now();
    answer a = co_await call(what, "/v3/lease/keepalive", body, true, confirmed_until);
    if (k.cancelled || closed_) co_return std::error_code();
    milliseconds wait = renew_retry_interval;
    if (!a.error) {
      // A streamed answer: {"result": LeaseKeepAliveResponse} or {"error": ...}.
      const json::object* result = read_object(a.body, "result");
      int64_t ttl = 0;
      if (result == nullptr || !read_int64(*result, "TTL", ttl)) {
        const json::object* error = read_object(a.body, "error");
        log_warn("etcd ", url(current_), ": ", what, " failed: ",
                 error != nullptr ? log_safe(read_string(*error, "message")) : "malformed answer");
        last = store_errc::unavailable;
      } else if (ttl <= 0) {
        log_warn("etcd ", url(current_), ": lease ", k.lease, " has expired or was revoked");
        co_return store_errc::lease_not_found;
      } else {
        k.ttl_seconds = ttl;
        confirmed_until = sent + std::chrono::seconds(ttl);
        wait = std::chrono::seconds(ttl) / 3;
      }
    } else if (a.error == store_errc::lease_not_found) {
      log_warn("etcd ", url(current_), ": lease ", k.lease, " has expired or was revoked");
      co_return a.error;
    } else {
      last = a.error;
    }
    k.timer.expires_after(std::min(wait, std::max(until(confirmed_until), milliseconds(0))));
    boost::system::error_code ignored;
    co_await k.timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (k.cancelled || closed_) co_return std::error_code();
  }
}

subscription etcd_store::client::start_watch(std::string prefix, int64_t start_revision,
                                             watch_callbacks callbacks) {
  auto w = std::make_shared<watch_state>();
  w->prefix = std::move(prefix);
  w->start_revision = start_revision;
  w->callbacks = std::move(callbacks);
  track(w);
  asio::co_spawn(executor_, run_watch(shared_from_this(), w), asio::detached);
  return subscription(w);
}

asio::awaitable<void> etcd_store::client::run_watch(std::shared_ptr<client> self,
                                                    std::shared_ptr<watch_state> w) {
  // co_spawn may start the coroutine inside start_watch(); nothing runs within the call.
  co_await asio::post(self->executor_, asio::use_awaitable);
  watch_end end;
  end.why = watch_end::reason::disconnected;
  end.error = store_errc::unavailable;
  try {
    co_await self->watch(*w, end);
  } catch (const std::exception& e) {
    log_error("etcd ", self->url(self->current_), ": watch of ", log_safe(w->prefix),
              " failed: ", e.what());
    end = {watch_end::reason::disconnected, 0, store_errc::bad_response};
  }
  w->conn = nullptr;
  if (w->cancelled || self->closed_ || !w->callbacks.ended) co_return;
  w->callbacks.ended(end);
}

asio::awaitable<void> etcd_store::client::watch(watch_state& w, watch_end& end) {
  json::object create;
  auto [key, range_end] = prefix_range(w.prefix);
  create["key"] = base64_encode(key);
  create["range_end"] = base64_encode(range_end);
  create["start_revision"] = std::to_string(w.start_revision);
  json::object request;
  request["create_request"] = std::move(create);
  const std::string body = json::serialize(request);
  const std::string what = "watch of " + log_safe(w.prefix);

  // Opening: any endpoint will do, in turn, as for a read.
  std::unique_ptr<connection> conn;
  std::optional<http::response_parser<http::buffer_body>> parser;
  size_t ep = current_;
  for (size_t attempts = 0; attempts < config_.endpoints.size() && !conn;) {
    ep = current_;
    bool reused = false;
    boost::system::error_code ec;
    std::unique_ptr<connection> c = co_await open(ep, config_.connect_timeout, reused, ec);
    if (w.cancelled || closed_) co_return;
    if (!c) {
      ++attempts;
      fail_over(ep, "cannot connect: " + ec.message());
      continue;
    }
    w.conn = c.get();
    c->stream.expires_after(config_.request_timeout);
    co_await http::async_write(c->stream, make_request(ep, "/v3/watch", body),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      parser.emplace();
      parser->header_limit(header_limit);
      // The stream has no end; each message is held to the cap instead.
      parser->body_limit(boost::none);
      co_await http::async_read_header(c->stream, c->buffer, *parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
    }
    w.conn = nullptr;
    if (w.cancelled || closed_) co_return;
    if (ec) {
      // A pooled connection that etcd closed meanwhile says nothing about the endpoint.
      if (reused) continue;
      ++attempts;
      fail_over(ep, "opening the " + what + " failed: " + ec.message());
      continue;
    }
    if (const unsigned status = parser->get().result_int(); status != 200) {
      log_warn("etcd ", url(ep), ": ", what, " answered HTTP ", status);
      end.error = status < 500 ? store_errc::rejected : store_errc::unavailable;
      co_return;
    }
    conn = std::move(c);
  }
  if (!conn) co_return;

  struct attachment {
    watch_state& w;
    ~attachment() { w.conn = nullptr; }
  } attached{w};
  w.conn = conn.get();
  conn->stream.expires_never();
  enable_tcp_keepalive(conn->stream.socket(), config_.watch_keepalive_idle);

  json::stream_parser messages;
  size_t message_bytes = 0;
  std::array<char, watch_read_chunk> chunk;
  for (;;) {
    if (parser->is_done()) {
      log_warn("etcd ", url(ep), ": the server ended the ", what);
      co_return;
    }
    parser->get().body().data = chunk.data();
    parser->get().body().size = chunk.size();
    boost::system::error_code ec;
    co_await http::async_read_some(conn->stream, conn->buffer, *parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (w.cancelled || closed_) co_return;
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      log_warn("etcd ", url(ep), ": ", what, " lost: ", ec.message());
      co_return;
    }
    const size_t got = chunk.size() - parser->get().body().size;
    size_t used = 0;
    while (used < got) {
      boost::system::error_code json_error;
      const size_t n = messages.write_some(chunk.data() + used, got - used, json_error);
      if (json_error) {
        log_warn("etcd ", url(ep), ": ", what, " sent malformed JSON: ", json_error.message());
        end.error = store_errc::bad_response;
        co_return;
      }
      used += n;
      message_bytes += n;
      if (!messages.done()) {
        if (message_bytes > config_.max_response_bytes) {
          log_error("etcd ", url(ep), ": a message of the ", what, " is over the cap of ",
                    config_.max_response_bytes, " bytes");
          end.error = store_errc::response_too_large;
          co_return;
        }
        continue;
      }
      json::value message = messages.release();
      messages.reset();
      message_bytes = 0;
      if (!on_watch_message(w, ep, message, end)) co_return;
    }
  }
}

bool etcd_store::client::on_watch_message(watch_state& w, size_t ep, const json::value& message,
                                          watch_end& end) {
  const std::string what = "watch of " + log_safe(w.prefix);
  const json::object* object = message.if_object();
  if (object == nullptr) {
    log_warn("etcd ", url(ep), ": ", what, " sent a message that is not an object");
    end.error = store_errc::bad_response;
    return false;
  }
  if (const json::object* error = read_object(*object, "error")) {
    log_warn("etcd ", url(ep), ": ", what, " failed: ", log_safe(read_string(*error, "message")));
    end.error = store_errc::unavailable;
    return false;
  }
  const json::object* result = read_object(*object, "result");
  int64_t compact_revision = 0;
  if (result == nullptr || !read_int64(*result, "compact_revision", compact_revision)) {
    log_warn("etcd ", url(ep), ": ", what, " sent a malformed message");
    end.error = store_errc::bad_response;
    return false;
  }
  if (read_bool(*result, "created")) {
    log_info("etcd ", url(ep), ": ", what, " from revision ", w.start_revision);
  }
  if (compact_revision > 0) {
    log_info("etcd ", url(ep), ": ", what, " from revision ", w.start_revision,
             " ended: compacted up to ", compact_revision);
    end.why = watch_end::reason::compacted;
    end.compact_revision = compact_revision;
    end.error = {};
    return false;
  }
  if (read_bool(*result, "canceled")) {
    log_warn("etcd ", url(ep), ": ", what,
             " cancelled by the server: ", log_safe(read_string(*result, "cancel_reason")));
    end.error = store_errc::unavailable;
    return false;
  }
  const json::value* list = result->if_contains("events");
  if (list == nullptr) return true;
  std::vector<watch_event> events;
  bool ok = list->is_array();
  if (ok) {
    for (const json::value& item : list->get_array()) {
      const json::object* e = item.if_object();
      const json::object* kv = e != nullptr ? read_object(*e, "kv") : nullptr;
      watch_event event;
      ok = kv != nullptr && read_key_value(*kv, event.kv);
      if (!ok) break;
      // Protobuf leaves PUT, the zero value, out.
      const std::string type = read_string(*e, "type");
      if (type == "DELETE") {
        event.what = watch_event::kind::erase;
      } else if (!type.empty() && type != "PUT") {
        ok = false;
        break;
      }
      events.push_back(std::move(event));
    }
  }
  if (!ok) {
    log_warn("etcd ", url(ep), ": ", what, " sent a malformed event");
    end.error = store_errc::bad_response;
    return false;
  }
  if (events.empty()) return true;
  if (w.callbacks.events) w.callbacks.events(std::move(events));
  return !w.cancelled && !closed_;
}

etcd_store::etcd_store(boost::asio::any_io_executor executor, etcd_config config)
    : client_(std::make_shared<client>(std::move(executor), std::move(config))) {}

etcd_store::~etcd_store() {
  client_->close();
}

boost::asio::awaitable<range_result> etcd_store::get(std::string key) {
  // Held by the call: the store may be destroyed while it waits.
  std::shared_ptr<client> c = client_;
  co_return co_await c->range(std::move(key), false);
}

boost::asio::awaitable<range_result> etcd_store::get_prefix(std::string prefix) {
  std::shared_ptr<client> c = client_;
  co_return co_await c->range(std::move(prefix), true);
}

boost::asio::awaitable<txn_result> etcd_store::txn(txn_request request) {
  std::shared_ptr<client> c = client_;
  co_return co_await c->txn(std::move(request));
}

boost::asio::awaitable<lease_grant_result> etcd_store::grant_lease(int64_t ttl_seconds) {
  std::shared_ptr<client> c = client_;
  co_return co_await c->grant(ttl_seconds);
}

boost::asio::awaitable<std::error_code> etcd_store::revoke_lease(int64_t lease) {
  std::shared_ptr<client> c = client_;
  co_return co_await c->revoke(lease);
}

subscription etcd_store::keep_alive(int64_t lease, int64_t ttl_seconds,
                                    std::function<void(std::error_code)> lost) {
  return client_->start_keep_alive(lease, ttl_seconds, std::move(lost));
}

subscription etcd_store::watch_prefix(std::string prefix, int64_t start_revision,
                                      watch_callbacks callbacks) {
  return client_->start_watch(std::move(prefix), start_revision, std::move(callbacks));
}

}  // namespace sluice::server::coordination
