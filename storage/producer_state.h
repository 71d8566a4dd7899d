#pragma once
// Idempotent-producer state of one partition (Kafka's ProducerStateManager, ProducerStateEntry and
// ProducerAppendInfo), and the `<offset>.snapshot` files that save it so a restart replays only
// the log after the latest snapshot.
//
// For every producer id that wrote to the partition the state keeps its epoch and the metadata of
// its last five batches. With that the append path can answer a retried batch with the offsets it
// got the first time (a producer has at most five requests in flight), reject a gap in the
// sequence numbers, and fence an older epoch.
//
// The append path runs in three steps so that a failed write changes nothing:
//
//     check(batches)  ->  log write  ->  update(batch, base_offset) for every batch written
//
// Recovery and truncation: truncate_and_reload() loads the newest valid snapshot at or below the
// log end, then the log feeds every batch from map_end_offset() to its end through apply().
//
// Snapshot file `<20-digit offset>.snapshot` (ProducerStateManager.writeSnapshot), big-endian:
//
//     0  version                   int16   1
//     2  crc                       uint32  CRC-32C of bytes 6..end
//     6  entry count               int32
//    10  entries, 46 bytes each:
//          producer_id             int64
//          epoch                   int16
//          last_sequence           int32   -1 when the producer has no data batch
//          last_offset             int64   -1 when the producer has no data batch
//          offset_delta            int32   last_offset - first offset of that batch
//          timestamp               int64   the producer's last timestamp
//          coordinator_epoch       int32
//          current_txn_first_offset int64  -1 when no transaction is open
//
// The offset in the name is map_end_offset(): the state covers every batch below it. Only a
// producer's newest batch is saved, so after a reload only a retry of that batch is recognised as
// a duplicate (as in Kafka); the retry of an older one gets OUT_OF_ORDER_SEQUENCE_NUMBER.
//
// Transactions: only what a producer's entry needs (the first offset of its open transaction and
// the coordinator epoch of its last marker). The ongoing-transaction index, last stable offset and
// transaction verification are not here.
//
// Threading: single-threaded, owned by the partition's log; no locks. The log writes and deletes
// snapshot files on its disk executor with what prepare_snapshot() and
// take_snapshots_before() hand out; the blocking forms (take_snapshot(), delete_snapshots_before())
// are for start-up, close and the tests.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "storage/file_io.h"
#include "wire/record_batch.h"

namespace sluice::storage {

inline constexpr int64_t no_producer_id = -1;
inline constexpr int16_t no_producer_epoch = -1;
inline constexpr int32_t no_sequence = -1;
// Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN: max.in.flight.requests.per.connection may not
// exceed 5 with idempotence, so a retry is always one of the last five batches.
inline constexpr size_t producer_batches_retained = 5;
// producer.id.expiration.ms
inline constexpr int64_t default_producer_id_expiration_ms = 86'400'000;
inline constexpr int16_t producer_snapshot_version = 1;

// Sequence numbers count modulo 2^31: the one after INT32_MAX is 0 (DefaultRecordBatch).
int32_t increment_sequence(int32_t sequence, int32_t increment);
int32_t decrement_sequence(int32_t sequence, int32_t decrement);

// The header fields of one batch that producer state looks at.
struct producer_batch {
  int64_t producer_id = no_producer_id;
  int16_t producer_epoch = no_producer_epoch;
  int32_t base_sequence = no_sequence;
  int32_t last_offset_delta = 0;
  int64_t max_timestamp = -1;
  bool is_transactional = false;
  bool is_control = false;

  // Reads the 61-byte header only.
  static producer_batch from(const wire::record_batch& batch);

  // Kafka's hasProducerId(): batches without one bypass producer state entirely.
  bool has_producer_id() const { return producer_id >= 0; }
  int32_t last_sequence() const;
};

// One of a producer's recent batches, as written.
struct producer_batch_metadata {
  int32_t first_sequence = no_sequence;
  int32_t last_sequence = no_sequence;
  int64_t first_offset = -1;
  int64_t last_offset = -1;
  int64_t max_timestamp = -1;
  bool operator==(const producer_batch_metadata&) const = default;
};

struct producer_state_entry {
  int16_t epoch = no_producer_epoch;
  // Oldest first, at most producer_batches_retained, all of the current epoch.
  std::vector<producer_batch_metadata> batches;
  // maxTimestamp of the last data batch, or the timestamp of the last transaction marker; what
  // expiration is measured from.
  int64_t last_timestamp = -1;
  int32_t coordinator_epoch = -1;
  int64_t current_txn_first_offset = -1;

  int32_t last_sequence() const {
    return batches.empty() ? no_sequence : batches.back().last_sequence;
  }
  int64_t last_offset() const { return batches.empty() ? -1 : batches.back().last_offset; }
  // The retained batch with exactly this sequence range, if any.
  const producer_batch_metadata* find_batch(int32_t first_sequence, int32_t last_sequence) const;
};

enum class append_verdict {
  accept,
  // A retry of one of the producer's last five batches: nothing is written and the producer is
  // answered with success and the original offsets (append_check::original).
  duplicate,
  // OUT_OF_ORDER_SEQUENCE_NUMBER: a gap or a repeat in the sequence, or a new epoch not at 0.
  out_of_order_sequence,
  // INVALID_PRODUCER_EPOCH: the batch's epoch is older than the producer's (a zombie).
  invalid_producer_epoch,
  // INVALID_TXN_STATE: a non-transactional batch while the producer has a transaction open.
  invalid_txn_state,
  // INVALID_RECORD: a control batch, or a producer id with a negative base sequence. Kafka's
  // LogValidator rejects both for client appends; checked here so the sequence arithmetic never
  // sees them.
  invalid_record,
};

struct append_check {
  append_verdict verdict = append_verdict::accept;
  // The batch of the request that decided a verdict other than accept.
  size_t batch_index = 0;
  // For duplicate: the batch as first written.
  producer_batch_metadata original;
};

struct producer_snapshot_entry {
  int64_t producer_id = no_producer_id;
  int16_t epoch = no_producer_epoch;
  int32_t last_sequence = no_sequence;
  int64_t last_offset = -1;
  int32_t offset_delta = 0;
  int64_t timestamp = -1;
  int32_t coordinator_epoch = -1;
  int64_t current_txn_first_offset = -1;
  bool operator==(const producer_snapshot_entry&) const = default;
};

// Why a snapshot file was not used. Kafka's CorruptSnapshotException covers all three.
enum class snapshot_defect {
  none,
  malformed,        // too short, entry count disagrees with the size, or trailing bytes
  unknown_version,  // version field is not 1
  crc_mismatch,
};
const char* to_string(snapshot_defect defect);

// The whole file, entries in the given order.
std::string format_producer_snapshot(std::span<const producer_snapshot_entry> entries);
// Checks version, then CRC, then structure; `out` is filled only when the result is none.
snapshot_defect parse_producer_snapshot(std::span<const uint8_t> bytes,
                                        std::vector<producer_snapshot_entry>& out);
// "<offset, 20 digits zero-padded>.snapshot"
std::string producer_snapshot_file_name(int64_t offset);

// What truncate_and_reload() found, for the caller to log once.
struct snapshot_reload_report {
  // The snapshot the state came from; nullopt when it restarted empty at the log start offset.
  std::optional<int64_t> loaded_offset;
  struct discarded_snapshot {
    int64_t offset;
    snapshot_defect defect;
  };
  // Unusable snapshots, already deleted.
  std::vector<discarded_snapshot> discarded;
};

class producer_state_manager {
 public:
  // `dir` is the partition directory holding the .snapshot files. Starts empty with
  // map_end_offset() == 0; call truncate_and_reload() to load what is on disk.
  producer_state_manager(file_system& fs, std::filesystem::path dir,
                         int64_t producer_id_expiration_ms = default_producer_id_expiration_ms);

  // ---- Append path -------------------------------------------------------------------------

  // Validates the batches of one append against the state as if each earlier batch of the same
  // append had been accepted (Kafka's analyzeAndValidateProducerState with a client origin). Stops
  // at the first batch that is not accepted. A duplicate is looked for among the batches already
  // written only, and makes the whole append a duplicate. Changes nothing.
  //
  // Kafka 3.x rules, in order, for a batch with a producer id:
  //   1. Same epoch and exactly the sequence range of one of the last five batches: duplicate.
  //   2. Epoch older than the producer's: invalid_producer_epoch.
  //   3. Newer epoch: its first sequence must be 0 (KIP-360 epoch bump), except for a producer
  //      with no known epoch.
  //   4. Same epoch: the first sequence must follow the last one (INT32_MAX is followed by 0).
  //   5. A producer id not in the state is accepted with any sequence. Kafka 2.0-2.4 answered
  //      UNKNOWN_PRODUCER_ID for a non-zero sequence there; since 2.5 (KIP-360) the broker accepts
  //      it, because the state may have been lost to retention or DeleteRecords while the producer
  //      is still alive. (Kafka 4's transactions-v2 verification, which demands 0 again, needs a
  //      transaction coordinator and is not modelled.)
  //   6. A transaction open and the batch not transactional: invalid_txn_state.
  append_check check(std::span<const producer_batch> batches) const;

  // Records a batch the log has just written at `base_offset`. Call it for every batch written, in
  // log order: batches without a producer id (and control batches, see apply()) only advance
  // map_end_offset(). No validation.
  void update(const producer_batch& batch, int64_t base_offset);

  // Recovery and replication: records a batch read from the log (base offset from its header),
  // without validation. Transaction markers (control batches) need the whole batch: the marker
  // record gives the coordinator epoch. A control batch without a readable marker is skipped, as
  // Kafka skips an empty one.
  void apply(const wire::record_batch& batch);

  // ---- State ------------------------------------------------------------------------------------

  const producer_state_entry* find(int64_t producer_id) const;
  size_t producer_count() const { return producers_.size(); }
  // The largest producer id in the state, or no_producer_id.
  int64_t max_producer_id() const;
  // Every batch below this offset is reflected in the state.
  int64_t map_end_offset() const { return map_end_offset_; }

  // Forgets producers idle for producer.id.expiration.ms or more (now - last_timestamp), unless
  // they have a transaction open.
  void remove_expired(int64_t now_ms);
  // A changed producer.id.expiration.ms, applied from the next remove_expired().
  void set_producer_id_expiration_ms(int64_t ms) { producer_id_expiration_ms_ = ms; }

  // ---- Snapshots ------------------------------------------------------------------------------

  // A snapshot file to write: its path and content.
  struct pending_snapshot {
    std::filesystem::path path;
    std::string content;
    // Temp file, fsync, rename, fsync of the directory. Blocking: run it on a disk thread.
    std::error_code write(file_system& fs) const;
  };
  // The snapshot of the state at map_end_offset(), unless the latest snapshot taken or loaded is
  // already at that offset; from now on it counts as written. Kafka takes one on every segment
  // roll and at clean shutdown.
  std::optional<pending_snapshot> prepare_snapshot();
  // prepare_snapshot(), written here.
  std::error_code take_snapshot();

  // After a truncation, at start-up, or to drop state below a new log start: deletes snapshots
  // above `log_end_offset` or at or below `log_start_offset` (Kafka's rule; state at the log start
  // is rebuilt from the log). Then, unless the state already ends exactly at `log_end_offset`, it
  // is cleared and reloaded from the newest remaining snapshot: a corrupt one is deleted, noted in
  // `report`, and the next older one is tried. Producers expired at `now_ms` are not loaded. With
  // no usable snapshot the state restarts empty at `log_start_offset`. The caller then replays the
  // log from map_end_offset() to log_end_offset through apply().
  std::error_code truncate_and_reload(int64_t log_start_offset, int64_t log_end_offset,
                                      int64_t now_ms, snapshot_reload_report& report);

  // Empties the state, deletes every snapshot and restarts at `offset` (the log was emptied).
  std::error_code truncate_fully_and_start_at(int64_t offset);
  // The same without touching the disk: every snapshot file counts as deleted from now on, and
  // the caller unlinks what this returns.
  std::vector<std::filesystem::path> take_all_and_start_at(int64_t offset);

  // Deletes snapshots above `offset`.
  std::error_code delete_snapshots_after(int64_t offset);
  // The snapshot files below `offset` (retention, log start), but never the newest two: the log
  // takes one snapshot per segment roll, so these cover the last two segments and a truncation
  // into the active or the previous segment still finds a snapshot below it (Kafka's
  // minSnapshotsOffsetToRetain). They count as deleted from now on; the caller unlinks them.
  std::vector<std::filesystem::path> take_snapshots_before(int64_t offset);
  // take_snapshots_before(), unlinked here.
  std::error_code delete_snapshots_before(int64_t offset);

  // Offsets of the .snapshot files in the directory, ascending.
  std::error_code snapshot_offsets(std::vector<int64_t>& out) const;
  // The newest snapshot this state knows of (written, loaded or listed; none deleted since) at or
  // below `offset`. From memory: no I/O.
  std::optional<int64_t> newest_snapshot_at_or_below(int64_t offset) const;

  // Takes the producers, map end offset and snapshot list of `rebuilt`, a state of the same
  // directory rebuilt elsewhere (a truncation job builds one on a disk thread), keeping this
  // one's producer.id.expiration.ms.
  void replace_state(producer_state_manager&& rebuilt);

 private:
  std::error_code load_newest_snapshot(int64_t log_start_offset, int64_t now_ms,
                                       snapshot_reload_report& report);
  std::error_code remove_snapshot(int64_t offset);
  bool is_expired(const producer_state_entry& entry, int64_t now_ms) const;
  // Re-reads the snapshot offsets on disk into `snapshots_`.
  std::error_code list_snapshots();

  file_system& fs_;
  std::filesystem::path dir_;
  int64_t producer_id_expiration_ms_;
  std::unordered_map<int64_t, producer_state_entry> producers_;
  int64_t map_end_offset_ = 0;
  // Offset of the newest snapshot written or loaded: take_snapshot() skips an unchanged state.
  int64_t last_snapshot_offset_ = 0;
  // Offsets of the snapshot files, ascending: listed at load, then kept up to date as snapshots
  // are handed out for writing and deletion, so the runtime never lists the directory.
  std::vector<int64_t> snapshots_;
};

}  // namespace sluice::storage
