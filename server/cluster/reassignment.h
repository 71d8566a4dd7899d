#pragma once
// Kafka's partition reassignment rules (KIP-455, as KRaft's PartitionReassignmentReplicas,
// PartitionReassignmentRevert and the part of PartitionChangeBuilder they go through), as
// functions of values: the controller decides with them, and each rule is tested alone.
//
// A partition's replicas live in its topic record and its leader, ISR and the reassignment's
// adding and removing replicas in its partition record (records.h); `partition_assignment` is
// the two together. During a reassignment the replicas are the target followed by the replicas
// being removed, so that Metadata lists every replica that holds the partition, as Kafka does.
//
// Threading: none; values only.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "server/cluster/records.h"

namespace sluice::server::cluster {

struct partition_assignment {
  std::vector<int32_t> replicas;
  partition_record record;
  bool operator==(const partition_assignment&) const = default;
};

using broker_predicate = std::function<bool(int32_t)>;

// Kafka's validateManualPartitionAssignment without its replication-factor part: "" if
// `replicas` may be a partition's replicas, else why not (INVALID_REPLICA_ASSIGNMENT): an empty
// list, a broker that is not registered, a broker named twice.
std::string invalid_replica_list(const std::vector<int32_t>& replicas,
                                 const broker_predicate& registered);

// Starts a reassignment of `now` to `target` (valid), or replaces the one in progress: the
// replicas become the target followed by the current replicas not in it, adding = target -
// replicas, removing = replicas - target (an empty difference keeps the one in progress, as
// KRaft's changePartitionReassignment does). It completes at once when the ISR already holds
// every target replica (a reordering, a shrink).
partition_assignment reassign(const partition_assignment& now, const std::vector<int32_t>& target,
                              const broker_predicate& eligible);

// Cancels the reassignment in progress: back to the replicas before it (the adding ones leave
// the replicas and the ISR). An ISR of adding replicas only would need an unclean election: with
// `unclean_allowed` (unclean.leader.election.enable) the first original replica becomes the ISR,
// else nullopt (Kafka answers INVALID_REPLICA_ASSIGNMENT).
std::optional<partition_assignment> revert(const partition_assignment& now, bool unclean_allowed,
                                           const broker_predicate& eligible);

// What every change of a reassigning partition ends with (PartitionChangeBuilder.build), given
// the state before and the proposed one: the reassignment completes when the ISR without the
// removing replicas is not empty and holds every target replica (replicas = target, ISR = ISR
// without the removing replicas, adding and removing emptied); the leader stays if it is still
// in the ISR and eligible, else the first eligible replica in the ISR leads (with `unclean`, else
// the first eligible replica, alone in the ISR; -1 if none); the leader epoch goes up when the
// leader changes or a replica leaves the replicas.
partition_assignment settle(const partition_assignment& before, partition_assignment next,
                            const broker_predicate& eligible, bool unclean = false);

}  // namespace sluice::server::cluster
