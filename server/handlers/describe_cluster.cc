// DescribeCluster (key 60), versions 0-1.
//
// One broker, which is also the controller: cluster id from meta.properties, controller_id = this
// node, brokers = this node at its advertised address, no rack. v1's endpoint_type 1 (brokers) is
// answered; 2 (controllers) is UNSUPPORTED_ENDPOINT_TYPE, as from a Kafka broker: Sluice has no
// separate controller listener (KIP-919 clients bootstrap from brokers here).
//
// Deviations: cluster_authorized_operations is always "not provided" (INT32_MIN), even when
// asked for, as Metadata does here: there is no authorizer.

#include <limits>

#include "server/broker.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

namespace {
constexpr int8_t endpoint_brokers = 1;
}  // namespace

wire::describe_cluster_response handle_describe_cluster(request_context& ctx,
                                                        wire::describe_cluster_request& request) {
  broker& b = ctx.broker;
  wire::describe_cluster_response response;
  response.endpoint_type = request.endpoint_type;
  response.cluster_authorized_operations = std::numeric_limits<int32_t>::min();
  if (request.endpoint_type != endpoint_brokers) {
    response.error_code = static_cast<int16_t>(wire::error_code::unsupported_endpoint_type);
    response.error_message =
        "Sluice serves only endpoint type BROKER (1); it is its own controller";
    return response;
  }
  response.cluster_id = b.cluster_id();
  response.controller_id = b.config().node_id;
  auto& self = response.brokers.emplace_back();
  self.broker_id = b.config().node_id;
  self.host = b.advertised().host;
  self.port = b.advertised().port;
  return response;
}

}  // namespace sluice::server
