#pragma once
// The broker: listeners, connections, the topic registry over the segment store, and orderly
// shutdown.
//
// Threading: one io_context run by one thread owns all broker state (sessions, topics, logs), so
// nothing here takes a lock. Appends go to the page cache; fetches are sendfile from it; every
// call that may block on the disk runs on the disk executor's threads (num.io.threads) and
// completes back on the io thread (docs/DESIGN.md).

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server/cluster/cluster_member.h"
#include "server/cluster/controller.h"
#include "server/config.h"
#include "server/coordination/metadata_store.h"
#include "server/disk_executor.h"
#include "server/fetch_sessions.h"
#include "server/groups/group_coordinator.h"
#include "server/groups/offsets_topic.h"
#include "server/producer_ids.h"
#include "server/request_budget.h"
#include "server/timers.h"
#include "server/topics.h"
#include "storage/log.h"

namespace sluice::server {

class session;
class controller_channel;
class replica_manager;

struct broker_address {
  int32_t node_id = -1;
  std::string host;
  int32_t port = 0;
  std::optional<std::string> rack;
};

class broker {
 public:
  // `timers` (default: steady timers on `io` and the system clock) times long polls and the
  // group coordinator's deadlines; tests pass a manual clock. It must outlive the broker.
  broker(boost::asio::io_context& io, broker_config config, timer_service* timers = nullptr);
  ~broker();

  // Loads the data directory and binds the listeners. Returns an error message (for exit 2).
  std::string start();
  // Stops accepting, answers in-flight requests, wakes parked fetches, then closes everything
  // within shutdown_grace_ms. The io_context runs out of work when done. In a cluster with
  // controlled.shutdown.enable, a controlled shutdown comes first (its leaderships move to other
  // replicas, bounded by controlled.shutdown.max.retries); a second call skips what is left of it.
  void stop();
  // After the io_context stopped: flush, checkpoint, mark the clean shutdown.
  void close_storage();

  const broker_config& config() const { return config_; }
  topic_registry& topics() { return *topics_; }
  // queued.max.request.bytes and queued.max.requests, across every connection.
  request_budget& budget() { return budget_; }
  timer_service& timers() { return *timers_; }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }
  group_coordinator& groups() { return *groups_; }
  fetch_session_cache& fetch_sessions() { return fetch_sessions_; }
  producer_id_allocator& producer_ids() { return *producer_ids_; }
  bool stopping() const { return stopping_; }
  // The address this broker advertises to clients of the listener named `listener_name`, as
  // Kafka answers each client with the endpoints of the listener it connected to (Metadata,
  // DescribeCluster, FindCoordinator). An empty or unknown name (a request that came in on no
  // socket, as in handler tests) gets the inter-broker listener's.
  const listener& advertised(std::string_view listener_name = {}) const;
  const std::string& cluster_id() const { return cluster_id_; }
  // The live brokers at their addresses on the listener named `listener_name` (empty: the
  // inter-broker one), as Metadata and DescribeCluster list them; this broker alone when it runs
  // alone.
  std::vector<broker_address> live_brokers(std::string_view listener_name) const;
  // The cluster's controller, -1 while none is elected; this broker when it runs alone.
  int32_t controller_id() const;
  // This broker's membership of a cluster (metadata.etcd.endpoints); null for a broker that runs
  // alone.
  const cluster::cluster_member* cluster() const { return member_.get(); }
  cluster::cluster_member* cluster() { return member_.get(); }
  // In a cluster: the way to the controller, and the replica manager; null when alone.
  controller_channel* controller() { return channel_.get(); }
  replica_manager* replicas() { return replicas_.get(); }

  // Finds a topic for a request or, when allowed, starts creating it; the error is Kafka's
  // (LEADER_NOT_AVAILABLE while its files are being created, as Kafka answers during creation).
  wire::error_code find_or_create_topic(std::string_view name, bool allow_auto_create, topic*& out);

  // The partition a request names, or Kafka's error for it: UNKNOWN_TOPIC_OR_PARTITION,
  // LEADER_NOT_AVAILABLE while its topic's files are being created, KAFKA_STORAGE_ERROR once its
  // log went offline.
  // `followers_serve`: a follower's replica is found too (a consumer's fetch from follower,
  // KIP-392); otherwise only a leader's, and NOT_LEADER_OR_FOLLOWER for the others.
  wire::error_code find_partition(std::string_view topic, int32_t index, partition*& out,
                                  bool followers_serve = false);

  // Counts what a produce with acks=all appended, for the durability summary logged at shutdown.
  void count_acks_all_batches(int64_t n) { acks_all_batches_ += n; }
  // Counts fetches that warmed cold data before answering, for the summary logged at shutdown.
  void count_cold_read() { ++cold_reads_; }
  // Writes the checkpoint files now (DeleteRecords waits for its new log start to be durable).
  void checkpoint_async(std::function<void(std::error_code)> done);
  // Writes topic-configs.json from the topics as they are now, plus `pending` (a topic about to
  // be created), in a disk job; writes land in the order they were asked for.
  void persist_topic_configs(std::optional<pending_topic> pending,
                             std::function<void(std::error_code)> done);
  // Gives `t` the (validated) `configs`, applies them to its logs and persists them; if the file
  // cannot be written the previous configs are put back (if the topic is still there) and the
  // error goes to `done`.
  void replace_topic_configs(topic& t, topic_overrides configs,
                             std::function<void(std::error_code)> done);

  void on_session_closed(uint64_t id);
  boost::asio::awaitable<void> controlled_shutdown();
  // The partitions the cluster state says this broker leads: those of several replicas
  // (`movable`), or those of one.
  std::vector<std::string> led_partitions(bool movable) const;
  void finish_stop();

 private:
  // Accepts connections for config_.listeners[listener_index].
  void accept(boost::asio::ip::tcp::acceptor& acceptor, size_t listener_index);
  void schedule_checkpoint();
  // log.flush.offset.checkpoint.interval.ms: every log's unsynced data and index entries.
  void schedule_recovery_point_flush();
  // log.flush.scheduler.interval.ms: logs whose unsynced data is older than their flush.ms.
  void schedule_flush_scheduler();
  // Retention (log.retention.check.interval.ms) and producer-id expiry.
  void schedule_retention();
  // Removal of deleted partitions' directories once log.segment.delete.delay.ms has passed.
  void schedule_deleted_dirs_removal();
  std::string load_groups(const group_coordinator_config& groups_config);
  // In a cluster, after every reconciliation of the replica manager: the coordinator serves the
  // groups of the __consumer_offsets partitions this broker leads now, and forgets the offsets of
  // topics the cluster deleted.
  void follow_offsets_partitions();
  // In a cluster: asks the controller for the topic (a client's Metadata or Produce named it).
  void auto_create_in_cluster(std::string_view name);
  // The cluster id from meta.properties; empty with `problem` set when the start must stop. In a
  // cluster `expected` is the cluster's id: a log directory of another cluster (a standalone
  // broker's, for one) is refused, as Kafka refuses it; a new one is given `expected`.
  std::string load_cluster_id(const std::string& expected, std::string& problem);
  // Runs the io_context until `call` completes; only during start(), before anything is served.
  template <typename T>
  T run_to_completion(boost::asio::awaitable<T> call);

  boost::asio::io_context& io_;
  broker_config config_;
  request_budget budget_;
  std::unique_ptr<timer_service> own_timers_;
  timer_service* timers_;
  // Before logs_: it outlives every job the logs submit.
  std::unique_ptr<thread_pool_disk_executor> disk_;
  std::unique_ptr<storage::log_manager> logs_;
  std::unique_ptr<topic_registry> topics_;
  // Declared before groups_ so that the coordinator, which writes through it, goes first.
  std::unique_ptr<offsets_topic> offsets_;
  std::unique_ptr<group_coordinator> groups_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::map<uint64_t, std::weak_ptr<session>> sessions_;
  uint64_t next_session_id_ = 1;
  bool stopping_ = false;
  bool controlled_shutdown_started_ = false;
  std::optional<boost::asio::steady_timer> controlled_shutdown_timer_;
  std::optional<boost::asio::steady_timer> grace_timer_;
  std::optional<boost::asio::steady_timer> checkpoint_timer_;
  std::optional<boost::asio::steady_timer> recovery_point_timer_;
  std::optional<boost::asio::steady_timer> flush_scheduler_timer_;
  int64_t acks_all_batches_ = 0;
  int64_t cold_reads_ = 0;
  std::optional<boost::asio::steady_timer> retention_timer_;
  std::optional<boost::asio::steady_timer> deleted_dirs_timer_;
  fetch_session_cache fetch_sessions_;
  int64_t last_producer_expiry_ms_ = 0;
  int accept_backoff_ms_ = 0;  // 0: accepting normally
  std::string cluster_id_;
  // Declared before member_, which calls it until it goes.
  std::unique_ptr<coordination::metadata_store> store_;
  std::unique_ptr<cluster::cluster_member> member_;
  // Declared after store_, which a cluster member's allocator calls until it goes.
  std::unique_ptr<producer_id_allocator> producer_ids_;
  std::unique_ptr<cluster::controller> controller_;
  std::unique_ptr<controller_channel> channel_;
  std::unique_ptr<replica_manager> replicas_;
  // Applies the topics' configs from the cluster state at every change of it.
  cancel_handle config_sync_;
  // The cluster's topics as of the last follow_offsets_partitions: a name gone since was deleted.
  std::set<std::string, std::less<>> cluster_topic_names_;
  // Topics this broker asked the controller to auto-create, until it answered.
  std::set<std::string, std::less<>> auto_creating_;
};

}  // namespace sluice::server
