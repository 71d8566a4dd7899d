#pragma once
// What the cluster keeps in the coordination store (server/coordination/): the key layout under
// `metadata.etcd.prefix` and the records stored at those keys, with their JSON encoding.
//
//   <prefix>/cluster_id                  the cluster id (Kafka's 22-character base64 uuid),
//                                        created once by a transaction that requires the key absent
//   <prefix>/brokers/<node.id>           broker_record, under the broker's lease: it disappears
//                                        when the broker stops renewing it
//   <prefix>/controller                  controller_record, under the controller's lease; its
//                                        create_revision fences every write of a deposed controller
//   <prefix>/topic_names/<name>          the topic id: a re-created name gets a new id and never
//                                        inherits the old topic's state
//   <prefix>/topics/<topic id>           topic_record: name, replica assignment, configs
//   <prefix>/partitions/<topic id>/<p>   partition_record: leader, leader epoch, ISR, and the
//                                        replicas being added and removed by a reassignment; the
//                                        key's mod_revision is the partition epoch
//   <prefix>/producer_id_block           producer_id_block_record: the latest block of producer
//                                        ids any broker reserved (Kafka's ZooKeeper-era
//                                        /latest_producer_id_block), replaced by a transaction
//                                        that compares its mod_revision
//
// Only the controller writes topics and partitions; a broker writes its own registration and the
// producer id blocks it reserves.
// Decoding never trusts the bytes: a malformed record is an error the caller logs and skips, not
// a crash (the store may hold another version's records, or a human's edit).
//
// Threading: none; values only.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire/codec.h"

namespace sluice::server::cluster {

namespace keys {
std::string cluster_id(std::string_view prefix);
std::string brokers(std::string_view prefix);  // the range of every broker_record
std::string broker(std::string_view prefix, int32_t node_id);
std::string controller(std::string_view prefix);
std::string topic_name(std::string_view prefix, std::string_view name);
std::string topics(std::string_view prefix);
std::string topic(std::string_view prefix, const wire::uuid& topic_id);
std::string partitions(std::string_view prefix, const wire::uuid& topic_id);
std::string partition(std::string_view prefix, const wire::uuid& topic_id, int32_t partition);
std::string producer_id_block(std::string_view prefix);

// The node id at the end of a brokers/<node.id> key, the topic id and partition of a
// partitions/<id>/<p> key; nullopt for a key of another shape.
std::optional<int32_t> broker_id(std::string_view prefix, std::string_view key);
std::optional<std::pair<wire::uuid, int32_t>> partition_of(std::string_view prefix,
                                                           std::string_view key);
}  // namespace keys

struct endpoint {
  std::string host;
  int32_t port = 0;
  bool operator==(const endpoint&) const = default;
};

struct broker_record {
  int32_t node_id = -1;
  std::optional<std::string> rack;
  std::map<std::string, endpoint> listeners;  // listener name -> advertised address
  // A fresh id per process start: a broker that restarts before its old lease expired is told
  // apart from its previous incarnation.
  std::string incarnation;
  // Set by the broker itself when it begins a controlled shutdown (KRaft's inControlledShutdown):
  // the controller then moves its leaderships away and no longer counts it eligible to lead or
  // to join an ISR. A restart registers anew without it.
  bool controlled_shutdown = false;
  bool operator==(const broker_record&) const = default;
};

struct controller_record {
  int32_t node_id = -1;
  bool operator==(const controller_record&) const = default;
};

struct topic_record {
  std::string name;
  std::vector<std::vector<int32_t>> replicas;  // per partition, preferred leader first
  std::map<std::string, std::string> configs;  // topic-level overrides only
  bool operator==(const topic_record&) const = default;
};

struct partition_record {
  int32_t leader = -1;  // -1: no leader (offline)
  int32_t leader_epoch = 0;
  std::vector<int32_t> isr;
  // A reassignment in progress (KRaft's PartitionRecord fields): the topic record's replicas of
  // the partition are then the target followed by the replicas being removed; `adding_replicas`
  // are the target's replicas that were not replicas before. Both empty when none is in
  // progress, and then left out of the JSON, so that records written before they existed decode
  // as they always meant.
  std::vector<int32_t> adding_replicas{};
  std::vector<int32_t> removing_replicas{};
  bool reassigning() const { return !adding_replicas.empty() || !removing_replicas.empty(); }
  bool operator==(const partition_record&) const = default;
};

// The producer ids first_id..last_id (both included, as Kafka's block_start and block_end), taken
// by broker `node_id`; every id below last_id + 1 has been handed out to some broker.
struct producer_id_block_record {
  int32_t node_id = -1;
  int64_t first_id = 0;
  int64_t last_id = -1;
  bool operator==(const producer_id_block_record&) const = default;
};

std::string encode(const broker_record& r);
std::string encode(const controller_record& r);
std::string encode(const topic_record& r);
std::string encode(const partition_record& r);
std::string encode(const producer_id_block_record& r);

// nullopt, with the reason in *error, for a value that is not a well-formed record.
std::optional<broker_record> decode_broker(std::string_view json, std::string* error = nullptr);
std::optional<controller_record> decode_controller(std::string_view json,
                                                   std::string* error = nullptr);
std::optional<topic_record> decode_topic(std::string_view json, std::string* error = nullptr);
std::optional<partition_record> decode_partition(std::string_view json,
                                                 std::string* error = nullptr);
std::optional<producer_id_block_record> decode_producer_id_block(std::string_view json,
                                                                 std::string* error = nullptr);

}  // namespace sluice::server::cluster
