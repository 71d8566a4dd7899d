// LeaveGroup (key 13), versions 0-5.
//
// Removes members (one before v3, a batch by member or instance id from v3) and rebalances the
// rest.

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

wire::leave_group_response handle_leave_group(group_coordinator& groups, request_context& ctx,
                                              wire::leave_group_request& request) {
  return groups.leave(request, ctx.api_version);
}

}  // namespace sluice::server
