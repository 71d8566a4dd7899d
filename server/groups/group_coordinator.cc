#include "server/groups/group_coordinator.h"

#include "server/logging.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <vector>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::server {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using wire::error_code;

namespace {

int16_t code(error_code e) {
  return static_cast<int16_t>(e);
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

constexpr std::string_view consumer_protocol_type = "consumer";

// The topics of a ConsumerProtocolSubscription (any version: they all start with the version
// and the topic array, and the type is never flexible). nullopt if the bytes do not parse.
std::optional<std::set<std::string>> subscribed_topics(const std::vector<uint8_t>& metadata) {
  size_t pos = 0;
  auto read = [&](size_t n) -> std::optional<uint64_t> {
    if (metadata.size() - pos < n) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v = (v << 8) | metadata[pos++];
    return v;
  };
  if (!read(2)) return std::nullopt;
  std::optional<uint64_t> count = read(4);
  if (!count || static_cast<int32_t>(*count) < 0) return std::nullopt;
  std::set<std::string> topics;
  for (uint64_t i = 0; i < *count; ++i) {
    std::optional<uint64_t> len = read(2);
    if (!len || metadata.size() - pos < *len) return std::nullopt;
    topics.emplace(reinterpret_cast<const char*>(metadata.data() + pos), *len);
    pos += *len;
  }
  return topics;
}

wire::join_group_response join_error(std::string member_id, error_code error) {
  wire::join_group_response r;
  r.error_code = code(error);
  r.member_id = std::move(member_id);
  r.generation_id = -1;
  r.protocol_name = std::nullopt;
  return r;
}

wire::sync_group_response sync_error(error_code error) {
  wire::sync_group_response r;
  r.error_code = code(error);
  return r;
}

}  // namespace

std::string_view group_state_name(group_state state) {
  switch (state) {
    case group_state::empty:
      return "Empty";
    case group_state::preparing_rebalance:
      return "PreparingRebalance";
    case group_state::completing_rebalance:
      return "CompletingRebalance";
    case group_state::stable:
      return "Stable";
    case group_state::dead:
      return "Dead";
  }
  return "Dead";
}

// A JoinGroup or SyncGroup waiting for the state machine. The coroutine that waits holds it, so
// it may outlive the member and the coordinator; completing it twice keeps the first answer.
template <class Resp>
class group_coordinator::parked_reply {
 public:
  explicit parked_reply(asio::any_io_executor executor)
      : timer_(std::move(executor), asio::steady_timer::time_point::max()) {}

  void complete(Resp response) {
    if (response_) return;
    response_ = std::move(response);
    timer_.cancel();
  }

  asio::awaitable<Resp> wait() {
    while (!response_) {
      boost::system::error_code ignored;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    co_return std::move(*response_);
  }

 private:
  asio::steady_timer timer_;
  std::optional<Resp> response_;
};

struct group_coordinator::member {
  std::string id;
  std::optional<std::string> instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::vector<wire::join_group_request::join_group_request_protocol> protocols;
  std::vector<uint8_t> assignment;
  std::shared_ptr<join_reply> awaiting_join;
  std::shared_ptr<sync_reply> awaiting_sync;
  bool is_new = false;
  timer_handle heartbeat_timer;

  bool supports(std::string_view protocol) const {
    return std::any_of(protocols.begin(), protocols.end(),
                       [&](const auto& p) { return p.name == protocol; });
  }
  const std::vector<uint8_t>* metadata_for(std::string_view protocol) const {
    for (const auto& p : protocols)
      if (p.name == protocol) return &p.metadata;
    return nullptr;
  }
  bool matches(
      const std::vector<wire::join_group_request::join_group_request_protocol>& other) const {
    return std::equal(
        protocols.begin(), protocols.end(), other.begin(), other.end(),
        [](const auto& a, const auto& b) { return a.name == b.name && a.metadata == b.metadata; });
  }
};

struct group_coordinator::group : std::enable_shared_from_this<group> {
  explicit group(std::string group_id) : id(std::move(group_id)) {}

  std::string id;
  group_state state = group_state::empty;
  // When the group entered `state` (wall clock); -1 if unknown (loaded from an old record).
  int64_t current_state_timestamp_ms = -1;
  std::string protocol_type;
  std::optional<std::string> protocol_name;
  int32_t generation = 0;
  std::string leader_id;
  std::vector<std::unique_ptr<member>> members;  // in join order; the first is the next leader
  std::map<std::string, std::string, std::less<>> static_members;  // instance id -> member id
  // Member ids handed out with MEMBER_ID_REQUIRED, expiring after the session timeout.
  std::map<std::string, timer_handle, std::less<>> pending_members;
  // Committed offsets as the log holds them: a commit enters once durable.
  std::map<topic_partition, committed_offset> offsets;
  // Commits appended and not yet durable, per partition (Kafka's pendingOffsetCommits).
  std::map<topic_partition, int> pending_commits;

  timer_handle rebalance_timer;
  // Kafka's InitialDelayedJoin: a rebalance out of Empty waits initial_rebalance_delay, and again
  // (up to the rebalance timeout) while new members keep arriving.
  bool initial_delay = false;
  bool new_member_added = false;
  milliseconds initial_delay_remaining{0};

  member* find(std::string_view member_id) const {
    for (const auto& m : members)
      if (m->id == member_id) return m.get();
    return nullptr;
  }
  // Kafka's GroupMetadata.subscribedTopics: the union of the members' subscriptions, known only
  // for a consumer group with a selected protocol whose every member's metadata parses.
  std::optional<std::set<std::string>> subscribed() const {
    if (protocol_type != consumer_protocol_type || !protocol_name) return std::nullopt;
    std::set<std::string> all;
    for (const auto& m : members) {
      const auto* md = m->metadata_for(*protocol_name);
      auto topics = md ? subscribed_topics(*md) : std::nullopt;
      if (!topics) return std::nullopt;
      all.insert(topics->begin(), topics->end());
    }
    return all;
  }
  bool is_fenced(std::string_view member_id, const std::optional<std::string>& instance) const {
    if (!instance) return false;
    auto it = static_members.find(*instance);
    return it != static_members.end() && it->second != member_id;
  }
  milliseconds rebalance_timeout() const {
    int32_t t = 0;
    for (const auto& m : members)
      t = std::max(t, m->rebalance_timeout_ms);
    return milliseconds(t);
  }
  bool all_members_joined() const {
    return pending_members.empty() &&
           std::all_of(members.begin(), members.end(),
                       [](const auto& m) { return m->awaiting_join != nullptr; });
  }
  // Can the member (`self`, null for a new one) join with these protocols?
  bool supports_protocols(
      const std::string& type,
      const std::vector<wire::join_group_request::join_group_request_protocol>& protocols,
      const member* self) const {
    if (type.empty() || protocols.empty()) return false;
    bool has_others =
        std::any_of(members.begin(), members.end(), [&](const auto& m) { return m.get() != self; });
    if (!has_others) return true;
    if (type != protocol_type) return false;
    return std::any_of(protocols.begin(), protocols.end(), [&](const auto& p) {
      return std::all_of(members.begin(), members.end(),
                         [&](const auto& m) { return m.get() == self || m->supports(p.name); });
    });
  }
  // Kafka's vote: every member votes for its most preferred protocol that all members support;
  // the most votes win, ties going to the leader's preference.
  std::optional<std::string> select_protocol() const {
    if (members.empty()) return std::nullopt;
    const member* leader = find(leader_id);
    if (!leader) leader = members.front().get();
    std::vector<std::string> candidates;
    for (const auto& p : leader->protocols) {
      if (std::all_of(members.begin(), members.end(),
                      [&](const auto& m) { return m->supports(p.name); }))
        candidates.push_back(p.name);
    }
    if (candidates.empty()) return std::nullopt;
    std::map<std::string, int> votes;
    for (const auto& m : members) {
      for (const auto& p : m->protocols) {
        if (std::find(candidates.begin(), candidates.end(), p.name) != candidates.end()) {
          ++votes[p.name];
          break;
        }
      }
    }
    const std::string* best = &candidates.front();
    for (const std::string& c : candidates)
      if (votes[c] > votes[*best]) best = &c;
    return *best;
  }
  wire::join_group_response join_result(const member& m, bool with_members) const {
    wire::join_group_response r;
    r.generation_id = generation;
    r.protocol_type = protocol_type;
    r.protocol_name = protocol_name;
    r.leader = leader_id;
    r.member_id = m.id;
    if (with_members) {
      for (const auto& other : members) {
        wire::join_group_response::join_group_response_member jm;
        jm.member_id = other->id;
        jm.group_instance_id = other->instance_id;
        if (const auto* md = other->metadata_for(protocol_name.value_or(""))) jm.metadata = *md;
        r.members.push_back(std::move(jm));
      }
    }
    return r;
  }
  wire::sync_group_response sync_result(const member& m, error_code error) const {
    wire::sync_group_response r;
    r.error_code = code(error);
    if (error == error_code::none) {
      r.assignment = m.assignment;
      r.protocol_type = protocol_type;
      r.protocol_name = protocol_name;
    }
    return r;
  }
};

struct group_coordinator::join_params {
  wire::join_group_request& request;
  int16_t version;
  std::string client_id;
  std::string client_host;
  int32_t rebalance_timeout_ms;
};

struct group_coordinator::replaced_member {
  std::string new_id;
  std::string old_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::vector<wire::join_group_request::join_group_request_protocol> protocols;
  int32_t generation = 0;
  std::shared_ptr<join_reply> reply;
  std::string previous_leader;
  bool skip_assignment = false;
};

group_coordinator::group_coordinator(asio::any_io_executor executor,
                                     group_coordinator_config config, group_store* store,
                                     timer_service* timers)
    : executor_(std::move(executor)),
      config_(config),
      store_(store),
      own_timers_(timers ? nullptr : std::make_unique<asio_timer_service>(executor_)),
      timers_(timers ? timers : own_timers_.get()),
      rng_(std::random_device{}()) {}

group_coordinator::~group_coordinator() {
  shutdown();
}

void group_coordinator::shutdown() {
  stopped_ = true;
  retention_timer_.cancel();
  for (auto& [id, g] : groups_) {
    for (auto& m : g->members) {
      if (m->awaiting_join)
        m->awaiting_join->complete(join_error(m->id, error_code::not_coordinator));
      if (m->awaiting_sync) m->awaiting_sync->complete(sync_error(error_code::not_coordinator));
    }
  }
  groups_.clear();
}

std::optional<group_state> group_coordinator::state_of(std::string_view group_id) const {
  if (group* g = find_group(group_id)) return g->state;
  return std::nullopt;
}

group_coordinator::group* group_coordinator::find_group(std::string_view group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : it->second.get();
}

group_coordinator::group& group_coordinator::get_or_create_group(std::string_view group_id) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    it = groups_.emplace(std::string(group_id), std::make_shared<group>(std::string(group_id)))
             .first;
    // Kafka's new GroupMetadata starts Empty "now".
    it->second->current_state_timestamp_ms = wall_clock_ms();
  }
  return *it->second;
}

void group_coordinator::set_state(group& g, group_state state) {
  g.state = state;
  g.current_state_timestamp_ms = wall_clock_ms();
}

// Kafka's member ids: the client id (or the instance id of a static member), a dash, a UUID.
std::string group_coordinator::new_member_id(std::string_view prefix) {
  std::array<uint8_t, 16> b;
  for (size_t i = 0; i < b.size(); i += 8) {
    uint64_t r = rng_();
    for (size_t j = 0; j < 8; ++j)
      b[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(prefix);
  id += '-';
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id += '-';
    id += hex[b[i] >> 4];
    id += hex[b[i] & 0x0f];
  }
  return id;
}

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
      out.topics = fetch_group_offsets<wire::offset_fetch_response::offset_fetch_response_topics>(
          offsets_of(rg.group_id), rg.topics);
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

// ---- ListGroups, DescribeGroups, DeleteGroups ------------------------------------------------

wire::list_groups_response group_coordinator::list_groups(wire::list_groups_request& request,
                                                          int16_t) {
  constexpr std::string_view classic = "classic";
  auto wanted = [](const std::vector<std::string>& filter, std::string_view value) {
    return filter.empty() || std::any_of(filter.begin(), filter.end(),
                                         [&](const std::string& f) { return iequals(f, value); });
  };
  wire::list_groups_response response;
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

// ---- Offset retention -----------------------------------------------------------------------

bool group_coordinator::removes_all_offsets(const group& g,
                                            std::span<const topic_partition> partitions) {
  std::set<topic_partition> removing(partitions.begin(), partitions.end());
  auto removed = [&](const auto& entry) { return removing.contains(entry.first); };
  return std::all_of(g.offsets.begin(), g.offsets.end(), removed) &&
         std::all_of(g.pending_commits.begin(), g.pending_commits.end(), removed);
}

void group_coordinator::remove_offsets(group& g, std::vector<topic_partition> partitions,
                                       const char* why, std::function<void(error_code)> done) {
  auto finish = [this, weak = g.weak_from_this(), partitions, why,
                 done = std::move(done)](error_code e) {
    if (std::shared_ptr<group> g = weak.lock()) {
      if (e == error_code::none) {
        for (const topic_partition& tp : partitions)
          g->offsets.erase(tp);
        if (why)
          log_info("group ", log_safe(g->id), ": ", partitions.size(), " committed offsets ", why);
        maybe_bury(*g);
      } else {
        log_warn("group ", log_safe(g->id), ": tombstones for ", partitions.size(),
                 " committed offsets failed (", wire::error_name(e), "); they stay");
      }
    }
    if (done) done(e);
  };
  if (!store_) {
    finish(error_code::none);
    return;
  }
  store_->remove_offsets(g.id, partitions, std::move(finish));
}

void group_coordinator::bury(group& g, std::vector<topic_partition> partitions, std::string why,
                             std::function<void(error_code)> done) {
  // Not set_state: should the write fail, the group is Empty again since the same moment.
  g.state = group_state::dead;
  // A group that never had a generation only ever wrote offsets (Kafka's check, too).
  const bool metadata = g.generation > 0;
  auto finish = [this, weak = g.weak_from_this(), why = std::move(why),
                 done = std::move(done)](error_code e) {
    if (std::shared_ptr<group> g = weak.lock()) {
      if (e == error_code::none) {
        log_info("group ", log_safe(g->id), " removed (Dead): ", why);
        auto it = groups_.find(g->id);
        if (it != groups_.end() && it->second == g) groups_.erase(it);
      } else {
        g->state = group_state::empty;
        log_warn("group ", log_safe(g->id), ": its tombstones failed (", wire::error_name(e),
                 "); it stays, Empty");
      }
    }
    if (done) done(e);
  };
  if (!store_ || (partitions.empty() && !metadata)) {
    finish(error_code::none);
  } else if (metadata) {
    store_->remove_group(g.id, partitions, std::move(finish));
  } else {
    store_->remove_offsets(g.id, partitions, std::move(finish));
  }
}

void group_coordinator::maybe_bury(group& g) {
  if (g.state == group_state::empty && g.offsets.empty() && g.pending_commits.empty())
    bury(g, {}, "empty without committed offsets", {});
}

std::vector<topic_partition> group_coordinator::expired_offsets(const group& g, int64_t now) const {
  const int64_t retention_ms = config_.offsets_retention.count();
  std::vector<topic_partition> expired;
  if (g.state == group_state::dead) return expired;  // its tombstones are being written
  auto collect = [&](auto since, const std::set<std::string>* keep_topics) {
    for (const auto& [tp, value] : g.offsets) {
      if (keep_topics && keep_topics->contains(tp.topic)) continue;
      // A commit in flight is about to replace the value (Kafka's getExpiredOffsets, too).
      if (g.pending_commits.contains(tp)) continue;
      if (now - since(value) >= retention_ms) expired.push_back(tp);
    }
  };
  auto committed_at = [](const committed_offset& o) { return o.commit_timestamp_ms; };
  if (g.protocol_type.empty()) {
    // Offsets only, no group management.
    collect(committed_at, nullptr);
  } else if (g.state == group_state::empty) {
    if (g.current_state_timestamp_ms >= 0)
      collect([&](const committed_offset&) { return g.current_state_timestamp_ms; }, nullptr);
    else
      collect(committed_at, nullptr);
  } else if (g.state == group_state::stable) {
    if (std::optional<std::set<std::string>> subscribed = g.subscribed())
      collect(committed_at, &*subscribed);
  }
  return expired;
}

size_t group_coordinator::expire_offsets() {
  const int64_t now = wall_clock_ms();
  return remove_offsets_where([&](const group& g) { return expired_offsets(g, now); }, "expired");
}

void group_coordinator::on_topic_deleted(std::string_view topic) {
  // Kafka's GroupCoordinator.onPartitionsDeleted: a topic created again under the same name must
  // not inherit the old topic's committed positions, which would make consumers skip its start.
  // Commits in flight get tombstones too (Kafka's removeOffsets drops pending commits).
  remove_offsets_where(
      [&](const group& g) {
        std::set<topic_partition> doomed;
        for (const auto& [tp, value] : g.offsets) {
          if (tp.topic == topic) doomed.insert(tp);
        }
        for (const auto& [tp, count] : g.pending_commits) {
          if (tp.topic == topic) doomed.insert(tp);
        }
        return std::vector<topic_partition>(doomed.begin(), doomed.end());
      },
      "removed with their deleted topic");
}

size_t group_coordinator::remove_offsets_where(
    const std::function<std::vector<topic_partition>(const group&)>& select, const char* why) {
  // A group with nothing to write leaves the map at once.
  std::vector<std::shared_ptr<group>> all;
  all.reserve(groups_.size());
  for (const auto& [id, g] : groups_)
    all.push_back(g);
  size_t removed_total = 0;
  for (const std::shared_ptr<group>& g : all) {
    std::vector<topic_partition> removed = select(*g);
    removed_total += removed.size();
    if (g->state == group_state::empty && removes_all_offsets(*g, removed)) {
      std::string reason = removed.empty()
                               ? std::string("empty without committed offsets")
                               : std::to_string(removed.size()) + " committed offsets " + why +
                                     "; empty without offsets";
      bury(*g, std::move(removed), std::move(reason), {});
    } else if (!removed.empty()) {
      remove_offsets(*g, std::move(removed), why, {});
    }
  }
  return removed_total;
}

void group_coordinator::start_offset_expiry() {
  expire_offsets();
  schedule_retention_check(config_.offsets_retention_check_interval);
}

void group_coordinator::schedule_retention_check(milliseconds delay) {
  if (stopped_) return;
  retention_timer_ = timers_->schedule(delay, [this] {
    expire_offsets();
    schedule_retention_check(config_.offsets_retention_check_interval);
  });
}

}  // namespace sluice::server
