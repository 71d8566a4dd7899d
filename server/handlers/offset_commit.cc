// OffsetCommit (key 8), versions 0-8.
//
// Commits offsets with their metadata string and leader epoch (v6+). Group members are checked
// against the generation; generation -1 with no member id is a standalone commit, allowed only
// while the group is empty (Kafka's rule). The answer waits until the coordinator's store has
// made the commit durable; a failed append answers its error for every partition.

#include "server/broker.h"
#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

boost::asio::awaitable<wire::offset_commit_response> handle_offset_commit(
    request_context& ctx, wire::offset_commit_request& request) {
  co_return co_await ctx.broker.groups().commit_offsets(request, ctx.api_version);
}

}  // namespace sluice::server
