#pragma once
// metadata_store over etcd 3.4's HTTP/JSON gateway: the grpc-gateway that etcd serves on its
// client port in front of the v3 API, under /v3/ (etcd 3.4 also keeps /v3beta/; 3.5 keeps only
// /v3/). Keys and values travel base64-encoded, int64s as JSON strings, fields that are zero or
// false are left out of answers. Errors come back as a non-200 status with
// {"error", "message", "code"}, code being the gRPC status.
//
//   get, get_prefix   POST /v3/kv/range       linearizable reads
//   txn, put          POST /v3/kv/txn
//   grant_lease       POST /v3/lease/grant
//   revoke_lease      POST /v3/lease/revoke
//   keep_alive        POST /v3/lease/keepalive one renewal per request, a third of the TTL apart
//   watch_prefix      POST /v3/watch           one request per watch, answered by a chunked
//                                              stream of {"result": WatchResponse} objects
//
// A streaming gRPC call through the gateway over HTTP/1.1 takes the whole request body before it
// answers, so a keep-alive cannot be one long stream of renewals as with gRPC: each renewal is a
// request of its own, on a pooled connection.
//
// Endpoints and failover: calls go to the endpoint that last worked; a connection that cannot be
// made moves them to the next one in the list, in turn. A read (range, keep-alive, opening a
// watch) that fails in any other way (timeout, reset, a 5xx) is tried on the next endpoint too. A
// write whose request went out but whose answer did not come is not repeated: it fails with
// outcome_unknown, since repeating a guarded transaction that did apply would report it failed.
// Every such event is one log line naming the endpoint.
//
// Bounds: connecting and each request are held to the configured timeouts; an answer larger than
// max_response_bytes (one streamed watch message, for watches) fails the call with
// response_too_large instead of being buffered. A watch stream is quiet for as long as nothing
// changes, so instead of a read timeout its socket has TCP keep-alive: a peer that vanished
// without closing is noticed after about watch_keepalive_idle * 2.5, and the watch ends
// disconnected. Hostnames are resolved by the system resolver on Asio's resolver thread; the
// connect timeout cancels the wait, though not a getaddrinfo already running. IP addresses are
// not resolved at all.
//
// Lifetime: destroying the store closes its connections and ends its watches and keep-alives
// without calling their callbacks; calls still in flight complete with unavailable.
//
// Threading: io thread only; nothing blocks it (sockets and timers are Asio's, on `executor`).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "server/coordination/metadata_store.h"

namespace sluice::server::coordination {

struct etcd_endpoint {
  std::string url;  // as configured, for log lines: http://host:port
  std::string host;
  std::string port;
};

// Parses a comma-separated list of http://host:port (host a name, an IPv4 address or a bracketed
// IPv6 one). Returns false and says why in `problem` if the list is empty or an entry is not of
// that form.
bool parse_etcd_endpoints(std::string_view list, std::vector<etcd_endpoint>& out,
                          std::string& problem);

struct etcd_config {
  std::vector<etcd_endpoint> endpoints;  // at least one
  std::chrono::milliseconds connect_timeout{1000};
  // From sending a request to having its whole answer.
  std::chrono::milliseconds request_timeout{5000};
  // etcd refuses requests over 1.5 MiB by default; an answer is a range of many keys.
  size_t max_response_bytes = 16 * 1024 * 1024;
  // Idle connections kept per endpoint for the next calls.
  size_t max_idle_connections = 4;
  std::chrono::seconds watch_keepalive_idle{4};
};

class etcd_store final : public metadata_store {
 public:
  etcd_store(boost::asio::any_io_executor executor, etcd_config config);
  ~etcd_store() override;
  etcd_store(const etcd_store&) = delete;
  etcd_store& operator=(const etcd_store&) = delete;

  boost::asio::awaitable<range_result> get(std::string key) override;
  boost::asio::awaitable<range_result> get_prefix(std::string prefix) override;
  boost::asio::awaitable<txn_result> txn(txn_request request) override;
  boost::asio::awaitable<lease_grant_result> grant_lease(int64_t ttl_seconds) override;
  boost::asio::awaitable<std::error_code> revoke_lease(int64_t lease) override;
  subscription keep_alive(int64_t lease, int64_t ttl_seconds,
                          std::function<void(std::error_code)> lost) override;
  subscription watch_prefix(std::string prefix, int64_t start_revision,
                            watch_callbacks callbacks) override;

 private:
  class client;
  // Shared with every call and loop in flight, so that they outlive the store safely.
  std::shared_ptr<client> client_;
};

}  // namespace sluice::server::coordination
