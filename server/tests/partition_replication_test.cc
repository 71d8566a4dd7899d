// A partition's roles in a cluster: a leader answers acks=all once every in-sync replica has the
// batch, or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below min.insync.replicas
// meanwhile; a leadership lost, or a lease that may have expired, answers the waiting produces
// NOT_LEADER_OR_FOLLOWER; a new epoch starts at the log end. The log is real (storage), the disk
// executor manual.

#include <chrono>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "server/partition.h"
#include "storage/tests/test_util.h"

namespace sluice::server {
namespace {

using storage::testing::make_batch;
using wire::error_code;

class partition_replication_test : public storage::testing::temp_dir_test {
 protected:
  std::shared_ptr<partition> make(int32_t local_id) {
    std::error_code ec;
    std::shared_ptr<storage::log> log = open_log_at(dir_ / "t-0", {"t", 0}, storage::log_config{},
                                                    storage::testing::clean_load(), ec);
    EXPECT_FALSE(ec) << ec.message();
    return std::make_shared<partition>(std::move(log), local_id, 0, ack_sync_policy::never);
  }
  // Appends one batch of `records` records; returns the log end after it.
  int64_t append(partition& p, int records) {
    std::vector<uint8_t> batch = make_batch(records);
    std::optional<std::error_code> result;
    p.append(batch, [&](std::error_code ec, const storage::append_info&) { result = ec; });
    disk_.drain();
    EXPECT_TRUE(result.has_value());
    EXPECT_FALSE(*result);
    return p.log_end_offset();
  }
};

TEST_F(partition_replication_test, acks_all_waits_for_every_isr_member) {
  auto p = make(1);
  p->become_leader(1, 3, {1, 2, 3}, {1, 2, 3}, 100, 30000);
  const int64_t end = append(*p, 5);
  std::optional<error_code> answer;
  p->when_replicated(end, 2, [&](error_code ec) { answer = ec; });
  EXPECT_FALSE(answer.has_value());
  EXPECT_EQ(p->high_watermark(), 0);
  p->record_follower_fetch(2, end);
  EXPECT_FALSE(answer.has_value()) << "one follower of two has it";
  EXPECT_EQ(p->high_watermark(), 0);
  p->record_follower_fetch(3, end);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(*answer, error_code::none);
  EXPECT_EQ(p->high_watermark(), end);
}

TEST_F(partition_replication_test, an_isr_shrunk_below_min_insync_answers_after_append_error) {
  // A 1 ms replica.lag.time.max.ms: the follower, silent, is soon not caught up.
  auto p = make(1);
  p->become_leader(1, 0, {1, 2}, {1, 2}, 100, 1);
  const int64_t end = append(*p, 3);
  std::optional<error_code> answer;
  p->when_replicated(end, 2, [&](error_code ec) { answer = ec; });
  EXPECT_FALSE(answer.has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // The controller committed an ISR without the follower: the leader alone passes the offset.
  p->become_leader(1, 0, {1, 2}, {1}, 101, 1);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(*answer, error_code::not_enough_replicas_after_append);
  EXPECT_EQ(p->isr(), std::vector<int32_t>{1});
  EXPECT_EQ(p->partition_epoch(), 101);
}

TEST_F(partition_replication_test, losing_leadership_answers_waiting_produces) {
  auto p = make(1);
  p->become_leader(1, 0, {1, 2}, {1, 2}, 100, 30000);
  const int64_t end = append(*p, 2);
  std::optional<error_code> answer;
  p->when_replicated(end, 1, [&](error_code ec) { answer = ec; });
  p->become_follower(2, 1, {1, 2}, {1, 2}, 102);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(*answer, error_code::not_leader_or_follower);
  EXPECT_FALSE(p->is_leader());
  EXPECT_EQ(p->leader_id(), 2);
  EXPECT_EQ(p->tracker(), nullptr);
  std::optional<error_code> late;
  p->when_replicated(end, 1, [&](error_code ec) { late = ec; });
  EXPECT_EQ(late, error_code::not_leader_or_follower);
}

TEST_F(partition_replication_test, a_leader_whose_lease_may_have_expired_acknowledges_no_acks_all) {
  auto p = make(1);
  p->become_leader(1, 0, {1, 2}, {1, 2}, 100, 30000);
  const int64_t end = append(*p, 2);
  std::optional<error_code> waiting;
  p->when_replicated(end, 1, [&](error_code ec) { waiting = ec; });
  p->set_acks_all_allowed(false);
  ASSERT_TRUE(waiting.has_value());
  EXPECT_EQ(*waiting, error_code::not_leader_or_follower);
  // Even with every ISR member caught up, nothing more is acknowledged meanwhile.
  p->record_follower_fetch(2, end);
  std::optional<error_code> later;
  p->when_replicated(end, 1, [&](error_code ec) { later = ec; });
  EXPECT_EQ(later, error_code::not_leader_or_follower);
  // Registered again.
  p->set_acks_all_allowed(true);
  std::optional<error_code> again;
  p->when_replicated(end, 1, [&](error_code ec) { again = ec; });
  EXPECT_EQ(again, error_code::none);
}

TEST_F(partition_replication_test, a_new_epoch_starts_at_the_log_end) {
  auto p = make(1);
  append(*p, 4);
  p->become_follower(2, 1, {1, 2}, {1, 2}, 100);
  p->become_leader(1, 5, {1, 2}, {1, 2}, 103, 30000);
  EXPECT_EQ(p->leader_epoch(), 5);
  EXPECT_EQ(p->log().latest_epoch(), 5);
  EXPECT_EQ(p->log().end_offset_for_epoch(4).second, 4) << "epoch 5 starts where the log ended";
  // The same epoch again only updates the ISR: the followers' positions are kept.
  p->record_follower_fetch(2, 4);
  p->become_leader(1, 5, {1, 2}, {1, 2}, 104, 30000);
  EXPECT_EQ(p->tracker()->follower_log_end(2), 4);
}

TEST_F(partition_replication_test,
       a_new_leader_lags_until_its_high_watermark_reaches_the_epoch_start) {
  auto p = make(1);
  p->become_leader(1, 0, {1, 2}, {1, 2}, 100, 30000);
  EXPECT_FALSE(p->high_watermark_lags_epoch_start()) << "an empty log has nothing to catch up";
  const int64_t end = append(*p, 5);
  EXPECT_EQ(p->high_watermark(), 0) << "the follower has not fetched";
  EXPECT_FALSE(p->high_watermark_lags_epoch_start()) << "this epoch began at 0";
  p->become_follower(2, 1, {1, 2}, {1, 2}, 101);
  EXPECT_FALSE(p->high_watermark_lags_epoch_start()) << "a follower answers no ListOffsets";
  p->become_leader(1, 2, {1, 2}, {1, 2}, 102, 30000);
  EXPECT_TRUE(p->high_watermark_lags_epoch_start()) << "high watermark 0, epoch start " << end;
  p->record_follower_fetch(2, end - 1);
  EXPECT_TRUE(p->high_watermark_lags_epoch_start());
  p->record_follower_fetch(2, end);
  EXPECT_EQ(p->high_watermark(), end);
  EXPECT_FALSE(p->high_watermark_lags_epoch_start());
}

TEST_F(partition_replication_test, a_broker_alone_is_answered_at_once) {
  auto p = make(1);
  const int64_t end = append(*p, 1);
  std::optional<error_code> answer;
  p->when_replicated(end, 1, [&](error_code ec) { answer = ec; });
  EXPECT_EQ(answer, error_code::none);
  EXPECT_EQ(p->high_watermark(), end);
}

}  // namespace
}  // namespace sluice::server

namespace sluice::server {
namespace {

TEST_F(partition_replication_test, an_isr_change_in_flight_survives_the_same_state_read_again) {
  auto p = make(1);
  p->become_leader(1, 2, {1, 2, 3}, {1, 2, 3}, 100, 30000);
  p->tracker()->begin_change({1, 2});
  // Another partition's change moved the cluster state; this one's is the same.
  p->become_leader(1, 2, {1, 2, 3}, {1, 2, 3}, 100, 30000);
  EXPECT_TRUE(p->tracker()->change_pending());
  // The controller's answer (or the watch) brings the new state.
  p->become_leader(1, 2, {1, 2, 3}, {1, 2}, 105, 30000);
  EXPECT_FALSE(p->tracker()->change_pending());
  EXPECT_EQ(p->tracker()->isr(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(p->partition_epoch(), 105);
}

}  // namespace
}  // namespace sluice::server
