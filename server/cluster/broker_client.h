#pragma once
// A Kafka protocol client for one broker-to-broker connection: what a replica fetcher, request
// forwarding to the controller and AlterPartition send their requests with.
//
// Framing is Kafka's: an int32 size, then the request header (v2 when the API's version is
// flexible, else v1; wire/generated/api_specs.h), client id "sluice-broker-<node.id>", then the
// body. Requests are pipelined: several may be in flight on the connection, and since a broker
// answers a connection's requests in order, each response is matched to the oldest request
// still waiting, and must carry its correlation id.
//
// Failures are results, never exceptions:
// - The connection is made on the first call, and again on the next call after it was lost. A
//   failed attempt delays the next one by reconnect_backoff, doubling up to reconnect_backoff_max;
//   calls made meanwhile wait out the delay. A lost connection delays the next attempt by
//   reconnect_backoff.
// - Losing the connection fails every call in flight on it (`disconnected`). So does anything that
//   leaves the byte stream in doubt: a response whose size is over max_response_bytes (that call
//   gets `response_too_large`: sizes from the wire are never trusted, nothing is allocated for
//   it), a response that does not carry the expected correlation id, bytes nobody asked for.
// - A call unanswered after request_timeout fails with `request_timed_out` and takes the
//   connection down with it, as Kafka's NetworkClient does: the late response would otherwise be
//   taken for the answer to the next request.
// - A response body that does not decode fails its call with `malformed_response`; the
//   connection stays, since the framing was sound.
//
// Buffers: a response frame is read into one buffer of its own. A decoded message may point into
// it (a Fetch response's `records` are views, wire/records.h), so the typed call hands the buffer
// back with the message: the views stay valid as long as `broker_response::frame` (or a copy of
// it) lives, for instance while the records are appended to a log.
//
// Time: deadlines and back-off delays come from the timer_service (server/timers.h), so a unit
// test moves them by hand.
//
// Lifetime: close() (or the destructor) fails every call in flight with `closed` at once, and
// every later call too. The calls' coroutines may finish after the client is gone: they hold the
// client's state, not the client.
//
// Threading: the io thread only.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "server/timers.h"
#include "wire/codec.h"
#include "wire/frame.h"
#include "wire/generated/messages.h"

namespace sluice::server::cluster {

enum class broker_client_errc {
  ok = 0,
  connect_failed,       // the name did not resolve, the connection was refused or timed out
  disconnected,         // the connection was lost with the call in flight
  request_timed_out,    // no response within request_timeout
  response_too_large,   // the response's size is over max_response_bytes
  malformed_response,   // wrong correlation id, a header or body that does not decode
  closed,               // close() was called
  unsupported_request,  // a version outside the message's range, or a body with file slices
};

const std::error_category& broker_client_category();
std::error_code make_error_code(broker_client_errc e);

struct broker_client_config {
  int32_t local_node_id = -1;  // for the client id, sluice-broker-<node.id>
  // The remote broker: for log lines ("broker 2"), and where to connect. `host` is a name or an
  // IP address; names are resolved by Asio's resolver thread.
  std::string name;
  std::string host;
  uint16_t port = 0;
  // Kafka's socket.connection.setup.timeout.ms.
  std::chrono::milliseconds connect_timeout{10'000};
  // Kafka's replica.socket.timeout.ms (30 s); a fetch's must exceed its max_wait_ms.
  std::chrono::milliseconds request_timeout{30'000};
  // Kafka's reconnect.backoff.ms and reconnect.backoff.max.ms.
  std::chrono::milliseconds reconnect_backoff{50};
  std::chrono::milliseconds reconnect_backoff_max{1'000};
  // The largest response frame accepted (its int32 size). For a replica fetcher: the fetch's
  // max_bytes, plus the largest batch a leader returns whole beyond it (message.max.bytes), plus
  // the headers of every partition it names.
  size_t max_response_bytes = 12 * 1024 * 1024;
};

// One response frame as read, without its size prefix: the response header, then the body.
struct response_frame {
  std::shared_ptr<uint8_t[]> data;
  size_t size = 0;
  size_t body_offset = 0;  // where the body starts, after the response header
  std::span<uint8_t> body() const { return {data.get() + body_offset, size - body_offset}; }
};

struct raw_response {
  std::error_code error;
  response_frame frame;  // empty on error
};

// A decoded response and the buffer its views point into (see "Buffers" above).
template <class Response>
struct broker_response {
  std::error_code error;
  Response body;  // default-constructed on error
  std::shared_ptr<uint8_t[]> frame;
};

class broker_client {
 public:
  broker_client(boost::asio::any_io_executor executor, timer_service& timers,
                broker_client_config config);
  ~broker_client();
  broker_client(const broker_client&) = delete;
  broker_client& operator=(const broker_client&) = delete;

  // Sends `request` at `version` and awaits its response. The request is encoded by this call,
  // before the awaitable is returned, and not read afterwards; its `records` may hold bytes, not
  // file slices. In a coroutine, pass a named request, not a temporary: GCC 12 destroys a
  // temporary of a co_await expression twice.
  template <class Request, class Response = typename wire::api<Request::api_key>::response>
  boost::asio::awaitable<broker_response<Response>> call(const Request& request, int16_t version);

  // The untyped core: `body` is a request body already encoded at `api_version`, copied by this
  // call. The response's body is not decoded.
  boost::asio::awaitable<raw_response> call_raw(int16_t api_key, int16_t api_version,
                                                std::span<const uint8_t> body);

  // Fails everything in flight and every later call with `closed`.
  void close();
  // Whether a connection is open now (a call made now would not connect first).
  bool connected() const;
  // Why the last connection attempt failed or the last connection was lost ("" if never), for
  // the caller's log line: the client itself logs these only at debug level, and logs a warning
  // only for what a broker must never send (an oversized response, a wrong correlation id).
  const std::string& last_failure() const;
  const broker_client_config& config() const;

 private:
  class state;
  // A frame holding a placeholder size and the request header with correlation id 0, which
  // send() fills in; the body is appended after it.
  static wire::frame begin_frame(const std::shared_ptr<state>& s, int16_t api_key,
                                 int16_t api_version);
  // Static, on the state: a call may outlive the client. An empty frame fails the call with
  // unsupported_request.
  static boost::asio::awaitable<raw_response> send(std::shared_ptr<state> s, int16_t api_key,
                                                   int16_t api_version, wire::frame frame);
  template <class Response>
  static boost::asio::awaitable<broker_response<Response>> receive(std::shared_ptr<state> s,
                                                                   int16_t api_key,
                                                                   int16_t api_version,
                                                                   wire::frame frame);
  static std::error_code decode_failed(const std::shared_ptr<state>& s, int16_t api_key,
                                       int16_t api_version);

  std::shared_ptr<state> state_;
};

template <class Request, class Response>
boost::asio::awaitable<broker_response<Response>> broker_client::call(const Request& request,
                                                                      int16_t version) {
  // Not a coroutine: the request is encoded here, so a temporary may be passed.
  if (version < Request::min_version || version > Request::max_version) {
    return receive<Response>(state_, Request::api_key, version, wire::frame{});
  }
  wire::frame frame = begin_frame(state_, Request::api_key, version);
  {
    wire::writer w(frame);
    request.encode(w, version);
  }
  return receive<Response>(state_, Request::api_key, version, std::move(frame));
}

template <class Response>
boost::asio::awaitable<broker_response<Response>> broker_client::receive(std::shared_ptr<state> s,
                                                                         int16_t api_key,
                                                                         int16_t api_version,
                                                                         wire::frame frame) {
  broker_response<Response> out;
  raw_response raw = co_await send(s, api_key, api_version, std::move(frame));
  if (raw.error) {
    out.error = raw.error;
    co_return out;
  }
  wire::reader r(raw.frame.body());
  if (!out.body.decode(r, api_version)) {
    out.body = Response{};
    out.error = decode_failed(s, api_key, api_version);
    co_return out;
  }
  out.frame = std::move(raw.frame.data);
  co_return out;
}

}  // namespace sluice::server::cluster

template <>
struct std::is_error_code_enum<sluice::server::cluster::broker_client_errc> : std::true_type {};
