// OffsetDelete (key 47), versions 0.
//
// Deletes a group's committed offsets for partitions of topics the group no longer subscribes
// to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

#include "server/broker.h"
#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

wire::offset_delete_response handle_offset_delete(request_context& ctx,
                                                  wire::offset_delete_request& request) {
  return ctx.broker.groups().delete_offsets(request, ctx.api_version);
}

}  // namespace sluice::server
