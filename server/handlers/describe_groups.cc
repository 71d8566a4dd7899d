// DescribeGroups (key 15), versions 0-5.
//
// Describes groups: state, protocol type and protocol, and each member with its client id,
// host, metadata and assignment. An unknown group is reported as Dead, as Kafka does.

#include "server/broker.h"
#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

wire::describe_groups_response handle_describe_groups(request_context& ctx,
                                                      wire::describe_groups_request& request) {
  return ctx.broker.groups().describe_groups(request, ctx.api_version);
}

}  // namespace sluice::server
