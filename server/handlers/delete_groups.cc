// DeleteGroups (key 42), versions 0-2.
//
// Deletes empty groups and their offsets; NON_EMPTY_GROUP while members remain,
// GROUP_ID_NOT_FOUND for an unknown group. The answer waits until the tombstones are durable; a
// group whose tombstones cannot be written stays, with the error in its result.

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

boost::asio::awaitable<wire::delete_groups_response> handle_delete_groups(
    group_coordinator& groups, request_context& ctx, wire::delete_groups_request& request) {
  co_return co_await groups.delete_groups(request, ctx.api_version);
}

}  // namespace sluice::server
