#include "storage/leader_epoch_cache.h"

#include <algorithm>
#include <charconv>

namespace sluice::storage {

bool leader_epoch_cache::assign(int32_t epoch, int64_t start_offset) {
  if (epoch < 0 || start_offset < 0) return false;
  if (!entries_.empty() && entries_.back().epoch == epoch &&
      entries_.back().start_offset <= start_offset) {
    return false;
  }
  // A follower that appends a leader's batches after its own stale ones, or a leader whose epoch
  // starts where a previous one wrote nothing: whatever contradicts the new entry is gone.
  std::erase_if(entries_, [&](const epoch_entry& e) {
    return e.epoch >= epoch || e.start_offset >= start_offset;
  });
  entries_.push_back({epoch, start_offset});
  return true;
}

// Kafka's decision table:
//   requested undefined                      -> undefined
//   requested == the latest epoch            -> {requested, log end offset}
//   no epoch larger than requested           -> undefined (the requester knows a newer epoch)
//   no epoch <= requested (all larger)       -> {requested, start of the first larger epoch}
//   otherwise                                -> {largest epoch <= requested, start of the next}
// The "all larger" case happens when the log start moved past the requested epoch's data; the
// answer sends the follower to the first offset the leader still has.
std::pair<int32_t, int64_t> leader_epoch_cache::end_offset_for(int32_t requested,
                                                               int64_t log_end_offset) const {
  constexpr std::pair<int32_t, int64_t> undefined{undefined_epoch, undefined_epoch_offset};
  if (requested == undefined_epoch) return undefined;
  if (!entries_.empty() && entries_.back().epoch == requested) return {requested, log_end_offset};
  auto higher =
      std::upper_bound(entries_.begin(), entries_.end(), requested,
                       [](int32_t epoch, const epoch_entry& e) { return epoch < e.epoch; });
  if (higher == entries_.end()) return undefined;
  if (higher == entries_.begin()) return {requested, higher->start_offset};
  return {std::prev(higher)->epoch, higher->start_offset};
}

bool leader_epoch_cache::truncate_from_end(int64_t end_offset) {
  if (end_offset < 0) return false;
  return std::erase_if(entries_,
                       [&](const epoch_entry& e) { return e.start_offset >= end_offset; }) > 0;
}

bool leader_epoch_cache::truncate_from_start(int64_t start_offset) {
  // The entries starting at or below the new start: all go but the last, which now starts there.
  auto first_kept = std::upper_bound(
      entries_.begin(), entries_.end(), start_offset,
      [](int64_t offset, const epoch_entry& e) { return offset < e.start_offset; });
  if (first_kept == entries_.begin()) return false;
  epoch_entry covering = *std::prev(first_kept);
  if (covering.start_offset == start_offset && std::prev(first_kept) == entries_.begin()) {
    return false;
  }
  entries_.erase(entries_.begin(), first_kept);
  covering.start_offset = start_offset;
  entries_.insert(entries_.begin(), covering);
  return true;
}

std::optional<int32_t> leader_epoch_cache::epoch_for(int64_t offset) const {
  auto after = std::upper_bound(entries_.begin(), entries_.end(), offset,
                                [](int64_t o, const epoch_entry& e) { return o < e.start_offset; });
  if (after == entries_.begin()) return std::nullopt;
  return std::prev(after)->epoch;
}

std::string format_leader_epoch_checkpoint(const std::vector<epoch_entry>& entries) {
  std::string out = "0\n" + std::to_string(entries.size()) + "\n";
  for (const epoch_entry& e : entries)
    out += std::to_string(e.epoch) + " " + std::to_string(e.start_offset) + "\n";
  return out;
}

namespace {

template <typename T>
bool parse_number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

std::optional<std::vector<epoch_entry>> parse_leader_epoch_checkpoint(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  int32_t version = -1;
  int64_t count = -1;
  if (lines.size() < 2 || !parse_number(lines[0], version) || version != 0 ||
      !parse_number(lines[1], count) || count < 0 ||
      static_cast<int64_t>(lines.size()) != count + 2) {
    return std::nullopt;
  }
  std::vector<epoch_entry> entries;
  for (size_t i = 2; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    size_t space = line.find(' ');
    epoch_entry e;
    if (space == std::string_view::npos || !parse_number(line.substr(0, space), e.epoch) ||
        !parse_number(line.substr(space + 1), e.start_offset) || e.epoch < 0 ||
        e.start_offset < 0) {
      return std::nullopt;
    }
    if (!entries.empty() &&
        (e.epoch <= entries.back().epoch || e.start_offset <= entries.back().start_offset)) {
      return std::nullopt;
    }
    entries.push_back(e);
  }
  return entries;
}

}  // namespace sluice::storage
