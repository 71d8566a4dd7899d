#pragma once
// Kafka's leader epoch cache (LeaderEpochFileCache): for each leader epoch that wrote to the
// log, the offset of its first batch. A follower asks the leader where its own last epoch ended
// (OffsetForLeaderEpoch, or a Fetch carrying LastFetchedEpoch) and truncates what lies past that
// point: the part of its log that a later leader never had.
//
// The entries live in the partition directory's `leader-epoch-checkpoint`, in Kafka's format:
//   0          <- version
//   2          <- number of entries
//   0 0        <- "<epoch> <start offset>", epochs and start offsets both increasing
//   3 1520
// The log keeps the cache in step with its batches: a batch with a newer PartitionLeaderEpoch
// adds an entry, a truncation of the end removes the entries starting at or past the new end,
// and a move of the log start drops the entries wholly below it.
//
// Threading: pure data and pure functions; the log owns one and writes the file in disk jobs.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::storage {

// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
inline constexpr int32_t undefined_epoch = -1;
inline constexpr int64_t undefined_epoch_offset = -1;

struct epoch_entry {
  int32_t epoch = 0;
  int64_t start_offset = 0;
  bool operator==(const epoch_entry&) const = default;
};

class leader_epoch_cache {
 public:
  leader_epoch_cache() = default;
  explicit leader_epoch_cache(std::vector<epoch_entry> entries) : entries_(std::move(entries)) {}

  // Records that `epoch` wrote from `start_offset` on (Kafka's assign). Nothing changes when
  // `epoch` is already the latest and starts no later. Otherwise entries that would break the
  // order (an epoch >= `epoch`, or a start >= `start_offset`) are dropped first. Returns whether
  // the entries changed (the file must then be written). Negative values are ignored.
  bool assign(int32_t epoch, int64_t start_offset);

  // Kafka's endOffsetFor: {epoch, end offset} of the largest epoch <= `requested`, where the end
  // offset is the start of the next epoch, or `log_end_offset` for the latest epoch.
  //  - `requested` undefined, or larger than every epoch but not the latest one... see the table
  //    in the .cc; {undefined_epoch, undefined_epoch_offset} when there is no answer.
  std::pair<int32_t, int64_t> end_offset_for(int32_t requested, int64_t log_end_offset) const;

  // The log was cut at `end_offset`: entries starting at or after it go. Returns whether any did.
  bool truncate_from_end(int64_t end_offset);
  // The log start moved to `start_offset`: entries wholly below it go, and the last one that
  // started at or below it now starts there. Returns whether anything changed.
  bool truncate_from_start(int64_t start_offset);

  std::optional<int32_t> latest_epoch() const {
    return entries_.empty() ? std::nullopt : std::optional<int32_t>(entries_.back().epoch);
  }
  // The epoch of the batch holding `offset`: the last entry starting at or below it.
  std::optional<int32_t> epoch_for(int64_t offset) const;
  const std::vector<epoch_entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<epoch_entry> entries_;  // epochs and start offsets strictly increasing
};

// The file's text, and its parser: nullopt unless it is version 0 with exactly the announced
// entries, each "<epoch> <offset>" with non-negative values in increasing order.
std::string format_leader_epoch_checkpoint(const std::vector<epoch_entry>& entries);
std::optional<std::vector<epoch_entry>> parse_leader_epoch_checkpoint(std::string_view text);

inline constexpr const char* leader_epoch_checkpoint_file = "leader-epoch-checkpoint";

}  // namespace sluice::storage
