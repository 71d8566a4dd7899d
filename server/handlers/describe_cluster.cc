// DescribeCluster (key 60), versions 0-1.
//
// Cluster id from meta.properties; the controller and the live brokers (this one alone when it
// runs alone) at their advertised addresses on the listener the request came in on, with their
// racks (as Kafka lists them with MetadataCache.getAliveBrokerNodes(request.context.listenerName)).
// v1's endpoint_type 1 (brokers) is answered. As from a Kafka broker's listener
// (AuthHelper.computeDescribeClusterResponse), 2 (controllers) is MISMATCHED_ENDPOINT_TYPE and any
// other type UNSUPPORTED_ENDPOINT_TYPE, the error answer leaving endpoint_type at its default:
// Sluice has no separate controller listener. Cluster authorized operations, when asked for, are
// every cluster operation, as Kafka reports them without an authorizer.

#include <string>

#include "server/authorized_operations.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"
#include "wire/error_code.h"

namespace sluice::server {

namespace {
constexpr int8_t endpoint_brokers = 1;
constexpr int8_t endpoint_controllers = 2;
}  // namespace

wire::describe_cluster_response handle_describe_cluster(const metadata_view& metadata,
                                                        request_context& ctx,
                                                        wire::describe_cluster_request& request) {
  wire::describe_cluster_response response;
  response.cluster_authorized_operations =
      authorized_operations(request.include_cluster_authorized_operations, cluster_operations);
  if (request.endpoint_type == endpoint_controllers) {
    response.error_code = static_cast<int16_t>(wire::error_code::mismatched_endpoint_type);
    response.error_message =
        "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type "
        "CONTROLLER";
    return response;
  }
  if (request.endpoint_type != endpoint_brokers) {
    response.error_code = static_cast<int16_t>(wire::error_code::unsupported_endpoint_type);
    response.error_message = "Unsupported endpoint type " + std::to_string(request.endpoint_type);
    return response;
  }
  response.endpoint_type = request.endpoint_type;
  response.cluster_id = metadata.cluster_id();
  response.controller_id = metadata.controller_id();
  for (broker_address& a : metadata.live_brokers(ctx.listener_name)) {
    auto& out = response.brokers.emplace_back();
    out.broker_id = a.node_id;
    out.host = std::move(a.host);
    out.port = a.port;
    out.rack = std::move(a.rack);
  }
  return response;
}

}  // namespace sluice::server
