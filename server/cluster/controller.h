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

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server/cancel_handle.h"
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
  bool auto_leader_rebalance = true;                    // auto.leader.rebalance.enable
  int64_t leader_imbalance_check_interval_ms = 300000;  // leader.imbalance.check.interval.seconds
  int32_t leader_imbalance_per_broker_percentage = 10;  // leader.imbalance.per.broker.percentage
  bool unclean_leader_election = false;                 // unclean.leader.election.enable
  // __consumer_offsets, created by the controller once offsets_topic_replication_factor brokers
  // are registered (offsets.topic.*); 0 partitions: never.
  int32_t offsets_topic_num_partitions = 50;
  int16_t offsets_topic_replication_factor = 3;
  int32_t offsets_topic_segment_bytes = 104857600;
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

// ElectLeaders' ElectionType (KIP-460).
enum class election_type : int8_t { preferred = 0, unclean = 1 };

struct elect_leaders_request {
  election_type type = election_type::preferred;
  // Topic name -> partitions. nullopt: every partition of every topic, and then the results
  // leave out the partitions whose election was not needed, as Kafka's do.
  std::optional<std::map<std::string, std::vector<int32_t>>> partitions;
};

struct election_result {
  std::string topic;
  int32_t partition = -1;
  wire::error_code error = wire::error_code::none;
  std::string message;  // empty when there is none
};

struct elect_leaders_result {
  wire::error_code error = wire::error_code::none;  // the request's (NOT_CONTROLLER, ...)
  std::string message;
  std::vector<election_result> partitions;
  // The revision of the last write; 0 when nothing was written.
  int64_t revision = 0;
};

struct controlled_shutdown_request {
  int32_t broker_id = -1;
  int64_t broker_epoch = -1;
};

struct controlled_shutdown_result {
  wire::error_code error = wire::error_code::none;
  std::string message;
  // The partitions with more than one replica that the broker still leads.
  std::vector<std::pair<std::string, int32_t>> remaining;
  int64_t revision = 0;  // of the last write; 0 when nothing was written
};

// One partition of an AlterPartitionReassignments request.
struct reassignment_request {
  std::string topic;
  int32_t partition = -1;
  // The target replicas, preferred leader first; nullopt cancels the reassignment in progress.
  std::optional<std::vector<int32_t>> replicas;
};

struct reassignment_result {
  std::string topic;
  int32_t partition = -1;
  wire::error_code error = wire::error_code::none;
  std::string message;  // empty when there is none
};

struct alter_reassignments_result {
  wire::error_code error = wire::error_code::none;  // the request's (NOT_CONTROLLER, ...)
  std::string message;
  std::vector<reassignment_result> partitions;  // one per request entry, in order
  int64_t revision = 0;                         // of the last write; 0 when nothing was written
};

// A reassignment in progress, as ListPartitionReassignments answers it.
struct ongoing_reassignment {
  std::string topic;
  int32_t partition = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> adding;
  std::vector<int32_t> removing;
};

struct list_reassignments_result {
  wire::error_code error = wire::error_code::none;
  std::string message;
  std::vector<ongoing_reassignment> partitions;  // by topic name, then partition
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

  // Leadership (controller_leadership.cc). A broker is eligible to lead, or to join an ISR, while
  // it is registered and not in controlled shutdown (broker_record). A new leader always comes
  // from the ISR, except in an unclean election, and every leader change bumps the leader epoch.
  //
  // ElectLeaders, as Kafka's ReplicationControlManager.electLeaders: a preferred election makes
  // the first replica leader if it is eligible and in the ISR (else PREFERRED_LEADER_NOT_AVAILABLE;
  // ELECTION_NOT_NEEDED if it already leads); an unclean one gives a partition whose leader is
  // gone the first eligible ISR member, or, if none, the first eligible replica with an ISR of
  // itself (else ELIGIBLE_LEADERS_NOT_AVAILABLE; ELECTION_NOT_NEEDED while its leader lives).
  boost::asio::awaitable<elect_leaders_result> elect_leaders(elect_leaders_request request);
  // ControlledShutdown, as Kafka's ZooKeeper-era controller did it: every partition the broker
  // leads gets the first other eligible ISR member as leader, and the broker leaves every ISR it
  // is in but does not make empty. Partitions of one replica stay where they are (they go offline
  // with the broker), and are not among the remaining ones.
  boost::asio::awaitable<controlled_shutdown_result> controlled_shutdown(
      controlled_shutdown_request request);
  // Partition reassignment (controller_reassignment.cc), as KRaft's
  // ReplicationControlManager.alterPartitionReassignments: a target list starts a reassignment
  // (reassignment.h: the replicas grow to the target plus the current ones, which leave once every
  // target replica is in the ISR: the AlterPartition that brings the last one in completes it); a
  // null list cancels one (NO_REASSIGNMENT_IN_PROGRESS if none is). INVALID_REPLICA_ASSIGNMENT for
  // an invalid target (empty, a broker twice, an unregistered broker) or a cancel that would need
  // an unclean election the topic does not allow; UNKNOWN_TOPIC_OR_PARTITION for a partition the
  // cluster does not have. A topic's record and the partitions changed are written in one
  // transaction comparing both keys' mod_revisions.
  boost::asio::awaitable<alter_reassignments_result> alter_partition_reassignments(
      std::vector<reassignment_request> requests);
  // The reassignments in progress: of every partition (nullopt), or of those named; partitions
  // and topics with none in progress, or unknown, are left out, as KRaft's
  // listPartitionReassignments leaves them.
  boost::asio::awaitable<list_reassignments_result> list_partition_reassignments(
      std::optional<std::map<std::string, std::vector<int32_t>>> partitions);

  // Failover (controller_failover.cc), as KRaft fences and unfences brokers. Whenever the
  // registered brokers change (a lease expired, a broker registered again, one began a controlled
  // shutdown), a topic's unclean.leader.election.enable changes, and when this broker becomes
  // controller, one queued pass over every partition:
  // - a partition whose leader is not registered (or that has none) gets the first replica, in
  //   replica order, that is in its ISR and eligible, with the leader epoch bumped; dead members
  //   leave its ISR;
  // - with none, and unclean.leader.election.enable (the topic's, else the broker's), the first
  //   eligible replica leads with an ISR of itself, logged as a possible loss; without it, the
  //   partition has leader -1 (epoch bumped, offline, logged) and keeps its ISR's live members, or
  //   all of them when none lives, so that whichever returns first leads again;
  // - a partition whose leader lives loses its dead ISR members, so that acks=all need not wait
  //   replica.lag.time.max.ms for them.
  // Each change compares its partition's mod_revision, so a leader's AlterPartition based on the
  // older state fails, and the pass is tried again after a write that did not land.

  // auto.leader.rebalance.enable: a preferred election for the partitions of every broker whose
  // share of partitions it prefers but does not lead is above
  // leader.imbalance.per.broker.percentage (Kafka's checkAndTriggerAutoLeaderRebalance). Returns
  // how many leaders moved.
  boost::asio::awaitable<size_t> rebalance_leaders();
  // Runs rebalance_leaders every leader_imbalance_check_interval_ms while this broker is the
  // controller, if auto_leader_rebalance is on. Creates __consumer_offsets while this broker is
  // the controller and the cluster has none, as soon as enough brokers are registered for its
  // replication factor (Kafka creates it on the first FindCoordinator; groups cannot work
  // without it either way, and until then FindCoordinator answers COORDINATOR_NOT_AVAILABLE).
  void start(boost::asio::any_io_executor executor);
  // Ends what start() began (the broker is stopping).
  void stop();

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
  // The operation's turn on the queue, once this controller may decide (ready()), held until the
  // operation drops it. Null, with `result`'s error and message saying why (NOT_CONTROLLER,
  // REQUEST_TIMED_OUT), when it may not. Defined in controller_internal.h.
  template <class Result>
  boost::asio::awaitable<std::shared_ptr<void>> take_turn(Result& result);
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
  // A partition's new state, decided from the state at partition epoch `based_on`.
  struct partition_change {
    wire::uuid topic_id{};
    int32_t partition = -1;
    std::string where;  // topic-partition, for the log
    partition_record record;
    int64_t based_on = 0;
  };
  // Writes the changes, at most max_txn_ops - 1 to a transaction (each compares its partition's
  // mod_revision), and answers per change: NONE once written, else why not. A transaction that
  // loses a compare is tried again change by change, so that one moved partition does not hold
  // back the others. `revision` gets the last write's revision.
  boost::asio::awaitable<std::vector<wire::error_code>> write_partition_changes(
      const std::vector<partition_change>& changes, int64_t epoch, int64_t& revision);
  bool eligible_leader(int32_t broker_id) const;
  // A topic record and some of its partitions' records, written together: `topic_revision` and
  // each partition's `based_on` are compared.
  struct assignment_change {
    int32_t partition = -1;
    partition_record record;
    int64_t based_on = 0;
  };
  boost::asio::awaitable<write_outcome> write_assignment(
      const std::string& topic_key, const topic_record& topic, int64_t topic_revision,
      const wire::uuid& topic_id, const std::vector<assignment_change>& changes, int64_t epoch);
  // unclean.leader.election.enable for the topic: its override, else the broker's.
  bool unclean_allowed(const topic_record& topic) const;

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
  std::shared_ptr<boost::asio::steady_timer> rebalance_timer_;
  // Failover (controller_failover.cc). The state a partition moves to now that its leader or
  // ISR members may be gone, or nullopt for no change; `offline` when no leader can be chosen.
  std::optional<partition_record> failover_state(const partition_record& now,
                                                 const std::vector<int32_t>& replicas, bool unclean,
                                                 bool& unclean_elected, bool& offline) const;
  // One pass over every partition; returns how many changes were not written.
  boost::asio::awaitable<size_t> fail_over();
  // On every image change: starts a pass if this broker is controller and what a pass decides
  // from (the controller epoch, the registered brokers, the topics' unclean election flags)
  // differs from the last pass's.
  void watch_brokers();
  cancel_handle brokers_watch_;
  // What the last pass was started for, written out.
  std::optional<std::string> failover_seen_;
  bool failover_running_ = false;
  bool failover_again_ = false;
  std::shared_ptr<boost::asio::steady_timer> failover_retry_timer_;
  // Internal topics (controller_leadership.cc): the image watch and whether a creation is on.
  void maybe_create_offsets_topic();
  boost::asio::any_io_executor executor_;
  cancel_handle internal_topics_watch_;
  bool creating_offsets_topic_ = false;
  size_t offsets_topic_waits_logged_for_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::server::cluster
