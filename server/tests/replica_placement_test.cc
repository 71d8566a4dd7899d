#include "server/cluster/replica_placement.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace sluice::server::cluster {
namespace {

std::vector<placement_broker> brokers(std::initializer_list<int32_t> ids) {
  std::vector<placement_broker> out;
  for (int32_t id : ids)
    out.push_back({id, std::nullopt});
  return out;
}

placement_request request(int32_t partitions, int16_t rf, std::optional<int32_t> start = 0) {
  placement_request r;
  r.partitions = partitions;
  r.replication_factor = rf;
  r.start_index = start;
  return r;
}

// The layout Kafka's AdminUtilsTest documents for 5 brokers, 10 partitions, replication factor
// 3, fixed start index 0 (testReplicaAssignment): leaders round-robin, followers shifted by one
// more every time the partition index wraps the broker list.
TEST(replica_placement, matches_kafkas_layout_for_a_fixed_start) {
  std::mt19937 random(1);
  placement_result r = place_replicas(brokers({0, 1, 2, 3, 4}), request(10, 3), random);
  ASSERT_EQ(r.error, placement_error::none);
  std::vector<std::vector<int32_t>> expected = {
      {0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 0}, {4, 0, 1},
      {0, 2, 3}, {1, 3, 4}, {2, 4, 0}, {3, 0, 1}, {4, 1, 2},
  };
  EXPECT_EQ(r.assignment, expected);
}

TEST(replica_placement, leaders_spread_evenly_and_replicas_are_distinct) {
  std::mt19937 random(7);
  for (int trial = 0; trial < 20; ++trial) {
    placement_result r = place_replicas(brokers({3, 1, 2}), request(12, 3, std::nullopt), random);
    ASSERT_EQ(r.error, placement_error::none);
    ASSERT_EQ(r.assignment.size(), 12u);
    std::map<int32_t, int> leaders;
    std::map<int32_t, int> replicas;
    for (const auto& partition : r.assignment) {
      ASSERT_EQ(partition.size(), 3u);
      EXPECT_EQ(std::set<int32_t>(partition.begin(), partition.end()).size(), 3u);
      ++leaders[partition[0]];
      for (int32_t b : partition)
        ++replicas[b];
    }
    for (int32_t b : {1, 2, 3}) {
      EXPECT_EQ(leaders[b], 4) << "broker " << b;
      EXPECT_EQ(replicas[b], 12) << "broker " << b;
    }
  }
}

TEST(replica_placement, refuses_more_replicas_than_brokers) {
  std::mt19937 random(1);
  placement_result r = place_replicas(brokers({1, 2, 3}), request(1, 4), random);
  EXPECT_EQ(r.error, placement_error::invalid_replication_factor);
  EXPECT_EQ(r.message, "Replication factor: 4 larger than available brokers: 3.");
  EXPECT_EQ(place_replicas(brokers({1}), request(1, 0), random).error,
            placement_error::invalid_replication_factor);
  EXPECT_EQ(place_replicas(brokers({1}), request(0, 1), random).error,
            placement_error::invalid_partitions);
}

TEST(replica_placement, every_rack_holds_a_replica_before_any_holds_two) {
  std::vector<placement_broker> racked = {{1, "a"}, {2, "a"}, {3, "b"},
                                          {4, "b"}, {5, "c"}, {6, "c"}};
  std::mt19937 random(3);
  for (int16_t rf : {2, 3}) {
    placement_result r = place_replicas(racked, request(30, rf, std::nullopt), random);
    ASSERT_EQ(r.error, placement_error::none);
    std::map<int32_t, int> leaders;
    for (const auto& partition : r.assignment) {
      std::set<std::string> racks;
      for (int32_t b : partition)
        racks.insert(*racked[static_cast<size_t>(b - 1)].rack);
      EXPECT_EQ(racks.size(), static_cast<size_t>(rf));
      EXPECT_EQ(std::set<int32_t>(partition.begin(), partition.end()).size(),
                static_cast<size_t>(rf));
      ++leaders[partition[0]];
    }
    for (const auto& [broker, count] : leaders)
      EXPECT_EQ(count, 5) << "broker " << broker;
  }
}

TEST(replica_placement, more_replicas_than_racks_fills_every_broker_once) {
  std::vector<placement_broker> racked = {{1, "a"}, {2, "a"}, {3, "b"}, {4, "b"}};
  std::mt19937 random(5);
  placement_result r = place_replicas(racked, request(8, 4, std::nullopt), random);
  ASSERT_EQ(r.error, placement_error::none);
  for (const auto& partition : r.assignment)
    EXPECT_EQ(std::set<int32_t>(partition.begin(), partition.end()).size(), 4u);
}

TEST(replica_placement, refuses_partial_rack_information) {
  std::vector<placement_broker> mixed = {{1, "a"}, {2, std::nullopt}};
  std::mt19937 random(1);
  EXPECT_EQ(place_replicas(mixed, request(1, 1), random).error,
            placement_error::partial_rack_information);
}

// CreatePartitions continues the leaders' round robin: partitions from `first_partition` on, from
// the start index Kafka derives from partition 0's leader (AdminZkClient.createPartitions). The
// followers' shift restarts from that index, as in Kafka, so only the leaders line up with a
// topic created whole.
TEST(replica_placement, added_partitions_continue_the_leaders_round_robin) {
  std::mt19937 random(1);
  placement_result whole = place_replicas(brokers({0, 1, 2, 3, 4}), request(10, 3), random);
  placement_request more = request(4, 3);
  more.first_partition = 6;
  placement_result added = place_replicas(brokers({0, 1, 2, 3, 4}), more, random);
  ASSERT_EQ(added.error, placement_error::none);
  ASSERT_EQ(added.assignment.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(added.assignment[i][0], whole.assignment[6 + i][0]);
    EXPECT_EQ(std::set<int32_t>(added.assignment[i].begin(), added.assignment[i].end()).size(), 3u);
  }
}

}  // namespace
}  // namespace sluice::server::cluster
