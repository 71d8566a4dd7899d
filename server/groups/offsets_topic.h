#pragma once
// The broker's side of __consumer_offsets: which of its partitions this broker leads, and the
// group_store that sends each group's writes to the partition holding the group. Kafka's
// GroupMetadataManager in its onElection / onResignation role:
//
// - lead(index, partition, epoch): this broker became the partition's leader. The coordinator
//   answers COORDINATOR_LOAD_IN_PROGRESS for its groups while the partition is replayed from
//   the log start to the log end (load_consumer_offsets_async: the io thread never waits for the
//   disk), then the groups are handed over and served. A new leader epoch of a partition already
//   led reloads it: another broker may have led it in between.
// - resign(index): the partition is led elsewhere (or gone). Its groups leave the coordinator at
//   once (NOT_COORDINATOR), and a load in progress is dropped when it completes.
// - Writes to a partition not led here complete with NOT_COORDINATOR. A write in flight when
//   leadership moves completes with what its partition answers (NOT_LEADER_OR_FOLLOWER becomes
//   NOT_COORDINATOR); the partition's writer lives until then.
//
// A broker running alone has one partition, adopted at start after its synchronous replay.
//
// Threading: io thread only.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include "server/groups/group_coordinator.h"
#include "server/groups/offsets_log.h"
#include "server/timers.h"
#include "storage/disk_executor.h"

namespace sluice::server {

class offsets_topic final : public group_store {
 public:
  offsets_topic(boost::asio::any_io_executor executor, storage::disk_executor& disk);
  ~offsets_topic();
  offsets_topic(const offsets_topic&) = delete;
  offsets_topic& operator=(const offsets_topic&) = delete;

  // The coordinator whose groups the partitions hold; it must outlive this or detach first.
  void attach(group_coordinator* coordinator) { coordinator_ = coordinator; }
  // In a cluster: every partition's writes wait for its in-sync replicas (offsets_log).
  void replicate_with(offsets_replication r) { replication_ = std::move(r); }

  // A broker running alone, at start: replays the partition synchronously (nothing is served
  // yet) into the coordinator and serves its groups. On error nothing is adopted.
  std::error_code adopt(int32_t index, partition& p, replay_stats& stats);
  void lead(int32_t index, std::shared_ptr<partition> p, int32_t leader_epoch);
  void resign(int32_t index);
  // Leads exactly `leading` (index -> partition and its leader epoch): resigns the others.
  void lead_exactly(
      const std::map<int32_t, std::pair<std::shared_ptr<partition>, int32_t>>& leading);

  void store_group(std::string_view group_id, const group_metadata_record& record,
                   completion done) override;
  void store_offsets(std::string_view group_id, std::span<const offset_record> offsets,
                     completion done) override;
  void remove_offsets(std::string_view group_id, std::span<const topic_partition> partitions,
                      completion done) override;
  void remove_group(std::string_view group_id, std::span<const topic_partition> partitions,
                    completion done) override;

 private:
  struct led {
    std::shared_ptr<offsets_log> writer;
    int32_t leader_epoch = -1;
    uint64_t load_id = 0;  // the load whose completion still counts
  };
  // The writer of the group's partition, or null (done is then answered NOT_COORDINATOR).
  std::shared_ptr<offsets_log> writer_for(std::string_view group_id, completion& done);
  // Wraps `done` so that the writer lives until its write completes.
  static completion keeping(std::shared_ptr<offsets_log> writer, completion done);

  boost::asio::any_io_executor executor_;
  storage::disk_executor& disk_;
  group_coordinator* coordinator_ = nullptr;
  std::optional<offsets_replication> replication_;
  std::map<int32_t, led> led_;
  uint64_t next_load_id_ = 1;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::server
