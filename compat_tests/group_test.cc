// Consumer groups through librdkafka's high-level consumer and admin API.
//
// Client behaviours relied on:
// - The high-level consumer (rd_kafka_subscribe, rd_kafka_consumer_poll) with the default
//   assignors (range, roundrobin) uses the eager protocol: in a rebalance every member is told to
//   revoke its whole assignment (the rebalance callback runs inside a poll) and rejoins only
//   after the application unassigned; the new assignment arrives after SyncGroup. So a partition
//   is never assigned to two live members at once, and a member that committed every processed
//   message before polling again leaves nothing uncommitted when it gives a partition up.
// - A member that is not polling cannot serve a rebalance, so each member polls on a thread of
//   its own. The crashed member runs in a forked child that is sent SIGKILL: its session must
//   time out at the broker (session.timeout.ms) before the others get its partitions.
// - rd_kafka_commit with an explicit list and async=0 sends OffsetCommit with the member's
//   generation and returns the broker's answer. A new owner resumes at the committed offset
//   (OffsetFetch); auto.offset.reset=earliest covers partitions nobody committed yet.
// - With group.instance.id (KIP-345) rd_kafka_consumer_close does not send LeaveGroup
//   (rd_kafka_cgrp_leave_maybe), and a new instance with the same id joins with an empty member
//   id; Kafka gives it the old member's assignment without a rebalance.
// - The admin API (librdkafka 2.0.2): ListConsumerGroups sends ListGroups (v4 with a state
//   filter), DescribeConsumerGroups sends DescribeGroups and parses each member's assignment as
//   a ConsumerProtocolAssignment, DeleteGroups and ListConsumerGroupOffsets (OffsetFetch) go to
//   the coordinator found with FindCoordinator.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;
using partition_offset = std::pair<int32_t, int64_t>;

// Small timeouts keep every rebalance, and the crashed member's expiry, to seconds. The broker
// must allow a 3 s session (Kafka's group.min.session.timeout.ms default is 6 s).
const std::map<std::string, std::string> fast_member = {
    {"session.timeout.ms", "3000"},
    {"heartbeat.interval.ms", "300"},
    // Also the rebalance timeout librdkafka sends in JoinGroup.
    {"max.poll.interval.ms", "10000"},
    {"fetch.wait.max.ms", "100"},
};

config_map group_broker(const std::string& partitions) {
  return {{"num.partitions", partitions},
          {"group.initial.rebalance.delay.ms", "0"},
          {"group.min.session.timeout.ms", "1000"}};
}

std::map<std::string, std::string> with(std::map<std::string, std::string> base,
                                        const std::map<std::string, std::string>& more) {
  for (const auto& [k, v] : more)
    base[k] = v;
  return base;
}

std::string join_ints(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s;
}

std::vector<int32_t> split_ints(const std::string& s) {
  std::vector<int32_t> out;
  std::istringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

// Creates `topic` (num.partitions partitions) by producing one message, so that consumers find
// every partition in their first metadata.
void create_topic(producer& p, const std::string& topic) {
  size_t id = p.produce(topic, -1, std::string("first"), std::string("first"));
  EXPECT_TRUE(p.flush(10s));
  producer::delivery d = p.delivery_of(id);
  EXPECT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
}

// ---- who owns what, and who consumed what ---------------------------------------------------

// Collects rebalance events and consumption from members on threads of this process and from
// the child process (whose lines arrive on a pipe), under one lock. An assignment is checked,
// when it is made, against every other member's current assignment: with the eager protocol
// each of them revoked before rejoining, so an overlap is a broker fault. The child's lines are
// read in before that check; it writes a revocation before it unassigns, hence before it
// rejoins, hence before anyone's new assignment exists.
class group_ledger {
 public:
  struct consumption {
    std::string member;
    partition_offset at;
    bool committed = false;  // the broker acknowledged the commit of this message
  };

  void set_child_pipe(int fd) { child_fd_ = fd; }

  void on_rebalance(const std::string& member, const group_consumer::rebalance_event& e) {
    std::lock_guard lock(mu_);
    drain_child_locked();
    apply_locked(member, e.assigned, e.partitions);
  }

  void on_consumed(const std::string& member, partition_offset at, rd_kafka_resp_err_t commit) {
    std::lock_guard lock(mu_);
    consumed_.push_back({member, at, commit == RD_KAFKA_RESP_ERR_NO_ERROR});
    if (commit != RD_KAFKA_RESP_ERR_NO_ERROR) ++commit_failures_[member];
  }

  // True when `live` members together own each of `partitions` exactly once, in equal shares
  // (range and roundrobin both split one topic evenly when the count divides).
  bool settled(const std::vector<std::string>& live, int32_t partitions) {
    std::lock_guard lock(mu_);
    drain_child_locked();
    std::map<int32_t, int> owners;
    for (const std::string& m : live) {
      const std::vector<int32_t>& owned = owned_[m];
      if (owned.size() != static_cast<size_t>(partitions) / live.size()) return false;
      for (int32_t p : owned)
        ++owners[p];
    }
    if (owners.size() != static_cast<size_t>(partitions)) return false;
    for (const auto& [p, n] : owners)
      if (n != 1 || p < 0 || p >= partitions) return false;
    return true;
  }

  std::string describe() {
    std::lock_guard lock(mu_);
    drain_child_locked();
    std::string s;
    for (const auto& [m, owned] : owned_)
      s += m + "=[" + join_ints(owned) + "] ";
    return s;
  }

  std::vector<int32_t> owned(const std::string& member) {
    std::lock_guard lock(mu_);
    drain_child_locked();
    return owned_[member];
  }
  std::vector<consumption> consumed() {
    std::lock_guard lock(mu_);
    drain_child_locked();
    return consumed_;
  }
  std::vector<std::string> overlaps() {
    std::lock_guard lock(mu_);
    return overlaps_;
  }
  std::map<std::string, int> commit_failures() {
    std::lock_guard lock(mu_);
    drain_child_locked();
    return commit_failures_;
  }
  size_t consumed_by(const std::string& member) {
    std::lock_guard lock(mu_);
    drain_child_locked();
    return static_cast<size_t>(std::count_if(consumed_.begin(), consumed_.end(),
                                             [&](const auto& c) { return c.member == member; }));
  }

  // A crashed member keeps its last assignment here but no longer counts as an owner.
  void mark_dead(const std::string& member) {
    std::lock_guard lock(mu_);
    drain_child_locked();
    dead_.insert(member);
  }
  std::vector<std::string> child_errors() {
    std::lock_guard lock(mu_);
    drain_child_locked();
    return child_errors_;
  }

  static constexpr const char* child_name = "crashing";

 private:
  void apply_locked(const std::string& member, bool assigned, const std::vector<int32_t>& parts) {
    if (!assigned) {
      owned_[member].clear();
      return;
    }
    for (const auto& [other, owned] : owned_) {
      if (other == member || dead_.contains(other)) continue;
      for (int32_t p : parts) {
        if (std::find(owned.begin(), owned.end(), p) != owned.end())
          overlaps_.push_back(member + " was assigned " + std::to_string(p) + " still owned by " +
                              other);
      }
    }
    owned_[member] = parts;
  }

  // Child lines: "A 1,2" assigned, "R 1,2" revoked, "C p o" consumed, "K p o" its commit was
  // acknowledged, "F p o" its commit failed, "X" the child gave up.
  void drain_child_locked() {
    if (child_fd_ < 0) return;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(child_fd_, buf, sizeof buf);
      if (n <= 0) break;
      child_buffer_.append(buf, static_cast<size_t>(n));
    }
    size_t nl;
    while ((nl = child_buffer_.find('\n')) != std::string::npos) {
      std::string line = child_buffer_.substr(0, nl);
      child_buffer_.erase(0, nl + 1);
      std::istringstream in(line);
      std::string kind;
      in >> kind;
      if (kind == "A" || kind == "R") {
        std::string parts;
        in >> parts;
        apply_locked(child_name, kind == "A", split_ints(parts));
      } else if (kind == "C") {
        consumption c{child_name, {}, false};
        in >> c.at.first >> c.at.second;
        consumed_.push_back(c);
      } else if (kind == "K" || kind == "F") {
        partition_offset at;
        in >> at.first >> at.second;
        for (auto it = consumed_.rbegin(); it != consumed_.rend(); ++it) {
          if (it->member == child_name && it->at == at) {
            it->committed = kind == "K";
            break;
          }
        }
        if (kind == "F") ++commit_failures_[child_name];
      } else {
        child_errors_.push_back(line);
      }
    }
  }

 private:
  std::mutex mu_;
  int child_fd_ = -1;
  std::string child_buffer_;
  std::map<std::string, std::vector<int32_t>> owned_;
  std::set<std::string> dead_;
  std::vector<consumption> consumed_;
  std::vector<std::string> overlaps_;
  std::map<std::string, int> commit_failures_;
  std::vector<std::string> child_errors_;
};

// A group member polling on its own thread: every message is committed synchronously before the
// next poll. stop() closes it on that thread (revocation, then LeaveGroup unless static).
class member_thread {
 public:
  member_thread(std::string name, std::string bootstrap, std::string group, std::string topic,
                std::map<std::string, std::string> conf, group_ledger& ledger)
      : name_(std::move(name)) {
    thread_ = std::thread([this, bootstrap, group, topic, conf, &ledger] {
      try {
        group_consumer c(bootstrap, group, topic, with(conf, {{"client.id", name_}}),
                         [&](const group_consumer::rebalance_event& e) {
                           ledger.on_rebalance(name_, e);
                           events_.fetch_add(1);
                         });
        while (!stop_.load()) {
          std::optional<message> m = c.poll(100ms);
          if (!m) continue;
          ledger.on_consumed(name_, {m->partition, m->offset}, c.commit(*m));
        }
        c.close();
        std::lock_guard lock(mu_);
        errors_ = c.errors();
      } catch (const std::exception& e) {
        std::lock_guard lock(mu_);
        errors_.push_back(e.what());
      }
    });
  }
  ~member_thread() { stop(); }

  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int rebalance_events() const { return events_.load(); }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }

 private:
  std::string name_;
  std::atomic<bool> stop_{false};
  std::atomic<int> events_{0};
  std::mutex mu_;
  std::vector<std::string> errors_;
  std::thread thread_;
};

// The member that crashes: a child process forked while this process has no threads yet
// (librdkafka's would not survive fork). It waits for a byte on `go_fd`, then consumes and
// commits like a member_thread, reporting each step as a line on `report_fd` (group_ledger's
// format) before it takes effect. Never returns.
[[noreturn]] void run_crashing_member(int go_fd, int report_fd, const std::string& bootstrap,
                                      const std::string& group, const std::string& topic) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto report = [report_fd](const std::string& line) {
    std::string l = line + "\n";
    // Lines are shorter than PIPE_BUF, so each write is atomic.
    if (::write(report_fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) ::_exit(4);
  };
  char go = 0;
  if (::read(go_fd, &go, 1) != 1) ::_exit(3);
  try {
    group_consumer c(bootstrap, group, topic,
                     with(fast_member, {{"client.id", group_ledger::child_name}}),
                     [&](const group_consumer::rebalance_event& e) {
                       report(std::string(e.assigned ? "A " : "R ") + join_ints(e.partitions));
                     });
    for (;;) {
      std::optional<message> m = c.poll(100ms);
      if (!m) continue;
      std::string at = std::to_string(m->partition) + " " + std::to_string(m->offset);
      report("C " + at);
      report((c.commit(*m) == RD_KAFKA_RESP_ERR_NO_ERROR ? "K " : "F ") + at);
    }
  } catch (const std::exception& e) {
    report(std::string("X ") + e.what());
  }
  ::_exit(2);
}

// ---- a: three members share a topic through a leave, a crash and a join ---------------------

TEST(Group, MembersSplitPartitionsAndConsumeEachMessageOnceThroughLeaveCrashAndJoin) {
  constexpr int32_t partitions = 6;
  broker b(group_broker(std::to_string(partitions)));
  const std::string topic = "shared";
  const std::string group = "sharers";

  int go[2], report[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(go[1]);
    ::close(report[0]);
    run_crashing_member(go[0], report[1], b.bootstrap(), group, topic);
  }
  ::close(go[0]);
  ::close(report[1]);
  ::fcntl(report[0], F_SETFL, O_NONBLOCK);
  auto reap_child = [&] {
    if (child <= 0) return;
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    child = -1;
  };
  struct cleanup {
    std::function<void()> f;
    ~cleanup() { f(); }
  } child_cleanup{[&] {
    reap_child();
    ::close(go[1]);
    ::close(report[0]);
  }};

  group_ledger ledger;
  ledger.set_child_pipe(report[0]);
  producer prod(b.bootstrap());
  create_topic(prod, topic);

  // Keyed messages keep coming through every rebalance, so every partition has traffic while
  // its ownership changes.
  std::atomic<bool> stop_producing{false};
  std::thread producing([&] {
    for (size_t i = 1; !stop_producing.load(); ++i) {
      // Appended, not "k" + to_string(i): GCC 12 warns falsely (-Wrestrict) on the latter.
      std::string n = std::to_string(i);
      prod.produce(topic, -1, std::string("k").append(n), std::string("v").append(n));
      prod.poll(0);
      std::this_thread::sleep_for(3ms);
    }
  });
  struct join_producer {
    std::atomic<bool>& stop;
    std::thread& t;
    ~join_producer() {
      stop.store(true);
      if (t.joinable()) t.join();
    }
  } producer_guard{stop_producing, producing};

  auto expect_settled = [&](const std::vector<std::string>& live, const char* after) {
    bool ok = wait_until([&] { return ledger.settled(live, partitions); }, 20s);
    EXPECT_TRUE(ok) << "after " << after << ": ownership " << ledger.describe();
    return ok;
  };

  ASSERT_EQ(::write(go[1], "g", 1), 1);
  auto a =
      std::make_unique<member_thread>("leaving", b.bootstrap(), group, topic, fast_member, ledger);
  auto keeper =
      std::make_unique<member_thread>("staying", b.bootstrap(), group, topic, fast_member, ledger);
  ASSERT_TRUE(expect_settled({"leaving", "staying", group_ledger::child_name}, "three joined"));
  // Every member gets to consume before the next change.
  ASSERT_TRUE(wait_until([&] {
    return ledger.consumed_by("leaving") > 0 && ledger.consumed_by("staying") > 0 &&
           ledger.consumed_by(group_ledger::child_name) > 0;
  }));

  a->stop();  // rd_kafka_consumer_close: revoke, LeaveGroup
  EXPECT_TRUE(ledger.owned("leaving").empty());
  ASSERT_TRUE(expect_settled({"staying", group_ledger::child_name}, "one left"));
  size_t child_before = ledger.consumed_by(group_ledger::child_name);
  ASSERT_TRUE(
      wait_until([&] { return ledger.consumed_by(group_ledger::child_name) > child_before + 10; }));

  auto killed_at = std::chrono::steady_clock::now();
  reap_child();
  ledger.mark_dead(group_ledger::child_name);
  ASSERT_TRUE(expect_settled({"staying"}, "one crashed"));
  // Its partitions waited for its session (3 s) to expire at the broker. The bound leaves room for
  // a child starved of CPU before the kill, whose last heartbeat came earlier; a broker that
  // reassigned at once would still fail it.
  EXPECT_GE(std::chrono::steady_clock::now() - killed_at, 1500ms);

  auto joiner =
      std::make_unique<member_thread>("joining", b.bootstrap(), group, topic, fast_member, ledger);
  ASSERT_TRUE(expect_settled({"staying", "joining"}, "one joined"));
  size_t joiner_before = ledger.consumed_by("joining");
  ASSERT_TRUE(wait_until([&] { return ledger.consumed_by("joining") > joiner_before + 10; }));

  stop_producing.store(true);
  producing.join();
  ASSERT_TRUE(prod.flush(10s));
  std::set<partition_offset> produced;
  for (const producer::delivery& d : prod.deliveries()) {
    ASSERT_TRUE(d.done);
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
    produced.insert({d.partition, d.offset});
  }
  std::set<int32_t> used_partitions;
  for (const auto& po : produced)
    used_partitions.insert(po.first);
  EXPECT_EQ(used_partitions.size(), static_cast<size_t>(partitions));

  auto delivered = [&] {
    std::set<partition_offset> seen;
    for (const auto& c : ledger.consumed())
      seen.insert(c.at);
    return seen;
  };
  bool all = wait_until([&] { return delivered() == produced; }, 15s);
  keeper->stop();
  joiner->stop();
  EXPECT_TRUE(all) << delivered().size() << " of " << produced.size() << " delivered";

  // Exactly once among acknowledged commits; a redelivery only of what the crashed member had
  // consumed without its commit being acknowledged (at most the one message it was on).
  std::map<partition_offset, int> committed_count, delivered_count;
  std::vector<partition_offset> unacknowledged;
  for (const auto& c : ledger.consumed()) {
    ++delivered_count[c.at];
    if (c.committed)
      ++committed_count[c.at];
    else
      unacknowledged.push_back(c.at);
  }
  for (const auto& [at, n] : committed_count)
    EXPECT_EQ(n, 1) << "partition " << at.first << " offset " << at.second
                    << " committed by more than one delivery";
  std::set<partition_offset> committed_set;
  for (const auto& [at, n] : committed_count)
    committed_set.insert(at);
  std::set<partition_offset> unacked_set(unacknowledged.begin(), unacknowledged.end());
  for (const auto& at : produced) {
    EXPECT_TRUE(committed_set.contains(at) || unacked_set.contains(at))
        << "partition " << at.first << " offset " << at.second << " never committed";
  }
  EXPECT_LE(unacknowledged.size(), 1u);
  for (const auto& c : ledger.consumed()) {
    if (!c.committed) {
      EXPECT_EQ(c.member, group_ledger::child_name);
    }
  }
  for (const auto& [at, n] : delivered_count) {
    if (n > 1) {
      EXPECT_TRUE(unacked_set.contains(at))
          << "partition " << at.first << " offset " << at.second << " delivered " << n << " times";
      EXPECT_EQ(n, 2);
    }
  }
  EXPECT_TRUE(ledger.overlaps().empty()) << ledger.overlaps().front();
  EXPECT_TRUE(ledger.commit_failures().empty())
      << ledger.commit_failures().begin()->first << " had failed commits";
  EXPECT_TRUE(ledger.child_errors().empty()) << ledger.child_errors().front();
  for (auto* m : {a.get(), keeper.get(), joiner.get()})
    EXPECT_TRUE(m->errors().empty()) << m->errors().front();
}

// ---- b: static membership ------------------------------------------------------------------

TEST(Group, RestartedStaticMemberGetsItsPartitionsBackWithoutARebalance) {
  constexpr int32_t partitions = 4;
  broker b(group_broker(std::to_string(partitions)));
  const std::string topic = "statics";
  const std::string group = "static-group";
  group_ledger ledger;
  {
    producer prod(b.bootstrap());
    create_topic(prod, topic);
  }
  // A session far longer than the restart below may take on a loaded machine, so that waiting
  // for it to expire (the wrong behaviour) is far above the bound checked.
  auto conf_for = [&](const std::string& instance) {
    // librdkafka refuses a max.poll.interval.ms below the session timeout.
    return with(fast_member, {{"group.instance.id", instance},
                              {"session.timeout.ms", "30000"},
                              {"max.poll.interval.ms", "30000"}});
  };
  auto first = std::make_unique<member_thread>("first", b.bootstrap(), group, topic,
                                               conf_for("instance-1"), ledger);
  auto other = std::make_unique<member_thread>("other", b.bootstrap(), group, topic,
                                               conf_for("instance-2"), ledger);
  ASSERT_TRUE(wait_until(
      [&] {
        return ledger.settled({"first", "other"}, partitions);
      },
      20s))
      << ledger.describe();
  std::vector<int32_t> first_partitions = ledger.owned("first");
  std::vector<int32_t> other_partitions = ledger.owned("other");
  int other_events = other->rebalance_events();

  first->stop();  // no LeaveGroup from a static member
  auto closed_at = std::chrono::steady_clock::now();
  auto again = std::make_unique<member_thread>("again", b.bootstrap(), group, topic,
                                               conf_for("instance-1"), ledger);
  ASSERT_TRUE(wait_until([&] { return !ledger.owned("again").empty(); }, 20s)) << ledger.describe();
  // Not after the old session expired (30 s) and a rebalance.
  EXPECT_LT(std::chrono::steady_clock::now() - closed_at, 15s);
  EXPECT_EQ(ledger.owned("again"), first_partitions);

  // Several heartbeat intervals: the other member stays in its generation with its partitions.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(other->rebalance_events(), other_events);
  EXPECT_EQ(ledger.owned("other"), other_partitions);
  EXPECT_EQ(ledger.owned("again"), first_partitions);
  EXPECT_TRUE(ledger.overlaps().empty()) << ledger.overlaps().front();
  for (auto* m : {first.get(), other.get(), again.get()})
    EXPECT_TRUE(m->errors().empty()) << m->errors().front();
}

// ---- c: ListGroups, DescribeGroups, DeleteGroups through the admin API ----------------------

// Runs one admin call and waits for its result event (the caller destroys it).
rd_kafka_event_t* admin_call(rd_kafka_t* rk, rd_kafka_event_type_t expected,
                             const std::function<void(rd_kafka_queue_t*)>& call) {
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  call(q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 10'000);
  rd_kafka_queue_destroy(q);
  if (ev == nullptr) throw std::runtime_error("admin call timed out");
  if (rd_kafka_event_type(ev) != expected) {
    std::string what = rd_kafka_event_name(ev);
    rd_kafka_event_destroy(ev);
    throw std::runtime_error("unexpected admin event " + what);
  }
  if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string what = rd_kafka_event_error_string(ev);
    rd_kafka_event_destroy(ev);
    throw std::runtime_error("admin call failed: " + what);
  }
  return ev;
}

struct listed_group {
  rd_kafka_consumer_group_state_t state;
  bool simple;
};

std::map<std::string, listed_group> list_groups(
    rd_kafka_t* rk, std::vector<rd_kafka_consumer_group_state_t> states = {}) {
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
  if (!states.empty()) {
    rd_kafka_error_t* e = rd_kafka_AdminOptions_set_match_consumer_group_states(
        options, states.data(), states.size());
    if (e) throw std::runtime_error(rd_kafka_error_string(e));
  }
  rd_kafka_event_t* ev =
      admin_call(rk, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
                 [&](rd_kafka_queue_t* q) { rd_kafka_ListConsumerGroups(rk, options, q); });
  rd_kafka_AdminOptions_destroy(options);
  const rd_kafka_ListConsumerGroups_result_t* result = rd_kafka_event_ListConsumerGroups_result(ev);
  size_t n = 0, errors = 0;
  const rd_kafka_ConsumerGroupListing_t** listed =
      rd_kafka_ListConsumerGroups_result_valid(result, &n);
  rd_kafka_ListConsumerGroups_result_errors(result, &errors);
  EXPECT_EQ(errors, 0u);
  std::map<std::string, listed_group> out;
  for (size_t i = 0; i < n; ++i) {
    out[rd_kafka_ConsumerGroupListing_group_id(listed[i])] = {
        rd_kafka_ConsumerGroupListing_state(listed[i]),
        rd_kafka_ConsumerGroupListing_is_simple_consumer_group(listed[i]) != 0};
  }
  rd_kafka_event_destroy(ev);
  return out;
}

struct described_member {
  std::string member_id, client_id, host;
  std::vector<int32_t> partitions;
};
struct described_group {
  rd_kafka_resp_err_t error;
  rd_kafka_consumer_group_state_t state;
  bool simple;
  std::string assignor;
  int coordinator;
  std::vector<described_member> members;
};

std::map<std::string, described_group> describe_groups(rd_kafka_t* rk,
                                                       std::vector<const char*> groups) {
  rd_kafka_event_t* ev =
      admin_call(rk, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, [&](rd_kafka_queue_t* q) {
        rd_kafka_DescribeConsumerGroups(rk, groups.data(), groups.size(), nullptr, q);
      });
  size_t n = 0;
  const rd_kafka_ConsumerGroupDescription_t** described =
      rd_kafka_DescribeConsumerGroups_result_groups(
          rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
  std::map<std::string, described_group> out;
  for (size_t i = 0; i < n; ++i) {
    const rd_kafka_ConsumerGroupDescription_t* d = described[i];
    described_group g;
    const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(d);
    g.error = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
    g.state = rd_kafka_ConsumerGroupDescription_state(d);
    g.simple = rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(d) != 0;
    const char* assignor = rd_kafka_ConsumerGroupDescription_partition_assignor(d);
    g.assignor = assignor ? assignor : "";
    const rd_kafka_Node_t* node = rd_kafka_ConsumerGroupDescription_coordinator(d);
    g.coordinator = node ? rd_kafka_Node_id(node) : -1;
    for (size_t m = 0; m < rd_kafka_ConsumerGroupDescription_member_count(d); ++m) {
      const rd_kafka_MemberDescription_t* md = rd_kafka_ConsumerGroupDescription_member(d, m);
      described_member dm;
      dm.member_id = rd_kafka_MemberDescription_consumer_id(md);
      dm.client_id = rd_kafka_MemberDescription_client_id(md);
      dm.host = rd_kafka_MemberDescription_host(md);
      const rd_kafka_topic_partition_list_t* parts =
          rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(md));
      for (int p = 0; parts && p < parts->cnt; ++p)
        dm.partitions.push_back(parts->elems[p].partition);
      std::sort(dm.partitions.begin(), dm.partitions.end());
      g.members.push_back(dm);
    }
    out[rd_kafka_ConsumerGroupDescription_group_id(d)] = g;
  }
  rd_kafka_event_destroy(ev);
  return out;
}

std::map<std::string, rd_kafka_resp_err_t> delete_groups(rd_kafka_t* rk,
                                                         const std::vector<std::string>& names) {
  std::vector<rd_kafka_DeleteGroup_t*> groups;
  for (const std::string& n : names)
    groups.push_back(rd_kafka_DeleteGroup_new(n.c_str()));
  rd_kafka_event_t* ev =
      admin_call(rk, RD_KAFKA_EVENT_DELETEGROUPS_RESULT, [&](rd_kafka_queue_t* q) {
        rd_kafka_DeleteGroups(rk, groups.data(), groups.size(), nullptr, q);
      });
  rd_kafka_DeleteGroup_destroy_array(groups.data(), groups.size());
  size_t n = 0;
  const rd_kafka_group_result_t** results =
      rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
  std::map<std::string, rd_kafka_resp_err_t> out;
  for (size_t i = 0; i < n; ++i) {
    const rd_kafka_error_t* e = rd_kafka_group_result_error(results[i]);
    out[rd_kafka_group_result_name(results[i])] =
        e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  rd_kafka_event_destroy(ev);
  return out;
}

// Committed offsets of `group` for partitions 0..n-1 of `topic` (-1: none).
std::vector<int64_t> committed_offsets(rd_kafka_t* rk, const std::string& group,
                                       const std::string& topic, int32_t n) {
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(n);
  for (int32_t p = 0; p < n; ++p)
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p);
  rd_kafka_ListConsumerGroupOffsets_t* request =
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), parts);
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_event_t* ev = admin_call(
      rk, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
      [&](rd_kafka_queue_t* q) { rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, nullptr, q); });
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  size_t cnt = 0;
  const rd_kafka_group_result_t** results = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(ev), &cnt);
  std::vector<int64_t> out(static_cast<size_t>(n), -2);
  if (cnt == 1) {
    EXPECT_EQ(rd_kafka_group_result_error(results[0]), nullptr);
    const rd_kafka_topic_partition_list_t* got = rd_kafka_group_result_partitions(results[0]);
    for (int i = 0; got && i < got->cnt; ++i) {
      EXPECT_EQ(got->elems[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
      if (got->elems[i].partition >= 0 && got->elems[i].partition < n)
        out[static_cast<size_t>(got->elems[i].partition)] = got->elems[i].offset;
    }
  }
  rd_kafka_event_destroy(ev);
  return out;
}

TEST(Group, AdminListsDescribesAndDeletesGroups) {
  constexpr int32_t partitions = 2;
  broker b(group_broker(std::to_string(partitions)));
  const std::string topic = "admin";
  producer prod(b.bootstrap());
  create_topic(prod, topic);
  for (int i = 0; i < 20; ++i)
    prod.produce(topic, i % partitions, std::string("k"), "v" + std::to_string(i));
  ASSERT_TRUE(prod.flush(10s));
  std::vector<int64_t> ends;
  for (int32_t p = 0; p < partitions; ++p)
    ends.push_back(watermarks(prod.get(), topic, p).second);

  // "idle": consumed everything, committed, left: Empty with offsets.
  {
    group_consumer idle(b.bootstrap(), "idle", topic, with(fast_member, {{"client.id", "idle"}}));
    size_t consumed = 0;
    ASSERT_TRUE(wait_until(
        [&] {
          if (std::optional<message> m = idle.poll(100ms)) {
            EXPECT_EQ(idle.commit(*m), RD_KAFKA_RESP_ERR_NO_ERROR);
            ++consumed;
          }
          return consumed == 21;
        },
        20s));
  }
  // "busy": two members, Stable.
  group_ledger ledger;
  member_thread busy1("busy-1", b.bootstrap(), "busy", topic, fast_member, ledger);
  member_thread busy2("busy-2", b.bootstrap(), "busy", topic, fast_member, ledger);
  ASSERT_TRUE(wait_until(
      [&] {
        return ledger.settled({"busy-1", "busy-2"}, partitions);
      },
      20s))
      << ledger.describe();

  rd_kafka_t* admin = prod.get();
  std::map<std::string, listed_group> listed = list_groups(admin);
  ASSERT_TRUE(listed.contains("busy") && listed.contains("idle"));
  EXPECT_EQ(listed["busy"].state, RD_KAFKA_CONSUMER_GROUP_STATE_STABLE);
  EXPECT_EQ(listed["idle"].state, RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY);
  EXPECT_FALSE(listed["busy"].simple);  // protocol type "consumer"
  EXPECT_FALSE(listed["idle"].simple);  // keeps its protocol type when empty, as in Kafka
  std::map<std::string, listed_group> empty_only =
      list_groups(admin, {RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY});
  EXPECT_TRUE(empty_only.contains("idle"));
  EXPECT_FALSE(empty_only.contains("busy"));

  std::map<std::string, described_group> described = describe_groups(admin, {"busy", "idle"});
  ASSERT_TRUE(described.contains("busy") && described.contains("idle"));
  const described_group& busy = described["busy"];
  EXPECT_EQ(busy.error, RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(busy.state, RD_KAFKA_CONSUMER_GROUP_STATE_STABLE);
  EXPECT_FALSE(busy.simple);
  EXPECT_EQ(busy.assignor, "range");  // the first of librdkafka's default "range,roundrobin"
  EXPECT_EQ(busy.coordinator, 1);
  ASSERT_EQ(busy.members.size(), 2u);
  std::set<std::string> clients;
  for (const described_member& m : busy.members) {
    clients.insert(m.client_id);
    // Kafka's member ids: the client id, a dash, a UUID.
    EXPECT_EQ(m.member_id.rfind(m.client_id + "-", 0), 0u) << m.member_id;
    EXPECT_EQ(m.host, "/127.0.0.1");
    // The assignment the leader made is the one the member was given.
    EXPECT_EQ(m.partitions, ledger.owned(m.client_id)) << m.client_id;
  }
  EXPECT_EQ(clients, (std::set<std::string>{"busy-1", "busy-2"}));
  EXPECT_EQ(described["idle"].state, RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY);
  EXPECT_TRUE(described["idle"].members.empty());
  EXPECT_EQ(described["idle"].assignor, "");  // no protocol outside Stable

  EXPECT_EQ(committed_offsets(admin, "idle", topic, partitions), ends);
  std::map<std::string, rd_kafka_resp_err_t> deleted = delete_groups(admin, {"busy", "idle"});
  EXPECT_EQ(deleted["busy"], RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP);
  EXPECT_EQ(deleted["idle"], RD_KAFKA_RESP_ERR_NO_ERROR);

  listed = list_groups(admin);
  EXPECT_FALSE(listed.contains("idle"));
  EXPECT_TRUE(listed.contains("busy"));
  EXPECT_EQ(committed_offsets(admin, "idle", topic, partitions),
            std::vector<int64_t>(partitions, RD_KAFKA_OFFSET_INVALID));
  // Kafka (DescribeGroups up to v5) describes a group it does not know as Dead, without error.
  EXPECT_EQ(describe_groups(admin, {"idle"})["idle"].state, RD_KAFKA_CONSUMER_GROUP_STATE_DEAD);
  EXPECT_EQ(delete_groups(admin, {"idle"})["idle"], RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND);
  // The members of "busy" were not disturbed.
  EXPECT_TRUE(ledger.settled({"busy-1", "busy-2"}, partitions)) << ledger.describe();
}

// ---- d: offset retention settings ----------------------------------------------------------

// Expiry itself is covered by the unit tests with an injected clock (a minute is the smallest
// retention Kafka's offsets.retention.minutes allows). Here: the keys are Kafka's, the unit is
// minutes, and a check every 100 ms does not expire a fresh empty group's offsets.
TEST(Group, OffsetRetentionSettingsAreAcceptedAndDoNotExpireEarly) {
  broker b(with(group_broker("1"), {{"offsets.retention.minutes", "1"},
                                    {"offsets.retention.check.interval.ms", "100"}}));
  const std::string topic = "kept";
  producer prod(b.bootstrap());
  create_topic(prod, topic);
  {
    group_consumer c(b.bootstrap(), "brief", topic, fast_member);
    std::optional<message> m;
    ASSERT_TRUE(wait_until([&] { return (m = c.poll(100ms)).has_value(); }, 20s));
    ASSERT_EQ(c.commit(*m), RD_KAFKA_RESP_ERR_NO_ERROR);
  }  // closed: the group is Empty from now on
  ASSERT_EQ(list_groups(prod.get())["brief"].state, RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY);
  // Well past a second: were the value read as seconds, the offsets would be gone by then.
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(committed_offsets(prod.get(), "brief", topic, 1), std::vector<int64_t>{1});
  EXPECT_EQ(b.log().find("unknown configuration key"), std::string::npos) << b.log();
}

}  // namespace
}  // namespace sluice::compat
