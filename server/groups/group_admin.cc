#include "server/groups/group_internal.h"

#include "server/logging.h"

namespace sluice::server {

// ---- ListGroups, DescribeGroups, DeleteGroups ------------------------------------------------

wire::list_groups_response group_coordinator::list_groups(wire::list_groups_request& request,
                                                          int16_t) {
  constexpr std::string_view classic = "classic";
  auto wanted = [](const std::vector<std::string>& filter, std::string_view value) {
    return filter.empty() || std::any_of(filter.begin(), filter.end(),
                                         [&](const std::string& f) { return iequals(f, value); });
  };
  wire::list_groups_response response;
  if (stopped_ || offsets_partitions_ <= 0) {
    response.error_code = code(error_code::coordinator_not_available);
    return response;
  }
  // Kafka lists the groups it has loaded, and says that the list may be missing some while a
  // partition is still loading.
  if (std::any_of(owned_.begin(), owned_.end(), [](const auto& o) { return !o.second; }))
    response.error_code = code(error_code::coordinator_load_in_progress);
  if (!wanted(request.types_filter, classic)) return response;
  for (const auto& [id, g] : groups_) {
    std::string_view state = group_state_name(g->state);
    if (g->state == group_state::dead || !wanted(request.states_filter, state)) continue;
    auto& out = response.groups.emplace_back();
    out.group_id = id;
    out.protocol_type = g->protocol_type;
    out.group_state = state;
    out.group_type = classic;
  }
  return response;
}

wire::describe_groups_response group_coordinator::describe_groups(
    wire::describe_groups_request& request, int16_t version) {
  wire::describe_groups_response response;
  for (const std::string& id : request.groups) {
    auto& out = response.groups.emplace_back();
    out.group_id = id;
    if (error_code e = group_status(id); e != error_code::none) {
      out.error_code = code(e);
      out.group_state = "";
      continue;
    }
    group* g = find_group(id);
    if (!g) {
      // Kafka up to DescribeGroups v5 describes an unknown group as Dead, without an error; v6
      // says GROUP_ID_NOT_FOUND (KIP-1043).
      out.group_state = group_state_name(group_state::dead);
      if (version >= 6) {
        out.error_code = code(error_code::group_id_not_found);
        out.error_message = "Group " + id + " not found.";
      }
      continue;
    }
    out.group_state = group_state_name(g->state);
    out.protocol_type = g->protocol_type;
    // Metadata and assignments only mean something once the generation has settled.
    bool stable = g->state == group_state::stable;
    if (stable) out.protocol_data = g->protocol_name.value_or("");
    for (const auto& m : g->members) {
      auto& dm = out.members.emplace_back();
      dm.member_id = m->id;
      dm.group_instance_id = m->instance_id;
      dm.client_id = m->client_id;
      dm.client_host = m->client_host;
      if (stable) {
        if (const auto* md = m->metadata_for(out.protocol_data)) dm.member_metadata = *md;
        dm.member_assignment = m->assignment;
      }
    }
  }
  return response;
}

asio::awaitable<wire::delete_groups_response> group_coordinator::delete_groups(
    wire::delete_groups_request& request, int16_t) {
  // Each group's result arrives with its tombstones; the answer goes once all have.
  struct results {
    wire::delete_groups_response response;
    size_t outstanding = 1;  // the loop below, until it has started every deletion
    std::shared_ptr<parked_reply<wire::delete_groups_response>> reply;
    void one_done() {
      if (--outstanding == 0) reply->complete(std::move(response));
    }
  };
  auto r = std::make_shared<results>();
  r->reply = std::make_shared<parked_reply<wire::delete_groups_response>>(executor_);
  for (const std::string& id : request.groups_names) {
    auto& out = r->response.results.emplace_back();
    out.group_id = id;
    if (error_code e = group_status(id); e != error_code::none) {
      out.error_code = code(e);
      continue;
    }
    group* g = find_group(id);
    if (!g || g->state == group_state::dead) {
      out.error_code = code(error_code::group_id_not_found);
      continue;
    }
    if (g->state != group_state::empty) {
      out.error_code = code(error_code::non_empty_group);
      continue;
    }
    // Commits in flight too: they land in the log before the tombstones.
    std::set<topic_partition> doomed;
    for (const auto& [tp, value] : g->offsets)
      doomed.insert(tp);
    for (const auto& [tp, count] : g->pending_commits)
      doomed.insert(tp);
    const size_t index = r->response.results.size() - 1;
    ++r->outstanding;
    bury(*g, std::vector<topic_partition>(doomed.begin(), doomed.end()),
         "deleted (DeleteGroups) with " + std::to_string(doomed.size()) + " committed offsets",
         [r, index](error_code e) {
           r->response.results[index].error_code = code(e);
           r->one_done();
         });
  }
  std::shared_ptr<parked_reply<wire::delete_groups_response>> reply = r->reply;
  r->one_done();
  co_return co_await reply->wait();
}

}  // namespace sluice::server
