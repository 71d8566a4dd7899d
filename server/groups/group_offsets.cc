#include "server/groups/group_internal.h"

#include "server/logging.h"

namespace sluice::server {

// ---- Offsets --------------------------------------------------------------------------------

asio::awaitable<wire::offset_commit_response> group_coordinator::commit_offsets(
    wire::offset_commit_request& request, int16_t) {
  std::shared_ptr<parked_reply<wire::offset_commit_response>> reply = do_commit(request);
  co_return co_await reply->wait();
}

std::shared_ptr<group_coordinator::parked_reply<wire::offset_commit_response>>
group_coordinator::do_commit(wire::offset_commit_request& request) {
  auto reply = std::make_shared<parked_reply<wire::offset_commit_response>>(executor_);
  wire::offset_commit_response response;
  for (const auto& t : request.topics) {
    auto& rt = response.topics.emplace_back();
    rt.name = t.name;
    for (const auto& p : t.partitions)
      rt.partitions.emplace_back().partition_index = p.partition_index;
  }
  auto answer_all = [&](error_code e) {
    for (auto& t : response.topics)
      for (auto& p : t.partitions)
        p.error_code = code(e);
    reply->complete(std::move(response));
    return reply;
  };

  // Kafka accepts the empty group id here, for old clients.
  if (error_code e = group_status(request.group_id); e != error_code::none) return answer_all(e);
  const int32_t generation = request.generation_id_or_member_epoch;
  group* g = find_group(request.group_id);
  if (!g) {
    // A commit without group management creates the group; a generation means a stale member.
    if (generation >= 0) return answer_all(error_code::illegal_generation);
    g = &get_or_create_group(request.group_id);
  }
  if (g->state == group_state::dead) return answer_all(error_code::coordinator_not_available);
  if (g->is_fenced(request.member_id, request.group_instance_id))
    return answer_all(error_code::fenced_instance_id);
  bool standalone = generation < 0 && g->state == group_state::empty;
  if (!standalone) {
    member* m = g->find(request.member_id);
    if (!m) return answer_all(error_code::unknown_member_id);
    if (generation != g->generation) return answer_all(error_code::illegal_generation);
    // The member has the new generation's JoinGroup response but no assignment yet.
    if (g->state == group_state::completing_rebalance)
      return answer_all(error_code::rebalance_in_progress);
    schedule_heartbeat_expiry(*g, *m, milliseconds(m->session_timeout_ms));
  }

  auto records = std::make_shared<std::vector<offset_record>>();
  std::vector<std::pair<size_t, size_t>> accepted;  // (topic, partition) indexes in the response
  const int64_t now = wall_clock_ms();
  for (size_t ti = 0; ti < request.topics.size(); ++ti) {
    const auto& t = request.topics[ti];
    for (size_t pi = 0; pi < t.partitions.size(); ++pi) {
      const auto& p = t.partitions[pi];
      std::string metadata = p.committed_metadata.value_or("");
      if (metadata.size() > config_.max_offset_metadata_bytes) {
        response.topics[ti].partitions[pi].error_code = code(error_code::offset_metadata_too_large);
        continue;
      }
      records->push_back({{t.name, p.partition_index},
                          {p.committed_offset, p.committed_leader_epoch, std::move(metadata),
                           p.commit_timestamp >= 0 ? p.commit_timestamp : now}});
      accepted.emplace_back(ti, pi);
    }
  }
  if (records->empty() || !store_) {
    for (auto& r : *records)
      g->offsets[r.partition] = std::move(r.value);
    reply->complete(std::move(response));
    return reply;
  }
  // Kafka's prepareOffsetCommit: the commit is pending until the append completes, and only
  // then enters the committed offsets (onOffsetCommitAppend) or is dropped
  // (failPendingOffsetWrite).
  for (const offset_record& r : *records)
    ++g->pending_commits[r.partition];
  auto on_stored = [weak = g->weak_from_this(), records, accepted = std::move(accepted),
                    response = std::move(response), reply](error_code e) mutable {
    if (std::shared_ptr<group> g = weak.lock()) {
      for (offset_record& r : *records) {
        auto it = g->pending_commits.find(r.partition);
        if (it != g->pending_commits.end() && --it->second == 0) g->pending_commits.erase(it);
        // Applied even to a group whose tombstones are in flight: they come later in the log,
        // and if they fail the group stays with this commit, as a replay would find it.
        if (e == error_code::none) g->offsets[r.partition] = std::move(r.value);
      }
    }
    for (auto [ti, pi] : accepted)
      response.topics[ti].partitions[pi].error_code = code(e);
    reply->complete(std::move(response));
  };
  store_->store_offsets(g->id, *records, std::move(on_stored));
  return reply;
}

namespace {

// Fills one group's answer for OffsetFetch: the named partitions, or every committed one when
// `topics` is null. Unknown partitions answer offset -1, as Kafka does.
template <class RespTopic, class ReqTopic>
std::vector<RespTopic> fetch_group_offsets(
    const std::map<topic_partition, committed_offset>* offsets,
    const std::optional<std::vector<ReqTopic>>& topics) {
  using resp_partition = typename decltype(RespTopic{}.partitions)::value_type;
  auto make_partition = [&](const std::string& topic, int32_t partition) {
    resp_partition out;
    out.partition_index = partition;
    out.committed_offset = -1;
    out.committed_leader_epoch = -1;
    out.metadata = "";
    if (offsets) {
      auto it = offsets->find(topic_partition{topic, partition});
      if (it != offsets->end()) {
        out.committed_offset = it->second.offset;
        out.committed_leader_epoch = it->second.leader_epoch;
        out.metadata = it->second.metadata;
      }
    }
    return out;
  };
  std::vector<RespTopic> result;
  if (topics) {
    for (const auto& t : *topics) {
      RespTopic& rt = result.emplace_back();
      rt.name = t.name;
      for (int32_t p : t.partition_indexes)
        rt.partitions.push_back(make_partition(t.name, p));
    }
  } else if (offsets) {
    for (const auto& [tp, value] : *offsets) {
      if (result.empty() || result.back().name != tp.topic) result.emplace_back().name = tp.topic;
      result.back().partitions.push_back(make_partition(tp.topic, tp.partition));
    }
  }
  return result;
}

}  // namespace

wire::offset_fetch_response group_coordinator::fetch_offsets(wire::offset_fetch_request& request,
                                                             int16_t version) {
  // Offsets are returned whatever the group's state: a group may use Kafka only to store them.
  auto offsets_of = [&](const std::string& group_id) {
    group* g = find_group(group_id);
    return g ? &g->offsets : nullptr;
  };
  wire::offset_fetch_response response;
  if (version >= 8) {
    for (const auto& rg : request.groups) {
      auto& out = response.groups.emplace_back();
      out.group_id = rg.group_id;
      if (error_code e = group_status(rg.group_id); e != error_code::none) {
        out.error_code = code(e);
        continue;
      }
      out.topics = fetch_group_offsets<wire::offset_fetch_response::offset_fetch_response_topics>(
          offsets_of(rg.group_id), rg.topics);
    }
    return response;
  }
  if (error_code e = group_status(request.group_id); e != error_code::none) {
    // v2+ carry the error at the top, with no topics (Kafka's OffsetFetchResponse(error, Map())).
    // v0 and v1 have no top-level error: each requested partition carries it.
    response.error_code = code(e);
    if (version < 2 && request.topics) {
      for (const auto& t : *request.topics) {
        auto& rt = response.topics.emplace_back();
        rt.name = t.name;
        for (int32_t index : t.partition_indexes) {
          auto& rp = rt.partitions.emplace_back();
          rp.partition_index = index;
          rp.committed_offset = -1;
          rp.error_code = code(e);
        }
      }
    }
    return response;
  }
  response.topics = fetch_group_offsets<wire::offset_fetch_response::offset_fetch_response_topic>(
      offsets_of(request.group_id), request.topics);
  return response;
}

asio::awaitable<wire::offset_delete_response> group_coordinator::delete_offsets(
    wire::offset_delete_request& request, int16_t) {
  std::shared_ptr<parked_reply<wire::offset_delete_response>> reply = do_delete_offsets(request);
  co_return co_await reply->wait();
}

std::shared_ptr<group_coordinator::parked_reply<wire::offset_delete_response>>
group_coordinator::do_delete_offsets(wire::offset_delete_request& request) {
  auto reply = std::make_shared<parked_reply<wire::offset_delete_response>>(executor_);
  wire::offset_delete_response response;
  auto fail = [&](error_code e) {
    response.error_code = code(e);
    reply->complete(std::move(response));
    return reply;
  };
  if (error_code e = group_status(request.group_id); e != error_code::none) return fail(e);
  group* g = find_group(request.group_id);
  if (!g || g->state == group_state::dead) return fail(error_code::group_id_not_found);
  // A group in use may only lose offsets of topics it is not subscribed to, which Kafka can tell
  // for the consumer protocol only.
  bool in_use = g->state != group_state::empty;
  if (in_use && g->protocol_type != consumer_protocol_type)
    return fail(error_code::non_empty_group);
  std::optional<std::set<std::string>> subscribed = in_use ? g->subscribed() : std::nullopt;
  auto is_subscribed = [&](const std::string& topic) {
    return in_use && (!subscribed || subscribed->contains(topic));
  };
  std::vector<topic_partition> removed;
  for (const auto& t : request.topics) {
    auto& rt = response.topics.emplace_back();
    rt.name = t.name;
    for (const auto& p : t.partitions) {
      auto& rp = rt.partitions.emplace_back();
      rp.partition_index = p.partition_index;
      if (is_subscribed(t.name)) {
        rp.error_code = code(error_code::group_subscribed_to_topic);
        continue;
      }
      // A commit in flight gets its tombstone too: it lands in the log before it.
      topic_partition tp{t.name, p.partition_index};
      if (g->offsets.contains(tp) || g->pending_commits.contains(tp)) removed.push_back(tp);
    }
  }
  auto answer = [reply, response = std::move(response)](error_code e) mutable {
    if (e != error_code::none) {
      // Kafka 4 (GroupCoordinatorService.deleteOffsets) answers a failed write with the
      // top-level error alone.
      wire::offset_delete_response failed;
      failed.error_code = code(e);
      reply->complete(std::move(failed));
      return;
    }
    reply->complete(std::move(response));
  };
  // Kafka's handleDeleteOffsets goes through cleanupGroupMetadata: an Empty group left without
  // offsets is Dead at once, its metadata tombstone in the same batch as its offsets'.
  if (g->state == group_state::empty && removes_all_offsets(*g, removed)) {
    bury(*g, std::move(removed), "its last committed offsets deleted", std::move(answer));
  } else if (!removed.empty()) {
    remove_offsets(*g, std::move(removed), nullptr, std::move(answer));
  } else {
    answer(error_code::none);
  }
  return reply;
}

void group_coordinator::load_offset(std::string_view group_id, const offset_record& record) {
  get_or_create_group(group_id).offsets[record.partition] = record.value;
}

// Kafka's GroupMetadata.loadGroup and onGroupLoaded: the group comes back Stable with its
// members and assignments (Empty without members), and every member gets a full session to
// heartbeat again, so members that died with the broker are expired and trigger a rebalance.
void group_coordinator::load_group(std::string_view group_id, const group_metadata_record& record,
                                   int64_t current_state_timestamp_ms) {
  group& g = get_or_create_group(group_id);
  g.current_state_timestamp_ms = current_state_timestamp_ms;
  g.protocol_type = record.protocol_type;
  g.generation = record.generation;
  g.protocol_name = record.protocol_name;
  g.leader_id = record.leader.value_or("");
  g.members.clear();
  g.static_members.clear();
  for (const auto& r : record.members) {
    auto m = std::make_unique<member>();
    m->id = r.member_id;
    m->instance_id = r.group_instance_id;
    m->client_id = r.client_id;
    m->client_host = r.client_host;
    m->session_timeout_ms = r.session_timeout_ms;
    m->rebalance_timeout_ms = r.rebalance_timeout_ms;
    wire::join_group_request::join_group_request_protocol protocol;
    protocol.name = record.protocol_name.value_or("");
    protocol.metadata = r.subscription;
    m->protocols.push_back(std::move(protocol));
    m->assignment = r.assignment;
    if (m->instance_id) g.static_members[*m->instance_id] = m->id;
    g.members.push_back(std::move(m));
  }
  g.state = g.members.empty() ? group_state::empty : group_state::stable;
  for (auto& m : g.members) {
    schedule_heartbeat_expiry(g, *m, milliseconds(m->session_timeout_ms));
  }
}

}  // namespace sluice::server
