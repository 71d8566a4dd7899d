// Consumer groups in a three-broker cluster (real etcd, real brokers, librdkafka and raw
// protocol): the coordinator of a group is the leader of the group's __consumer_offsets
// partition, found by Kafka's hash, and the group's committed offsets survive that leader's
// controlled shutdown, a kill -9 and a rolling restart.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "compat_tests/cluster_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

const std::string offsets_topic = "__consumer_offsets";
// The fixture's offsets.topic.num.partitions (cluster_fixture.cc).
constexpr int offsets_partitions = 5;

// What a Java client computes: abs(groupId.hashCode()) % partitions (Utils.abs, Java's
// String.hashCode over UTF-16 units; the ids here are ASCII).
int32_t offsets_partition_for(const std::string& group) {
  uint32_t h = 0;
  for (unsigned char ch : group)
    h = h * 31 + ch;
  const auto s = static_cast<int32_t>(h);
  const int32_t abs = s == INT32_MIN ? 0 : (s < 0 ? -s : s);
  return abs % offsets_partitions;
}

coordinator_result find_coordinator(cluster& c, int32_t asked, const std::string& group) {
  raw_connection conn(c.node(asked).host(), c.node(asked).port());
  bytes payload = round_trip(conn, find_coordinator_request(4, 1, group), 10s);
  std::vector<coordinator_result> r = parse_find_coordinator(4, split_response(payload, true).body);
  return r.empty() ? coordinator_result{} : r.front();
}

// The coordinator every broker names for `group`, once they agree and it is live; -1 on timeout.
int32_t agreed_coordinator(cluster& c, const std::string& group, const std::set<int32_t>& up,
                           std::chrono::milliseconds timeout = 30s) {
  int32_t agreed = -1;
  wait_until(
      [&] {
        std::set<int32_t> named;
        for (int32_t n : up) {
          coordinator_result r = find_coordinator(c, n, group);
          if (r.error_code != 0) return false;
          named.insert(r.node_id);
        }
        if (named.size() != 1 || !up.contains(*named.begin())) return false;
        agreed = *named.begin();
        return true;
      },
      timeout);
  return agreed;
}

class ClusterGroups : public ::testing::Test {
 protected:
  std::unique_ptr<cluster> c_;
};

// Kafka's FindCoordinator: the leader of partition abs(hash(group)) % N, the same from every
// broker, at the address of the listener asked; after that leader's kill -9, the partition's next
// leader.
TEST_F(ClusterGroups, TheCoordinatorIsTheLeaderOfTheGroupsOffsetsPartition) {
  c_ = std::make_unique<cluster>(config_map{{"auto.leader.rebalance.enable", "false"}});
  cluster& c = *c_;
  ASSERT_TRUE(c.wait_for_topic(offsets_topic, offsets_partitions, 3)) << c.logs_tail();
  cluster_metadata md = c.metadata(2, {offsets_topic});
  const cluster_metadata::topic* t = md.find(offsets_topic);
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->is_internal);

  for (const std::string group : {"orders", "analytics", "payments", "g-1", "g-2", "g-3"}) {
    SCOPED_TRACE(group);
    const int32_t leader = c.leader_of(offsets_topic, offsets_partition_for(group), 1);
    ASSERT_GT(leader, 0);
    for (int32_t asked = 1; asked <= cluster::size; ++asked) {
      coordinator_result r = find_coordinator(c, asked, group);
      EXPECT_EQ(r.error_code, 0);
      EXPECT_EQ(r.node_id, leader) << "asked broker " << asked;
      EXPECT_EQ(r.host, c.node(leader).host());
      EXPECT_EQ(r.port, c.node(leader).port());
    }
  }

  // A committed offset is served by the coordinator only; the others say NOT_COORDINATOR.
  const std::string group = "orders";
  const int32_t coordinator = c.leader_of(offsets_topic, offsets_partition_for(group), 1);
  ASSERT_EQ(c.create_topic("t", 1, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  {
    producer p(c.bootstrap(), {{"acks", "all"}});
    p.produce("t", 0, "k", "v");
    ASSERT_TRUE(p.flush(30s));
  }
  {
    group_consumer consumer(c.bootstrap({coordinator % cluster::size + 1}), group, "t");
    std::optional<message> m;
    ASSERT_TRUE(wait_until([&] { return (m = consumer.poll(200ms)).has_value(); }, 30s));
    EXPECT_EQ(consumer.commit(*m), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  for (int32_t asked = 1; asked <= cluster::size; ++asked) {
    raw_connection conn(c.node(asked).host(), c.node(asked).port());
    bytes payload = round_trip(conn, offset_fetch_v8_request(2, group), 10s);
    offset_fetch_group g = parse_offset_fetch_v8(split_response(payload, true).body);
    if (asked == coordinator) {
      EXPECT_EQ(g.error_code, 0);
      ASSERT_EQ(g.offsets.size(), 1u);
      EXPECT_EQ(g.offsets.at({"t", 0}), 1);
    } else {
      EXPECT_EQ(g.error_code, 16) << "broker " << asked;  // NOT_COORDINATOR
    }
  }

  // Deleting the topic drops the group's offsets of it, on whichever broker coordinates it.
  {
    cluster_admin admin(c.bootstrap());
    ASSERT_EQ(admin.remove("t"), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  EXPECT_TRUE(wait_until(
      [&] {
        raw_connection conn(c.node(coordinator).host(), c.node(coordinator).port());
        bytes payload = round_trip(conn, offset_fetch_v8_request(3, group), 10s);
        offset_fetch_group g = parse_offset_fetch_v8(split_response(payload, true).body);
        return g.error_code == 0 && g.offsets.empty();
      },
      30s));

  // Its leader killed, the controller gives the partition to another in-sync replica once the
  // dead broker's registration expires (broker.session.timeout.ms): every broker names the new
  // coordinator, which serves the group. The killed broker comes back as a follower.
  c.node(coordinator).kill9();
  std::set<int32_t> alive = {1, 2, 3};
  alive.erase(coordinator);
  const int32_t successor = agreed_coordinator(
      c, group, alive, std::chrono::milliseconds(cluster::session_timeout_ms * 5));
  ASSERT_GT(successor, 0) << c.logs_tail();
  EXPECT_NE(successor, coordinator);
  {
    raw_connection conn(c.node(successor).host(), c.node(successor).port());
    bytes payload = round_trip(conn, offset_fetch_v8_request(4, group), 10s);
    EXPECT_EQ(parse_offset_fetch_v8(split_response(payload, true).body).error_code, 0);
  }
  c.node(coordinator).restart();
  EXPECT_EQ(agreed_coordinator(c, group, {1, 2, 3}), successor);
}

// A consumer group keeps its committed offsets, and its members their work, while its
// coordinator's broker shuts down (controlled), is killed with SIGKILL, and restarts: nothing
// committed is lost and the group resumes where it committed.
TEST_F(ClusterGroups, CommittedOffsetsSurviveTheCoordinatorsShutdownAndKill9) {
  c_ = std::make_unique<cluster>(config_map{{"auto.leader.rebalance.enable", "false"}});
  cluster& c = *c_;
  ASSERT_TRUE(c.wait_for_topic(offsets_topic, offsets_partitions, 3)) << c.logs_tail();
  const std::string topic = "work";
  constexpr int partitions = 3;
  constexpr int total = 600;
  ASSERT_EQ(c.create_topic(topic, partitions, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  {
    producer p(c.bootstrap(), {{"acks", "all"}});
    for (int i = 0; i < total; ++i)
      p.produce(topic, i % partitions, "k", "m-" + std::to_string(i));
    ASSERT_TRUE(p.flush(30s));
    ASSERT_EQ(p.acked_count(), static_cast<size_t>(total));
  }
  // A group whose coordinator is not broker 1, which the consumer bootstraps from.
  std::string group;
  int32_t coordinator = -1;
  for (int i = 0; coordinator < 0 || coordinator == 1; ++i) {
    ASSERT_LT(i, 100);
    group = "workers-" + std::to_string(i);
    coordinator = c.leader_of(offsets_topic, offsets_partition_for(group), 1);
  }
  ASSERT_EQ(agreed_coordinator(c, group, {1, 2, 3}), coordinator);

  std::set<std::string> processed;
  size_t commit_failures = 0;
  // Reads `n` more records, committing each one after processing it (at-least-once).
  auto work = [&](group_consumer& consumer, size_t n) {
    const size_t target = processed.size() + n;
    return wait_until(
        [&] {
          std::optional<message> m = consumer.poll(100ms);
          if (!m) return processed.size() >= target;
          processed.insert(m->value.value_or(""));
          // While the coordinator moves a commit may fail; the next record's commit covers it.
          if (consumer.commit(*m) != RD_KAFKA_RESP_ERR_NO_ERROR) ++commit_failures;
          return processed.size() >= target;
        },
        60s);
  };
  {
    group_consumer consumer(c.bootstrap({1}), group, topic);
    ASSERT_TRUE(work(consumer, 150)) << processed.size() << " processed";

    // Controlled shutdown: the offsets partition's leadership moves to an in-sync replica, which
    // loads the group's commits and coordinates it from now on.
    ASSERT_EQ(c.node(coordinator).stop(60s), 0);
    std::set<int32_t> up = {1, 2, 3};
    up.erase(coordinator);
    const int32_t successor = agreed_coordinator(c, group, up);
    ASSERT_GT(successor, 0) << c.logs_tail();
    EXPECT_NE(successor, coordinator);
    EXPECT_NE(c.node(successor).log().find(
                  offsets_topic + "-" + std::to_string(offsets_partition_for(group)) + ": loaded "),
              std::string::npos);
    ASSERT_TRUE(work(consumer, 150)) << processed.size() << " processed";
    c.node(coordinator).restart();
    ASSERT_TRUE(c.wait_for_topic(offsets_topic, offsets_partitions, 3, {1, 2, 3}, 60s))
        << c.logs_tail();

    // SIGKILL of the successor: its commits were on every in-sync replica before they were
    // acknowledged. Once its registration expires, the controller gives the partition to another
    // in-sync replica, which loads them; the killed broker comes back as a follower.
    const int32_t killed = agreed_coordinator(c, group, {1, 2, 3});
    ASSERT_GT(killed, 0);
    c.node(killed).kill9();
    std::set<int32_t> alive = {1, 2, 3};
    alive.erase(killed);
    const int32_t third = agreed_coordinator(
        c, group, alive, std::chrono::milliseconds(cluster::session_timeout_ms * 5));
    ASSERT_GT(third, 0) << c.logs_tail();
    EXPECT_NE(third, killed);
    ASSERT_TRUE(work(consumer, 75)) << processed.size() << " processed";
    c.node(killed).restart();
    ASSERT_TRUE(c.wait_for_topic(offsets_topic, offsets_partitions, 3, {1, 2, 3}, 60s))
        << c.logs_tail();
    ASSERT_TRUE(work(consumer, 150)) << processed.size() << " processed";
    consumer.close();
  }
  // Whatever the member processed is committed: a new member of the group starts after it, and
  // reads exactly the rest.
  const size_t before = processed.size();
  std::set<std::string> reread;
  {
    group_consumer successor(c.bootstrap({1}), group, topic);
    wait_until(
        [&] {
          std::optional<message> m = successor.poll(100ms);
          if (m) {
            if (processed.contains(m->value.value_or(""))) reread.insert(m->value.value_or(""));
            processed.insert(m->value.value_or(""));
          }
          return processed.size() >= static_cast<size_t>(total);
        },
        60s);
  }
  EXPECT_EQ(processed.size(), static_cast<size_t>(total)) << before << " before the new member";
  EXPECT_TRUE(reread.empty()) << reread.size() << " committed records read again, e.g. "
                              << *reread.begin();
  // A commit may fail while leadership moves (the next one covers it), but not most of them.
  EXPECT_LT(commit_failures, 50u);
}

}  // namespace
}  // namespace sluice::compat
