// JoinGroup (key 11), versions 0-9.
//
// Joins the member to its group and waits until the rebalance completes: the group coordinator
// (server/groups/) holds the state machine. v4+ joins with an empty member id are answered
// MEMBER_ID_REQUIRED with an id to rejoin with; static members (v5+ group_instance_id) rejoin
// without a rebalance when nothing changed.

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

namespace {

// Kafka reports a member's host as InetAddress.toString() of the peer: "/1.2.3.4".
std::string client_host(const std::string& peer) {
  size_t colon = peer.rfind(':');
  return "/" + (colon == std::string::npos ? peer : peer.substr(0, colon));
}

}  // namespace

boost::asio::awaitable<wire::join_group_response> handle_join_group(
    group_coordinator& groups, request_context& ctx, wire::join_group_request& request) {
  co_return co_await groups.join(request, ctx.api_version, ctx.client_id.value_or(""),
                                 client_host(ctx.peer));
}

}  // namespace sluice::server
