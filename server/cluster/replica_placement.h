#pragma once
// Where the replicas of a new topic's partitions go: the controller's placement decision, a pure
// function of the live brokers so it is tested without a cluster.
//
// The algorithm is Kafka's (AdminUtils.assignReplicasToBrokers, later StripedReplicaPlacer's
// rack-unaware and rack-aware cases), so that a Kafka operator finds the layout they expect:
// - the leaders (first replicas) of consecutive partitions go round-robin over the brokers from
//   a start index, so one topic's leaders spread evenly;
// - a partition's other replicas follow the leader at a shift that changes every time the
//   partition index wraps around the broker list, so followers spread evenly too;
// - with racks, the broker list is first arranged to alternate racks (rack A's first broker,
//   rack B's first, ..., rack A's second, ...), and a replica is placed on a rack that holds none
//   of the partition's replicas yet while one is left, and on a broker that holds none while one
//   is left.
//
// Threading: none; the controller calls it on its own event queue.

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace sluice::server::cluster {

struct placement_broker {
  int32_t id = -1;
  std::optional<std::string> rack;  // broker.rack
};

struct placement_request {
  int32_t partitions = 0;
  int16_t replication_factor = 0;
  // For CreatePartitions: the index of the first new partition, and the start index Kafka derives
  // from partition 0's leader. Unset: a new topic, with a random start.
  int32_t first_partition = 0;
  std::optional<int32_t> start_index;
  std::optional<int32_t> replica_shift;
};

enum class placement_error {
  none,
  invalid_partitions,          // partitions < 1
  invalid_replication_factor,  // < 1, or more than the live brokers
  partial_rack_information,    // some brokers have a rack and some do not (Kafka refuses too)
};

struct placement_result {
  placement_error error = placement_error::none;
  std::string message;
  // assignment[i] is the replica list of partition first_partition + i, leader first.
  std::vector<std::vector<int32_t>> assignment;
};

// `brokers` are the live brokers in any order (they are sorted by id first, as Kafka sorts
// them). `random` picks the start index and shift where the request leaves them unset.
placement_result place_replicas(std::vector<placement_broker> brokers,
                                const placement_request& request, std::mt19937& random);

}  // namespace sluice::server::cluster
