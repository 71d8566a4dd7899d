#pragma once
// Partition logs on local disk, in Kafka's on-disk format (see storage/README.md for the layout
// and the deviations from Kafka).
//
// `log` is one partition: a directory of segments holding record batches exactly as they came off
// the wire, with sparse offset and time indexes. Appends validate and stamp batches in place (a
// follower's replicated append keeps the leader's bytes unchanged) and write them with one pwrite
// into the page cache; reads return file slices for sendfile, never bytes. `log_manager` owns every
// log under one log.dirs root, the checkpoint files and the clean-shutdown marker, and runs crash
// recovery at start.
//
// Threading: one owner thread (the broker's io thread) owns every log and calls everything here;
// there are no locks. Whatever may block on the disk (fsync, file creation and deletion, renames,
// snapshot, index and checkpoint writes) is handed to a disk_executor as a job that sees only
// descriptors, paths and bytes; its completion comes back to the owner thread and applies the
// result (disk_executor.h). Blocking calls that remain are marked "Blocking" below: they are for
// start-up, shutdown, disk threads and tests. File slices handed out by read() may outlive the
// call (and even the segment, e.g. after truncation): their keep_alive pins the descriptor.
//
// Durability: the recovery point is the offset below which everything is on stable storage (the
// .log data fsynced, its directory entry too). It moves only when a sync completes: a group
// commit (when_durable), the flush of a rolled segment, a periodic flush. Recovery after a crash
// trusts what lies below it, reads only the tail after it, and refuses to truncate an invalid
// batch below it (that would destroy acknowledged data).

#include <compare>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/disk_executor.h"
#include "storage/errc.h"
#include "storage/file_io.h"
#include "storage/leader_epoch_cache.h"
#include "storage/producer_state.h"
#include "wire/codec.h"
#include "wire/frame.h"
#include "wire/record_batch.h"

namespace sluice::storage {

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
};

// Milliseconds since the Unix epoch from the system clock: what the time-dependent calls below
// default to. Tests pass their own `now_ms` instead.
int64_t wall_clock_ms();

// message.timestamp.type
enum class timestamp_type { create_time, log_append_time };

// Kafka's topic-level log settings (defaults as in Kafka 3.x). One log_manager holds the broker
// defaults; a topic with overrides gets its own copy (log_manager::create, log::set_config).
struct log_config {
  // segment.bytes: a segment is rolled when an append would take it past this size. Capped at
  // 2^31 - 1, since index positions are int32.
  int64_t segment_bytes = 1073741824;
  // segment.ms: a non-empty segment is rolled when an append's timestamp is this much newer than
  // the segment's first append (or, when that carries no timestamp, than the segment's creation).
  int64_t segment_ms = 604800000;
  // retention.ms: segments whose largest timestamp is older than this are deleted; -1 keeps them.
  int64_t retention_ms = 604800000;
  // retention.bytes: oldest segments are deleted while the log stays at least this large without
  // them; -1 means no limit.
  int64_t retention_bytes = -1;
  // max.message.bytes: the largest batch (header included) an append accepts.
  int32_t max_message_bytes = 1048588;
  timestamp_type message_timestamp_type = timestamp_type::create_time;
  // index.interval.bytes: bytes appended between two index entries.
  int32_t index_interval_bytes = 4096;
  // producer.id.expiration.ms. A broker setting in Kafka, carried here because each log owns the
  // state it applies to.
  int64_t producer_id_expiration_ms = default_producer_id_expiration_ms;
  // flush.messages and flush.ms: Kafka's forced flushes. Storage only carries them; the broker
  // decides when to sync (log::when_durable, log::flush_async). INT64_MAX: never.
  int64_t flush_messages = INT64_MAX;
  int64_t flush_ms = INT64_MAX;
};

struct append_info {
  int64_t base_offset = -1;    // offset given to the first record
  int64_t last_offset = -1;    // offset of the last record
  int64_t max_timestamp = -1;  // largest batch maxTimestamp of the append (after stamping)
  int32_t batch_count = 0;
  // Bytes written. For log::append_replicated also how much of its input was taken: a prefix of
  // whole batches, short of the input when that ended in a partial batch or held more than one
  // segment takes (all other fields then describe that prefix).
  int64_t bytes = 0;
  // The time stamped into the batches under LogAppendTime; -1 under CreateTime. Produce responses
  // carry it.
  int64_t log_append_time = -1;
  // The log start offset after the append, for Produce responses.
  int64_t log_start_offset = -1;
  // The append was a retry of batches already in the log: nothing was written, and the offsets
  // (and max_timestamp) are those of the original write. batch_count and bytes stay 0.
  bool duplicate = false;
};

// Data a read found not in memory (read_mode::cached_only): a range of a segment's .log, or a
// segment's index files, to bring into the page cache with log::warm_async before reading again.
struct cold_data {
  std::shared_ptr<file_handle> file;
  std::filesystem::path path;
  int64_t position = 0;
  int64_t length = 0;
  std::vector<std::filesystem::path> index_files;  // when set: these files, not the range
};

struct read_info {
  // Whole batches in offset order, at most one slice per segment. Each slice's keep_alive pins its
  // segment file until the slice is dropped.
  std::vector<wire::file_slice> slices;
  int64_t bytes = 0;
  // With errc::would_block: what to warm.
  std::optional<cold_data> cold;
};

// What the data directory's checkpoints say about one log when it is opened.
struct load_state {
  // .kafka_cleanshutdown was present: the logs were closed, flushed and snapshotted.
  bool clean_shutdown = false;
  // recovery-point-offset-checkpoint's entry; nullopt when there is none (or the file was bad).
  std::optional<int64_t> recovery_point;
  // log-start-offset-checkpoint's entry (0 when there is none).
  int64_t log_start_offset = 0;
};

// What a log needs from its surroundings.
struct log_env {
  file_system& fs;
  disk_executor& disk;
};

// Called once a durability wait ends: no error, or why the data is not known to be durable
// (errc::log_offline after a failed sync, errc::log_closed when the log went away first).
using durability_callback = std::function<void(std::error_code)>;

class segment;

// One partition's log. Created through log::open or log_manager.
class log {
 public:
  // Opens (creating `dir` if missing) the partition log in `dir`. Blocking: at start-up, or on a
  // disk thread (log_manager creates logs there).
  //
  // Recovery follows the recovery point R (the checkpointed one; without it, everything after an
  // unclean shutdown and nothing after a clean one):
  //  - segments wholly below R are trusted: their indexes get a sanity check, and a segment whose
  //    index is missing or inconsistent is rebuilt from its .log, where any invalid batch is
  //    errc::corrupt_log;
  //  - the segment holding R is read from the last index entry below R: an invalid batch below R
  //    is errc::corrupt_log, one at or after R ends the log there (truncated, one log line);
  //  - later segments are read whole the same way; after a truncation the later ones are deleted.
  // Offsets are checked for range and overflow wherever a batch is read. Long recoveries log
  // their progress. errc::corrupt_log means the log cannot be served: refusing to start beats
  // cutting acknowledged data away.
  //
  // The start becomes the larger of the checkpointed log start and the first segment's base
  // offset; if it lies past the log end (the tail was lost, and DeleteRecords had already moved
  // the start past it), the log restarts empty there, as Kafka's LogLoader does: every record in
  // it lay below the start. Then producer state is loaded from the newest valid .snapshot (one
  // log line per snapshot discarded) and the batches after it are replayed from the segments.
  static std::unique_ptr<log> open(const std::filesystem::path& dir, topic_partition tp,
                                   log_config cfg, log_env env, const load_state& state,
                                   std::error_code& ec);
  ~log();
  log(const log&) = delete;
  log& operator=(const log&) = delete;

  const topic_partition& tp() const { return tp_; }
  const std::filesystem::path& dir() const { return dir_; }

  const log_config& config() const { return cfg_; }
  // Takes effect from the next append or retention pass; segments already written stay as they
  // are (a smaller segment_bytes does not split them).
  void set_config(const log_config& cfg);

  // From partition.metadata; nullopt when the file is absent.
  std::optional<wire::uuid> topic_id() const { return topic_id_; }
  // Writes partition.metadata. Setting the id already stored is a no-op; a different one fails
  // with errc::inconsistent_topic_id. Blocking (it runs where the log is created).
  void set_topic_id(wire::uuid id, std::error_code& ec);

  // A client append (Kafka's UnifiedLog.appendAsLeader), all or nothing. In order:
  //  0. errc::log_offline, errc::log_closed; errc::roll_in_progress while the next segment is
  //     being created (see 4; nothing is written and nothing checked: append again once
  //     when_writable() calls back).
  //  1. Every batch is checked: errc::record_too_large when larger than max_message_bytes, then
  //     magic 2, sizes, CRC-32C, offsets in range, lastOffsetDelta + 1 == recordsCount
  //     (errc::corrupt_message for CRC and size, errc::invalid_record for the rest; empty input
  //     is errc::invalid_record). The whole append must fit in a segment
  //     (errc::record_batch_too_large).
  //  2. Idempotent producers: a retry of one of the producer's last five batches writes nothing
  //     and succeeds with the original offsets (append_info::duplicate). A sequence gap, an older
  //     epoch, or a non-transactional batch inside an open transaction fail with
  //     errc::out_of_order_sequence, errc::invalid_producer_epoch, errc::invalid_txn_state; a
  //     control batch or a negative sequence with a producer id is errc::invalid_record.
  //  3. When the active segment is non-empty and the append would take it past segment_bytes, or
  //     segment_ms has passed (see log_config::segment_ms; `now_ms` is the clock for segments
  //     without timestamps), the log rolls: a disk job creates the next segment's files, and the
  //     append returns errc::roll_in_progress having changed nothing. When the files exist, the
  //     new segment becomes the active one and the old one is flushed (final time index entry,
  //     fdatasync, its indexes, the directory, a producer-state snapshot) by another job, after
  //     which the recovery point moves to the new segment's base.
  //  4. The broker's fields are stamped IN PLACE in the caller's buffer: baseOffset (from
  //     log_end_offset()) and partitionLeaderEpoch, outside the CRC; under LogAppendTime also the
  //     timestamp-type bit and maxTimestamp = now_ms, and the CRC is recomputed (baseTimestamp and
  //     the records' deltas are kept, as in Kafka). Under CreateTime a LogAppendTime bit set by
  //     the client is cleared (CRC recomputed); maxTimestamp is trusted, records are not decoded.
  //  5. One pwrite (into the page cache: durability is when_durable()'s business); index
  //     entries; producer state records the batches. A failed write takes the log offline.
  std::error_code append(std::span<uint8_t> batches, int32_t leader_epoch, append_info& out,
                         int64_t now_ms = wall_clock_ms());
  // A follower's append (Kafka's UnifiedLog.appendAsFollower) of batches fetched from the
  // partition's leader. They are written VERBATIM: base offsets, partitionLeaderEpoch, timestamps
  // and every other byte stay the leader's. In order:
  //  0. errc::log_offline, errc::log_closed; errc::roll_in_progress while the next segment is
  //     being created, as for append() (nothing written: append again once when_writable() calls
  //     back).
  //  1. The input ends after its last whole batch: a fetch response cut at max_bytes ends in part
  //     of one, which is left out without an error (out.bytes says how much was taken; the rest
  //     comes with the next fetch from log_end_offset()). Input without a whole batch appends
  //     nothing and succeeds.
  //  2. Every whole batch is checked before anything is written, as append() checks it (magic 2,
  //     sizes, CRC-32C, offsets in range, lastOffsetDelta + 1 == recordsCount, with the same
  //     errors), except for max_message_bytes: the leader applied it, and Kafka's followers do not
  //     check it again. Then the offsets: the first batch must start at log_end_offset(), else
  //     errc::offset_out_of_range (the log and the fetch disagree, e.g. the answer to a fetch sent
  //     before a truncation: fetch again from log_end_offset()); each later batch must start right
  //     after the previous one's last offset, else errc::invalid_record (a gap or an overlap in
  //     the leader's data).
  //  3. At most what one segment takes is appended: the longest prefix of the batches within
  //     segment_bytes and within 2^31 - 1 offsets of its first, but at least one batch (a batch
  //     larger than a segment gets a segment of its own). When out.bytes falls short of the whole
  //     batches, append the rest with another call. That prefix rolls the log as in append() step
  //     3 (by size, by segment_ms on the batches' own timestamps, `now_ms` for segments without).
  //  4. As in append() step 5: one pwrite, index entries and max timestamp tracking; the producer
  //     state records the batches unchecked (the leader checked them: no duplicates, no sequence
  //     or epoch errors here; transaction markers end transactions); and for each batch the leader
  //     epoch cache assigns (partitionLeaderEpoch, base offset) as Kafka does, so that an epoch
  //     newer than the latest adds an entry where its first batch starts (written to
  //     leader-epoch-checkpoint by a disk job). A failed write takes the log offline.
  // The log end offset becomes the last appended batch's last offset + 1. The high watermark does
  // not move: the follower sets it from the leader's fetch response with set_high_watermark,
  // which caps it at the log end. out.log_append_time is -1 and out.duplicate false.
  std::error_code append_replicated(std::span<const uint8_t> batches, append_info& out,
                                    int64_t now_ms = wall_clock_ms());
  // Calls `fn` once appends can be made again: at once when the log is not rolling, else when the
  // roll's files exist (or the roll failed and the log went offline). `fn` runs on the owner
  // thread; a log destroyed or removed first never calls it.
  void when_writable(std::function<void()> fn);

  // Group commit. Calls `done` once every offset below `offset` is on stable storage: at once if
  // it already is, else when a sync reaching it completes. One fdatasync covers every batch
  // appended before it starts, so callers arriving while a sync is in flight share the next one;
  // logs sync in parallel. A failed sync is never retried: every waiter gets errc::log_offline
  // and the log goes offline (Kafka takes the log directory offline), since after a failed
  // fdatasync the kernel may have dropped the pages it could not write. `offset` is at most
  // log_end_offset().
  void when_durable(int64_t offset, durability_callback done);
  // Syncs everything appended so far and writes the active segment's new index entries (so that
  // a recovery can start near the recovery point), unless there is nothing to do: flush.ms and
  // the broker's periodic flush. The recovery point follows when it completes. `done`, if given,
  // runs on the owner thread once the flush completed, failed or was not needed. During a
  // truncation it starts once the truncation is done (whose job syncs what remains).
  void flush_async(std::function<void()> done = {});
  // Offsets appended but not yet known to be on stable storage (Kafka's unflushedMessages).
  int64_t unflushed_messages() const { return log_end_offset() - recovery_point_; }
  // Wall-clock ms of the last completed sync (or of the open), for flush.ms.
  int64_t last_flush_ms() const { return last_flush_ms_; }
  // Syncs completed and the durability waits they released, for the broker's counters.
  uint64_t sync_count() const { return sync_count_; }
  uint64_t synced_waiters() const { return synced_waiters_; }

  // A write or sync failed: the log takes nothing more and serves nothing more until a restart
  // recovers it (errc::log_offline).
  bool offline() const { return offline_; }

  // Whole batches starting with the one that contains `offset`, up to `max_bytes` (but at least
  // one batch when `min_one`, Kafka's minOneMessage), never including a batch whose offsets reach
  // `max_offset` (exclusive: the high watermark for consumers, log_end_offset for followers).
  // offset == max_offset gives an empty result; offset < log_start_offset() or
  // > log_end_offset() gives errc::offset_out_of_range. May span segments. Reads batch headers
  // only (pread of 61 bytes), never record data.
  //
  // read_mode::cached_only (the thread that serves sockets): nothing waits for the disk. When an
  // index page, a header or a slice's bytes are not in the page cache (slices in the last 16 MiB
  // of the active segment are taken to be), the result is errc::would_block with out.cold saying
  // what to warm (warm_async), and no slices.
  std::error_code read(int64_t offset, int64_t max_bytes, int64_t max_offset, bool min_one,
                       read_info& out, read_mode mode = read_mode::may_block) const;
  // Brings `cold` into the page cache on the disk executor (without copying record bytes through
  // user space), then calls `done` on the owner thread.
  void warm_async(const cold_data& cold, std::function<void(std::error_code)> done);

  // Leader epochs (leader_epoch_cache.h), kept in step with the batches and written to
  // leader-epoch-checkpoint in this log's disk queue whenever they change. At open the file is
  // read (a missing or malformed one is rebuilt from the batches' PartitionLeaderEpoch, one log
  // line), then checked against the log's tail, cut to the log end and moved to the log start.
  const leader_epoch_cache& leader_epochs() const { return epochs_; }
  std::optional<int32_t> latest_epoch() const { return epochs_.latest_epoch(); }
  // Kafka's endOffsetForEpoch: {epoch, end offset}, or {undefined_epoch, undefined_epoch_offset}.
  std::pair<int32_t, int64_t> end_offset_for_epoch(int32_t epoch) const {
    return epochs_.end_offset_for(epoch, log_end_offset());
  }
  // Kafka's maybeAssignEpochStartOffset, for a replica becoming leader with `epoch`: the epoch
  // starts at the log end (written only if that changes the entries); during a truncation, at
  // the end it leaves.
  void assign_epoch_start(int32_t epoch);

  // The first offset a consumer may read. It may lie inside the first segment (after
  // DeleteRecords, or a restart with a checkpointed start): the batches below it stay on disk
  // until their whole segment can go, but are never served.
  int64_t log_start_offset() const { return log_start_offset_; }
  // The offset after the last batch; while a truncation runs, at most the offset it cuts at.
  int64_t log_end_offset() const;
  int64_t high_watermark() const { return high_watermark_; }
  // Clamped to [log_start_offset(), log_end_offset()].
  void set_high_watermark(int64_t hw);
  // Offsets below this are on stable storage (fsynced data and directory entries); checkpointed
  // by log_manager. Only a completed sync moves it.
  int64_t recovery_point() const { return recovery_point_; }

  // First offset whose record timestamp is >= ts, nullopt if none. Exact for uncompressed batches
  // (records are iterated); for a compressed batch whose maxTimestamp is >= ts, the batch's base
  // offset. Uses the time index, then scans batch headers.
  std::optional<int64_t> offset_for_timestamp(int64_t ts) const;
  // The same search returning {timestamp of the found record, offset}, for ListOffsets v1+ which
  // reports both. For a compressed batch the timestamp is the batch's maxTimestamp.
  std::optional<std::pair<int64_t, int64_t>> timestamp_and_offset_for(int64_t ts) const;
  // {max timestamp, offset of the first record carrying it} for ListOffsets MAX_TIMESTAMP; (-1, -1)
  // when the log is empty. For a compressed batch, its base offset.
  std::pair<int64_t, int64_t> max_timestamp_and_offset() const;

  // fsyncs the active segment and its indexes; the recovery point becomes log_end_offset().
  // Blocking (shutdown, tests); the broker uses when_durable() and flush_async().
  std::error_code flush();
  // Kafka's truncateTo, for a diverged follower: drops every batch with offsets >= `offset`
  // (whole batches: a batch containing `offset` goes too) and the segments above it; the log end
  // becomes the end of what remains. An offset below log_start_offset() empties the log and
  // restarts it at `offset` (start_again_at's jobs), and so does a cut that leaves the log end
  // below the log start (then at the log start). An offset at or past the log end removes no
  // batch: only leader-epoch entries starting at or past the log end go (an epoch this replica
  // led without appending to it; their checkpoint is rewritten by a job), as in Kafka's
  // truncateTo, and `done` runs at once.
  //
  // The file work is one job of this log's disk queue; on the owner's thread there is only
  // bookkeeping, before and after it:
  //  1. At the call (after a roll, restart or truncation already in flight, which finish first):
  //     appends see errc::roll_in_progress until the end (when_writable() calls back then), and
  //     so do delete_records_before and follow_leader_log_start; retention passes do nothing;
  //     flushes, group-commit syncs and assign_epoch_start wait. log_end_offset() reads at most
  //     `offset`, so reads never serve a batch reaching it, and the high watermark and recovery
  //     point are clamped to it. The job gets detached copies of the segment holding `offset` and
  //     of those the producer-state replay reads, and the paths of the segments above.
  //  2. On a disk thread: the cut is found (the offset index, then a header walk); the
  //     leader-epoch checkpoint is rewritten without the epochs from the new end on; the
  //     segments above are unlinked (newest first, each .log before its indexes, so a crash
  //     part-way leaves a log without a gap) and the directory synced; both index files are
  //     replaced by ones holding the entries below the cut, and the .log ftruncated and
  //     fdatasynced; producer state is rebuilt into a fresh producer_state_manager from the
  //     newest snapshot at or below the new end plus the batches after it (snapshots above it
  //     deleted); the directory is synced.
  //  3. Back on the owner: the cut segment is installed as the active one (heap index entries),
  //     with the new producer state and the leader epochs cut at the new end; the high watermark
  //     is clamped to the new end and the recovery point becomes it (everything below it is
  //     synced). Durability waiters past it get errc::log_closed (that data is gone). Then
  //     waiting appends go on, and `done` runs.
  // A failed job takes the log offline and installs nothing: its files may be half cut, so the
  // state in memory no longer describes them; a restart recovers the log from the files, which
  // every step leaves loadable. A log closed or removed meanwhile gets errc::log_closed (the job
  // still finishes its file work). Slices handed out earlier stay valid (keep_alive), but one
  // reaching past the cut may now extend past the end of its file (see the README's caveat).
  //
  // There is no blocking form: start-up recovery truncates through segment::recover, and the
  // broker calls this only on its io thread.
  void truncate_to(int64_t offset, std::function<void(std::error_code)> done);
  // Kafka's truncateFullyAndStartAt for a follower whose whole log lies below the leader's log
  // start: starts the log again, empty, at `offset` (> log_end_offset(), else
  // errc::offset_out_of_range). Disk jobs of this log's queue, as a roll: the new segment's files
  // are created first, meanwhile appends see errc::roll_in_progress; then, at once on the owner's
  // thread, the old segments leave the log, whose start, end, high watermark and recovery point
  // become `offset`, and the leader epochs and producer state empty; `done` runs once the old
  // files are unlinked and the directory synced (an error there takes the log offline). A crash
  // in between leaves both, a gap below `offset`, which a follower never reads: it fetches from
  // the log end. Durability waiters of the old data get errc::log_closed: it is gone.
  void start_again_at(int64_t offset, std::function<void(std::error_code)> done);

  // Kafka's DeleteRecords (UnifiedLog.maybeIncrementLogStartOffset, then the log-start part of
  // deleteOldSegments): moves the log start up to `offset`, never down, and deletes every segment
  // that lies wholly below it except the active one, which stays (possibly holding only offsets
  // below the start) until it rolls. The files go in a disk job, after which `files_deleted`
  // runs (at once when there are none); the new log start takes effect at once, and survives a
  // restart once log_manager has checkpointed it. `offset` -1 means the high watermark
  // (DeleteRecordsRequest.HIGH_WATERMARK); otherwise it must be in [0, high_watermark()], else
  // errc::offset_out_of_range. `new_log_start` gets the resulting log start offset (Kafka's low
  // watermark for a single replica). While a truncation runs: errc::roll_in_progress, nothing
  // changed (call again once when_writable() calls back).
  std::error_code delete_records_before(int64_t offset, int64_t& new_log_start,
                                        std::function<void(std::error_code)> files_deleted = {});
  // A follower's way to the leader's log start (Kafka's maybeIncrementLogStartOffset with
  // LeaderOffsetIncremented, after each fetch): as delete_records_before(), except that an offset
  // at or below log_start_offset() changes nothing and succeeds (Kafka's -1, "unknown", included,
  // where delete_records_before reads -1 as the high watermark). Above high_watermark() it is
  // errc::offset_out_of_range, as in Kafka: set the high watermark from the same fetch response
  // first. errc::roll_in_progress while a truncation runs, as delete_records_before.
  std::error_code follow_leader_log_start(int64_t leader_log_start, int64_t& new_log_start,
                                          std::function<void(std::error_code)> files_deleted = {});

  // One retention pass (Kafka's UnifiedLog.deleteOldSegments), deleting from the oldest segment:
  //  - by time: segments whose largest timestamp (the .log's mtime when no batch has one) is more
  //    than retention_ms before `now_ms`, stopping at the first that is not;
  //  - by size: then the oldest segments while the log without them is still >= retention_bytes;
  //  - by log start: then segments wholly below log_start_offset().
  // Never the active segment, and only segments whose successor starts at or below the high
  // watermark (Kafka's rule: uncommitted data is not retention's to delete). The log start moves
  // to the first remaining segment's base offset. Files are unlinked by a disk job (see README).
  // Returns the number of segments deleted; logs one line per reason that deleted any. Does
  // nothing while a truncation runs (the next pass does it).
  size_t enforce_retention(int64_t now_ms);

  // Forgets idle idempotent producers (producer_id_expiration_ms); for the broker's periodic task
  // (Kafka's producer.id.expiration.check.interval.ms).
  void remove_expired_producers(int64_t now_ms);
  const producer_state_manager& producer_state() const { return producers_; }

  int64_t size_bytes() const;
  // Heap bytes of index entries: the active segment's (inactive segments' indexes are mapped).
  size_t index_heap_bytes() const;
  size_t segment_count() const { return segments_.size(); }

  // Adds the final time index entry, fsyncs, writes a producer-state snapshot at the log end and
  // closes the files. Blocking, and only with no job of this log in flight (the broker drains its
  // disk executor first). Idempotent; afterwards append, read, truncate, delete_records_before
  // fail with errc::log_closed and enforce_retention does nothing. Closed while a truncation
  // job is pending (tests), it writes nothing: the files are the job's, and the next open
  // recovers from them.
  void close();
  bool closed() const { return closed_; }
  // The log's partition was deleted: like close() without touching the files (they are about to
  // go), and every waiter gets errc::log_closed now. Slices already handed out stay readable.
  void mark_removed();

 private:
  log(std::filesystem::path dir, topic_partition tp, log_config cfg, log_env env);

  std::error_code load(const load_state& state);
  // Starts creating the next segment (see append()).
  void start_roll(int64_t now_ms);
  // truncate_to's job: what the owner hands it and what it hands back (log.cc).
  struct truncation;
  // truncate_to step 2, on a disk thread: touches only what `t` holds.
  static void run_truncation(file_system& fs, const std::filesystem::path& dir, truncation& t);
  // truncate_to step 3, on the owner's thread.
  void finish_truncation(truncation& t, std::function<void(std::error_code)> done);
  // Whether `s` is the segment a truncation in flight is cutting (its file may be shorter than
  // `s` says).
  bool being_cut(const segment& s) const;
  // Empties the log and starts it at `offset` in jobs of this log's queue (start_again_at's
  // work, and truncation's below the log start); the caller has set rolling_.
  void restart_at(int64_t offset, std::function<void(std::error_code)> done);
  void finish_roll(int64_t base, int64_t created_ms, std::error_code ec,
                   std::shared_ptr<file_handle> file);
  void start_sync();
  void sync_done(int64_t target, std::error_code ec);
  // Records a completed sync up to `offset` and releases the waiters it covers.
  void advance_recovery_point(int64_t offset);
  // A write or sync failed: offline for good (one log line), every waiter told.
  void go_offline(std::string_view what, std::error_code ec);
  void notify_writable();
  // The roll decision shared by both appends (append() step 3), for an append of `bytes` ending
  // at `last_offset` whose largest timestamp is `max_timestamp`: starts a roll and returns
  // errc::roll_in_progress when one is due; errc::invalid_record when even the active segment,
  // fresh, could not index `last_offset`.
  std::error_code roll_if_due(int64_t bytes, int64_t last_offset, int64_t max_timestamp,
                              int64_t now_ms);
  // The write shared by both appends, once the roll check passed: `bytes` are `batches`, whole
  // and checked, with their final headers and offsets from log_end_offset() on. One pwrite,
  // index entries, producer state, leader epochs (append() step 5); fills `out` but for
  // log_append_time and duplicate.
  std::error_code write_batches(std::span<const uint8_t> bytes,
                                std::span<const wire::record_batch> batches, append_info& out);
  // Whether segment.ms says the active segment is due to roll before an append whose largest
  // timestamp is `append_max_timestamp`.
  std::error_code time_to_roll(int64_t append_max_timestamp, int64_t now_ms, bool& due);
  // Empties the log and restarts it at `offset`. Blocking: load() only (a checkpointed log start
  // past the recovered log end).
  std::error_code truncate_fully(int64_t offset);
  void finish_start_again(int64_t offset, std::error_code ec, std::shared_ptr<file_handle> file,
                          std::function<void(std::error_code)> done);
  // Unlinks `doomed` and syncs the directory in a job of this log's queue; `done` gets the first
  // error, which also takes the log offline (`what` names the work in that line).
  void unlink_async(std::vector<std::filesystem::path> doomed, std::string_view what,
                    std::function<void(std::error_code)> done);
  // Reads leader-epoch-checkpoint (rebuilding it from the batches when it is missing or bad) and
  // makes it agree with the log. Blocking: part of load().
  std::error_code load_leader_epochs();
  // Adds the epochs of the batches of segments_[from...] to the cache (epochs never decrease
  // along a log, so a segment whose first and last batches share an epoch is not walked).
  std::error_code scan_leader_epochs(size_t from);
  // Writes the cache's current entries in a disk job of this log's queue; a failure takes the
  // log offline, as a failed checkpoint write takes Kafka's log directory offline.
  void write_leader_epochs_async();
  // truncate_and_reload, one log line per discarded snapshot, then replay of the log after the
  // state's map end offset; after a clean shutdown with no snapshot at all, no replay (Kafka's
  // rule for logs written before snapshots existed).
  std::error_code load_producer_state(int64_t now_ms, bool after_clean_shutdown);
  // Drops segments_[0, count) and moves the log start to the next base offset (one log line),
  // then unlinks their files and the producer snapshots below the log start in a disk job, then
  // calls `done` (if any; at once when there is nothing to unlink). Never called with the active
  // segment. A failed deletion takes the log offline.
  void delete_oldest_segments(size_t count, std::string_view reason,
                              std::function<void(std::error_code)> done = {});
  // Moves the log start up to `offset` (never down) and deletes the segments wholly below it but
  // the active one (delete_oldest_segments), for DeleteRecords and followers.
  void raise_log_start(int64_t offset, std::string_view reason,
                       std::function<void(std::error_code)> files_deleted);
  size_t segment_for(int64_t offset) const;  // index of the last segment with base <= offset
  std::error_code locate(size_t seg, int64_t offset, int64_t& position, read_mode mode) const;
  void remember_position(int64_t offset, int64_t segment_base, int64_t position) const;
  std::string name() const;

  std::filesystem::path dir_;
  topic_partition tp_;
  log_config cfg_;
  file_system& fs_;
  disk_executor& disk_;
  // The disk executor queue of this log's directory: its jobs run in order (disk_executor.h).
  std::string queue_;
  std::optional<wire::uuid> topic_id_;
  std::vector<std::unique_ptr<segment>> segments_;  // by base offset; back() is the active one
  producer_state_manager producers_;
  leader_epoch_cache epochs_;
  int64_t log_start_offset_ = 0;
  int64_t high_watermark_ = 0;
  int64_t recovery_point_ = 0;
  bool closed_ = false;
  bool offline_ = false;

  // Completions of jobs hold a weak reference: one that finds the log gone does nothing.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  // A roll, restart or truncation is changing the segments: appends wait (when_writable).
  bool rolling_ = false;
  // While a truncation runs: where it cuts (log_end_offset() reads at most this).
  std::optional<int64_t> truncating_to_;
  std::vector<std::function<void()>> writable_waiters_;
  struct durability_waiter {
    int64_t offset;
    durability_callback done;
  };
  std::vector<durability_waiter> durability_waiters_;
  bool sync_in_flight_ = false;
  int64_t last_flush_ms_ = 0;
  uint64_t sync_count_ = 0;
  uint64_t synced_waiters_ = 0;

  // Where recent reads ended, so that a consumer tailing the log finds its next position without
  // an index lookup and header scan. Mutable: a cache touched by const reads (single-threaded).
  struct position_hint {
    int64_t offset = -1;
    int64_t segment_base = -1;
    int64_t position = -1;
  };
  mutable std::vector<position_hint> hints_;
  mutable size_t next_hint_ = 0;
};

}  // namespace sluice::storage

template <>
struct std::hash<sluice::storage::topic_partition> {
  size_t operator()(const sluice::storage::topic_partition& tp) const noexcept {
    return std::hash<std::string>{}(tp.topic) * 31 + std::hash<int32_t>{}(tp.partition);
  }
};

namespace sluice::storage {

// All partition logs under one log.dirs root.
//
// Logs are shared: the broker's partitions hold them too, so a fetch parked on a partition whose
// topic is deleted still holds a log object (marked removed, its files renamed aside) rather than
// a dangling reference.
class log_manager {
 public:
  using log_callback = std::function<void(std::error_code, std::shared_ptr<log>)>;
  using done_callback = std::function<void(std::error_code)>;

  log_manager(std::filesystem::path root, log_config defaults, log_env env);
  // Closes the logs without a clean-shutdown marker (as after a crash); call shutdown() first for
  // a clean stop.
  ~log_manager();
  log_manager(const log_manager&) = delete;
  log_manager& operator=(const log_manager&) = delete;

  // Blocking, at start-up. Creates root if missing, checks it is a writable directory (else
  // errc::io_error), and loads every <topic>-<partition> directory with its checkpointed recovery
  // point and log start offset (see log::open), then the checkpointed high watermarks, then
  // deletes .kafka_cleanshutdown. A malformed recovery-point or high-watermark checkpoint is
  // logged and ignored (a full recovery scan is safe). A malformed log-start-offset checkpoint is
  // errc::io_error with one log line naming the file, unless there are no partitions: starting
  // from the first segments' base offsets instead would bring back records that retention or
  // DeleteRecords removed.
  std::error_code load();

  log* find(const topic_partition& tp);
  std::shared_ptr<log> find_shared(const topic_partition& tp);
  // Every log, sorted by topic then partition.
  std::vector<log*> logs();

  // Creates the directory and files of a new partition in a disk job and calls `done` with the
  // log (now in the manager) on the owner thread. A non-zero topic_id is written to
  // partition.metadata. Topic names are checked against Kafka's rules ([a-zA-Z0-9._-], at most
  // 249 characters, not "." or "..") so that they are safe as directory names
  // (errc::invalid_topic_partition); an existing log is errc::invalid_topic_partition too.
  // Per-topic configs are not stored in the log directory (Kafka keeps them in the cluster
  // metadata), so after load() every log has the defaults until the caller applies its
  // overrides. A partition being deleted is created once its deletion is durable.
  void create_async(const topic_partition& tp, const wire::uuid& topic_id, const log_config& cfg,
                    log_callback done);
  // The same, blocking (start-up and tests). Returns the existing log for `tp` when there is one.
  log* create(const topic_partition& tp, const wire::uuid& topic_id, std::error_code& ec);
  log* create(const topic_partition& tp, const wire::uuid& topic_id, const log_config& cfg,
              std::error_code& ec);

  // Drops the log of `tp` (marked removed at once) and deletes its directory in disk jobs; `done`
  // runs once the deletion is durable: the directory renamed to
  // "<topic>-<partition>.<random hex>-delete" (Kafka's name; the next load() deletes such a
  // directory, so a crash never leaves a partition with some of its segments missing) and the
  // checkpoints rewritten without the partition, so that their entries cannot apply to a
  // partition of the same name created later. The renamed directory is removed afterwards. An
  // unknown partition is done at once.
  void remove_async(const topic_partition& tp, done_callback done);
  // How long a deleted partition's renamed directory stays before remove_deleted_dirs() removes
  // it (Kafka's log.segment.delete.delay.ms, 60 s). Freeing thousands of inodes at once makes the
  // next creations expensive (ext4 scans past recently freed inodes), and readers of the old
  // files finish first either way. 0 or less: removed as soon as the deletion is durable.
  void set_file_delete_delay_ms(int64_t ms) { file_delete_delay_ms_ = ms; }
  // Starts removing, in disk jobs, the renamed directories whose delay has passed at `now_ms`.
  // Returns how many it started; the broker calls it periodically. Directories still waiting at
  // shutdown are removed by the next load().
  size_t remove_deleted_dirs(int64_t now_ms);
  size_t deleted_dirs_waiting() const { return deleted_dirs_.size(); }
  // The same, blocking (tests).
  std::error_code remove(const topic_partition& tp);

  // log::enforce_retention over every log; returns the total number of segments deleted.
  size_t enforce_retention(int64_t now_ms);
  // log::remove_expired_producers over every log.
  void remove_expired_producers(int64_t now_ms);
  // log::flush_async over every log with unsynced data (the periodic flush). `done`, if given,
  // runs once every one of those flushes has completed (or failed: the log is then offline), so
  // that a checkpoint written then records the recovery points they reached.
  void flush_async(std::function<void()> done = {});

  // Writes recovery-point-offset-checkpoint, log-start-offset-checkpoint and
  // replication-offset-checkpoint (high watermarks) atomically in a disk job, from the logs as
  // they are when the write starts; `done` runs when they are durable. Writes run one at a time;
  // requests that arrive while one runs share the next (deleting a 1,000-partition topic asks
  // a thousand times).
  void checkpoint_async(done_callback done = {});
  // The same, blocking (shutdown and tests).
  std::error_code checkpoint();
  // Blocking, with no job in flight. Closes every log (fsync, final index entries), checkpoints
  // with recovery point = log end offset, then writes .kafka_cleanshutdown. The manager must not
  // be used afterwards.
  std::error_code shutdown();

  const std::filesystem::path& root() const { return root_; }
  log_env env() const { return env_; }

 private:
  struct checkpoint_files;
  checkpoint_files checkpoint_contents() const;
  // Blocking; runs on a disk thread for checkpoint_async().
  static std::error_code write_checkpoints(file_system& fs, const std::filesystem::path& root,
                                           const checkpoint_files& files);
  void start_checkpoint();

  std::filesystem::path root_;
  log_config defaults_;
  log_env env_;
  std::unordered_map<topic_partition, std::shared_ptr<log>> logs_;
  // Partitions whose directory a job is creating; their logs are not in logs_ yet.
  std::unordered_map<topic_partition, int> creating_;
  // Partitions whose deletion is not durable yet, with the creations waiting for it.
  std::unordered_map<topic_partition, std::vector<std::function<void()>>> removing_;
  // Renamed directories of deleted partitions, with the time they may be removed.
  struct deleted_dir {
    int64_t due_ms;
    std::filesystem::path path;
  };
  std::vector<deleted_dir> deleted_dirs_;
  int64_t file_delete_delay_ms_ = 60000;
  void remove_dir_async(std::filesystem::path doomed);
  // A checkpoint write is running; the callers waiting for the next one.
  bool checkpoint_running_ = false;
  bool checkpoint_requested_ = false;
  std::vector<done_callback> checkpoint_waiters_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// Kafka's checkpoint and marker file names (in each log dir).
inline constexpr const char* recovery_point_checkpoint_file = "recovery-point-offset-checkpoint";
inline constexpr const char* log_start_offset_checkpoint_file = "log-start-offset-checkpoint";
inline constexpr const char* high_watermark_checkpoint_file = "replication-offset-checkpoint";
inline constexpr const char* clean_shutdown_file = ".kafka_cleanshutdown";
inline constexpr const char* partition_metadata_file = "partition.metadata";

}  // namespace sluice::storage
