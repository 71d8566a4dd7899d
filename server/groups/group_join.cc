#include "server/groups/group_internal.h"

#include "server/logging.h"

namespace sluice::server {

// ---- JoinGroup ------------------------------------------------------------------------------

asio::awaitable<wire::join_group_response> group_coordinator::join(
    wire::join_group_request& request, int16_t version, std::string client_id,
    std::string client_host) {
  std::shared_ptr<join_reply> reply =
      do_join(request, version, std::move(client_id), std::move(client_host));
  co_return co_await reply->wait();
}

std::shared_ptr<group_coordinator::join_reply> group_coordinator::do_join(
    wire::join_group_request& request, int16_t version, std::string client_id,
    std::string client_host) {
  auto reply = std::make_shared<join_reply>(executor_);
  if (request.group_id.empty()) {
    reply->complete(join_error(request.member_id, error_code::invalid_group_id));
    return reply;
  }
  if (error_code e = group_status(request.group_id); e != error_code::none) {
    reply->complete(join_error(request.member_id, e));
    return reply;
  }
  milliseconds session(request.session_timeout_ms);
  if (session < config_.min_session_timeout || session > config_.max_session_timeout) {
    reply->complete(join_error(request.member_id, error_code::invalid_session_timeout));
    return reply;
  }
  // v0 has no rebalance timeout: the session timeout serves as both, as in Kafka.
  join_params p{
      request, version, std::move(client_id), std::move(client_host),
      request.rebalance_timeout_ms < 0 ? request.session_timeout_ms : request.rebalance_timeout_ms};
  bool unknown = request.member_id.empty();
  group* g = find_group(request.group_id);
  if (!g) {
    // A member id for a group that does not exist is stale: the member must start over.
    if (!unknown) {
      reply->complete(join_error(request.member_id, error_code::unknown_member_id));
      return reply;
    }
    g = &get_or_create_group(request.group_id);
  }
  if (unknown)
    join_unknown_member(*g, p, reply);
  else
    join_known_member(*g, p, reply);
  try_complete_join(*g);
  return reply;
}

void group_coordinator::join_unknown_member(group& g, join_params& p,
                                            const std::shared_ptr<join_reply>& reply) {
  const wire::join_group_request& r = p.request;
  if (g.state == group_state::dead) {
    reply->complete(join_error("", error_code::coordinator_not_available));
    return;
  }
  if (!g.supports_protocols(r.protocol_type, r.protocols, nullptr)) {
    reply->complete(join_error("", error_code::inconsistent_group_protocol));
    return;
  }
  std::string id = new_member_id(r.group_instance_id ? *r.group_instance_id : p.client_id);
  if (r.group_instance_id) {
    auto it = g.static_members.find(*r.group_instance_id);
    if (it != g.static_members.end()) {
      member* old = g.find(it->second);
      std::string old_id = old->id;
      old->id = id;
      it->second = id;
      if (g.leader_id == old_id) g.leader_id = id;
      // Requests still parked under the old id belong to a fenced incarnation.
      if (old->awaiting_join) {
        old->awaiting_join->complete(join_error(old_id, error_code::fenced_instance_id));
        old->awaiting_join.reset();
      }
      if (old->awaiting_sync) {
        old->awaiting_sync->complete(sync_error(error_code::fenced_instance_id));
        old->awaiting_sync.reset();
      }
      rejoin_static_member(g, *old, old_id, p, reply);
      return;
    }
  }
  // KIP-394: from v4 a dynamic member first gets its id, and must join again with it.
  if (p.version >= 4 && !r.group_instance_id) {
    add_pending_member(g, id, milliseconds(r.session_timeout_ms));
    reply->complete(join_error(id, error_code::member_id_required));
    return;
  }
  add_member_and_rebalance(g, std::move(id), p, reply);
}

// A known static member came back with a new member id (a restart): it replaces its old
// incarnation. In a Stable group with nothing changed it gets the current generation back and
// will receive its old assignment from SyncGroup, without disturbing the others.
void group_coordinator::rejoin_static_member(group& g, member& m, const std::string& old_id,
                                             join_params& p,
                                             const std::shared_ptr<join_reply>& reply) {
  const wire::join_group_request& r = p.request;
  // The response names the leader as it was before the replacement, so a rejoining leader does
  // not believe it leads and assign to a Stable group (Kafka), unless the client understands
  // skip_assignment (KIP-814, v9).
  bool was_leader = g.leader_id == m.id;
  auto old = std::make_shared<replaced_member>(
      replaced_member{m.id, old_id, m.client_id, m.client_host, m.session_timeout_ms,
                      m.rebalance_timeout_ms, m.protocols, g.generation, reply,
                      was_leader ? old_id : g.leader_id, was_leader && p.version >= 9});
  log_info("group ", log_safe(g.id), ": static member ", log_safe(*m.instance_id), " rejoined as ",
           log_safe(m.id), " (was ", log_safe(old_id), ")");
  bool unchanged = m.matches(r.protocols);
  m.client_id = p.client_id;
  m.client_host = p.client_host;
  m.session_timeout_ms = r.session_timeout_ms;
  m.rebalance_timeout_ms = p.rebalance_timeout_ms;
  m.protocols = r.protocols;
  schedule_heartbeat_expiry(g, m, milliseconds(m.session_timeout_ms));

  switch (g.state) {
    case group_state::stable:
      if (unchanged && g.select_protocol() == g.protocol_name) {
        // Answered once the new member id is durable. Parked as a join meanwhile, so that a
        // rebalance starting before then counts the member in and answers it (as Kafka's
        // updateMember does with the join callback).
        m.awaiting_join = reply;
        store_group(g, metadata_record(g),
                    [this, old](group& g, error_code e) { on_static_rejoin_stored(g, old, e); });
        return;
      }
      m.awaiting_join = reply;
      prepare_rebalance(g);
      return;
    case group_state::completing_rebalance:
      // The leader may already be assigning to the old member id: start over.
      m.awaiting_join = reply;
      prepare_rebalance(g);
      return;
    case group_state::preparing_rebalance:
      m.awaiting_join = reply;
      return;
    case group_state::empty:
    case group_state::dead:
      reply->complete(join_error(m.id, error_code::unknown_member_id));
      return;
  }
}

// Kafka's storeGroup callback in updateStaticMemberAndRebalance.
void group_coordinator::on_static_rejoin_stored(group& g,
                                                const std::shared_ptr<replaced_member>& old,
                                                error_code error) {
  member* m = g.find(old->new_id);
  // Already answered: fenced by a newer incarnation, removed, or taken into a rebalance.
  if (!m || m->awaiting_join != old->reply) return;
  // A rebalance started meanwhile: it counts the member in, answers it and stores its own
  // generation, which supersedes this write whatever became of it.
  if (g.state != group_state::stable || g.generation != old->generation) return;
  m->awaiting_join.reset();
  if (error != error_code::none) {
    // The log still names the old incarnation: so does memory again (Kafka reverts too).
    log_warn("group ", log_safe(g.id), ": storing static member ", log_safe(*m->instance_id),
             " as ", log_safe(m->id), " failed (", wire::error_name(error), "); it stays ",
             log_safe(old->old_id));
    m->id = old->old_id;
    g.static_members[*m->instance_id] = old->old_id;
    if (g.leader_id == old->new_id) g.leader_id = old->old_id;
    m->client_id = old->client_id;
    m->client_host = old->client_host;
    m->session_timeout_ms = old->session_timeout_ms;
    m->rebalance_timeout_ms = old->rebalance_timeout_ms;
    m->protocols = old->protocols;
    schedule_heartbeat_expiry(g, *m, milliseconds(m->session_timeout_ms));
    wire::join_group_response r = join_error("", error);
    r.generation_id = g.generation;
    r.protocol_type = g.protocol_type;
    r.protocol_name = g.protocol_name;
    r.leader = old->previous_leader;
    old->reply->complete(std::move(r));
    return;
  }
  wire::join_group_response resp = g.join_result(*m, old->skip_assignment);
  resp.skip_assignment = old->skip_assignment;
  if (!old->skip_assignment) resp.leader = old->previous_leader;
  old->reply->complete(std::move(resp));
}

void group_coordinator::join_known_member(group& g, join_params& p,
                                          const std::shared_ptr<join_reply>& reply) {
  const wire::join_group_request& r = p.request;
  if (g.state == group_state::dead) {
    reply->complete(join_error(r.member_id, error_code::coordinator_not_available));
    return;
  }
  member* m = g.find(r.member_id);
  if (!g.supports_protocols(r.protocol_type, r.protocols, m)) {
    reply->complete(join_error(r.member_id, error_code::inconsistent_group_protocol));
    return;
  }
  if (g.pending_members.contains(r.member_id)) {
    add_member_and_rebalance(g, r.member_id, p, reply);
    return;
  }
  if (g.is_fenced(r.member_id, r.group_instance_id)) {
    reply->complete(join_error(r.member_id, error_code::fenced_instance_id));
    return;
  }
  if (!m || (r.group_instance_id && !g.static_members.contains(*r.group_instance_id))) {
    reply->complete(join_error(r.member_id, error_code::unknown_member_id));
    return;
  }
  switch (g.state) {
    case group_state::preparing_rebalance:
      update_member_and_rebalance(g, *m, p, reply);
      return;
    case group_state::completing_rebalance:
      // The same metadata again: the member lost the first response.
      if (m->matches(r.protocols))
        reply->complete(g.join_result(*m, g.leader_id == m->id));
      else
        update_member_and_rebalance(g, *m, p, reply);
      return;
    case group_state::stable:
      // A leader's join forces a rebalance: that is how it reacts to topic metadata changes.
      if (g.leader_id == m->id || !m->matches(r.protocols))
        update_member_and_rebalance(g, *m, p, reply);
      else
        reply->complete(g.join_result(*m, false));
      return;
    case group_state::empty:
    case group_state::dead:
      reply->complete(join_error(r.member_id, error_code::unknown_member_id));
      return;
  }
}

void group_coordinator::add_member_and_rebalance(group& g, std::string member_id, join_params& p,
                                                 const std::shared_ptr<join_reply>& reply) {
  const wire::join_group_request& r = p.request;
  auto m = std::make_unique<member>();
  m->id = std::move(member_id);
  m->instance_id = r.group_instance_id;
  m->client_id = p.client_id;
  m->client_host = p.client_host;
  m->session_timeout_ms = r.session_timeout_ms;
  m->rebalance_timeout_ms = p.rebalance_timeout_ms;
  m->protocols = r.protocols;
  m->is_new = true;
  m->awaiting_join = reply;
  if (g.members.empty()) g.protocol_type = r.protocol_type;
  if (g.leader_id.empty()) g.leader_id = m->id;
  if (g.state == group_state::preparing_rebalance && g.initial_delay) g.new_member_added = true;
  if (m->instance_id)
    g.static_members[*m->instance_id] = m->id;
  else
    g.pending_members.erase(m->id);
  member& added = *g.members.emplace_back(std::move(m));
  log_info("group ", log_safe(g.id), ": member ", log_safe(added.id), " joined",
           added.instance_id ? " (static, instance " + log_safe(*added.instance_id) + ")" : "");
  // A new member cannot heartbeat before its join completes; this bounds a join whose client
  // went away.
  schedule_heartbeat_expiry(g, added, config_.new_member_join_timeout);
  maybe_prepare_rebalance(g);
}

void group_coordinator::update_member_and_rebalance(group& g, member& m, join_params& p,
                                                    const std::shared_ptr<join_reply>& reply) {
  const wire::join_group_request& r = p.request;
  m.protocols = r.protocols;
  m.session_timeout_ms = r.session_timeout_ms;
  m.rebalance_timeout_ms = p.rebalance_timeout_ms;
  if (g.members.size() == 1) g.protocol_type = r.protocol_type;
  if (m.awaiting_join)
    m.awaiting_join->complete(join_error(m.id, error_code::rebalance_in_progress));
  m.awaiting_join = reply;
  maybe_prepare_rebalance(g);
}

void group_coordinator::add_pending_member(group& g, const std::string& member_id,
                                           milliseconds timeout) {
  g.pending_members[member_id] = timers_->schedule(timeout, [this, group_id = g.id, member_id] {
    group* g = find_group(group_id);
    if (g && g->pending_members.erase(member_id)) try_complete_join(*g);
  });
}

// ---- Rebalance ------------------------------------------------------------------------------

void group_coordinator::maybe_prepare_rebalance(group& g) {
  if (g.state == group_state::stable || g.state == group_state::completing_rebalance ||
      g.state == group_state::empty)
    prepare_rebalance(g);
}

void group_coordinator::prepare_rebalance(group& g) {
  // Members waiting for an assignment of the generation being abandoned must rejoin.
  if (g.state == group_state::completing_rebalance) {
    for (auto& m : g.members)
      m->assignment.clear();
    propagate_assignment(g, error_code::rebalance_in_progress);
  }
  bool from_empty = g.state == group_state::empty;
  set_state(g, group_state::preparing_rebalance);
  if (from_empty && config_.initial_rebalance_delay.count() > 0) {
    g.initial_delay = true;
    g.new_member_added = false;
    g.initial_delay_remaining =
        std::max(g.rebalance_timeout() - config_.initial_rebalance_delay, milliseconds(0));
    arm_rebalance_timer(g, config_.initial_rebalance_delay);
    return;
  }
  g.initial_delay = false;
  arm_rebalance_timer(g, g.rebalance_timeout());
  try_complete_join(g);
}

void group_coordinator::arm_rebalance_timer(group& g, milliseconds delay) {
  g.rebalance_timer = timers_->schedule(delay, [this, group_id = g.id] {
    if (group* g = find_group(group_id)) on_rebalance_timer(*g);
  });
}

void group_coordinator::on_rebalance_timer(group& g) {
  if (g.state != group_state::preparing_rebalance) return;
  if (g.initial_delay && g.new_member_added && g.initial_delay_remaining.count() > 0) {
    milliseconds delay = std::min(config_.initial_rebalance_delay, g.initial_delay_remaining);
    g.initial_delay_remaining -= delay;
    g.new_member_added = false;
    arm_rebalance_timer(g, delay);
    return;
  }
  g.initial_delay = false;
  complete_join(g);
}

void group_coordinator::try_complete_join(group& g) {
  if (g.state == group_state::preparing_rebalance && !g.initial_delay && g.all_members_joined())
    complete_join(g);
}

void group_coordinator::complete_join(group& g) {
  g.rebalance_timer.cancel();
  // Dynamic members that did not rejoin in time are gone. Static members stay until their
  // session expires (Kafka): they may be restarting.
  std::erase_if(g.members, [&](const std::unique_ptr<member>& m) {
    if (m->awaiting_join || m->instance_id) return false;
    log_info("group ", log_safe(g.id), ": member ", log_safe(m->id),
             " removed (did not rejoin in time)");
    if (m->awaiting_sync) m->awaiting_sync->complete(sync_error(error_code::unknown_member_id));
    return true;
  });
  if (!g.find(g.leader_id)) g.leader_id.clear();
  // The leader must be a member that joined this generation.
  member* leader = g.find(g.leader_id);
  if (!leader || !leader->awaiting_join) {
    auto it = std::find_if(g.members.begin(), g.members.end(),
                           [](const auto& m) { return m->awaiting_join != nullptr; });
    if (it == g.members.end() && !g.members.empty()) {
      // Only static members that have not rejoined remain: wait for them or their expiry.
      arm_rebalance_timer(g, g.rebalance_timeout());
      return;
    }
    g.leader_id = it == g.members.end() ? std::string() : (*it)->id;
  }

  ++g.generation;
  if (g.members.empty()) {
    log_info("group ", log_safe(g.id), ": generation ", g.generation, " is empty");
    g.protocol_name.reset();
    set_state(g, group_state::empty);
    store_group(g, metadata_record(g), [generation = g.generation](group& g, error_code e) {
      // Kafka only warns: no member waits for this, and the members of the generation the log
      // still holds expire after a restart.
      if (e != error_code::none && g.state == group_state::empty && g.generation == generation) {
        log_warn("group ", log_safe(g.id), ": storing empty generation ", generation,
                 " failed: ", wire::error_name(e));
      }
    });
    return;
  }
  g.protocol_name = g.select_protocol();
  set_state(g, group_state::completing_rebalance);
  log_info("group ", log_safe(g.id), ": generation ", g.generation, " with ", g.members.size(),
           " members, protocol ", log_safe(g.protocol_name.value_or("(none)")), ", leader ",
           log_safe(g.leader_id));
  for (auto& m : g.members) {
    if (m->awaiting_join) {
      m->awaiting_join->complete(g.join_result(*m, m->id == g.leader_id));
      m->awaiting_join.reset();
    }
    m->is_new = false;
    schedule_heartbeat_expiry(g, *m, milliseconds(m->session_timeout_ms));
  }
}

// Removes a member and answers whatever it had parked; the group rebalances without it.
void group_coordinator::remove_member(group& g, std::string_view member_id,
                                      std::string_view reason) {
  auto it = std::find_if(g.members.begin(), g.members.end(),
                         [&](const auto& m) { return m->id == member_id; });
  if (it == g.members.end()) return;
  member& m = **it;
  log_info("group ", log_safe(g.id), ": member ", log_safe(m.id), " removed (", reason, ")");
  if (m.awaiting_join) m.awaiting_join->complete(join_error("", error_code::unknown_member_id));
  if (m.awaiting_sync) m.awaiting_sync->complete(sync_error(error_code::unknown_member_id));
  if (m.instance_id) g.static_members.erase(*m.instance_id);
  bool was_leader = g.leader_id == m.id;
  g.members.erase(it);
  if (was_leader) g.leader_id = g.members.empty() ? std::string() : g.members.front()->id;
  switch (g.state) {
    case group_state::stable:
    case group_state::completing_rebalance:
      maybe_prepare_rebalance(g);
      break;
    case group_state::preparing_rebalance:
      try_complete_join(g);
      break;
    case group_state::empty:
    case group_state::dead:
      break;
  }
}

void group_coordinator::propagate_assignment(group& g, error_code error) {
  for (auto& m : g.members) {
    if (!m->awaiting_sync) continue;
    m->awaiting_sync->complete(g.sync_result(*m, error));
    m->awaiting_sync.reset();
    // Its session may have run out while it waited for the leader: start it afresh.
    schedule_heartbeat_expiry(g, *m, milliseconds(m->session_timeout_ms));
  }
}

void group_coordinator::schedule_heartbeat_expiry(group& g, member& m, milliseconds timeout) {
  m.heartbeat_timer = timers_->schedule(timeout, [this, group_id = g.id, member_id = m.id] {
    on_heartbeat_expired(group_id, member_id);
  });
}

void group_coordinator::on_heartbeat_expired(const std::string& group_id,
                                             const std::string& member_id) {
  group* g = find_group(group_id);
  member* m = g ? g->find(member_id) : nullptr;
  if (!m) return;
  // A member parked in a rebalance cannot heartbeat; the rebalance timeout bounds it instead
  // (Kafka's shouldKeepAlive). A new member's deadline is the join timeout, which does expire.
  if ((m->awaiting_join && !m->is_new) || m->awaiting_sync) {
    schedule_heartbeat_expiry(*g, *m, milliseconds(m->session_timeout_ms));
    return;
  }
  remove_member(*g, member_id, "session timed out");
}

group_metadata_record group_coordinator::metadata_record(
    const group& g,
    const std::map<std::string, std::vector<uint8_t>, std::less<>>* assignments) const {
  group_metadata_record record;
  record.protocol_type = g.protocol_type;
  record.generation = g.generation;
  record.protocol_name = g.protocol_name;
  if (!g.leader_id.empty()) record.leader = g.leader_id;
  for (const auto& m : g.members) {
    group_metadata_record::member rm;
    rm.member_id = m->id;
    rm.group_instance_id = m->instance_id;
    rm.client_id = m->client_id;
    rm.client_host = m->client_host;
    rm.rebalance_timeout_ms = m->rebalance_timeout_ms;
    rm.session_timeout_ms = m->session_timeout_ms;
    if (const auto* md = m->metadata_for(g.protocol_name.value_or(""))) rm.subscription = *md;
    if (assignments) {
      auto it = assignments->find(m->id);
      if (it != assignments->end()) rm.assignment = it->second;
    } else {
      rm.assignment = m->assignment;
    }
    record.members.push_back(std::move(rm));
  }
  return record;
}

void group_coordinator::store_group(group& g, const group_metadata_record& record,
                                    std::function<void(group&, error_code)> then) {
  if (!store_) {
    then(g, error_code::none);
    return;
  }
  store_->store_group(g.id, record,
                      [weak = g.weak_from_this(), then = std::move(then)](error_code e) {
                        if (std::shared_ptr<group> g = weak.lock()) then(*g, e);
                      });
}

}  // namespace sluice::server
