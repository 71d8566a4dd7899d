// SyncGroup (key 14), versions 0-5.
//
// The leader hands in the assignment; every member's SyncGroup completes with its own share.
// Followers wait for the leader. Assignments are opaque bytes the broker only relays (so
// cooperative-sticky works unchanged).

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

boost::asio::awaitable<wire::sync_group_response> handle_sync_group(
    group_coordinator& groups, request_context& ctx, wire::sync_group_request& request) {
  co_return co_await groups.sync(request, ctx.api_version);
}

}  // namespace sluice::server
