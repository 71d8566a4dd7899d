// DescribeGroups (key 15), versions 0-6.
//
// Describes groups: state, protocol type and protocol, and each member with its client id,
// host, metadata and assignment. An unknown group is reported as Dead, as Kafka does. Authorized
// operations (v3+), when asked for, are every group operation, as Kafka reports them without an
// authorizer.

#include "server/authorized_operations.h"
#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

wire::describe_groups_response handle_describe_groups(group_coordinator& groups,
                                                      request_context& ctx,
                                                      wire::describe_groups_request& request) {
  wire::describe_groups_response response = groups.describe_groups(request, ctx.api_version);
  for (auto& g : response.groups) {
    if (g.error_code != 0) continue;  // Kafka fills them in only for groups it describes
    g.authorized_operations =
        authorized_operations(request.include_authorized_operations, group_operations);
  }
  return response;
}

}  // namespace sluice::server
