// The group coordinator driven directly, without sockets: requests are the generated structs.
// Time is a manual clock that only the tests move (advance), firing the coordinator's deadlines
// as it passes them and moving the wall clock (commit timestamps, offset retention) with it; the
// io_context only ever runs what is ready (poll), so no test depends on real elapsed time.

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "server/groups/group_coordinator.h"
#include "server/tests/manual_clock.h"
#include "wire/error_code.h"

namespace sluice::server {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using wire::error_code;

int16_t code(error_code e) {
  return static_cast<int16_t>(e);
}
std::vector<uint8_t> bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

// A group_store whose log is a few vectors. Each write either completes at once (posted, with the
// failure set for its kind) or, while `hold` is set, waits until the test completes it, oldest
// first as the interface promises, with the planned result or another. Only writes that
// succeed reach the vectors and `log`, the committed offsets a replay would rebuild.
struct recording_store : group_store {
  explicit recording_store(asio::io_context& io) : io_(io) {}

  std::vector<group_metadata_record> groups;
  std::vector<offset_record> offsets;
  std::vector<topic_partition> removed_offsets;
  std::vector<std::string> removed_groups;
  std::map<std::string, std::map<topic_partition, int64_t>> log;
  error_code fail_groups = error_code::none;
  error_code fail_offsets = error_code::none;
  error_code fail_tombstones = error_code::none;
  bool hold = false;

  size_t held() const { return held_.size(); }
  // Completes the oldest held write with its planned result, or with `e`.
  void complete_next(std::optional<error_code> e = std::nullopt) {
    ASSERT_FALSE(held_.empty());
    auto [run, planned] = std::move(held_.front());
    held_.pop_front();
    asio::post(io_, [run, result = e.value_or(planned)] { run(result); });
  }

  void store_group(std::string_view, const group_metadata_record& record,
                   completion done) override {
    write(
        fail_groups, [this, record] { groups.push_back(record); }, std::move(done));
  }
  void store_offsets(std::string_view group_id, std::span<const offset_record> o,
                     completion done) override {
    std::vector<offset_record> copy(o.begin(), o.end());
    write(
        fail_offsets,
        [this, id = std::string(group_id), copy] {
          offsets.insert(offsets.end(), copy.begin(), copy.end());
          for (const offset_record& r : copy)
            log[id][r.partition] = r.value.offset;
        },
        std::move(done));
  }
  void remove_offsets(std::string_view group_id, std::span<const topic_partition> p,
                      completion done) override {
    std::vector<topic_partition> copy(p.begin(), p.end());
    write(
        fail_tombstones, [this, id = std::string(group_id), copy] { tombstone(id, copy); },
        std::move(done));
  }
  void remove_group(std::string_view group_id, std::span<const topic_partition> p,
                    completion done) override {
    std::vector<topic_partition> copy(p.begin(), p.end());
    write(
        fail_tombstones,
        [this, id = std::string(group_id), copy] {
          tombstone(id, copy);
          removed_groups.push_back(id);
        },
        std::move(done));
  }

 private:
  void tombstone(const std::string& id, const std::vector<topic_partition>& partitions) {
    removed_offsets.insert(removed_offsets.end(), partitions.begin(), partitions.end());
    for (const topic_partition& tp : partitions)
      log[id].erase(tp);
    if (log[id].empty()) log.erase(id);
  }
  void write(error_code planned, std::function<void()> record, completion done) {
    auto run = [record = std::move(record), done = std::move(done)](error_code e) {
      if (e == error_code::none) record();
      done(e);
    };
    if (hold) {
      held_.emplace_back(std::move(run), planned);
    } else {
      asio::post(io_, [run = std::move(run), planned] { run(planned); });
    }
  }

  asio::io_context& io_;
  std::deque<std::pair<std::function<void(error_code)>, error_code>> held_;
};

using protocol_list = std::vector<std::pair<std::string, std::string>>;

wire::join_group_request join_request(std::string group, std::string member_id,
                                      std::optional<std::string> instance = std::nullopt,
                                      protocol_list protocols = {{"range", "sub"}}) {
  wire::join_group_request r;
  r.group_id = std::move(group);
  r.member_id = std::move(member_id);
  r.group_instance_id = std::move(instance);
  r.session_timeout_ms = 100;
  r.rebalance_timeout_ms = 300;
  r.protocol_type = "consumer";
  for (auto& [name, metadata] : protocols) {
    auto& p = r.protocols.emplace_back();
    p.name = name;
    p.metadata = bytes(metadata);
  }
  return r;
}

// The result of a request that may park, filled when its coroutine finishes.
template <class Resp>
using outcome = std::shared_ptr<std::optional<Resp>>;

class group_coordinator_test : public ::testing::Test {
 protected:
  void make(std::chrono::milliseconds initial_delay = 0ms) {
    group_coordinator_config config;
    config.min_session_timeout = 10ms;
    config.initial_rebalance_delay = initial_delay;
    make(config);
  }
  void make(const group_coordinator_config& config) {
    gc_ = std::make_unique<group_coordinator>(io_.get_executor(), config, &store_, &clock_);
  }
  void SetUp() override { make(); }

  // Runs what is ready (resumed coroutines, posted completions) without letting time pass.
  void settle() {
    io_.restart();
    io_.poll();
  }
  // Lets `d` pass: every deadline in it fires, in order, with the io_context settled after each.
  void advance(std::chrono::milliseconds d) {
    settle();
    clock_.advance(d, [this] { settle(); });
    settle();
  }

  outcome<wire::join_group_response> start_join(wire::join_group_request request,
                                                int16_t version = 5, std::string client = "c") {
    auto out = std::make_shared<std::optional<wire::join_group_response>>();
    asio::co_spawn(
        io_,
        [](group_coordinator& gc, wire::join_group_request req, int16_t v, std::string client,
           outcome<wire::join_group_response> out) -> asio::awaitable<void> {
          *out = co_await gc.join(req, v, client, "/127.0.0.1");
        }(*gc_, std::move(request), version, std::move(client), out),
        asio::detached);
    settle();
    return out;
  }

  outcome<wire::sync_group_response> start_sync(
      const std::string& group, const std::string& member_id, int32_t generation,
      std::vector<std::pair<std::string, std::string>> assignments = {},
      std::optional<std::string> instance = std::nullopt) {
    wire::sync_group_request r;
    r.group_id = group;
    r.member_id = member_id;
    r.generation_id = generation;
    r.group_instance_id = std::move(instance);
    for (auto& [m, a] : assignments) {
      auto& e = r.assignments.emplace_back();
      e.member_id = m;
      e.assignment = bytes(a);
    }
    auto out = std::make_shared<std::optional<wire::sync_group_response>>();
    asio::co_spawn(
        io_,
        [](group_coordinator& gc, wire::sync_group_request req,
           outcome<wire::sync_group_response> out) -> asio::awaitable<void> {
          *out = co_await gc.sync(req, 5);
        }(*gc_, std::move(r), out),
        asio::detached);
    settle();
    return out;
  }

  // Runs a request that answers once its writes complete; the result stays empty while they wait.
  template <class Resp>
  outcome<Resp> spawn(asio::awaitable<Resp> op) {
    auto out = std::make_shared<std::optional<Resp>>();
    asio::co_spawn(io_, std::move(op), [out](std::exception_ptr e, Resp r) {
      if (!e) *out = std::move(r);
    });
    settle();
    return out;
  }
  template <class Resp>
  static Resp answered(const outcome<Resp>& out) {
    if (!*out) throw std::runtime_error("the request is still waiting for the store");
    return **out;
  }
  // With the store completing at once.
  wire::offset_commit_response commit_now(wire::offset_commit_request& r, int16_t version = 8) {
    return answered(spawn(gc_->commit_offsets(r, version)));
  }
  wire::offset_delete_response delete_offsets_now(wire::offset_delete_request& r) {
    return answered(spawn(gc_->delete_offsets(r, 0)));
  }
  wire::delete_groups_response delete_groups_now(wire::delete_groups_request& r) {
    return answered(spawn(gc_->delete_groups(r, 2)));
  }
  size_t expire() {
    size_t n = gc_->expire_offsets();
    settle();
    return n;
  }
  // The group's committed offsets as OffsetFetch returns them (all partitions), to compare with
  // what the store's log holds.
  std::map<topic_partition, int64_t> committed(const std::string& group) {
    wire::offset_fetch_request fetch;
    fetch.group_id = group;
    fetch.topics = std::nullopt;
    std::map<topic_partition, int64_t> out;
    for (const auto& t : gc_->fetch_offsets(fetch, 7).topics)
      for (const auto& p : t.partitions)
        out[{t.name, p.partition_index}] = p.committed_offset;
    return out;
  }
  std::map<topic_partition, int64_t> logged(const std::string& group) {
    auto it = store_.log.find(group);
    return it == store_.log.end() ? std::map<topic_partition, int64_t>{} : it->second;
  }

  int16_t heartbeat(const std::string& group, const std::string& member_id, int32_t generation,
                    std::optional<std::string> instance = std::nullopt) {
    wire::heartbeat_request r;
    r.group_id = group;
    r.member_id = member_id;
    r.generation_id = generation;
    r.group_instance_id = std::move(instance);
    return gc_->heartbeat(r, 4).error_code;
  }

  // Keeps the given members alive while `total` passes, heartbeating every `every`.
  void advance_heartbeating(std::chrono::milliseconds total,
                            const std::vector<std::pair<std::string, int32_t>>& members,
                            const std::string& group = "g",
                            std::chrono::milliseconds every = 20ms) {
    for (auto t = 0ms; t < total; t += every) {
      advance(std::min(every, total - t));
      for (auto& [id, gen] : members)
        heartbeat(group, id, gen);
    }
  }

  // Gives the group generation 1 and leaves it Empty again, so that burying it tombstones its
  // metadata too.
  void generation_one(const std::string& group) {
    auto j = start_join(join_request(group, member_id_for(group)));
    ASSERT_TRUE(*j);
    wire::leave_group_request leave;
    leave.group_id = group;
    leave.member_id = (*j)->member_id;
    ASSERT_EQ(gc_->leave(leave, 1).error_code, 0);
    settle();
    ASSERT_EQ(gc_->state_of(group), group_state::empty);
  }

  // Joins a dynamic member with JoinGroup v4+: MEMBER_ID_REQUIRED first, then the real join.
  std::string member_id_for(const std::string& group, std::string client = "c") {
    auto first = start_join(join_request(group, ""), 5, std::move(client));
    EXPECT_TRUE(*first);
    EXPECT_EQ((*first)->error_code, code(error_code::member_id_required));
    return (*first)->member_id;
  }

  struct member_view {
    std::string id;
    int32_t generation;
  };

  // Two dynamic members a (leader) and b in Stable, with assignments "a" and "b".
  std::pair<member_view, member_view> stable_pair(const std::string& group = "g") {
    auto a = start_join(join_request(group, member_id_for(group, "a")), 5, "a");
    EXPECT_TRUE(*a);
    member_view ma{(*a)->member_id, (*a)->generation_id};
    auto b = start_join(join_request(group, member_id_for(group, "b")), 5, "b");
    EXPECT_FALSE(*b);  // a has not rejoined yet
    EXPECT_EQ(heartbeat(group, ma.id, ma.generation), code(error_code::rebalance_in_progress));
    auto a2 = start_join(join_request(group, ma.id), 5, "a");
    EXPECT_TRUE(*a2 && *b);
    member_view mb{(*b)->member_id, (*b)->generation_id};
    ma.generation = (*a2)->generation_id;
    auto sb = start_sync(group, mb.id, mb.generation);
    auto sa = start_sync(group, ma.id, ma.generation, {{ma.id, "a"}, {mb.id, "b"}});
    EXPECT_TRUE(*sa && *sb);
    EXPECT_EQ(gc_->state_of(group), group_state::stable);
    return {ma, mb};
  }

  asio::io_context io_;
  testing::manual_clock clock_;  // also the wall clock, from 1'700'000'000'000
  recording_store store_{io_};
  std::unique_ptr<group_coordinator> gc_;
};

TEST_F(group_coordinator_test, two_members_join_one_generation_with_one_leader) {
  make(30ms);  // Kafka's initial rebalance delay lets both arrive before the first generation
  auto a = start_join(join_request("g", ""), 3, "a");
  auto b = start_join(join_request("g", ""), 3, "b");
  EXPECT_FALSE(*a);
  EXPECT_FALSE(*b);
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
  advance(100ms);
  ASSERT_TRUE(*a && *b);
  const auto& ra = **a;
  const auto& rb = **b;
  EXPECT_EQ(ra.error_code, 0);
  EXPECT_EQ(rb.error_code, 0);
  EXPECT_EQ(ra.generation_id, 1);
  EXPECT_EQ(rb.generation_id, 1);
  EXPECT_EQ(ra.leader, ra.member_id);  // the first to join leads
  EXPECT_EQ(rb.leader, ra.member_id);
  EXPECT_EQ(ra.protocol_name, "range");
  EXPECT_TRUE(ra.member_id.starts_with("a-"));
  EXPECT_EQ(ra.member_id.size(), 2 + 36u);
  ASSERT_EQ(ra.members.size(), 2u);  // the leader sees every member's metadata
  EXPECT_EQ(ra.members[1].member_id, rb.member_id);
  EXPECT_EQ(ra.members[1].metadata, bytes("sub"));
  EXPECT_TRUE(rb.members.empty());
  EXPECT_EQ(gc_->state_of("g"), group_state::completing_rebalance);
}

TEST_F(group_coordinator_test, member_id_required_then_join_with_it) {
  auto first = start_join(join_request("g", ""), 4, "client");
  ASSERT_TRUE(*first);
  EXPECT_EQ((*first)->error_code, code(error_code::member_id_required));
  std::string id = (*first)->member_id;
  EXPECT_TRUE(id.starts_with("client-"));
  EXPECT_EQ(gc_->state_of("g"), group_state::empty);  // a pending member is not a member

  auto second = start_join(join_request("g", id), 4, "client");
  ASSERT_TRUE(*second);
  EXPECT_EQ((*second)->error_code, 0);
  EXPECT_EQ((*second)->member_id, id);
  EXPECT_EQ((*second)->generation_id, 1);
  EXPECT_EQ((*second)->leader, id);

  // A made-up member id is refused.
  auto bogus = start_join(join_request("g", "c-made-up"), 4);
  ASSERT_TRUE(*bogus);
  EXPECT_EQ((*bogus)->error_code, code(error_code::unknown_member_id));
}

TEST_F(group_coordinator_test, pending_member_expires_after_session_timeout) {
  auto a = start_join(join_request("g", member_id_for("g")));
  ASSERT_TRUE(*a);
  std::string pending = member_id_for("g");
  advance(150ms);
  auto late = start_join(join_request("g", pending));
  ASSERT_TRUE(*late);
  EXPECT_EQ((*late)->error_code, code(error_code::unknown_member_id));
}

TEST_F(group_coordinator_test, sync_gives_every_member_its_assignment) {
  auto [a, b] = stable_pair();
  EXPECT_EQ(a.generation, b.generation);
  // Stable: a later SyncGroup returns the stored assignment at once.
  auto again = start_sync("g", b.id, b.generation);
  ASSERT_TRUE(*again);
  EXPECT_EQ((*again)->assignment, bytes("b"));
  EXPECT_EQ((*again)->protocol_name, "range");
  ASSERT_FALSE(store_.groups.empty());
  EXPECT_EQ(store_.groups.back().members.size(), 2u);
  EXPECT_EQ(store_.groups.back().members[0].assignment, bytes("a"));
}

TEST_F(group_coordinator_test, follower_sync_waits_for_leader) {
  make(30ms);
  auto a = start_join(join_request("g", ""), 3, "a");
  auto b = start_join(join_request("g", ""), 3, "b");
  advance(100ms);
  ASSERT_TRUE(*a && *b);
  auto sb = start_sync("g", (*b)->member_id, 1);
  EXPECT_FALSE(*sb);
  EXPECT_EQ(heartbeat("g", (*b)->member_id, 1), 0);  // allowed between join and sync
  auto sa = start_sync("g", (*a)->member_id, 1, {{(*b)->member_id, "for-b"}});
  ASSERT_TRUE(*sa && *sb);
  EXPECT_EQ((*sb)->error_code, 0);
  EXPECT_EQ((*sb)->assignment, bytes("for-b"));
  EXPECT_TRUE((*sa)->assignment.empty());  // the leader left itself out: empty assignment
  auto stale = start_sync("g", (*a)->member_id, 0);
  ASSERT_TRUE(*stale);
  EXPECT_EQ((*stale)->error_code, code(error_code::illegal_generation));
}

TEST_F(group_coordinator_test, heartbeat_answers_during_rebalance_and_with_stale_ids) {
  auto [a, b] = stable_pair();
  EXPECT_EQ(heartbeat("g", a.id, a.generation), 0);
  EXPECT_EQ(heartbeat("g", a.id, a.generation - 1), code(error_code::illegal_generation));
  EXPECT_EQ(heartbeat("g", "nobody", a.generation), code(error_code::unknown_member_id));
  EXPECT_EQ(heartbeat("other", a.id, a.generation), code(error_code::unknown_member_id));
  auto c = start_join(join_request("g", member_id_for("g", "c")));
  EXPECT_FALSE(*c);
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_EQ(heartbeat("g", a.id, a.generation), code(error_code::rebalance_in_progress));
  EXPECT_EQ(heartbeat("g", b.id, b.generation), code(error_code::rebalance_in_progress));
}

TEST_F(group_coordinator_test, leader_leaving_triggers_rebalance_and_a_new_leader) {
  auto [a, b] = stable_pair();
  wire::leave_group_request leave;
  leave.group_id = "g";
  leave.members.emplace_back().member_id = a.id;
  leave.members.emplace_back().member_id = "nobody";
  wire::leave_group_response r = gc_->leave(leave, 3);
  EXPECT_EQ(r.error_code, 0);
  ASSERT_EQ(r.members.size(), 2u);
  EXPECT_EQ(r.members[0].error_code, 0);
  EXPECT_EQ(r.members[1].error_code, code(error_code::unknown_member_id));
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_EQ(heartbeat("g", b.id, b.generation), code(error_code::rebalance_in_progress));

  auto b2 = start_join(join_request("g", b.id));
  ASSERT_TRUE(*b2);
  EXPECT_EQ((*b2)->generation_id, b.generation + 1);
  EXPECT_EQ((*b2)->leader, b.id);
  EXPECT_EQ((*b2)->members.size(), 1u);

  // The last member leaving (v0: one member, top-level error) empties the group.
  wire::leave_group_request v0;
  v0.group_id = "g";
  v0.member_id = b.id;
  EXPECT_EQ(gc_->leave(v0, 0).error_code, 0);
  EXPECT_EQ(gc_->state_of("g"), group_state::empty);
  EXPECT_EQ(gc_->leave(v0, 0).error_code, code(error_code::unknown_member_id));
}

TEST_F(group_coordinator_test, member_without_heartbeats_is_expired) {
  auto [a, b] = stable_pair();
  advance_heartbeating(150ms, {{a.id, a.generation}});  // b stays silent past its 100 ms session
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_EQ(heartbeat("g", b.id, b.generation), code(error_code::unknown_member_id));
  EXPECT_EQ(heartbeat("g", a.id, a.generation), code(error_code::rebalance_in_progress));
  auto a2 = start_join(join_request("g", a.id));
  ASSERT_TRUE(*a2);
  EXPECT_EQ((*a2)->members.size(), 1u);
  EXPECT_EQ((*a2)->generation_id, a.generation + 1);
}

TEST_F(group_coordinator_test, rebalance_timeout_evicts_member_that_does_not_rejoin) {
  auto [a, b] = stable_pair();
  auto a2 = start_join(join_request("g", a.id));  // the leader rejoins: rebalance
  EXPECT_FALSE(*a2);
  // b keeps heartbeating but never rejoins; the 300 ms rebalance timeout ends the wait.
  advance_heartbeating(150ms, {{b.id, b.generation}});
  EXPECT_FALSE(*a2);
  advance_heartbeating(200ms, {{b.id, b.generation}});
  ASSERT_TRUE(*a2);
  EXPECT_EQ((*a2)->error_code, 0);
  EXPECT_EQ((*a2)->generation_id, a.generation + 1);
  ASSERT_EQ((*a2)->members.size(), 1u);
  EXPECT_EQ((*a2)->members[0].member_id, a.id);
  EXPECT_EQ(heartbeat("g", b.id, b.generation), code(error_code::unknown_member_id));
}

class static_group_test : public group_coordinator_test {
 protected:
  // Static members a ("ia", leader) and b ("ib") in Stable with assignments "a" and "b".
  void SetUp() override {
    make(30ms);
    auto ja = start_join(join_request("g", "", "ia"), 5, "a");
    auto jb = start_join(join_request("g", "", "ib"), 5, "b");
    advance(100ms);
    ASSERT_TRUE(*ja && *jb);
    a = {(*ja)->member_id, (*ja)->generation_id};
    b = {(*jb)->member_id, (*jb)->generation_id};
    EXPECT_TRUE(a.id.starts_with("ia-"));  // static ids start with the instance id
    auto sb = start_sync("g", b.id, b.generation, {}, "ib");
    auto sa = start_sync("g", a.id, a.generation, {{a.id, "a"}, {b.id, "b"}}, "ia");
    ASSERT_TRUE(*sa && *sb);
    ASSERT_EQ(gc_->state_of("g"), group_state::stable);
  }
  member_view a, b;
};

TEST_F(static_group_test, restarted_static_member_gets_its_assignment_without_rebalance) {
  auto again = start_join(join_request("g", "", "ib"), 5, "b");
  ASSERT_TRUE(*again);
  const auto& r = **again;
  EXPECT_EQ(r.error_code, 0);
  EXPECT_NE(r.member_id, b.id);
  EXPECT_EQ(r.generation_id, b.generation);  // same generation: nothing rebalanced
  EXPECT_EQ(r.leader, a.id);
  EXPECT_TRUE(r.members.empty());
  EXPECT_EQ(gc_->state_of("g"), group_state::stable);
  EXPECT_EQ(heartbeat("g", a.id, a.generation, "ia"), 0);

  auto sync = start_sync("g", r.member_id, r.generation_id, {}, "ib");
  ASSERT_TRUE(*sync);
  EXPECT_EQ((*sync)->error_code, 0);
  EXPECT_EQ((*sync)->assignment, bytes("b"));
  EXPECT_EQ(store_.groups.back().members[1].member_id, r.member_id);
}

TEST_F(static_group_test, restarted_static_leader_is_not_told_it_leads) {
  auto v5 = start_join(join_request("g", "", "ia"), 5, "a");
  ASSERT_TRUE(*v5);
  EXPECT_EQ((*v5)->leader, a.id);  // the old id: the new incarnation must not assign
  EXPECT_NE((*v5)->member_id, a.id);
  auto v9 = start_join(join_request("g", "", "ia"), 9, "a");
  ASSERT_TRUE(*v9);
  EXPECT_EQ((*v9)->leader, (*v9)->member_id);  // KIP-814: leader, but skip the assignment
  EXPECT_TRUE((*v9)->skip_assignment);
  EXPECT_EQ((*v9)->members.size(), 2u);
  EXPECT_EQ(gc_->state_of("g"), group_state::stable);
}

TEST_F(static_group_test, changed_metadata_rebalances) {
  auto again = start_join(join_request("g", "", "ib", {{"range", "other-topics"}}), 5, "b");
  EXPECT_FALSE(*again);
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
}

TEST_F(static_group_test, old_member_id_of_an_instance_is_fenced) {
  auto again = start_join(join_request("g", "", "ib"), 5, "b");
  ASSERT_TRUE(*again);
  EXPECT_EQ(heartbeat("g", b.id, b.generation, "ib"), code(error_code::fenced_instance_id));
  auto old_join = start_join(join_request("g", b.id, "ib"), 5, "b");
  ASSERT_TRUE(*old_join);
  EXPECT_EQ((*old_join)->error_code, code(error_code::fenced_instance_id));
  auto old_sync = start_sync("g", b.id, b.generation, {}, "ib");
  ASSERT_TRUE(*old_sync);
  EXPECT_EQ((*old_sync)->error_code, code(error_code::fenced_instance_id));

  wire::offset_commit_request commit;
  commit.group_id = "g";
  commit.member_id = b.id;
  commit.group_instance_id = "ib";
  commit.generation_id_or_member_epoch = b.generation;
  commit.topics.emplace_back().name = "t";
  commit.topics[0].partitions.emplace_back().committed_offset = 1;
  EXPECT_EQ(commit_now(commit, 7).topics[0].partitions[0].error_code,
            code(error_code::fenced_instance_id));

  wire::leave_group_request leave;
  leave.group_id = "g";
  auto& who = leave.members.emplace_back();
  who.member_id = b.id;
  who.group_instance_id = "ib";
  EXPECT_EQ(gc_->leave(leave, 3).members[0].error_code, code(error_code::fenced_instance_id));
  // By instance id alone the current incarnation leaves.
  who.member_id = "";
  EXPECT_EQ(gc_->leave(leave, 3).members[0].error_code, 0);
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
}

wire::offset_commit_request commit_request(const std::string& group, const std::string& member,
                                           int32_t generation) {
  wire::offset_commit_request r;
  r.group_id = group;
  r.member_id = member;
  r.generation_id_or_member_epoch = generation;
  auto& t = r.topics.emplace_back();
  t.name = "t";
  auto& p0 = t.partitions.emplace_back();
  p0.partition_index = 0;
  p0.committed_offset = 42;
  p0.committed_leader_epoch = 7;
  p0.committed_metadata = "meta";
  auto& p1 = t.partitions.emplace_back();
  p1.partition_index = 1;
  p1.committed_offset = 5;
  p1.committed_metadata = std::nullopt;
  return r;
}

TEST_F(group_coordinator_test, offsets_round_trip_with_metadata_and_leader_epoch) {
  auto [a, b] = stable_pair();
  wire::offset_commit_request commit = commit_request("g", a.id, a.generation);
  wire::offset_commit_response cr = commit_now(commit, 8);
  ASSERT_EQ(cr.topics.size(), 1u);
  ASSERT_EQ(cr.topics[0].partitions.size(), 2u);
  EXPECT_EQ(cr.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(cr.topics[0].partitions[1].error_code, 0);
  ASSERT_EQ(store_.offsets.size(), 2u);
  EXPECT_EQ(store_.offsets[0].value.metadata, "meta");
  EXPECT_GT(store_.offsets[0].value.commit_timestamp_ms, 0);

  wire::offset_fetch_request fetch;
  fetch.group_id = "g";
  auto& ft = fetch.topics->emplace_back();
  ft.name = "t";
  ft.partition_indexes = {0, 1, 2};
  wire::offset_fetch_response fr = gc_->fetch_offsets(fetch, 7);
  ASSERT_EQ(fr.topics.size(), 1u);
  ASSERT_EQ(fr.topics[0].partitions.size(), 3u);
  EXPECT_EQ(fr.topics[0].partitions[0].committed_offset, 42);
  EXPECT_EQ(fr.topics[0].partitions[0].committed_leader_epoch, 7);
  EXPECT_EQ(fr.topics[0].partitions[0].metadata, "meta");
  EXPECT_EQ(fr.topics[0].partitions[1].committed_offset, 5);
  EXPECT_EQ(fr.topics[0].partitions[1].metadata, "");
  EXPECT_EQ(fr.topics[0].partitions[2].committed_offset, -1);  // never committed

  // v8: several groups, and a null topic list means every committed partition.
  wire::offset_fetch_request v8;
  auto& g1 = v8.groups.emplace_back();
  g1.group_id = "g";
  g1.topics = std::nullopt;
  v8.groups.emplace_back().group_id = "unknown";
  wire::offset_fetch_response r8 = gc_->fetch_offsets(v8, 8);
  ASSERT_EQ(r8.groups.size(), 2u);
  ASSERT_EQ(r8.groups[0].topics.size(), 1u);
  EXPECT_EQ(r8.groups[0].topics[0].partitions.size(), 2u);
  EXPECT_TRUE(r8.groups[1].topics.empty());

  // Membership is checked.
  wire::offset_commit_request stale = commit_request("g", a.id, a.generation - 1);
  EXPECT_EQ(commit_now(stale, 8).topics[0].partitions[0].error_code,
            code(error_code::illegal_generation));
  wire::offset_commit_request stranger = commit_request("g", "nobody", a.generation);
  EXPECT_EQ(commit_now(stranger, 8).topics[0].partitions[0].error_code,
            code(error_code::unknown_member_id));
  // A failed append leaves the committed offsets as they were.
  store_.fail_offsets = error_code::coordinator_not_available;
  wire::offset_commit_request again = commit_request("g", a.id, a.generation);
  again.topics[0].partitions[0].committed_offset = 99;
  EXPECT_EQ(commit_now(again, 8).topics[0].partitions[0].error_code,
            code(error_code::coordinator_not_available));
  EXPECT_EQ(gc_->fetch_offsets(fetch, 7).topics[0].partitions[0].committed_offset, 42);
}

TEST_F(group_coordinator_test, standalone_commit_needs_an_empty_group) {
  wire::offset_commit_request simple = commit_request("solo", "", -1);
  EXPECT_EQ(commit_now(simple, 2).topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(gc_->state_of("solo"), group_state::empty);
  wire::offset_commit_request with_generation = commit_request("nowhere", "", 3);
  EXPECT_EQ(commit_now(with_generation, 2).topics[0].partitions[0].error_code,
            code(error_code::illegal_generation));

  auto a = start_join(join_request("solo", member_id_for("solo")));
  ASSERT_TRUE(*a);
  EXPECT_EQ(commit_now(simple, 2).topics[0].partitions[0].error_code,
            code(error_code::unknown_member_id));
}

TEST_F(group_coordinator_test, inconsistent_protocols_are_refused_and_votes_pick_the_protocol) {
  make(30ms);
  auto a = start_join(join_request("g", "", std::nullopt, {{"range", ""}, {"rr", ""}}), 3);
  auto b = start_join(join_request("g", "", std::nullopt, {{"rr", ""}, {"range", ""}}), 3);
  auto c = start_join(join_request("g", "", std::nullopt, {{"rr", ""}, {"range", ""}}), 3);
  auto other = start_join(join_request("g", "", std::nullopt, {{"sticky", ""}}), 3);
  ASSERT_TRUE(*other);
  EXPECT_EQ((*other)->error_code, code(error_code::inconsistent_group_protocol));
  auto wrong_type = join_request("g", "");
  wrong_type.protocol_type = "connect";
  auto w = start_join(wrong_type, 3);
  ASSERT_TRUE(*w);
  EXPECT_EQ((*w)->error_code, code(error_code::inconsistent_group_protocol));
  advance(100ms);
  ASSERT_TRUE(*a && *b && *c);
  EXPECT_EQ((*a)->protocol_name, "rr");  // two votes against one
  EXPECT_EQ((*a)->members.size(), 3u);
}

TEST_F(group_coordinator_test, list_describe_and_delete_groups) {
  auto [a, b] = stable_pair("busy");
  wire::offset_commit_request simple = commit_request("idle", "", -1);
  commit_now(simple, 2);

  wire::list_groups_request all;
  wire::list_groups_response listed = gc_->list_groups(all, 4);
  ASSERT_EQ(listed.groups.size(), 2u);
  EXPECT_EQ(listed.groups[0].group_id, "busy");
  EXPECT_EQ(listed.groups[0].group_state, "Stable");
  EXPECT_EQ(listed.groups[0].protocol_type, "consumer");
  EXPECT_EQ(listed.groups[1].group_state, "Empty");
  wire::list_groups_request stable_only;
  stable_only.states_filter = {"stable"};
  EXPECT_EQ(gc_->list_groups(stable_only, 4).groups.size(), 1u);

  wire::describe_groups_request describe;
  describe.groups = {"busy", "missing"};
  wire::describe_groups_response d = gc_->describe_groups(describe, 5);
  ASSERT_EQ(d.groups.size(), 2u);
  EXPECT_EQ(d.groups[0].group_state, "Stable");
  EXPECT_EQ(d.groups[0].protocol_data, "range");
  ASSERT_EQ(d.groups[0].members.size(), 2u);
  EXPECT_EQ(d.groups[0].members[0].member_id, a.id);
  EXPECT_EQ(d.groups[0].members[0].client_id, "a");
  EXPECT_EQ(d.groups[0].members[0].client_host, "/127.0.0.1");
  EXPECT_EQ(d.groups[0].members[0].member_metadata, bytes("sub"));
  EXPECT_EQ(d.groups[0].members[1].member_assignment, bytes("b"));
  EXPECT_EQ(d.groups[1].group_state, "Dead");
  EXPECT_EQ(d.groups[1].error_code, 0);

  wire::delete_groups_request del;
  del.groups_names = {"busy", "idle", "missing"};
  wire::delete_groups_response dr = delete_groups_now(del);
  ASSERT_EQ(dr.results.size(), 3u);
  EXPECT_EQ(dr.results[0].error_code, code(error_code::non_empty_group));
  EXPECT_EQ(dr.results[1].error_code, 0);
  EXPECT_EQ(dr.results[2].error_code, code(error_code::group_id_not_found));
  EXPECT_FALSE(gc_->state_of("idle"));
  // "idle" never had a generation, so no metadata record to tombstone (Kafka skips it too).
  EXPECT_TRUE(store_.removed_groups.empty());
  EXPECT_EQ(store_.removed_offsets.size(), 2u);
  wire::offset_fetch_request fetch;
  fetch.group_id = "idle";
  fetch.topics = std::nullopt;
  EXPECT_TRUE(gc_->fetch_offsets(fetch, 7).topics.empty());
}

TEST_F(group_coordinator_test, offset_delete_refuses_subscribed_topics) {
  // A consumer subscription (version 0) naming topic "t".
  std::string sub = std::string("\0\0\0\0\0\1\0\1t", 9);
  auto a = start_join(join_request("g", member_id_for("g"), std::nullopt, {{"range", sub}}));
  ASSERT_TRUE(*a);
  auto s = start_sync("g", (*a)->member_id, (*a)->generation_id);
  ASSERT_TRUE(*s);
  wire::offset_commit_request commit = commit_request("g", (*a)->member_id, (*a)->generation_id);
  commit.topics.emplace_back().name = "u";
  commit.topics[1].partitions.emplace_back().committed_offset = 3;
  commit_now(commit, 8);

  wire::offset_delete_request del;
  del.group_id = "g";
  for (const char* topic : {"t", "u"}) {
    auto& t = del.topics.emplace_back();
    t.name = topic;
    t.partitions.emplace_back().partition_index = 0;
  }
  wire::offset_delete_response r = delete_offsets_now(del);
  EXPECT_EQ(r.error_code, 0);
  EXPECT_EQ(r.topics[0].partitions[0].error_code, code(error_code::group_subscribed_to_topic));
  EXPECT_EQ(r.topics[1].partitions[0].error_code, 0);
  EXPECT_EQ(store_.removed_offsets.size(), 1u);
}

// Kafka's cleanupGroupMetadata after OffsetDelete: an Empty group left without offsets is gone.
TEST_F(group_coordinator_test, offset_delete_of_an_empty_groups_last_offsets_removes_it) {
  wire::offset_commit_request commit = commit_request("alone", "", -1);
  commit_now(commit, 8);
  ASSERT_EQ(gc_->state_of("alone"), group_state::empty);
  wire::offset_delete_request del;
  del.group_id = "alone";
  auto& t = del.topics.emplace_back();
  t.name = commit.topics[0].name;
  for (const auto& p : commit.topics[0].partitions)
    t.partitions.emplace_back().partition_index = p.partition_index;
  EXPECT_EQ(delete_offsets_now(del).error_code, 0);
  EXPECT_FALSE(gc_->state_of("alone"));
  EXPECT_TRUE(store_.removed_groups.empty());  // never had a generation: no metadata to drop
}

TEST_F(group_coordinator_test, shutdown_answers_parked_requests) {
  make(30ms);
  auto a = start_join(join_request("g", ""), 3);
  EXPECT_FALSE(*a);
  gc_.reset();
  settle();
  ASSERT_TRUE(*a);
  EXPECT_EQ((*a)->error_code, code(error_code::not_coordinator));
}

// ---- Ownership: groups live on __consumer_offsets partitions led here ------------------------

// Java's String.hashCode values (s[0]*31^(n-1) + ... over UTF-16 units, int arithmetic), as a
// JVM computes them for ids a client would hash.
TEST_F(group_coordinator_test, partition_for_is_kafkas_partition_for) {
  make();
  gc_->set_offsets_partitions(50);
  // abs(hashCode) % 50: "hello" = 99162322; "analytics" = -1693017210; "polygenelubricants" =
  // Integer.MIN_VALUE, which Kafka's Utils.abs makes 0.
  EXPECT_EQ(gc_->partition_for("hello"), 99162322 % 50);
  EXPECT_EQ(gc_->partition_for("analytics"), 1693017210 % 50);
  EXPECT_EQ(gc_->partition_for("polygenelubricants"), 0);
  EXPECT_EQ(gc_->partition_for(""), 0);
  // Outside the BMP one code point is two UTF-16 units: "\uD83D\uDE00".hashCode() = 1772899.
  EXPECT_EQ(gc_->partition_for("\xF0\x9F\x98\x80"), 1772899 % 50);
  // Two-byte sequences are one unit each: "\u00e9t\u00e9".hashCode() = 227742.
  EXPECT_EQ(gc_->partition_for("\xC3\xA9t\xC3\xA9"), 227742 % 50);
  gc_->set_offsets_partitions(0);
  EXPECT_EQ(gc_->partition_for("hello"), -1);
}

TEST_F(group_coordinator_test, groups_of_partitions_not_led_here_answer_kafkas_errors) {
  make();
  gc_->set_offsets_partitions(0);
  // No offsets topic yet.
  auto j = start_join(join_request("g", ""), 5);
  ASSERT_TRUE(*j);
  EXPECT_EQ((*j)->error_code, code(error_code::coordinator_not_available));
  wire::list_groups_request list;
  EXPECT_EQ(gc_->list_groups(list, 4).error_code, code(error_code::coordinator_not_available));

  gc_->set_offsets_partitions(4);
  const int32_t p = gc_->partition_for("g");
  j = start_join(join_request("g", ""), 5);
  EXPECT_EQ((*j)->error_code, code(error_code::not_coordinator));
  EXPECT_EQ(heartbeat("g", "m", 1), code(error_code::not_coordinator));

  gc_->begin_loading(p);
  j = start_join(join_request("g", ""), 5);
  EXPECT_EQ((*j)->error_code, code(error_code::coordinator_load_in_progress));
  // Kafka answers a heartbeat blindly while the group loads.
  EXPECT_EQ(heartbeat("g", "m", 1), code(error_code::none));
  wire::offset_fetch_request fetch;
  fetch.group_id = "g";
  fetch.topics = std::nullopt;
  EXPECT_EQ(gc_->fetch_offsets(fetch, 7).error_code,
            code(error_code::coordinator_load_in_progress));
  wire::offset_fetch_request fetch_v8;
  fetch_v8.groups.emplace_back().group_id = "g";
  auto v8 = gc_->fetch_offsets(fetch_v8, 8);
  ASSERT_EQ(v8.groups.size(), 1u);
  EXPECT_EQ(v8.groups[0].error_code, code(error_code::coordinator_load_in_progress));
  EXPECT_EQ(gc_->list_groups(list, 4).error_code, code(error_code::coordinator_load_in_progress));
  wire::describe_groups_request describe;
  describe.groups = {"g"};
  EXPECT_EQ(gc_->describe_groups(describe, 5).groups[0].error_code,
            code(error_code::coordinator_load_in_progress));

  // A group replayed from the log is there once loading is done.
  offset_record r{{"t", 0}, {42, -1, "", 1}};
  gc_->load_offset("g", r);
  gc_->finish_loading(p);
  EXPECT_EQ(committed("g"), (std::map<topic_partition, int64_t>{{{"t", 0}, 42}}));
  EXPECT_EQ(gc_->list_groups(list, 4).error_code, 0);
  j = start_join(join_request("g", ""), 5);
  EXPECT_EQ((*j)->error_code, code(error_code::member_id_required));

  // A group on another partition is still not ours.
  std::string other;
  for (int i = 0; other.empty(); ++i) {
    std::string id = "other-" + std::to_string(i);
    if (gc_->partition_for(id) != p) other = id;
  }
  wire::offset_commit_request commit;
  commit.group_id = other;
  commit.generation_id_or_member_epoch = -1;
  auto& t = commit.topics.emplace_back();
  t.name = "t";
  t.partitions.emplace_back().committed_offset = 1;
  EXPECT_EQ(commit_now(commit).topics[0].partitions[0].error_code,
            code(error_code::not_coordinator));
  wire::delete_groups_request del;
  del.groups_names = {other};
  EXPECT_EQ(delete_groups_now(del).results[0].error_code, code(error_code::not_coordinator));
}

TEST_F(group_coordinator_test, losing_a_partition_unloads_its_groups_and_answers_parked_joins) {
  make(30ms);
  gc_->set_offsets_partitions(3);
  const int32_t p = gc_->partition_for("g");
  gc_->begin_loading(p);
  gc_->finish_loading(p);
  // Parked in the initial rebalance delay.
  auto j = start_join(join_request("g", member_id_for("g")), 5);
  EXPECT_FALSE(*j);
  EXPECT_EQ(gc_->unload(p), 1u);
  settle();
  ASSERT_TRUE(*j);
  EXPECT_EQ((*j)->error_code, code(error_code::not_coordinator));
  EXPECT_EQ(gc_->state_of("g"), std::nullopt);
  auto again = start_join(join_request("g", ""), 5);
  EXPECT_EQ((*again)->error_code, code(error_code::not_coordinator));
  // Leading it again loads it again from the log, not from what memory had.
  gc_->begin_loading(p);
  gc_->finish_loading(p);
  EXPECT_EQ(gc_->state_of("g"), std::nullopt);
  again = start_join(join_request("g", ""), 5);
  EXPECT_EQ((*again)->error_code, code(error_code::member_id_required));
}

// ---- Offset retention (KIP-211) ---------------------------------------------------------------

class retention_test : public group_coordinator_test {
 protected:
  static constexpr int64_t retention_ms = 60'000;
  void SetUp() override {
    group_coordinator_config config;
    config.min_session_timeout = 10ms;
    config.initial_rebalance_delay = 0ms;
    config.offsets_retention = std::chrono::milliseconds(retention_ms);
    config.offsets_retention_check_interval = 50ms;
    make(config);
  }
  int64_t fetched(const std::string& group, const std::string& topic, int32_t partition) {
    wire::offset_fetch_request fetch;
    fetch.group_id = group;
    auto& t = fetch.topics->emplace_back();
    t.name = topic;
    t.partition_indexes = {partition};
    return gc_->fetch_offsets(fetch, 7).topics[0].partitions[0].committed_offset;
  }
  // A standalone commit (no generation) of one offset.
  void commit_alone(const std::string& group, const std::string& topic, int32_t partition) {
    wire::offset_commit_request r = commit_request(group, "", -1);
    r.topics[0].name = topic;
    r.topics[0].partitions.resize(1);
    r.topics[0].partitions[0].partition_index = partition;
    ASSERT_EQ(commit_now(r, 2).topics[0].partitions[0].error_code, 0);
  }
};

TEST_F(retention_test, empty_group_expires_retention_after_it_became_empty_not_after_commit) {
  auto a = start_join(join_request("g", member_id_for("g")));
  ASSERT_TRUE(*a);
  auto sync = start_sync("g", (*a)->member_id, (*a)->generation_id, {{(*a)->member_id, "x"}});
  ASSERT_TRUE(*sync);
  wire::offset_commit_request commit = commit_request("g", (*a)->member_id, (*a)->generation_id);
  ASSERT_EQ(commit_now(commit, 8).topics[0].partitions[0].error_code, 0);

  // Commits older than the retention do not expire while the group has members...
  advance_heartbeating(2ms * retention_ms, {{(*a)->member_id, (*a)->generation_id}}, "g", 50ms);
  EXPECT_EQ(expire(), 0u);
  wire::leave_group_request leave;
  leave.group_id = "g";
  leave.member_id = (*a)->member_id;
  ASSERT_EQ(gc_->leave(leave, 1).error_code, 0);
  ASSERT_EQ(gc_->state_of("g"), group_state::empty);

  // ...and the clock of an empty group starts when it became empty.
  advance(1ms * (retention_ms - 1));
  gc_->start_offset_expiry();  // checks at once, then every 50 ms
  settle();
  EXPECT_EQ(fetched("g", "t", 0), 42);
  EXPECT_EQ(gc_->state_of("g"), group_state::empty);
  EXPECT_TRUE(store_.removed_offsets.empty());

  advance(1ms);
  advance(120ms);  // the periodic check fires
  EXPECT_EQ(fetched("g", "t", 0), -1);
  EXPECT_EQ(fetched("g", "t", 1), -1);
  EXPECT_EQ(store_.removed_offsets, (std::vector<topic_partition>{{"t", 0}, {"t", 1}}));
  // Empty without offsets: Dead and forgotten, its metadata tombstoned (it had a generation).
  EXPECT_FALSE(gc_->state_of("g"));
  EXPECT_EQ(store_.removed_groups, std::vector<std::string>{"g"});
}

TEST_F(retention_test, offsets_without_group_management_expire_one_by_one_from_their_commit) {
  commit_alone("solo", "t", 0);
  advance(1ms * retention_ms / 2);
  commit_alone("solo", "t", 1);
  advance(1ms * retention_ms / 2);
  EXPECT_EQ(expire(), 1u);
  EXPECT_EQ(fetched("solo", "t", 0), -1);
  EXPECT_EQ(fetched("solo", "t", 1), 42);
  EXPECT_EQ(gc_->state_of("solo"), group_state::empty);  // it still has an offset

  advance(1ms * retention_ms / 2);
  EXPECT_EQ(expire(), 1u);
  EXPECT_FALSE(gc_->state_of("solo"));
  EXPECT_EQ(store_.removed_offsets, (std::vector<topic_partition>{{"t", 0}, {"t", 1}}));
  EXPECT_TRUE(store_.removed_groups.empty());  // generation 0: no metadata was ever written
}

// DeleteTopics: a topic created again under the same name must not inherit old positions.
TEST_F(retention_test, deleting_a_topic_removes_its_offsets_from_every_group) {
  commit_alone("a", "gone", 0);
  commit_alone("a", "kept", 0);
  commit_alone("b", "gone", 1);
  gc_->on_topic_deleted("gone");
  settle();
  EXPECT_EQ(fetched("a", "gone", 0), -1);
  EXPECT_EQ(fetched("a", "kept", 0), 42);
  EXPECT_EQ(fetched("b", "gone", 1), -1);
  EXPECT_EQ(gc_->state_of("a"), group_state::empty);
  EXPECT_FALSE(gc_->state_of("b"));  // empty without offsets: removed
  EXPECT_EQ(store_.removed_offsets, (std::vector<topic_partition>{{"gone", 0}, {"gone", 1}}));
}

TEST_F(retention_test, stable_consumer_group_keeps_subscribed_topics_and_expires_the_others) {
  // A ConsumerProtocolSubscription (version 0) naming topic "t" only.
  std::string sub = std::string("\0\0\0\0\0\1\0\1t", 9);
  auto a = start_join(join_request("g", member_id_for("g"), std::nullopt, {{"range", sub}}));
  ASSERT_TRUE(*a);
  auto s = start_sync("g", (*a)->member_id, (*a)->generation_id);
  ASSERT_TRUE(*s);
  ASSERT_EQ(gc_->state_of("g"), group_state::stable);
  wire::offset_commit_request commit = commit_request("g", (*a)->member_id, (*a)->generation_id);
  commit.topics.emplace_back().name = "u";
  commit.topics[1].partitions.emplace_back().committed_offset = 3;
  commit_now(commit, 8);

  const std::vector<std::pair<std::string, int32_t>> alive = {
      {(*a)->member_id, (*a)->generation_id}};
  advance_heartbeating(1ms * (retention_ms - 1), alive, "g", 50ms);
  EXPECT_EQ(expire(), 0u);
  advance_heartbeating(1ms, alive);
  EXPECT_EQ(expire(), 1u);
  EXPECT_EQ(fetched("g", "u", 0), -1);
  EXPECT_EQ(fetched("g", "t", 0), 42);
  advance_heartbeating(10ms * retention_ms, alive, "g", 50ms);
  EXPECT_EQ(expire(), 0u);
  EXPECT_EQ(fetched("g", "t", 1), 5);
  EXPECT_EQ(gc_->state_of("g"), group_state::stable);
  EXPECT_TRUE(store_.removed_groups.empty());
}

TEST_F(retention_test, rebalancing_group_expires_nothing) {
  auto a = start_join(join_request("g", member_id_for("g")));
  ASSERT_TRUE(*a);
  // Joined but not synced: CompletingRebalance.
  ASSERT_EQ(gc_->state_of("g"), group_state::completing_rebalance);
  commit_alone("other", "t", 0);
  // Heartbeats keep the member (they are allowed between JoinGroup and SyncGroup).
  advance_heartbeating(10ms * retention_ms, {{(*a)->member_id, (*a)->generation_id}}, "g", 50ms);
  EXPECT_EQ(expire(), 1u);  // only the standalone group's
  EXPECT_EQ(gc_->state_of("g"), group_state::completing_rebalance);
}

TEST_F(retention_test, loaded_groups_count_from_their_stored_state_timestamp_or_commits) {
  group_metadata_record empty_group;
  empty_group.protocol_type = "consumer";
  empty_group.generation = 4;
  // Became empty 59 s ago; committed long before.
  const int64_t now = clock_.wall_clock_ms();
  gc_->load_group("recent", empty_group, now - (retention_ms - 1'000));
  gc_->load_offset("recent", {{"t", 0}, {7, -1, "", now - 100 * retention_ms}});
  // An old record without the timestamp (GroupMetadataValue v0/v1): the commit time counts.
  gc_->load_group("old", empty_group, -1);
  gc_->load_offset("old", {{"t", 0}, {8, -1, "", now - (retention_ms - 2'000)}});

  EXPECT_EQ(expire(), 0u);
  advance(1'000ms);
  EXPECT_EQ(expire(), 1u);
  EXPECT_FALSE(gc_->state_of("recent"));
  EXPECT_EQ(gc_->state_of("old"), group_state::empty);
  advance(1'000ms);
  EXPECT_EQ(expire(), 1u);
  EXPECT_FALSE(gc_->state_of("old"));
  EXPECT_EQ(store_.removed_groups, (std::vector<std::string>{"recent", "old"}));
}

TEST_F(retention_test, empty_group_without_offsets_is_removed_at_the_next_check) {
  auto a = start_join(join_request("g", member_id_for("g")));
  ASSERT_TRUE(*a);
  wire::leave_group_request leave;
  leave.group_id = "g";
  leave.member_id = (*a)->member_id;
  ASSERT_EQ(gc_->leave(leave, 1).error_code, 0);
  ASSERT_EQ(gc_->state_of("g"), group_state::empty);
  EXPECT_EQ(expire(), 0u);
  EXPECT_FALSE(gc_->state_of("g"));
  EXPECT_EQ(store_.removed_groups, std::vector<std::string>{"g"});
}

TEST_F(retention_test, shutdown_stops_the_periodic_check) {
  gc_->start_offset_expiry();
  ASSERT_EQ(clock_.pending(), 1u);
  gc_->shutdown();
  EXPECT_EQ(clock_.pending(), 0u);
  settle();
  // Out of work: the broker's io_context can finish after a SIGTERM.
  EXPECT_TRUE(io_.stopped());
}

// The same with the production timers (steady timers on the io_context): a cancelled timer
// completes at once, so the broker's io_context runs out of work after a SIGTERM.
TEST(group_coordinator_timers_test, shutdown_leaves_the_io_context_without_work) {
  asio::io_context io;
  group_coordinator_config config;
  group_coordinator gc(io.get_executor(), config);
  wire::join_group_request join = join_request("g", "");
  join.session_timeout_ms = 6'000;
  asio::co_spawn(
      io,
      [](group_coordinator& gc, wire::join_group_request req) -> asio::awaitable<void> {
        co_await gc.join(req, 3, "c", "/127.0.0.1");
      }(gc, std::move(join)),
      asio::detached);
  io.poll();
  ASSERT_EQ(gc.state_of("g"), group_state::preparing_rebalance);  // initial delay: 3 s
  gc.start_offset_expiry();
  gc.shutdown();
  io.poll();
  EXPECT_TRUE(io.stopped());
}

// ---- Writes in flight: the store answers later, or fails --------------------------------------

using offset_map = std::map<topic_partition, int64_t>;

TEST_F(group_coordinator_test, commit_takes_effect_only_once_durable) {
  wire::offset_commit_request first = commit_request("solo", "", -1);
  ASSERT_EQ(commit_now(first, 2).topics[0].partitions[0].error_code, 0);
  store_.hold = true;
  wire::offset_commit_request second = commit_request("solo", "", -1);
  second.topics[0].partitions[0].committed_offset = 43;
  auto pending = spawn(gc_->commit_offsets(second, 2));
  EXPECT_FALSE(*pending);  // not answered before the append is durable
  EXPECT_EQ(committed("solo"), (offset_map{{{"t", 0}, 42}, {{"t", 1}, 5}}));  // the old value
  store_.complete_next();
  settle();
  ASSERT_TRUE(*pending);
  EXPECT_EQ((*pending)->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ((*pending)->topics[0].partitions[1].error_code, 0);
  EXPECT_EQ(committed("solo"), (offset_map{{{"t", 0}, 43}, {{"t", 1}, 5}}));
  EXPECT_EQ(committed("solo"), logged("solo"));
}

TEST_F(group_coordinator_test, failed_commit_answers_its_error_and_keeps_the_old_offset) {
  wire::offset_commit_request first = commit_request("solo", "", -1);
  commit_now(first, 2);
  store_.hold = true;
  wire::offset_commit_request second = commit_request("solo", "", -1);
  second.topics[0].partitions[0].committed_offset = 43;
  second.topics[0].partitions[1].committed_metadata = std::string(5'000, 'x');  // too large
  auto pending = spawn(gc_->commit_offsets(second, 2));
  store_.complete_next(error_code::not_coordinator);
  settle();
  ASSERT_TRUE(*pending);
  EXPECT_EQ((*pending)->topics[0].partitions[0].error_code, code(error_code::not_coordinator));
  EXPECT_EQ((*pending)->topics[0].partitions[1].error_code,
            code(error_code::offset_metadata_too_large));
  EXPECT_EQ(committed("solo"), (offset_map{{{"t", 0}, 42}, {{"t", 1}, 5}}));
  EXPECT_EQ(committed("solo"), logged("solo"));
}

TEST_F(group_coordinator_test, failed_sync_store_answers_every_member_and_rebalances) {
  make(30ms);
  auto a = start_join(join_request("g", ""), 3, "a");
  auto b = start_join(join_request("g", ""), 3, "b");
  advance(100ms);
  ASSERT_TRUE(*a && *b);
  auto sb = start_sync("g", (*b)->member_id, 1);
  store_.hold = true;
  auto sa = start_sync("g", (*a)->member_id, 1, {{(*b)->member_id, "for-b"}});
  EXPECT_FALSE(*sa || *sb);  // nobody hears of the assignment before it is durable
  EXPECT_EQ(gc_->state_of("g"), group_state::completing_rebalance);
  store_.complete_next(error_code::not_coordinator);
  settle();
  ASSERT_TRUE(*sa && *sb);
  EXPECT_EQ((*sa)->error_code, code(error_code::not_coordinator));
  EXPECT_EQ((*sb)->error_code, code(error_code::not_coordinator));
  EXPECT_TRUE((*sb)->assignment.empty());
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_TRUE(store_.groups.empty());
}

// Kafka's doSyncGroup callback: a write that completes after the group moved on settles nothing.
TEST_F(group_coordinator_test, sync_store_completing_after_a_member_joined_changes_nothing) {
  make(30ms);
  auto a = start_join(join_request("g", ""), 3, "a");
  auto b = start_join(join_request("g", ""), 3, "b");
  advance(100ms);
  ASSERT_TRUE(*a && *b);
  store_.hold = true;
  auto sa = start_sync("g", (*a)->member_id, 1, {{(*b)->member_id, "for-b"}});
  EXPECT_FALSE(*sa);
  auto c = start_join(join_request("g", member_id_for("g", "c")), 5, "c");
  ASSERT_TRUE(*sa);  // the new member's join started a rebalance
  EXPECT_EQ((*sa)->error_code, code(error_code::rebalance_in_progress));
  store_.complete_next();  // generation 1's assignment is durable, too late
  settle();
  EXPECT_EQ(gc_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_EQ(heartbeat("g", (*b)->member_id, 1), code(error_code::rebalance_in_progress));
}

TEST_F(group_coordinator_test, failed_store_of_an_empty_generation_is_only_logged) {
  auto a = start_join(join_request("g", member_id_for("g")));
  ASSERT_TRUE(*a);
  store_.fail_groups = error_code::not_coordinator;
  wire::leave_group_request leave;
  leave.group_id = "g";
  leave.member_id = (*a)->member_id;
  ASSERT_EQ(gc_->leave(leave, 1).error_code, 0);
  settle();
  EXPECT_EQ(gc_->state_of("g"), group_state::empty);
  EXPECT_TRUE(store_.groups.empty());
}

TEST_F(static_group_test, failed_store_of_a_rejoin_keeps_the_old_member_id) {
  store_.fail_groups = error_code::not_coordinator;
  auto again = start_join(join_request("g", "", "ib"), 5, "b");
  ASSERT_TRUE(*again);
  EXPECT_EQ((*again)->error_code, code(error_code::not_coordinator));
  EXPECT_EQ((*again)->member_id, "");
  // Memory names the incarnation that the log still holds (Kafka reverts the same way).
  EXPECT_EQ(heartbeat("g", b.id, b.generation, "ib"), 0);
  EXPECT_EQ(gc_->state_of("g"), group_state::stable);
  auto sync = start_sync("g", b.id, b.generation, {}, "ib");
  ASSERT_TRUE(*sync);
  EXPECT_EQ((*sync)->assignment, bytes("b"));
}

TEST_F(static_group_test, rebalance_during_a_rejoin_write_takes_the_new_incarnation_in) {
  store_.hold = true;
  auto again = start_join(join_request("g", "", "ib"), 5, "b");
  EXPECT_FALSE(*again);
  auto a2 = start_join(join_request("g", a.id, "ia"), 5, "a");  // the leader rejoins: rebalance
  // The new incarnation counts as joined, so the generation completes at once.
  ASSERT_TRUE(*a2 && *again);
  EXPECT_EQ((*again)->error_code, 0);
  EXPECT_EQ((*again)->generation_id, b.generation + 1);
  std::string new_b = (*again)->member_id;
  EXPECT_NE(new_b, b.id);
  store_.complete_next(error_code::not_coordinator);  // the rejoin's own write fails after all
  settle();
  // Superseded by the new generation: nothing is reverted.
  EXPECT_EQ(heartbeat("g", new_b, b.generation + 1, "ib"), 0);
  EXPECT_EQ(heartbeat("g", b.id, b.generation + 1, "ib"), code(error_code::fenced_instance_id));
}

TEST_F(group_coordinator_test, delete_groups_whose_tombstones_fail_keeps_the_group) {
  wire::offset_commit_request simple = commit_request("idle", "", -1);
  commit_now(simple, 2);
  store_.fail_tombstones = error_code::not_coordinator;
  wire::delete_groups_request del;
  del.groups_names = {"idle"};
  wire::delete_groups_response r = delete_groups_now(del);
  ASSERT_EQ(r.results.size(), 1u);
  EXPECT_EQ(r.results[0].error_code, code(error_code::not_coordinator));
  EXPECT_EQ(gc_->state_of("idle"), group_state::empty);
  EXPECT_EQ(committed("idle").size(), 2u);
  EXPECT_EQ(committed("idle"), logged("idle"));
  // A retry deletes it.
  store_.fail_tombstones = error_code::none;
  EXPECT_EQ(delete_groups_now(del).results[0].error_code, 0);
  EXPECT_FALSE(gc_->state_of("idle"));
  EXPECT_TRUE(logged("idle").empty());
}

TEST_F(group_coordinator_test, group_being_deleted_takes_no_member_or_commit_until_it_is_settled) {
  wire::offset_commit_request simple = commit_request("idle", "", -1);
  commit_now(simple, 2);
  store_.hold = true;
  wire::delete_groups_request del;
  del.groups_names = {"idle"};
  auto deleting = spawn(gc_->delete_groups(del, 2));
  EXPECT_FALSE(*deleting);
  EXPECT_EQ(gc_->state_of("idle"), group_state::dead);
  wire::list_groups_request all;
  EXPECT_TRUE(gc_->list_groups(all, 4).groups.empty());
  // Retriable answers: the client comes back once the deletion has settled either way.
  auto join = start_join(join_request("idle", ""), 3);
  ASSERT_TRUE(*join);
  EXPECT_EQ((*join)->error_code, code(error_code::coordinator_not_available));
  wire::offset_commit_request late = commit_request("idle", "", -1);
  EXPECT_EQ(commit_now(late, 2).topics[0].partitions[0].error_code,
            code(error_code::coordinator_not_available));
  EXPECT_EQ(committed("idle").size(), 2u);  // still what the log holds
  store_.complete_next(error_code::not_coordinator);
  settle();
  ASSERT_TRUE(*deleting);
  EXPECT_EQ((*deleting)->results[0].error_code, code(error_code::not_coordinator));
  EXPECT_EQ(gc_->state_of("idle"), group_state::empty);
  EXPECT_EQ(committed("idle"), logged("idle"));
  store_.hold = false;
  auto retry = start_join(join_request("idle", ""), 3);
  ASSERT_TRUE(*retry);
  EXPECT_EQ((*retry)->error_code, 0);
}

TEST_F(group_coordinator_test, delete_groups_covers_commits_still_in_flight) {
  store_.hold = true;
  wire::offset_commit_request to_a = commit_request("a", "", -1);
  wire::offset_commit_request to_b = commit_request("b", "", -1);
  auto committing_a = spawn(gc_->commit_offsets(to_a, 2));  // creates the group
  auto committing_b = spawn(gc_->commit_offsets(to_b, 2));
  wire::delete_groups_request del;
  del.groups_names = {"a", "b"};
  auto deleting = spawn(gc_->delete_groups(del, 2));
  EXPECT_EQ(store_.held(), 4u);
  store_.complete_next();  // the commits land first
  store_.complete_next();
  store_.complete_next();                             // a's tombstones
  store_.complete_next(error_code::not_coordinator);  // b's fail
  settle();
  ASSERT_TRUE(*committing_a && *committing_b && *deleting);
  EXPECT_EQ((*committing_a)->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ((*committing_b)->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ((*deleting)->results[0].error_code, 0);
  EXPECT_EQ((*deleting)->results[1].error_code, code(error_code::not_coordinator));
  // a: its tombstones covered the commit that was in flight; b: the commit stands.
  EXPECT_FALSE(gc_->state_of("a"));
  EXPECT_TRUE(logged("a").empty());
  EXPECT_EQ(gc_->state_of("b"), group_state::empty);
  EXPECT_EQ(committed("b"), (offset_map{{{"t", 0}, 42}, {{"t", 1}, 5}}));
  EXPECT_EQ(committed("b"), logged("b"));
}

// A Stable consumer group subscribed to "t" with a committed offset for "u" 0 (3).
class offset_delete_test : public group_coordinator_test {
 protected:
  void SetUp() override {
    group_coordinator_test::SetUp();
    std::string sub = std::string("\0\0\0\0\0\1\0\1t", 9);
    auto a = start_join(join_request("g", member_id_for("g"), std::nullopt, {{"range", sub}}));
    ASSERT_TRUE(*a);
    member = (*a)->member_id;
    generation = (*a)->generation_id;
    auto s = start_sync("g", member, generation);
    ASSERT_TRUE(*s);
    wire::offset_commit_request commit = commit_request("g", member, generation);
    commit.topics.emplace_back().name = "u";
    commit.topics[1].partitions.emplace_back().committed_offset = 3;
    commit_now(commit, 8);
  }
  static wire::offset_delete_request delete_request(const std::string& group, const char* topic,
                                                    std::vector<int32_t> partitions) {
    wire::offset_delete_request del;
    del.group_id = group;
    auto& t = del.topics.emplace_back();
    t.name = topic;
    for (int32_t p : partitions)
      t.partitions.emplace_back().partition_index = p;
    return del;
  }
  std::string member;
  int32_t generation = 0;
};

TEST_F(offset_delete_test, failed_tombstones_keep_the_offsets_and_answer_the_error) {
  store_.fail_tombstones = error_code::not_coordinator;
  wire::offset_delete_request del = delete_request("g", "u", {0});
  wire::offset_delete_response r = delete_offsets_now(del);
  // Kafka 4 (GroupCoordinatorService.deleteOffsets): the top-level error alone.
  EXPECT_EQ(r.error_code, code(error_code::not_coordinator));
  EXPECT_TRUE(r.topics.empty());
  EXPECT_EQ(committed("g").at({"u", 0}), 3);
  EXPECT_EQ(committed("g"), logged("g"));
  store_.fail_tombstones = error_code::none;
  EXPECT_EQ(delete_offsets_now(del).error_code, 0);
  EXPECT_FALSE(committed("g").contains({"u", 0}));
  EXPECT_EQ(committed("g"), logged("g"));
}

TEST_F(offset_delete_test, tombstones_and_commits_in_flight_end_as_the_log_does) {
  store_.hold = true;
  wire::offset_commit_request before = commit_request("g", member, generation);
  before.topics[0].name = "u";
  before.topics[0].partitions.resize(1);
  before.topics[0].partitions[0].committed_offset = 50;
  auto committing = spawn(gc_->commit_offsets(before, 8));
  // In flight when OffsetDelete comes: its tombstone follows it in the log.
  wire::offset_delete_request del = delete_request("g", "u", {0});
  auto deleting = spawn(gc_->delete_offsets(del, 0));
  wire::offset_commit_request after = before;
  after.topics[0].partitions[0].committed_offset = 60;
  auto recommitting = spawn(gc_->commit_offsets(after, 8));  // behind the tombstone
  EXPECT_EQ(committed("g").at({"u", 0}), 3);                 // nothing durable yet
  store_.complete_next();
  settle();
  EXPECT_EQ(committed("g").at({"u", 0}), 50);
  store_.complete_next();
  settle();
  EXPECT_FALSE(committed("g").contains({"u", 0}));
  store_.complete_next();
  settle();
  EXPECT_EQ(committed("g").at({"u", 0}), 60);
  ASSERT_TRUE(*committing && *deleting && *recommitting);
  EXPECT_EQ((*deleting)->error_code, 0);
  EXPECT_EQ((*deleting)->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(committed("g"), logged("g"));
}

TEST_F(group_coordinator_test, offset_delete_of_an_empty_groups_last_offsets_that_fails_keeps_it) {
  wire::offset_commit_request commit = commit_request("alone", "", -1);
  commit_now(commit, 8);
  generation_one("alone");
  store_.fail_tombstones = error_code::not_coordinator;
  wire::offset_delete_request del;
  del.group_id = "alone";
  auto& t = del.topics.emplace_back();
  t.name = "t";
  t.partitions.emplace_back().partition_index = 0;
  t.partitions.emplace_back().partition_index = 1;
  EXPECT_EQ(delete_offsets_now(del).error_code, code(error_code::not_coordinator));
  EXPECT_EQ(gc_->state_of("alone"), group_state::empty);
  EXPECT_EQ(committed("alone"), logged("alone"));
  EXPECT_EQ(committed("alone").size(), 2u);
  EXPECT_TRUE(store_.removed_groups.empty());
}

// Two OffsetDeletes in flight, each leaving the other's offset: the group is removed once the log
// has lost both, not on the strength of a tombstone that may yet fail.
TEST_F(group_coordinator_test, offsets_deleted_in_two_requests_remove_the_group_once_both_settle) {
  for (error_code first : {error_code::not_coordinator, error_code::none}) {
    wire::offset_commit_request commit = commit_request("pair", "", -1);
    commit_now(commit, 8);
    generation_one("pair");
    store_.hold = true;
    std::vector<outcome<wire::offset_delete_response>> deleting;
    for (int32_t p : {0, 1}) {
      wire::offset_delete_request del;
      del.group_id = "pair";
      auto& t = del.topics.emplace_back();
      t.name = "t";
      t.partitions.emplace_back().partition_index = p;
      deleting.push_back(spawn(gc_->delete_offsets(del, 0)));
    }
    EXPECT_EQ(gc_->state_of("pair"), group_state::empty);
    store_.complete_next(first);
    store_.complete_next();
    settle();
    ASSERT_TRUE(*deleting[0] && *deleting[1]);
    EXPECT_EQ((*deleting[0])->error_code, code(first));
    EXPECT_EQ((*deleting[1])->error_code, 0);
    if (first != error_code::none) {
      EXPECT_EQ(gc_->state_of("pair"), group_state::empty);
      EXPECT_EQ(committed("pair"), (offset_map{{{"t", 0}, 42}}));
      EXPECT_EQ(committed("pair"), logged("pair"));
      store_.hold = false;
      continue;
    }
    // The group's own tombstone follows the offsets'.
    EXPECT_EQ(gc_->state_of("pair"), group_state::dead);
    store_.complete_next();
    settle();
    EXPECT_FALSE(gc_->state_of("pair"));
    EXPECT_EQ(store_.removed_groups, std::vector<std::string>{"pair"});
    EXPECT_TRUE(logged("pair").empty());
  }
}

TEST_F(group_coordinator_test, writes_completing_after_shutdown_still_answer) {
  wire::offset_commit_request simple = commit_request("idle", "", -1);
  commit_now(simple, 2);
  store_.hold = true;
  wire::offset_commit_request again = commit_request("idle", "", -1);
  auto committing = spawn(gc_->commit_offsets(again, 2));
  wire::delete_groups_request del;
  del.groups_names = {"idle"};
  auto deleting = spawn(gc_->delete_groups(del, 2));
  gc_.reset();
  store_.complete_next();
  store_.complete_next();
  settle();
  ASSERT_TRUE(*committing && *deleting);
  // Durable: the commit and the deletion stand, though no coordinator is left to remember them.
  EXPECT_EQ((*committing)->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ((*deleting)->results[0].error_code, 0);
}

TEST_F(retention_test, a_commit_in_flight_keeps_its_partition_from_expiring) {
  commit_alone("solo", "t", 0);
  advance(1ms * retention_ms);
  store_.hold = true;
  wire::offset_commit_request again = commit_request("solo", "", -1);
  again.topics[0].partitions.resize(1);
  again.topics[0].partitions[0].committed_offset = 50;
  auto pending = spawn(gc_->commit_offsets(again, 2));
  EXPECT_EQ(gc_->expire_offsets(), 0u);  // the old value is due, but a new one is on its way
  store_.complete_next();
  settle();
  ASSERT_TRUE(*pending);
  EXPECT_EQ(fetched("solo", "t", 0), 50);
  store_.hold = false;
  EXPECT_EQ(expire(), 0u);
  EXPECT_EQ(gc_->state_of("solo"), group_state::empty);
}

TEST_F(retention_test, expired_offsets_whose_tombstones_fail_stay_until_a_check_succeeds) {
  commit_alone("solo", "t", 0);
  advance(1ms * retention_ms);
  store_.fail_tombstones = error_code::not_coordinator;
  EXPECT_EQ(expire(), 1u);
  EXPECT_EQ(fetched("solo", "t", 0), 42);
  EXPECT_EQ(gc_->state_of("solo"), group_state::empty);
  EXPECT_EQ(committed("solo"), logged("solo"));
  store_.fail_tombstones = error_code::none;
  EXPECT_EQ(expire(), 1u);
  EXPECT_FALSE(gc_->state_of("solo"));
  EXPECT_TRUE(logged("solo").empty());
}

TEST_F(retention_test, a_deleted_topics_offsets_whose_tombstones_fail_stay) {
  commit_alone("a", "gone", 0);
  commit_alone("a", "kept", 0);
  store_.fail_tombstones = error_code::not_coordinator;
  gc_->on_topic_deleted("gone");
  settle();
  EXPECT_EQ(fetched("a", "gone", 0), 42);
  EXPECT_EQ(committed("a"), logged("a"));
}

}  // namespace
}  // namespace sluice::server
