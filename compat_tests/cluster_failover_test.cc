// Failures in a three-broker cluster (real etcd, real brokers, librdkafka and raw protocol): a
// leader killed with SIGKILL is replaced from its ISR once its registration expires; a leader
// paused past its session (SIGSTOP) never acknowledges a write its successor lacks, and loses
// what it appended meanwhile when it rejoins as a follower; and with etcd paused, leaders stop
// acknowledging acks=all once their lease may have expired, and register again when it returns.

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "compat_tests/cluster_fixture.h"
#include "compat_tests/cluster_workload.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

class ClusterFailover : public ::testing::Test {
 protected:
  std::unique_ptr<cluster> c_;
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<int32_t> all_but(int32_t gone) {
  std::vector<int32_t> out;
  for (int32_t n = 1; n <= cluster::size; ++n) {
    if (n != gone) out.push_back(n);
  }
  return out;
}

// Waits until every broker of `asked` names one leader for the partition other than `old`;
// returns it, or -1 on timeout.
int32_t wait_for_successor(cluster& c, const std::string& topic, int32_t partition, int32_t old,
                           const std::vector<int32_t>& asked, std::chrono::milliseconds timeout) {
  int32_t agreed = -1;
  wait_until(
      [&] {
        std::set<int32_t> named;
        for (int32_t n : asked) {
          try {
            named.insert(c.leader_of(topic, partition, n));
          } catch (const std::exception&) {
            return false;
          }
        }
        if (named.size() != 1 || *named.begin() <= 0 || *named.begin() == old) return false;
        agreed = *named.begin();
        return true;
      },
      timeout);
  return agreed;
}

// kill -9 of a leader under idempotent acks=all producers: within a session timeout and a bit
// the controller gives each of its partitions to an in-sync replica (a new leader epoch), the
// producers carry on there, the killed broker comes back as a follower that cuts whatever it had
// beyond the new leaders' logs, and every acknowledged record is read exactly once.
TEST_F(ClusterFailover, AKilledLeaderIsReplacedFromItsIsrAndNothingAcknowledgedIsLost) {
  c_ = std::make_unique<cluster>(config_map{{"auto.leader.rebalance.enable", "false"}});
  cluster& c = *c_;
  const std::string topic = "failover";
  constexpr int32_t partitions = 3;
  ASSERT_EQ(c.create_topic(topic, partitions, 3, {{"min.insync.replicas", "2"}}),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  const int32_t victim = c.leader_of(topic, 0, 1);
  ASSERT_GT(victim, 0);

  paced_producer writer(c, topic, partitions);
  ASSERT_TRUE(wait_until([&] { return writer.sent() > 300; }, 30s));
  const auto killed_at = std::chrono::steady_clock::now();
  c.node(victim).kill9();
  const int32_t successor =
      wait_for_successor(c, topic, 0, victim, all_but(victim),
                         std::chrono::milliseconds(cluster::session_timeout_ms * 4));
  ASSERT_GT(successor, 0) << c.logs_tail();
  const auto elected_after = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed_at);
  // The registration lasts one session timeout after the last keep-alive; the election follows.
  EXPECT_LT(elected_after.count(), cluster::session_timeout_ms * 2) << "new leader after";
  const int sent_at_election = writer.sent();
  ASSERT_TRUE(wait_until([&] { return writer.sent() > sent_at_election + 300; }, 30s));

  c.node(victim).restart();
  ASSERT_TRUE(c.wait_for_topic(topic, partitions, 3, {1, 2, 3}, 60s)) << c.logs_tail();
  writer.stop();
  size_t failed = 0;
  std::string error;
  const std::set<std::string> acked = writer.acknowledged(failed, error);
  EXPECT_EQ(failed, 0u) << error;
  EXPECT_GT(acked.size(), 600u);
  expect_each_read_once(c, topic, partitions, acked, c.bootstrap());
  EXPECT_NE(c.node(successor).log().find(topic + "-0: leader at epoch"), std::string::npos);

  // Every replica holds the same bytes once the restarted one has caught up.
  for (int32_t p = 0; p < partitions; ++p) {
    SCOPED_TRACE("partition " + std::to_string(p));
    std::vector<std::string> logs(cluster::size);
    const bool same = wait_until(
        [&] {
          for (int32_t n = 1; n <= cluster::size; ++n)
            logs[static_cast<size_t>(n - 1)] =
                read_partition_log(c.node(n).partition_dir(topic, p));
          return logs[0] == logs[1] && logs[1] == logs[2];
        },
        20s);
    EXPECT_TRUE(same) << "replica log sizes " << logs[0].size() << ", " << logs[1].size() << ", "
                      << logs[2].size();
  }
}

// Kafka's fencing, deterministically: the leader is paused past its session, a successor is
// elected and takes writes, and an acks=all produce reaches the old leader as it resumes. Its ISR
// still names the others, who no longer fetch from it, and its only way to shrink that ISR is an
// AlterPartition the controller refuses (the partition's epoch moved on): so it never
// acknowledges the write. When it learns of the new leader it becomes a follower, and what it
// appended is cut from its log.
TEST_F(ClusterFailover, APausedLeaderNeverAcknowledgesWhatItsSuccessorLacksAndIsTruncated) {
  c_ = std::make_unique<cluster>(config_map{{"auto.leader.rebalance.enable", "false"}});
  cluster& c = *c_;
  const std::string topic = "fenced";
  // min.insync.replicas=1: nothing but the ISR rule keeps the old leader from acknowledging alone.
  ASSERT_EQ(c.create_topic(topic, 1, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(produce_acks_all(c, {1, 2, 3}, topic, 0, "before-", 10), 10u);
  const int32_t old_leader = c.leader_of(topic, 0, 1);
  ASSERT_GT(old_leader, 0);
  raw_connection straight(c.node(old_leader).host(), c.node(old_leader).port());
  round_trip(straight, api_versions_request(0, 1), 5s);

  const bytes fenced_write = produce_request(
      8, 2, topic, 0, build_record_batch({{"k", "fenced-write", 0}}, now_ms()), -1, 10000);
  int32_t successor = -1;
  {
    stopped_process paused(c.node(old_leader).pid());
    successor = wait_for_successor(c, topic, 0, old_leader, all_but(old_leader),
                                   std::chrono::milliseconds(cluster::session_timeout_ms * 4));
    ASSERT_GT(successor, 0) << c.logs_tail();
    ASSERT_EQ(produce_acks_all(c, all_but(old_leader), topic, 0, "after-", 10), 10u);
    // Queued in the paused broker's socket: it is the first thing it reads when it resumes,
    // before its watch on etcd tells it that it lost the leadership.
    ASSERT_TRUE(straight.send(fenced_write));
  }
  bytes payload;
  ASSERT_EQ(straight.read_frame(payload, 30s), raw_connection::status::ok);
  std::vector<partition_result> answer =
      parse_produce_response(8, split_response(payload, false).body);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_NE(answer[0].error_code, 0)
      << "the old leader acknowledged at offset " << answer[0].offset;

  // It rejoins the ISR as a follower, its log the new leader's: the fenced write is gone.
  ASSERT_TRUE(c.wait_for_topic(topic, 1, 3, {1, 2, 3}, 60s)) << c.logs_tail();
  EXPECT_EQ(c.leader_of(topic, 0, old_leader), successor);
  std::string old_log;
  std::string new_log;
  EXPECT_TRUE(replica_logs_match(c, old_leader, successor, topic, 0, &old_log, &new_log))
      << "log sizes " << old_log.size() << " and " << new_log.size();
  EXPECT_EQ(old_log.find("fenced-write"), std::string::npos);
  simple_consumer consumer(c.bootstrap(), topic, {{"fetch.wait.max.ms", "100"}});
  consumer.start(0, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> read = consumer.consume(20, 30s);
  ASSERT_EQ(read.size(), 20u);
  for (const message& m : read)
    EXPECT_EQ(m.value->find("fenced"), std::string::npos);
}

// etcd paused (SIGSTOP: a silent cut of every broker from it): leaders go on serving, acks=all
// included, while their lease may still be alive by their own count (one TTL from the last
// renewal etcd confirmed); past that they stop acknowledging acks=all (NOT_LEADER_OR_FOLLOWER)
// and say so in their log. When etcd is back they register again, with a new broker epoch, and
// acks=all works again; nothing acknowledged is lost.
TEST_F(ClusterFailover, WithEtcdPausedLeadersStopAcknowledgingAcksAllWhenTheirLeaseMayHaveExpired) {
  c_ = std::make_unique<cluster>(config_map{{"auto.leader.rebalance.enable", "false"}});
  cluster& c = *c_;
  const std::string topic = "outage";
  ASSERT_EQ(c.create_topic(topic, 1, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(produce_acks_all(c, {1, 2, 3}, topic, 0, "before-", 10), 10u);
  const int32_t leader = c.leader_of(topic, 0, 1);
  ASSERT_GT(leader, 0);
  raw_connection straight(c.node(leader).host(), c.node(leader).port());
  int32_t correlation = 1;
  auto produce_straight = [&](const std::string& value, int16_t acks) {
    bytes request = produce_request(8, ++correlation, topic, 0,
                                    build_record_batch({{"k", value, 0}}, now_ms()), acks, 5000);
    bytes payload = round_trip(straight, request, 15s);
    std::vector<partition_result> r =
        parse_produce_response(8, split_response(payload, false).body);
    return r.size() == 1 ? r[0].error_code : int16_t{-1};
  };
  const auto registrations = [&] {
    const std::string log = c.node(leader).log();
    size_t n = 0;
    for (size_t at = log.find(": registered "); at != std::string::npos;
         at = log.find(": registered ", at + 1))
      ++n;
    return n;
  };
  const size_t registered_before = registrations();
  {
    stopped_process etcd_paused(c.etcd().pid());
    // Within the lease: the followers fetch from the leader, etcd has no part in it.
    EXPECT_EQ(produce_straight("during-1", -1), 0);
    EXPECT_EQ(produce_straight("during-2", 1), 0);
    ASSERT_TRUE(wait_until(
        [&] {
          return c.node(leader).log().find("its lease may have expired") != std::string::npos;
        },
        std::chrono::milliseconds(cluster::session_timeout_ms * 3)))
        << c.logs_tail();
    EXPECT_EQ(produce_straight("refused", -1), 6);  // NOT_LEADER_OR_FOLLOWER
  }
  // etcd back: a new registration (a new broker epoch), and acks=all is answered again.
  ASSERT_TRUE(wait_until([&] { return registrations() > registered_before; }, 30s))
      << c.logs_tail();
  ASSERT_TRUE(c.wait_for_topic(topic, 1, 3, {1, 2, 3}, 60s)) << c.logs_tail();
  EXPECT_EQ(produce_acks_all(c, {1, 2, 3}, topic, 0, "after-", 10), 10u);
  std::set<std::string> acked;
  for (int i = 0; i < 10; ++i) {
    acked.insert("before-" + std::to_string(i));
    acked.insert("after-" + std::to_string(i));
  }
  acked.insert("during-1");
  acked.insert("during-2");
  expect_each_read_once(c, topic, 1, acked, c.bootstrap());
}

}  // namespace
}  // namespace sluice::compat
