#include "server/cluster/replica_placement.h"

#include <algorithm>
#include <map>
#include <set>

namespace sluice::server::cluster {
namespace {

// The index of a partition's (j+1)-th follower: the leader's index moved by a shift in
// [1, n-1], so it never lands on the leader itself.
size_t follower_index(size_t first, size_t shift, size_t j, size_t n) {
  size_t step = 1 + (shift + j) % (n - 1);
  return (first + step) % n;
}

// Brokers ordered so that consecutive entries alternate racks: the racks in name order, each
// contributing its brokers in id order, one per turn.
std::vector<placement_broker> rack_alternated(const std::vector<placement_broker>& sorted) {
  std::map<std::string, std::vector<placement_broker>> by_rack;
  for (const placement_broker& b : sorted)
    by_rack[*b.rack].push_back(b);
  std::vector<placement_broker> out;
  for (size_t round = 0; out.size() < sorted.size(); ++round) {
    for (const auto& [rack, members] : by_rack) {
      if (round < members.size()) out.push_back(members[round]);
    }
  }
  return out;
}

}  // namespace

placement_result place_replicas(std::vector<placement_broker> brokers,
                                const placement_request& request, std::mt19937& random) {
  placement_result result;
  if (request.partitions < 1) {
    result.error = placement_error::invalid_partitions;
    result.message = "Number of partitions must be larger than 0.";
    return result;
  }
  if (request.replication_factor < 1) {
    result.error = placement_error::invalid_replication_factor;
    result.message = "Replication factor must be larger than 0.";
    return result;
  }
  if (static_cast<size_t>(request.replication_factor) > brokers.size()) {
    result.error = placement_error::invalid_replication_factor;
    result.message = "Replication factor: " + std::to_string(request.replication_factor) +
                     " larger than available brokers: " + std::to_string(brokers.size()) + ".";
    return result;
  }
  std::sort(brokers.begin(), brokers.end(),
            [](const placement_broker& a, const placement_broker& b) { return a.id < b.id; });
  size_t with_rack = static_cast<size_t>(
      std::count_if(brokers.begin(), brokers.end(),
                    [](const placement_broker& b) { return b.rack.has_value(); }));
  if (with_rack != 0 && with_rack != brokers.size()) {
    result.error = placement_error::partial_rack_information;
    result.message = "Not all brokers have rack information for replica rack aware assignment.";
    return result;
  }
  const bool rack_aware = with_rack == brokers.size();
  std::vector<placement_broker> arranged = rack_aware ? rack_alternated(brokers) : brokers;
  const size_t n = arranged.size();
  std::set<std::string> all_racks;
  if (rack_aware) {
    for (const placement_broker& b : arranged)
      all_racks.insert(*b.rack);
  }

  std::uniform_int_distribution<size_t> pick(0, n - 1);
  const size_t start =
      request.start_index ? static_cast<size_t>(*request.start_index) % n : pick(random);
  // Kafka reuses a fixed start index as the shift (AdminUtils.assignReplicasToBrokers).
  size_t shift = request.replica_shift ? static_cast<size_t>(*request.replica_shift)
                 : request.start_index ? start
                                       : pick(random);
  const size_t rf = static_cast<size_t>(request.replication_factor);

  for (int32_t i = 0; i < request.partitions; ++i) {
    const size_t partition = static_cast<size_t>(request.first_partition + i);
    if (partition > 0 && partition % n == 0) ++shift;
    const size_t first = (partition + start) % n;
    std::vector<int32_t> replicas = {arranged[first].id};
    if (!rack_aware) {
      for (size_t j = 0; j + 1 < rf; ++j)
        replicas.push_back(arranged[follower_index(first, shift, j, n)].id);
    } else {
      std::set<std::string> racks = {*arranged[first].rack};
      std::set<int32_t> used = {arranged[first].id};
      // Walks the follower positions in order, taking a broker only if its rack is new (until
      // every rack holds a replica) and it holds none yet; the walk always ends, since at most
      // rf <= n brokers are taken and the positions cycle through every other broker.
      for (size_t k = 0; replicas.size() < rf; ++k) {
        const placement_broker& b = arranged[follower_index(first, shift * all_racks.size(), k, n)];
        bool rack_ok = !racks.count(*b.rack) || racks.size() == all_racks.size();
        bool broker_ok = !used.count(b.id) || used.size() == n;
        if (rack_ok && broker_ok) {
          replicas.push_back(b.id);
          racks.insert(*b.rack);
          used.insert(b.id);
        }
      }
    }
    result.assignment.push_back(std::move(replicas));
  }
  return result;
}

}  // namespace sluice::server::cluster
