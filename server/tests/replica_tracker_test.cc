#include "server/cluster/replica_tracker.h"

#include <gtest/gtest.h>

namespace sluice::server::cluster {
namespace {

constexpr int64_t lag = 30000;  // replica.lag.time.max.ms, Kafka's default

using ids = std::vector<int32_t>;

// Leader 1 of replicas {1,2,3}, all in sync, taking over at offset 10 with high watermark 10.
replica_tracker three_in_sync(int64_t now = 0) {
  return replica_tracker(1, {1, 2, 3}, {1, 2, 3}, 10, 10, now);
}

TEST(replica_tracker, high_watermark_is_the_smallest_isr_log_end) {
  replica_tracker t = three_in_sync();
  EXPECT_FALSE(t.on_leader_append(20, 1, lag));  // followers have not fetched yet
  EXPECT_EQ(t.high_watermark(), 10);
  EXPECT_FALSE(t.on_follower_fetch(2, 20, 20, 2, lag));  // follower 3 still unknown
  EXPECT_EQ(t.high_watermark(), 10);
  EXPECT_TRUE(t.on_follower_fetch(3, 15, 20, 3, lag));
  EXPECT_EQ(t.high_watermark(), 15);
  EXPECT_TRUE(t.on_follower_fetch(3, 20, 20, 4, lag));
  EXPECT_EQ(t.high_watermark(), 20);
}

TEST(replica_tracker, high_watermark_never_moves_back) {
  replica_tracker t = three_in_sync();
  t.on_follower_fetch(2, 12, 12, 1, lag);
  t.on_follower_fetch(3, 12, 12, 1, lag);
  EXPECT_EQ(t.high_watermark(), 12);
  // A follower that truncated and fetches from lower down does not take it back.
  EXPECT_FALSE(t.on_follower_fetch(2, 11, 12, 2, lag));
  EXPECT_EQ(t.high_watermark(), 12);
}

TEST(replica_tracker, sole_isr_member_follows_its_log_end) {
  replica_tracker t(1, {1, 2}, {1}, 0, 0, 0);
  EXPECT_TRUE(t.on_leader_append(5, 1, lag));
  EXPECT_EQ(t.high_watermark(), 5);
  replica_tracker alone(1, {1}, {1}, 0, 0, 0);
  EXPECT_TRUE(alone.on_leader_append(3, 1, lag));
  EXPECT_EQ(alone.high_watermark(), 3);
}

TEST(replica_tracker, a_lagging_follower_leaves_after_the_lag_time) {
  replica_tracker t = three_in_sync(0);
  t.on_follower_fetch(2, 10, 10, 0, lag);
  t.on_follower_fetch(3, 10, 10, 0, lag);
  t.on_leader_append(50, 100, lag);
  // Follower 2 keeps up; follower 3 stops fetching.
  for (int64_t now = 1000; now <= 31000; now += 1000)
    t.on_follower_fetch(2, 50, 50, now, lag);
  EXPECT_EQ(t.out_of_sync(50, lag, lag), ids{});       // 30 s after its last catch-up: still in
  EXPECT_EQ(t.out_of_sync(50, lag + 1, lag), ids{3});  // one ms later: out
}

TEST(replica_tracker, a_follower_that_matches_the_previous_fetch_stays_caught_up) {
  // The leader appends between every fetch, so the follower is never exactly at the end, but it
  // always has what the leader had at its previous fetch (Replica.updateFetchState).
  replica_tracker t(1, {1, 2}, {1, 2}, 0, 0, 0);
  int64_t leader_end = 0;
  for (int64_t now = 0; now <= 100000; now += 1000) {
    int64_t fetched = leader_end;
    leader_end += 10;
    t.on_leader_append(leader_end, now, lag);
    t.on_follower_fetch(2, fetched, leader_end, now, lag);
  }
  EXPECT_EQ(t.out_of_sync(leader_end, 100000, lag), ids{});
}

TEST(replica_tracker, pending_removal_still_holds_the_high_watermark) {
  replica_tracker t = three_in_sync();
  t.on_follower_fetch(2, 10, 10, 0, lag);
  t.on_follower_fetch(3, 10, 10, 0, lag);
  t.on_leader_append(30, 1, lag);
  // Follower 3 stops; follower 2 keeps fetching until 3 is out of sync.
  const int64_t later = lag + 10;
  t.on_follower_fetch(2, 30, 30, later, lag);
  EXPECT_EQ(t.high_watermark(), 10);
  ASSERT_EQ(t.out_of_sync(30, later, lag), ids{3});
  t.begin_change({1, 2});
  EXPECT_FALSE(t.on_follower_fetch(2, 30, 30, later + 1, lag));
  EXPECT_EQ(t.high_watermark(), 10) << "3 may still be in the ISR the controller holds";
  t.commit_change({1, 2}, 30, later + 2, lag);
  EXPECT_EQ(t.high_watermark(), 30);
}

TEST(replica_tracker, a_caught_up_follower_joins_and_holds_the_high_watermark) {
  replica_tracker t(1, {1, 2}, {1}, 5, 5, 0);
  t.on_leader_append(20, 0, lag);
  EXPECT_EQ(t.high_watermark(), 20);
  EXPECT_EQ(t.ready_to_join(), ids{});
  t.on_follower_fetch(2, 8, 20, 1, lag);
  EXPECT_EQ(t.ready_to_join(), ids{}) << "below the high watermark";
  t.on_follower_fetch(2, 20, 20, 2, lag);
  EXPECT_EQ(t.ready_to_join(), ids{2});
  t.begin_change({1, 2});
  EXPECT_EQ(t.ready_to_join(), ids{}) << "already proposed";
  // Once it is caught up (or proposed), the high watermark waits for it.
  t.on_leader_append(25, 3, lag);
  EXPECT_EQ(t.high_watermark(), 20);
  t.on_follower_fetch(2, 25, 25, 4, lag);
  EXPECT_EQ(t.high_watermark(), 25);
}

TEST(replica_tracker, an_ineligible_follower_neither_joins_nor_holds_the_high_watermark) {
  // Follower 2 caught up, then stopped (its registration gone, or in controlled shutdown).
  replica_tracker t(1, {1, 2}, {1}, 5, 5, 0);
  t.on_leader_append(20, 0, lag);
  t.on_follower_fetch(2, 20, 20, 1, lag);
  t.set_ineligible({2});
  EXPECT_EQ(t.ready_to_join(), ids{});
  t.on_leader_append(25, 2, lag);
  EXPECT_EQ(t.high_watermark(), 25) << "not held for a replica the controller would refuse";
  // Back and eligible: it holds the high watermark again while caught up.
  t.set_ineligible({});
  t.on_follower_fetch(2, 25, 25, 3, lag);
  EXPECT_EQ(t.ready_to_join(), ids{2});
  t.on_leader_append(30, 4, lag);
  EXPECT_EQ(t.high_watermark(), 25);
}

TEST(replica_tracker, a_follower_must_reach_the_start_of_the_leaders_epoch_to_join) {
  replica_tracker t(1, {1, 2}, {1}, 40, 30, 0);  // became leader at 40, high watermark 30
  t.on_follower_fetch(2, 35, 40, 1, lag);
  EXPECT_EQ(t.ready_to_join(), ids{});
  t.on_follower_fetch(2, 40, 40, 2, lag);
  EXPECT_EQ(t.ready_to_join(), ids{2});
}

TEST(replica_tracker, acks_all_completes_past_the_high_watermark) {
  replica_tracker t = three_in_sync();
  t.on_leader_append(15, 0, lag);  // the produce's last offset is 14
  EXPECT_EQ(t.acks_all(14, 2), replica_tracker::ack::waiting);
  t.on_follower_fetch(2, 15, 15, 1, lag);
  EXPECT_EQ(t.acks_all(14, 2), replica_tracker::ack::waiting);
  t.on_follower_fetch(3, 15, 15, 1, lag);
  EXPECT_EQ(t.acks_all(14, 2), replica_tracker::ack::complete);
}

TEST(replica_tracker, acks_all_after_the_isr_shrank_below_min_insync) {
  replica_tracker t(1, {1, 2, 3}, {1, 2}, 0, 0, 0);
  t.on_leader_append(5, 0, lag);
  // Follower 2 never fetches; once its lag time has passed it is removed.
  ASSERT_EQ(t.out_of_sync(5, lag + 1, lag), ids{2});
  t.begin_change({1});
  t.commit_change({1}, 5, lag + 1, lag);
  EXPECT_EQ(t.high_watermark(), 5);
  EXPECT_EQ(t.acks_all(4, 2), replica_tracker::ack::not_enough_replicas_after_append);
  EXPECT_EQ(t.acks_all(4, 1), replica_tracker::ack::complete);
}

TEST(replica_tracker, fetches_from_non_replicas_are_ignored) {
  replica_tracker t = three_in_sync();
  EXPECT_FALSE(t.on_follower_fetch(9, 100, 100, 0, lag));
  EXPECT_EQ(t.follower_log_end(9), -1);
  EXPECT_FALSE(t.on_follower_fetch(1, 100, 100, 0, lag)) << "the leader is not its own follower";
}

TEST(replica_tracker, a_replica_added_by_a_reassignment_joins_once_caught_up_and_never_holds_acks) {
  // Leader 1 of {1,2}; a reassignment adds broker 3 within the same leadership.
  replica_tracker t(1, {1, 2}, {1, 2}, 0, 0, 0);
  t.on_leader_append(20, 1, lag);
  t.on_follower_fetch(2, 20, 20, 2, lag);
  ASSERT_EQ(t.high_watermark(), 20);
  EXPECT_FALSE(t.on_follower_fetch(3, 0, 20, 3, lag));  // not a replica yet: ignored
  EXPECT_EQ(t.follower_log_end(3), -1);
  t.set_replicas({1, 2, 3});
  EXPECT_TRUE(t.ready_to_join().empty());
  // Far behind, outside the ISR: acks=all goes on with the ISR alone.
  t.on_follower_fetch(3, 5, 20, 4, lag);
  t.on_leader_append(30, 5, lag);
  t.on_follower_fetch(2, 30, 30, 6, lag);
  EXPECT_EQ(t.high_watermark(), 30);
  EXPECT_EQ(t.acks_all(29, 2), replica_tracker::ack::complete);
  EXPECT_TRUE(t.ready_to_join().empty());
  t.on_follower_fetch(3, 30, 30, 7, lag);
  EXPECT_EQ(t.ready_to_join(), ids{3});
  // The reassignment completed: broker 2 is no longer a replica and no longer counts.
  t.set_replicas({1, 3});
  EXPECT_EQ(t.follower_log_end(2), -1);
  EXPECT_EQ(t.follower_log_end(3), 30);
}

}  // namespace
}  // namespace sluice::server::cluster
