#include "server/groups/group_internal.h"

#include "server/logging.h"

namespace sluice::server {

// ---- SyncGroup ------------------------------------------------------------------------------

asio::awaitable<wire::sync_group_response> group_coordinator::sync(
    wire::sync_group_request& request, int16_t) {
  std::shared_ptr<sync_reply> reply = do_sync(request);
  co_return co_await reply->wait();
}

std::shared_ptr<group_coordinator::sync_reply> group_coordinator::do_sync(
    wire::sync_group_request& request) {
  auto reply = std::make_shared<sync_reply>(executor_);
  auto fail = [&](error_code e) {
    reply->complete(sync_error(e));
    return reply;
  };
  if (request.group_id.empty()) return fail(error_code::invalid_group_id);
  if (error_code e = group_status(request.group_id); e != error_code::none) return fail(e);
  group* g = find_group(request.group_id);
  if (!g) return fail(error_code::unknown_member_id);
  if (g->state == group_state::dead) return fail(error_code::coordinator_not_available);
  if (g->is_fenced(request.member_id, request.group_instance_id))
    return fail(error_code::fenced_instance_id);
  member* m = g->find(request.member_id);
  if (!m) return fail(error_code::unknown_member_id);
  if (request.generation_id != g->generation) return fail(error_code::illegal_generation);
  // v5 names the protocol the member assigned with; it must be the group's.
  if ((request.protocol_type && *request.protocol_type != g->protocol_type) ||
      (request.protocol_name && request.protocol_name != g->protocol_name))
    return fail(error_code::inconsistent_group_protocol);

  switch (g->state) {
    case group_state::empty:
    case group_state::dead:
      return fail(error_code::unknown_member_id);
    case group_state::preparing_rebalance:
      return fail(error_code::rebalance_in_progress);
    case group_state::stable:
      reply->complete(g->sync_result(*m, error_code::none));
      schedule_heartbeat_expiry(*g, *m, milliseconds(m->session_timeout_ms));
      return reply;
    case group_state::completing_rebalance:
      break;
  }
  if (m->awaiting_sync) m->awaiting_sync->complete(sync_error(error_code::rebalance_in_progress));
  m->awaiting_sync = reply;
  if (g->leader_id != m->id) return reply;

  // The leader's assignments; a member it left out gets an empty one, unknown ids are ignored.
  // They take effect once stored (Kafka's setAndPropagateAssignment in the storeGroup callback).
  std::map<std::string, std::vector<uint8_t>, std::less<>> assignments;
  for (const auto& other : g->members) {
    std::vector<uint8_t>& assigned = assignments[other->id];
    for (auto& a : request.assignments) {
      if (a.member_id == other->id) {
        assigned = std::move(a.assignment);
        break;
      }
    }
  }
  group_metadata_record record = metadata_record(*g, &assignments);
  auto on_stored = [this, generation = g->generation, assignments = std::move(assignments)](
                       group& g, error_code e) mutable {
    // Members may have joined or left while the write was in flight: only the generation that
    // was stored can settle (Kafka's doSyncGroup callback).
    if (g.state != group_state::completing_rebalance || g.generation != generation) return;
    if (e != error_code::none) {
      for (auto& other : g.members)
        other->assignment.clear();
      propagate_assignment(g, e);
      maybe_prepare_rebalance(g);
      return;
    }
    for (auto& other : g.members) {
      auto it = assignments.find(other->id);
      other->assignment = it == assignments.end() ? std::vector<uint8_t>() : std::move(it->second);
    }
    propagate_assignment(g, error_code::none);
    set_state(g, group_state::stable);
  };
  store_group(*g, record, std::move(on_stored));
  return reply;
}

// ---- Heartbeat, LeaveGroup ------------------------------------------------------------------

wire::heartbeat_response group_coordinator::heartbeat(wire::heartbeat_request& request, int16_t) {
  wire::heartbeat_response response;
  auto answer = [&](error_code e) {
    response.error_code = code(e);
    return response;
  };
  if (request.group_id.empty()) return answer(error_code::invalid_group_id);
  if (error_code e = group_status(request.group_id); e != error_code::none) {
    // Kafka answers a heartbeat to a group being loaded blindly: its member must not think it
    // was dropped just because the coordinator moved.
    return answer(e == error_code::coordinator_load_in_progress ? error_code::none : e);
  }
  group* g = find_group(request.group_id);
  if (!g) return answer(error_code::unknown_member_id);
  if (g->state == group_state::dead) return answer(error_code::coordinator_not_available);
  if (g->is_fenced(request.member_id, request.group_instance_id))
    return answer(error_code::fenced_instance_id);
  member* m = g->find(request.member_id);
  if (!m) return answer(error_code::unknown_member_id);
  if (request.generation_id != g->generation) return answer(error_code::illegal_generation);
  switch (g->state) {
    case group_state::empty:
    case group_state::dead:
      return answer(error_code::unknown_member_id);
    case group_state::preparing_rebalance:
      schedule_heartbeat_expiry(*g, *m, milliseconds(m->session_timeout_ms));
      return answer(error_code::rebalance_in_progress);
    case group_state::completing_rebalance:
    case group_state::stable:
      // Members may heartbeat between their JoinGroup and SyncGroup responses (Kafka 2.5+).
      schedule_heartbeat_expiry(*g, *m, milliseconds(m->session_timeout_ms));
      return answer(error_code::none);
  }
  return response;
}

wire::leave_group_response group_coordinator::leave(wire::leave_group_request& request,
                                                    int16_t version) {
  // Before v3 one member leaves, named at the top level; its error is the top-level error.
  std::vector<wire::leave_group_request::member_identity> leaving;
  if (version < 3) {
    leaving.emplace_back().member_id = request.member_id;
  } else {
    leaving = request.members;
  }
  wire::leave_group_response response;
  if (request.group_id.empty()) {
    response.error_code = code(error_code::invalid_group_id);
    return response;
  }
  if (error_code e = group_status(request.group_id); e != error_code::none) {
    response.error_code = code(e);
    return response;
  }
  group* g = find_group(request.group_id);
  if (g && g->state == group_state::dead) {
    response.error_code = code(error_code::coordinator_not_available);
    return response;
  }
  for (const auto& who : leaving) {
    error_code e = error_code::none;
    const auto& instance = who.group_instance_id;
    if (!g) {
      e = error_code::unknown_member_id;
    } else if (!who.member_id.empty() && g->is_fenced(who.member_id, instance)) {
      e = error_code::fenced_instance_id;
    } else if (g->pending_members.erase(who.member_id)) {
      try_complete_join(*g);
    } else if (instance && g->static_members.contains(*instance)) {
      // A static member may leave by instance id alone.
      remove_member(*g, g->static_members.find(*instance)->second, "left the group");
    } else if (g->find(who.member_id)) {
      remove_member(*g, who.member_id, "left the group");
    } else {
      e = error_code::unknown_member_id;
    }
    wire::leave_group_response::member_response mr;
    mr.member_id = who.member_id;
    mr.group_instance_id = instance;
    mr.error_code = code(e);
    response.members.push_back(std::move(mr));
  }
  if (version < 3 && !response.members.empty())
    response.error_code = response.members[0].error_code;
  return response;
}

}  // namespace sluice::server
