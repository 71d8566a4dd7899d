// Heartbeat (key 12), versions 0-4.
//
// Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin, ILLEGAL_GENERATION
// and UNKNOWN_MEMBER_ID that it is stale, FENCED_INSTANCE_ID that its static identity moved on.

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

wire::heartbeat_response handle_heartbeat(group_coordinator& groups, request_context& ctx,
                                          wire::heartbeat_request& request) {
  return groups.heartbeat(request, ctx.api_version);
}

}  // namespace sluice::server
