// ListGroups (key 16), versions 0-4.
//
// Lists the groups with their protocol type and (v4+) state, optionally filtered by state.

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

wire::list_groups_response handle_list_groups(group_coordinator& groups, request_context& ctx,
                                              wire::list_groups_request& request) {
  return groups.list_groups(request, ctx.api_version);
}

}  // namespace sluice::server
