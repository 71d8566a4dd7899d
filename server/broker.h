#pragma once
// The broker: listeners, connections, the topic registry over the segment store, and orderly
// shutdown. It is the composition root: it makes the components (storage, topics, groups, the
// cluster pieces, and what requests use: metadata_view, partition_directory,
// topic_config_store), owns them, and wires them; handlers get only the components they name
// (handler_services.h), never the broker.
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

#include "server/broker_stats.h"
#include "server/cluster/cluster_member.h"
#include "server/cluster/controller.h"
#include "server/config.h"
#include "server/coordination/metadata_store.h"
#include "server/disk_executor.h"
#include "server/fetch_sessions.h"
#include "server/groups/group_coordinator.h"
#include "server/groups/offsets_topic.h"
#include "server/handler_services.h"
#include "server/metadata_view.h"
#include "server/partition_directory.h"
#include "server/producer_ids.h"
#include "server/request_budget.h"
#include "server/timers.h"
#include "server/topic_config_store.h"
#include "server/topics.h"
#include "storage/log.h"

namespace sluice::server {

class session;
class controller_channel;
class replica_manager;

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
  const std::string& cluster_id() const { return cluster_id_; }
  const metadata_view& metadata() const { return *metadata_; }
  // What dispatch_request binds to the handlers' parameters; after start().
  const handler_services& services() const { return *services_; }

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
  stop_signal stopping_;
  bool controlled_shutdown_started_ = false;
  std::optional<boost::asio::steady_timer> controlled_shutdown_timer_;
  std::optional<boost::asio::steady_timer> grace_timer_;
  std::optional<boost::asio::steady_timer> checkpoint_timer_;
  std::optional<boost::asio::steady_timer> recovery_point_timer_;
  std::optional<boost::asio::steady_timer> flush_scheduler_timer_;
  broker_stats stats_;
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
  // What the handlers use besides the components above; made once the cluster pieces exist.
  // Declared after them: the directory asks the controller channel, and the services name all.
  std::unique_ptr<metadata_view> metadata_;
  std::unique_ptr<partition_directory> partitions_;
  std::unique_ptr<topic_config_store> topic_configs_;
  std::unique_ptr<handler_services> services_;
};

}  // namespace sluice::server
