#pragma once
// The cluster controller's decisions: creating and deleting topics, adding partitions, changing a
// topic's configs, and accepting or refusing a partition leader's ISR change (AlterPartition). The
// rules and error codes are Kafka's (KRaft's ReplicationControlManager); the state they decide from
// is the member's metadata_image, and every decision is written to the coordination store as
// compare-and-set transactions (the layout in records.h).
//
// One object exists on every broker; only the broker named by `<prefix>/controller` acts, the
// others answer NOT_CONTROLLER. Every write compares the election key's create_revision with the
// epoch this broker was elected with, so a deposed controller whose image still names it cannot
// write: its transaction fails and the operation answers NOT_CONTROLLER.
//
// Operations run one at a time, in arrival order, as KafkaController's single event queue does:
// each decides from a state that includes every previous decision. Before deciding, an operation
// waits (bounded by catch_up_timeout_ms, else REQUEST_TIMED_OUT) until the image has applied the
// controller's own last write. That wait was chosen over an overlay of pending writes because
// the image is the one reader of the store's layout: an overlay would be a second one, kept in
// step by hand; and since every write compares what it was decided from, an image that lags
// anything else can make an operation fail, never write a wrong state.
//
// Store errors: `unavailable` (nothing applied) answers REQUEST_TIMED_OUT, Kafka's answer when
// the controller cannot reach its quorum. After an unknown outcome the key that shows the write
// is read back: success only if it is there, else REQUEST_TIMED_OUT (the write may still land).
//
// A topic with more partitions than one transaction may hold (etcd's --max-txn-ops, 128 by
// default) is written in several: the partition keys first, then the topic record and the
// remaining partitions, and its topic_names key in the last transaction, so that a topic is
// visible by name only once it is complete. A crash or failure in between leaves partition keys
// without a topic record (or, when adding partitions, beyond the topic record's assignment):
// nothing reads them, since readers go from the name to the topic record to its partitions.
// They are erased by the next create_topics or create_partitions after this broker became
// controller or after one of its own multi-transaction writes failed. The last transaction also
// requires the last key of every earlier one, so that if it arrives late, after such an erasure,
// it fails instead of completing a topic with missing partitions.
//
// Internal topic names are not refused here: the CreateTopics handler refuses them to clients,
// and the broker creates its own internal topics through the controller.
//
// Threading: io thread only. The member must outlive the controller; an operation in flight
// when the controller is destroyed completes with NOT_CONTROLLER without touching it.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "server/cluster/cluster_member.h"
#include "server/cluster/records.h"
#include "server/cluster/replica_placement.h"
#include "server/coordination/metadata_store.h"
#include "wire/codec.h"
#include "wire/error_code.h"

namespace sluice::server::cluster {

struct controller_config {
  int32_t default_num_partitions = 1;      // num.partitions
  int16_t default_replication_factor = 1;  // default.replication.factor
  // New partitions in one CreateTopics or CreatePartitions (Kafka's MAX_PARTITIONS_PER_BATCH).
  int32_t max_partitions_per_request = 10000;
  // Operations per transaction: etcd's --max-txn-ops.
  int32_t max_txn_ops = 128;
  // How long an operation waits for the image to show the controller's previous write.
  int64_t catch_up_timeout_ms = 5000;
};

struct create_topic_request {
  std::string name;
  int32_t num_partitions = -1;      // -1: default_num_partitions
  int16_t replication_factor = -1;  // -1: default_replication_factor
  // Partition -> replicas, preferred leader first. When given, both counts must be -1.
  std::map<int32_t, std::vector<int32_t>> assignments;
  // Topic-level overrides, already validated by the caller.
  std::map<std::string, std::string> configs;
  // Every check, no write.
  bool validate_only = false;
};

struct create_topic_result {
  std::string name;
  wire::error_code error = wire::error_code::none;
  std::string message;  // empty on success
  // Zero for validate_only: no topic was created.
  wire::uuid topic_id{};
  int32_t num_partitions = -1;
  int16_t replication_factor = -1;
};

// By name when `name` is not empty, else by id.
struct delete_topic_request {
  std::string name;
  wire::uuid id{};
};

struct delete_topic_result {
  std::string name;  // resolved from the id when deleted by id
  wire::uuid id{};   // resolved from the name when deleted by name
  wire::error_code error = wire::error_code::none;
  std::string message;
};

struct create_partitions_request {
  std::string name;
  int32_t count = 0;  // the new total
  // The replicas of each new partition, in order; unset: placed like a new topic's.
  std::optional<std::vector<std::vector<int32_t>>> assignments;
  bool validate_only = false;
};

struct create_partitions_result {
  wire::error_code error = wire::error_code::none;
  std::string message;
};

// A change of one topic's configs (AlterConfigs, IncrementalAlterConfigs). `change` is given the
// topic's overrides as the store holds them when the operation's turn comes and makes them the
// new whole set, returning "" or why that set is refused (INVALID_CONFIG). A function rather than
// the new set: an incremental change must apply to the state it is written over, never undo a
// change that another request made after the caller looked.
struct alter_topic_configs_request {
  std::string name;
  std::function<std::string(std::map<std::string, std::string>& configs)> change;
  // Every check, no write.
  bool validate_only = false;
};

struct alter_topic_configs_result {
  wire::error_code error = wire::error_code::none;
  std::string message;
  // The revision of the write; 0 when nothing was written (validate_only, no change, an error).
  int64_t revision = 0;
};

// One partition of an AlterPartition request (v2+: by topic id).
struct alter_partition_request {
  int32_t broker_id = -1;
  int64_t broker_epoch = -1;
  wire::uuid topic_id{};
  int32_t partition = -1;
  int32_t leader_epoch = -1;
  std::vector<int32_t> new_isr;
  // The partition epoch the leader's proposal is based on: an etcd revision, wider than the
  // wire's int32 (the caller maps it).
  int64_t partition_epoch = -1;
};

struct alter_partition_result {
  wire::error_code error = wire::error_code::none;
  // The partition's state after the change (or unchanged, if the ISR was already this one).
  int32_t leader = -1;
  int32_t leader_epoch = -1;
  std::vector<int32_t> isr;
  int64_t partition_epoch = -1;
};

class controller {
 public:
  // Takes the member non-const to be told of image changes (cluster_member::on_change).
  controller(coordination::metadata_store& store, cluster_member& member, controller_config config);
  ~controller();
  controller(const controller&) = delete;
  controller& operator=(const controller&) = delete;

  // One result per request, in order. A name given twice is INVALID_REQUEST for each.
  boost::asio::awaitable<std::vector<create_topic_result>> create_topics(
      std::vector<create_topic_request> requests);
  boost::asio::awaitable<std::vector<delete_topic_result>> delete_topics(
      std::vector<delete_topic_request> requests);
  boost::asio::awaitable<create_partitions_result> create_partitions(
      create_partitions_request request);
  // UNKNOWN_TOPIC_OR_PARTITION for a topic the cluster does not have. The write compares the
  // topic key's mod_revision with the one the change was applied to.
  boost::asio::awaitable<alter_topic_configs_result> alter_topic_configs(
      alter_topic_configs_request request);
  boost::asio::awaitable<alter_partition_result> alter_partition(alter_partition_request request);

 private:
  struct queue;
  struct failure {
    wire::error_code code = wire::error_code::none;
    std::string message;
    explicit operator bool() const { return code != wire::error_code::none; }
  };
  enum class write_status { applied, not_controller, conflict, timed_out, failed };
  struct write_outcome {
    write_status status = write_status::failed;
    int64_t revision = 0;  // applied: the write's revision, 0 if unknown
    std::string detail;
  };
  // A new topic or new partitions, decided and ready to be written.
  struct topic_plan {
    wire::uuid id{};
    topic_record record;
    int32_t first_new_partition = 0;
  };

  // This broker is the controller and its image shows its last write; REQUEST_TIMED_OUT or
  // NOT_CONTROLLER otherwise.
  boost::asio::awaitable<failure> ready();
  // A topic's record as the store holds it, with the mod_revision a write of it compares:
  // UNKNOWN_TOPIC_OR_PARTITION when there is none, REQUEST_TIMED_OUT when the store did not
  // answer. The stored record rather than the image's, so that a change applies to exactly what
  // it replaces.
  struct stored_topic {
    wire::uuid id{};
    std::string key;
    topic_record record;
    int64_t revision = 0;
    failure refused;
  };
  boost::asio::awaitable<stored_topic> read_topic(const std::string& name);
  // One transaction, fenced on `epoch`. After an unknown outcome, reads `confirm_key` and
  // counts the write as applied if `applied` says so of the key's state (null: absent).
  // Callers pass a named confirmation: GCC 12 destroys a std::function made from a lambda inside
  // a co_await expression twice (a double free, seen in controller_test).
  using confirmation = std::function<bool(const coordination::key_value*)>;
  boost::asio::awaitable<write_outcome> write(coordination::txn_request txn, int64_t epoch,
                                              std::string confirm_key, confirmation applied);
  // Puts the plan's new partitions, then `final_ops` (last, in the transaction that completes
  // the plan), each transaction comparing `compares` besides the epoch.
  boost::asio::awaitable<write_outcome> write_partitions(
      const topic_plan& plan, int64_t epoch, const std::vector<coordination::compare>& compares,
      std::vector<coordination::operation> final_ops, std::string confirm_key,
      std::string confirm_value);
  // Erases partition keys no topic record accounts for (see the top of this file).
  boost::asio::awaitable<void> sweep_orphans(int64_t epoch);

  failure decide_create(const create_topic_request& request, topic_plan& plan);
  // Kafka's validateManualPartitionAssignment: registered brokers, each once, and as many as
  // the other partitions have when `replication_factor` is set.
  failure check_manual_assignment(const std::vector<int32_t>& replicas,
                                  std::optional<size_t> replication_factor) const;
  std::vector<placement_broker> live_brokers() const;
  boost::asio::awaitable<create_topic_result> create_one(const create_topic_request& request);
  boost::asio::awaitable<delete_topic_result> delete_one(const delete_topic_request& request);
  const std::string& prefix() const { return member_.image().prefix(); }

  coordination::metadata_store& store_;
  cluster_member& member_;
  controller_config config_;
  std::shared_ptr<queue> queue_;
  // The revision of this controller's last write known to have applied.
  int64_t last_written_ = 0;
  // The controller epoch whose orphans were swept; a failed multi-transaction write resets it.
  int64_t swept_epoch_ = 0;
  std::mt19937 random_{std::random_device{}()};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::server::cluster
