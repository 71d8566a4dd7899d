// OffsetDelete (key 47), versions 0.
//
// Deletes a group's committed offsets for partitions of topics the group no longer subscribes
// to (GROUP_SUBSCRIBED_TO_TOPIC otherwise). The answer waits until the tombstones are durable; if
// they cannot be written, the offsets stay and the top-level error says why (as in Kafka 4).

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

boost::asio::awaitable<wire::offset_delete_response> handle_offset_delete(
    group_coordinator& groups, request_context& ctx, wire::offset_delete_request& request) {
  co_return co_await groups.delete_offsets(request, ctx.api_version);
}

}  // namespace sluice::server
