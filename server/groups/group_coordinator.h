#pragma once
// The classic consumer group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and the
// committed offsets of every group, as one state machine with Kafka's semantics
// (core/src/main/scala/kafka/coordinator/group/GroupCoordinator.scala, GroupMetadata.scala).
//
// Group states, as Kafka names them:
//
//   Empty --join--> PreparingRebalance --all rejoined / rebalance timeout--> CompletingRebalance
//     ^                 ^   |                                                   |
//     |                 |   +--no members left--> Empty         leader's SyncGroup
//     |                 |                                                       v
//     |                 +------- join, leave, session expiry, metadata change - Stable
//     +-- DeleteGroups, or expiry of its last offsets, removes an Empty group (Dead)
//
// Ownership and threading: one instance, owned by the io thread, holds every group of the
// __consumer_offsets partitions this broker leads (see "Which groups this coordinator serves"
// below); nothing takes a lock. Deadlines (heartbeat and pending-member expiry, the new-member
// join timeout, the rebalance timeout, the initial rebalance delay, the retention check) and the
// wall clock (commit timestamps, the time a group entered its state, retention) come from one
// timer_service, so tests advance a manual clock instead of waiting.
// A JoinGroup or SyncGroup that must wait parks as a coroutine until the state machine answers
// it; the parked reply outlives the coordinator, which answers NOT_COORDINATOR on shutdown.
//
// Persistence goes through the asynchronous group_store, and a change that Kafka persists takes
// effect when the store reports it durable, in the store's completion, as in the callbacks of
// Kafka's GroupCoordinator and GroupMetadataManager:
// - OffsetCommit (GroupMetadataManager.storeOffsets): committed offsets enter memory, and the
//   commit is answered, once durable; until then OffsetFetch returns the previous value (with
//   require_stable too, as Kafka 4's coordinator does for commits outside transactions), and a
//   partition with a commit in flight does not expire. A failed append answers its error for
//   every partition and changes nothing.
// - The leader's SyncGroup (GroupCoordinator.doSyncGroup): assignments are applied, sent to the
//   members and the group made Stable once the metadata is durable, and only if the group is
//   still CompletingRebalance in the same generation; a failure resets the assignments, answers
//   the members the error and rebalances.
// - A static member rejoining a Stable group (updateStaticMemberAndRebalance): answered once the
//   metadata naming its new member id is durable; a failure restores the old member id.
// - A group becoming Empty (onCompleteJoin): a failure is only logged, as in Kafka.
// - Tombstones (DeleteGroups, OffsetDelete, offset expiry, DeleteTopics): offsets leave memory,
//   and groups the map, only once their tombstones are durable. A group being removed is Dead
//   meanwhile, so nothing joins or commits to it (COORDINATOR_NOT_AVAILABLE, which clients
//   retry, as Kafka answers a Dead group), and it comes back Empty if the write fails.
// The store completes calls in their order, which is the log's, so applying each change in its
// completion keeps memory equal to what a replay of the log rebuilds, whatever happens between
// a write and its completion.
//
// Offset retention (KIP-211, Kafka 2.1+, GroupMetadata.removeExpiredOffsets): every
// offsets.retention.check.interval.ms, and once at start, committed offsets expire when
//   - the group is Empty (and has a protocol type): retention has passed since it became Empty
//     (since the commit, for a group loaded from a record without that timestamp);
//   - the group is a Stable consumer group: the offset's topic is subscribed by no member and
//     retention has passed since the commit;
//   - the group has no protocol type (commits only, no members ever): retention has passed since
//     the commit.
// Expired offsets get tombstones; an Empty group left without offsets becomes Dead and is
// forgotten, with a tombstone for its metadata if it ever had a generation (as Kafka does).
//
// The methods take the decoded request and return the response struct; version differences are
// the codec's, except where Kafka's semantics depend on the version (MEMBER_ID_REQUIRED from
// JoinGroup v4, LeaveGroup's single member before v3, OffsetFetch's groups from v8).
//
// Deviations from Kafka, each deliberate:
// - Protocol support of a rejoining member is checked against the other members only (Kafka
//   counts the member's previous protocols too, so a lone member cannot switch assignors).
// - A static member rejoining a Stable group keeps its assignment without a rebalance only if
//   its protocol metadata is unchanged and the selected protocol stays the same (Kafka 3.x
//   checks the latter only).
// - A JoinGroup or SyncGroup that replaces a still-parked one from the same member answers the
//   older one REBALANCE_IN_PROGRESS (Kafka drops it unanswered).
// - Kafka's classic coordinator drops deleted and expired offsets and groups from memory first
//   and writes their tombstones with acks=0, ignoring a failure. Here DeleteGroups and
//   OffsetDelete answer once the tombstones are durable, and a failed write is reported (per
//   group, or as OffsetDelete's top-level error) and leaves the state in place, as Kafka 4's
//   coordinator runtime does (GroupCoordinatorService.deleteGroups, deleteOffsets).
// - OffsetCommit v2-v4's retention_time_ms and the expireTimestamp of OffsetCommitValue v1 (both
//   per-offset retention, still honoured by Kafka) are ignored: offsets.retention.minutes applies
//   to every offset. librdkafka and the Java client send -1 (the broker's default) anyway.
// Not done yet: group.max.size, the pending-sync timeout of Kafka 3.x.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "server/groups/group_store.h"
#include "server/timers.h"
#include "wire/generated/delete_groups_request.h"
#include "wire/generated/delete_groups_response.h"
#include "wire/generated/describe_groups_request.h"
#include "wire/generated/describe_groups_response.h"
#include "wire/generated/heartbeat_request.h"
#include "wire/generated/heartbeat_response.h"
#include "wire/generated/join_group_request.h"
#include "wire/generated/join_group_response.h"
#include "wire/generated/leave_group_request.h"
#include "wire/generated/leave_group_response.h"
#include "wire/generated/list_groups_request.h"
#include "wire/generated/list_groups_response.h"
#include "wire/generated/offset_commit_request.h"
#include "wire/generated/offset_commit_response.h"
#include "wire/generated/offset_delete_request.h"
#include "wire/generated/offset_delete_response.h"
#include "wire/generated/offset_fetch_request.h"
#include "wire/generated/offset_fetch_response.h"
#include "wire/generated/sync_group_request.h"
#include "wire/generated/sync_group_response.h"

namespace sluice::server {

enum class group_state { empty, preparing_rebalance, completing_rebalance, stable, dead };

// Kafka's names ("Empty", "PreparingRebalance", ...), as ListGroups and DescribeGroups show them.
std::string_view group_state_name(group_state state);

// Kafka's broker settings for groups, with Kafka's defaults.
struct group_coordinator_config {
  std::chrono::milliseconds min_session_timeout{6'000};        // group.min.session.timeout.ms
  std::chrono::milliseconds max_session_timeout{1'800'000};    // group.max.session.timeout.ms
  std::chrono::milliseconds initial_rebalance_delay{3'000};    // group.initial.rebalance.delay.ms
  std::chrono::milliseconds new_member_join_timeout{300'000};  // Kafka's NewMemberJoinTimeoutMs
  size_t max_offset_metadata_bytes = 4096;                     // offset.metadata.max.bytes
  // offsets.retention.minutes, offsets.retention.check.interval.ms
  std::chrono::milliseconds offsets_retention{std::chrono::minutes(10'080)};
  std::chrono::milliseconds offsets_retention_check_interval{600'000};
};

class group_coordinator {
 public:
  // `store` (may be null) receives every change Kafka would persist; it must outlive this.
  // `timers` (default: steady timers on `executor` and the system clock) times every deadline
  // and stamps commits and state changes; it must outlive this.
  group_coordinator(boost::asio::any_io_executor executor, group_coordinator_config config,
                    group_store* store = nullptr, timer_service* timers = nullptr);
  ~group_coordinator();
  group_coordinator(const group_coordinator&) = delete;
  group_coordinator& operator=(const group_coordinator&) = delete;

  // Waits until the rebalance completes (or answers at once: errors, MEMBER_ID_REQUIRED, a
  // follower rejoining a Stable group, a static member rejoining without rebalance). The request
  // is read before the first suspension only.
  boost::asio::awaitable<wire::join_group_response> join(wire::join_group_request& request,
                                                         int16_t version, std::string client_id,
                                                         std::string client_host);
  // Waits, in CompletingRebalance, until the leader's SyncGroup brings the assignments.
  boost::asio::awaitable<wire::sync_group_response> sync(wire::sync_group_request& request,
                                                         int16_t version);
  wire::heartbeat_response heartbeat(wire::heartbeat_request& request, int16_t version);
  wire::leave_group_response leave(wire::leave_group_request& request, int16_t version);

  // These three answer once the store has made the change durable (or failed). The request is
  // read before the first suspension only.
  boost::asio::awaitable<wire::offset_commit_response> commit_offsets(
      wire::offset_commit_request& request, int16_t version);
  boost::asio::awaitable<wire::offset_delete_response> delete_offsets(
      wire::offset_delete_request& request, int16_t version);
  boost::asio::awaitable<wire::delete_groups_response> delete_groups(
      wire::delete_groups_request& request, int16_t version);

  wire::offset_fetch_response fetch_offsets(wire::offset_fetch_request& request, int16_t version);

  wire::list_groups_response list_groups(wire::list_groups_request& request, int16_t version);
  wire::describe_groups_response describe_groups(wire::describe_groups_request& request,
                                                 int16_t version);

  // Replay of a committed offset read back from __consumer_offsets at start; creates the group
  // (Empty) if needed. Does not call the store.
  void load_offset(std::string_view group_id, const offset_record& record);
  // Replays a group's metadata read back from __consumer_offsets at start, before its offsets.
  // Does not call the store.
  void load_group(std::string_view group_id, const group_metadata_record& record,
                  int64_t current_state_timestamp_ms);

  // Expires offsets now, then every offsets_retention_check_interval. The broker calls it once
  // the groups are loaded, so offsets that expired while it was down go at start, as in Kafka.
  void start_offset_expiry();
  // One retention check (Kafka's cleanupGroupMetadata): writes tombstones for expired offsets and
  // Empty groups left without offsets, which leave memory once the tombstones are durable.
  // Returns the number of offsets it wrote tombstones for.
  size_t expire_offsets();
  // DeleteTopics: tombstones for every group's offsets of `topic`, committed or in flight.
  void on_topic_deleted(std::string_view topic);

  // ---- Which groups this coordinator serves (Kafka's GroupMetadataManager ownership) ----
  // A group belongs to partition partition_for(group) of __consumer_offsets and is served only
  // while this broker leads that partition and has loaded it. Group APIs answer, as Kafka's
  // validateGroupStatus: COORDINATOR_NOT_AVAILABLE while the topic does not exist (a partition
  // count of 0) or after shutdown, COORDINATOR_LOAD_IN_PROGRESS while the group's partition is
  // being loaded, and NOT_COORDINATOR when it is not led here. A new coordinator has one
  // partition, loaded: a broker that runs alone coordinates every group.
  //
  // The partition count of the offsets topic: 0 until the cluster has it. Forgets every group.
  void set_offsets_partitions(int32_t count);
  int32_t offsets_partitions() const { return offsets_partitions_; }
  // Kafka's GroupMetadataManager.partitionFor: abs(Java's String.hashCode of the group id) %
  // the partition count, so that a client computing it agrees. -1 while the count is 0.
  int32_t partition_for(std::string_view group_id) const;
  // This broker leads `partition` from now on: its groups answer COORDINATOR_LOAD_IN_PROGRESS
  // until finish_loading (load_group and load_offset hand them over meanwhile).
  void begin_loading(int32_t partition);
  void finish_loading(int32_t partition);
  // This broker no longer leads `partition`: its groups are forgotten, their parked JoinGroup
  // and SyncGroup answered NOT_COORDINATOR (Kafka's removeGroupsForPartition). Writes in flight
  // complete with the store's error. Returns how many groups were unloaded.
  size_t unload(int32_t partition);
  // The partitions led here, loaded or loading.
  const std::map<int32_t, bool>& owned_partitions() const { return owned_; }
  // NONE if this coordinator serves `group_id` now, else the error above.
  wire::error_code group_status(std::string_view group_id) const;

  // Answers every parked request NOT_COORDINATOR and forgets all groups (broker shutdown).
  void shutdown();

  // For tests and logs: the group's state, nullopt if there is no such group (a group whose
  // tombstones are in flight is Dead).
  std::optional<group_state> state_of(std::string_view group_id) const;

 private:
  template <class Resp>
  class parked_reply;
  using join_reply = parked_reply<wire::join_group_response>;
  using sync_reply = parked_reply<wire::sync_group_response>;
  struct member;
  struct group;
  struct join_params;
  // A member's state before a static rejoin replaced it, restored if storing the rejoin fails.
  struct replaced_member;

  std::shared_ptr<join_reply> do_join(wire::join_group_request& request, int16_t version,
                                      std::string client_id, std::string client_host);
  void join_unknown_member(group& g, join_params& p, const std::shared_ptr<join_reply>& reply);
  void join_known_member(group& g, join_params& p, const std::shared_ptr<join_reply>& reply);
  void rejoin_static_member(group& g, member& m, const std::string& old_id, join_params& p,
                            const std::shared_ptr<join_reply>& reply);
  void add_member_and_rebalance(group& g, std::string member_id, join_params& p,
                                const std::shared_ptr<join_reply>& reply);
  void update_member_and_rebalance(group& g, member& m, join_params& p,
                                   const std::shared_ptr<join_reply>& reply);
  std::shared_ptr<sync_reply> do_sync(wire::sync_group_request& request);
  void on_static_rejoin_stored(group& g, const std::shared_ptr<replaced_member>& old,
                               wire::error_code error);
  std::shared_ptr<parked_reply<wire::offset_commit_response>> do_commit(
      wire::offset_commit_request& request);
  std::shared_ptr<parked_reply<wire::offset_delete_response>> do_delete_offsets(
      wire::offset_delete_request& request);

  void maybe_prepare_rebalance(group& g);
  void prepare_rebalance(group& g);
  void arm_rebalance_timer(group& g, std::chrono::milliseconds delay);
  void on_rebalance_timer(group& g);
  void try_complete_join(group& g);
  void complete_join(group& g);
  void remove_member(group& g, std::string_view member_id, std::string_view reason);
  void propagate_assignment(group& g, wire::error_code error);
  void schedule_heartbeat_expiry(group& g, member& m, std::chrono::milliseconds timeout);
  void on_heartbeat_expired(const std::string& group_id, const std::string& member_id);
  void add_pending_member(group& g, const std::string& member_id,
                          std::chrono::milliseconds timeout);
  // The group's metadata as GroupMetadataValue stores it; `assignments` (member id -> bytes), when
  // given, replaces the members' current assignments.
  group_metadata_record metadata_record(
      const group& g,
      const std::map<std::string, std::vector<uint8_t>, std::less<>>* assignments = nullptr) const;
  // Stores the record and calls `then` in the completion, if the group is still there.
  void store_group(group& g, const group_metadata_record& record,
                   std::function<void(group&, wire::error_code)> then);
  void set_state(group& g, group_state state);
  std::vector<topic_partition> expired_offsets(const group& g, int64_t now) const;
  // Does removing `partitions` leave the group without offsets, committed or in flight?
  static bool removes_all_offsets(const group& g, std::span<const topic_partition> partitions);
  // Tombstones for `partitions`; they leave memory once durable, after which an Empty group left
  // without offsets is buried. `done` (may be empty) gets the store's answer.
  // `why` (may be null) completes the log line once they are gone.
  void remove_offsets(group& g, std::vector<topic_partition> partitions, const char* why,
                      std::function<void(wire::error_code)> done);
  // Makes an Empty group Dead and writes the tombstones of `partitions` and of its metadata (if it
  // ever had a generation) in one batch; the group leaves the map once they are durable (`why`
  // completes the log line), and is Empty again if they fail. `done` (may be empty) gets the
  // store's answer; with nothing to write, the group goes and `done` runs before this returns.
  void bury(group& g, std::vector<topic_partition> partitions, std::string why,
            std::function<void(wire::error_code)> done);
  // After offsets left memory: an Empty group without offsets is buried (Kafka's
  // cleanupGroupMetadata).
  void maybe_bury(group& g);
  // Tombstones for the offsets `select` picks in every group, and burial for every Empty group
  // they leave without offsets; `why` completes the log line. Returns the number of offsets.
  size_t remove_offsets_where(
      const std::function<std::vector<topic_partition>(const group&)>& select, const char* why);
  void schedule_retention_check(std::chrono::milliseconds delay);

  // Answers the group's parked JoinGroup and SyncGroup NOT_COORDINATOR.
  void abandon(group& g);
  group* find_group(std::string_view group_id) const;
  group& get_or_create_group(std::string_view group_id);
  std::string new_member_id(std::string_view prefix);

  int64_t wall_clock_ms() { return timers_->wall_clock_ms(); }

  boost::asio::any_io_executor executor_;
  group_coordinator_config config_;
  group_store* store_;
  // Declared before everything holding a timer_handle, which must go first.
  std::unique_ptr<timer_service> own_timers_;
  timer_service* timers_;
  timer_handle retention_timer_;
  bool stopped_ = false;  // after shutdown: start_offset_expiry must not arm the check again
  int32_t offsets_partitions_ = 1;
  // Offsets partitions led here -> loaded (false while loading).
  std::map<int32_t, bool> owned_{{0, true}};
  // Shared so that a store completion can tell whether its group is still there (weak_ptr).
  std::map<std::string, std::shared_ptr<group>, std::less<>> groups_;
  std::mt19937_64 rng_;
};

}  // namespace sluice::server
