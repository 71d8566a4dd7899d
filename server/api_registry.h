#pragma once
// The one list of Kafka APIs this broker serves. Each entry names the API, the version range it
// advertises and the handler; dispatch, the version check and the ApiVersions response all come
// from it (api_registry.cc), so no second list has to be kept in sync by hand.
//
// A handler is a function `Resp handle_x(deps..., request_context&, Req&)` over the generated
// message structs, where `deps` are the components it uses (handlers/handlers.h), each one a
// member of handler_services. It may return `std::optional<Resp>` (nullopt: no response, as for
// acks=0 produce) or `boost::asio::awaitable<Resp>` when it waits (long-poll fetch). The runner
// here decodes the request, passes the handler its components from the services it was given,
// calls it and encodes the response frame; handlers never branch on the codec's versions.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "server/request_budget.h"
#include "server/request_context.h"
#include "wire/frame.h"

namespace sluice::server {

struct handler_services;

// The response to one request, filled when the handler finishes. A connection sends slots
// strictly in request order.
struct response_slot {
  wire::frame frame;
  bool ready = false;
  bool send = true;          // false: nothing goes on the wire (acks=0 produce)
  bool close_after = false;  // close the connection once everything before it is sent
  // The response's bytes in queued.max.request.bytes, until the slot is sent and dropped.
  request_budget::ticket held;
};

// Told when a slot becomes ready: the connection that owns the slot.
class response_sink {
 public:
  virtual void response_ready() = 0;

 protected:
  ~response_sink() = default;
};

// One request frame as read from the socket, without its size prefix: header then body. Owned,
// because a handler that waits may need it after the read buffer moved on (produce stamps offsets
// into these bytes and writes them to the log). Freed as soon as the decoded request no longer
// points into it, with everything after the body that Kafka ignores.
struct inbound_request {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
  // The bytes in queued.max.request.bytes (and the request in queued.max.requests).
  request_budget::ticket held;
  std::span<uint8_t> bytes() const { return {data.get(), size}; }
};

struct api_handler {
  int16_t key;
  std::string_view name;
  int16_t min_version;  // advertised
  int16_t max_version;
  // Lowest version actually served; below it a request is refused like any unsupported version.
  // Only Produce differs from min_version: Kafka 4 advertises Produce v0-2 for librdkafka's sake
  // but serves only v3+ (KAFKA-18659).
  int16_t min_served_version;
  // Decodes, handles and encodes; completes `slot` now or later through `sink`. Returns false if
  // the request cannot be parsed, in which case the connection is closed (Kafka does the same).
  bool (*invoke)(const handler_services& services, request_context ctx, inbound_request request,
                 std::shared_ptr<response_slot> slot, std::shared_ptr<response_sink> sink);
};

std::span<const api_handler> api_handlers();
const api_handler* find_api_handler(int16_t key);

// Routes one request frame. Returns false when the connection must be closed: unknown API key,
// a version outside the served range (except ApiVersions, which answers UNSUPPORTED_VERSION
// in a v0 body as KIP-511 requires), or a body that does not parse. `reason` then says why, for
// the one log line. `services` (the broker's) gives each handler the components it names.
bool dispatch_request(const handler_services& services, request_context ctx,
                      inbound_request request, std::shared_ptr<response_slot> slot,
                      std::shared_ptr<response_sink> sink, std::string& reason);

}  // namespace sluice::server
