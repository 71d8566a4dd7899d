// FindCoordinator (key 10), versions 0-4; v4 looks up several keys at once.
//
// On a single broker this broker coordinates every group (key type 0) and every transactional id
// (key type 1). What a client can then do with its coordinator is what ApiVersions advertises:
// the group and transaction APIs arrive with their own issues, and clients that need them report
// the broker as too old rather than failing later.
//
// Advertised from v0 also because librdkafka before 2.11.1 takes FindCoordinator v0 as its
// "broker >= 0.8.2" probe and will not compress with lz4 without it (rdkafka_feature.c).
//
// The coordinator's address is the advertised address of the listener the request came in on, as
// Kafka looks the coordinator up with the request's listener name (KafkaApis.getCoordinator:
// MetadataCache.getAliveBrokerNode(leaderId, request.context.listenerName)).
//
// Errors as Kafka: an empty group or transactional id, or an unknown key type, is
// INVALID_REQUEST.

#include "server/broker.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

namespace {

using wire::error_code;

constexpr int8_t group_key = 0;
constexpr int8_t transaction_key = 1;

}  // namespace

wire::find_coordinator_response handle_find_coordinator(request_context& ctx,
                                                        wire::find_coordinator_request& request) {
  const listener& self = ctx.broker.advertised(ctx.listener_name);
  const int32_t node_id = ctx.broker.config().node_id;
  auto lookup = [&](const std::string& key) {
    wire::find_coordinator_response::coordinator c;
    c.key = key;
    bool known_type = request.key_type == group_key || request.key_type == transaction_key;
    if (!known_type || key.empty()) {
      c.error_code = static_cast<int16_t>(error_code::invalid_request);
      c.node_id = -1;
      c.port = -1;
      return c;
    }
    c.node_id = node_id;
    c.host = self.host;
    c.port = self.port;
    return c;
  };

  wire::find_coordinator_response response;
  // v4+ carries a list of keys; older versions one key and a flat answer. Filling both forms
  // lets the codec write whichever the version has.
  if (!request.coordinator_keys.empty()) {
    for (const std::string& key : request.coordinator_keys) {
      response.coordinators.push_back(lookup(key));
    }
    return response;
  }
  wire::find_coordinator_response::coordinator c = lookup(request.key);
  response.error_code = c.error_code;
  response.node_id = c.node_id;
  response.host = c.host;
  response.port = c.port;
  response.coordinators.push_back(std::move(c));
  return response;
}

}  // namespace sluice::server
