#pragma once
// What a handler may know about a request beyond its decoded body: where it came from and how to
// answer it, nothing about the broker. The components a handler uses are its own parameters
// (handlers/handlers.h). Handlers take those, a context and a decoded request and return a
// response struct; they never see the socket, so they can be driven with bytes alone.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

namespace sluice::server {

struct request_context {
  explicit request_context(boost::asio::any_io_executor ex) : executor(std::move(ex)) {}

  // The io thread's: what a handler's coroutines and completion latches run on.
  boost::asio::any_io_executor executor;
  int16_t api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string> client_id;
  std::string peer;  // remote address, for log lines
  // The listener the request came in on (Kafka's RequestContext.listenerName): brokers are
  // advertised to the client at that listener's addresses. Owned by the broker's config; empty
  // for a request that came in on no socket.
  std::string_view listener_name;

  // Set by a handler that must not answer and instead close the connection after this request:
  // Kafka's rule for a failed acks=0 produce, which has no response to carry the error.
  bool close_connection = false;
};

inline int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace sluice::server
