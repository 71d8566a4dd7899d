// OffsetFetch (key 9), versions 0-8.
//
// Returns committed offsets (-1 where none); a null topic list (v2+) returns all of a group's;
// v8 takes several groups at once.

#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"

namespace sluice::server {

wire::offset_fetch_response handle_offset_fetch(group_coordinator& groups, request_context& ctx,
                                                wire::offset_fetch_request& request) {
  return groups.fetch_offsets(request, ctx.api_version);
}

}  // namespace sluice::server
