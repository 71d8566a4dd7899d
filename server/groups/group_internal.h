#pragma once
// The group coordinator's internals, shared by its source files (group_coordinator.cc: the
// groups and their ownership; group_join.cc: JoinGroup and the rebalance; group_sync.cc:
// SyncGroup, Heartbeat, LeaveGroup; group_offsets.cc: committed offsets; group_admin.cc:
// ListGroups, DescribeGroups, DeleteGroups; group_expiry.cc: offset retention and tombstones).
// Nothing outside server/groups includes it.

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/groups/group_coordinator.h"

namespace sluice::server {

namespace group_detail {

inline int16_t code(wire::error_code e) {
  return static_cast<int16_t>(e);
}

inline bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

inline constexpr std::string_view consumer_protocol_type = "consumer";

// The topics of a ConsumerProtocolSubscription (any version: they all start with the version
// and the topic array, and the type is never flexible). nullopt if the bytes do not parse.
std::optional<std::set<std::string>> subscribed_topics(const std::vector<uint8_t>& metadata);

inline wire::join_group_response join_error(std::string member_id, wire::error_code error) {
  wire::join_group_response r;
  r.error_code = code(error);
  r.member_id = std::move(member_id);
  r.generation_id = -1;
  r.protocol_name = std::nullopt;
  return r;
}

inline wire::sync_group_response sync_error(wire::error_code error) {
  wire::sync_group_response r;
  r.error_code = code(error);
  return r;
}

}  // namespace group_detail

namespace asio = boost::asio;
using std::chrono::milliseconds;
using wire::error_code;
using namespace group_detail;

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

}  // namespace sluice::server
