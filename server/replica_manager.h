#pragma once
// Kafka's ReplicaManager for a broker in a cluster: it turns the cluster state (the metadata
// image that cluster_member keeps current) into local replicas and their roles.
//
// After every change of the image it reconciles:
// - A topic visible by name in the image with a replica here gets its local log (made by disk
//   jobs; topic_registry::add_replicas_async); a local replica the cluster assigns elsewhere now
//   (a reassignment removed it) stops fetching and its log is deleted, renamed aside at once and
//   removed later like a deleted topic's (topic_registry::remove_replicas_async). A local topic
//   whose id the cluster no longer has
//   (deleted while this broker was down, or deleted and created again under the same name) is a
//   stray: its logs are removed, as Kafka's broker removes stray logs at start-up.
// - Each local replica takes its role from its partition key: leader (partition::become_leader,
//   which starts the epoch at the log end and tracks the followers), or follower of the named
//   leader, fetched by one replica_fetcher per leader broker.
// - As a follower it is the fetchers' replica_sink: batches are appended verbatim
//   (storage::log::append_replicated), the leader's high watermark and log start are taken, and
//   DivergingEpoch answers truncate the log.
// - As a leader it keeps the ISR honest (Kafka's Partition.maybeShrinkIsr / maybeExpandIsr):
//   every replica.lag.time.max.ms / 2 it proposes removing the followers that fell behind, and
//   after each follower fetch it proposes adding one that caught up. Proposals go to the
//   controller as AlterPartition requests; one at a time per partition.
//
// Threading: io thread only, like the partitions it drives.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "server/cancel_handle.h"
#include "server/cluster/cluster_member.h"
#include "server/cluster/replica_fetcher.h"
#include "server/config.h"
#include "server/timers.h"

namespace sluice::server {

class partition;
class topic_registry;
struct topic;

// An ISR change as the leader proposes it, and the controller's answer.
struct isr_change_request {
  wire::uuid topic_id{};
  int32_t partition = 0;
  int32_t leader_epoch = 0;
  std::vector<int32_t> new_isr;
  int64_t partition_epoch = 0;
};
struct isr_change_result {
  wire::error_code error = wire::error_code::none;
  std::vector<int32_t> isr;
  int64_t partition_epoch = 0;
};
// Sends an AlterPartition to the controller, wherever it is.
using isr_change_sender =
    std::function<boost::asio::awaitable<isr_change_result>(isr_change_request)>;

class replica_manager final : public cluster::replica_sink {
 public:
  // Everything given must outlive the manager.
  replica_manager(boost::asio::any_io_executor executor, timer_service& timers,
                  const broker_config& config, topic_registry& topics,
                  cluster::cluster_member& member, isr_change_sender send_isr_change);
  ~replica_manager() override;
  replica_manager(const replica_manager&) = delete;
  replica_manager& operator=(const replica_manager&) = delete;

  // Reconciles now and after every change of the cluster state; starts the ISR check.
  void start();
  // `then` runs at the end of every reconciliation, once every local replica has its role.
  void on_reconciled(std::function<void()> then) { on_reconciled_ = std::move(then); }
  // Stops the fetchers and the ISR check (shutdown).
  void stop();

  // A follower fetched this partition from us (the leader): it may be ready to join the ISR.
  void after_follower_fetch(partition& p);

  // What the fetchers of this broker are doing: leader id -> partitions fetched from it.
  std::map<int32_t, size_t> fetcher_partitions() const;

  // replica_sink
  std::optional<position> fetch_position(cluster::topic_partition_id tp) override;
  boost::asio::awaitable<std::error_code> append(cluster::topic_partition_id tp,
                                                 std::span<const uint8_t> batches,
                                                 int64_t leader_high_watermark,
                                                 int64_t leader_log_start_offset) override;
  boost::asio::awaitable<std::error_code> truncate(cluster::topic_partition_id tp,
                                                   int64_t offset) override;
  boost::asio::awaitable<std::error_code> reset_to(cluster::topic_partition_id tp,
                                                   int64_t offset) override;
  void partition_error(cluster::topic_partition_id tp, wire::error_code error) override;

 private:
  struct followed {
    int32_t leader = -1;
    int32_t epoch = -1;
  };
  void reconcile();
  void apply_role(topic& t, partition& p, const std::vector<int32_t>& replicas,
                  const cluster::partition_state& state,
                  std::map<int32_t, std::vector<cluster::partition_to_fetch>>& to_fetch);
  void remove_stray(topic& t, const char* why);
  // Replicas `indexes` of `t` are no longer this broker's: their logs are deleted.
  void remove_replicas(topic& t, const std::vector<int32_t>& indexes);
  cluster::replica_fetcher& fetcher_for(int32_t leader);
  std::shared_ptr<partition> find(cluster::topic_partition_id tp);
  void check_isr();
  void propose_isr(std::shared_ptr<partition> p, std::vector<int32_t> new_isr, const char* why);

  boost::asio::any_io_executor executor_;
  timer_service& timers_;
  const broker_config& config_;
  topic_registry& topics_;
  cluster::cluster_member& member_;
  isr_change_sender send_isr_change_;
  int32_t local_id_;
  cancel_handle watching_;
  timer_handle isr_timer_;
  // A reconcile after replica.fetch.backoff.ms, for partitions whose leader answered an error.
  timer_handle retry_timer_;
  bool stopped_ = false;
  // Whether this broker was registered at the last reconcile (its lease presumed alive).
  bool registered_ = true;
  // Replicas whose logs are being made, and stray topics being removed: not touched again until
  // that completes.
  std::set<cluster::topic_partition_id> creating_;
  std::set<std::string, std::less<>> removing_;
  std::map<cluster::topic_partition_id, followed> following_;
  // Followed partitions whose log is being truncated: reconcile leaves their role as it is, and
  // notes that it did so in role_deferred_, until truncate() is done.
  std::set<cluster::topic_partition_id> truncating_;
  bool role_deferred_ = false;
  std::map<int32_t, std::unique_ptr<cluster::replica_fetcher>> fetchers_;
  std::function<void()> on_reconciled_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::server
