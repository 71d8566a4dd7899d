#include "storage/producer_state.h"

#include <algorithm>
#include <climits>

#include "storage/errc.h"
#include "storage/file_io.h"
#include "storage/segment.h"
#include "wire/crc32c.h"

namespace sluice::storage {

namespace {

constexpr size_t snapshot_crc_at = 2;
constexpr size_t snapshot_entries_at = 6;  // the CRC covers everything from here
constexpr size_t snapshot_header_size = snapshot_entries_at + 4;
constexpr size_t snapshot_entry_size = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
constexpr std::string_view snapshot_suffix = ".snapshot";

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_be(std::span<const uint8_t> in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = (v << 8) | in[at + static_cast<size_t>(i)];
  return v;
}

bool in_sequence(int32_t last_sequence, int32_t next_sequence) {
  return static_cast<int64_t>(next_sequence) == static_cast<int64_t>(last_sequence) + 1 ||
         (next_sequence == 0 && last_sequence == INT32_MAX);
}

// A new epoch invalidates the sequence numbers of the old one, so its batches are dropped
// (ProducerStateEntry.maybeUpdateProducerEpoch).
void set_epoch(producer_state_entry& entry, int16_t epoch) {
  if (entry.epoch != epoch) {
    entry.batches.clear();
    entry.epoch = epoch;
  }
}

void add_batch(producer_state_entry& entry, const producer_batch_metadata& batch) {
  if (entry.batches.size() == producer_batches_retained) entry.batches.erase(entry.batches.begin());
  entry.batches.push_back(batch);
}

// "<20 digits>.snapshot" -> offset.
std::optional<int64_t> parse_snapshot_file_name(std::string_view name) {
  int64_t offset = 0;
  std::string_view kind;
  if (!parse_segment_file_name(name, offset, kind) || kind != snapshot_suffix.substr(1)) {
    return std::nullopt;
  }
  return offset;
}

struct end_txn_marker {
  int32_t coordinator_epoch = -1;
  int64_t timestamp = -1;
};

// The first record of a control batch: key {version int16, type int16}, value {version int16,
// coordinator epoch int32, ...}. Only COMMIT (1) and ABORT (0) markers concern producer state.
std::optional<end_txn_marker> read_end_txn_marker(const wire::record_batch& batch) {
  wire::record_reader records(batch);
  std::optional<wire::record_view> record = records.next();
  if (!record || !record->key || !record->value) return std::nullopt;
  if (record->key->size() < 4 || record->value->size() < 6) return std::nullopt;
  auto type = static_cast<int16_t>(get_be(*record->key, 2, 2));
  if (type != 0 && type != 1) return std::nullopt;
  end_txn_marker marker;
  marker.coordinator_epoch = static_cast<int32_t>(get_be(*record->value, 2, 4));
  marker.timestamp = batch.is_log_append_time() ? batch.max_timestamp()
                                                : batch.base_timestamp() + record->timestamp_delta;
  return marker;
}

}  // namespace

int64_t producer_state_manager::max_producer_id() const {
  int64_t max_id = no_producer_id;
  for (const auto& [id, entry] : producers_)
    max_id = std::max(max_id, id);
  return max_id;
}

int32_t increment_sequence(int32_t sequence, int32_t increment) {
  if (sequence > INT32_MAX - increment) return increment - (INT32_MAX - sequence) - 1;
  return sequence + increment;
}

int32_t decrement_sequence(int32_t sequence, int32_t decrement) {
  if (sequence < decrement) return INT32_MAX - (decrement - sequence) + 1;
  return sequence - decrement;
}

producer_batch producer_batch::from(const wire::record_batch& batch) {
  producer_batch out;
  out.producer_id = batch.producer_id();
  out.producer_epoch = batch.producer_epoch();
  out.base_sequence = batch.base_sequence();
  out.last_offset_delta = batch.last_offset_delta();
  out.max_timestamp = batch.max_timestamp();
  out.is_transactional = batch.is_transactional();
  out.is_control = batch.is_control();
  return out;
}

int32_t producer_batch::last_sequence() const {
  if (base_sequence == no_sequence) return no_sequence;
  return increment_sequence(base_sequence, last_offset_delta);
}

const producer_batch_metadata* producer_state_entry::find_batch(int32_t first_sequence,
                                                                int32_t last_sequence) const {
  for (const producer_batch_metadata& b : batches) {
    if (b.first_sequence == first_sequence && b.last_sequence == last_sequence) return &b;
  }
  return nullptr;
}

const char* to_string(snapshot_defect defect) {
  switch (defect) {
    case snapshot_defect::none:
      return "valid";
    case snapshot_defect::malformed:
      return "malformed";
    case snapshot_defect::unknown_version:
      return "unknown version";
    case snapshot_defect::crc_mismatch:
      return "CRC mismatch";
  }
  return "unknown defect";
}

std::string format_producer_snapshot(std::span<const producer_snapshot_entry> entries) {
  std::string out;
  out.reserve(snapshot_header_size + entries.size() * snapshot_entry_size);
  put_be(out, static_cast<uint16_t>(producer_snapshot_version), 2);
  put_be(out, 0, 4);  // the CRC, once the bytes it covers exist
  put_be(out, static_cast<uint32_t>(entries.size()), 4);
  for (const producer_snapshot_entry& e : entries) {
    put_be(out, static_cast<uint64_t>(e.producer_id), 8);
    put_be(out, static_cast<uint16_t>(e.epoch), 2);
    put_be(out, static_cast<uint32_t>(e.last_sequence), 4);
    put_be(out, static_cast<uint64_t>(e.last_offset), 8);
    put_be(out, static_cast<uint32_t>(e.offset_delta), 4);
    put_be(out, static_cast<uint64_t>(e.timestamp), 8);
    put_be(out, static_cast<uint32_t>(e.coordinator_epoch), 4);
    put_be(out, static_cast<uint64_t>(e.current_txn_first_offset), 8);
  }
  auto covered = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(out.data()), out.size())
                     .subspan(snapshot_entries_at);
  uint32_t crc = wire::crc32c(0, covered);
  for (size_t i = 0; i < 4; ++i) {
    out[snapshot_crc_at + i] = static_cast<char>((crc >> (8 * (3 - i))) & 0xff);
  }
  return out;
}

snapshot_defect parse_producer_snapshot(std::span<const uint8_t> bytes,
                                        std::vector<producer_snapshot_entry>& out) {
  out.clear();
  if (bytes.size() < snapshot_header_size) return snapshot_defect::malformed;
  if (static_cast<int16_t>(get_be(bytes, 0, 2)) != producer_snapshot_version) {
    return snapshot_defect::unknown_version;
  }
  auto stored_crc = static_cast<uint32_t>(get_be(bytes, snapshot_crc_at, 4));
  if (wire::crc32c(0, bytes.subspan(snapshot_entries_at)) != stored_crc) {
    return snapshot_defect::crc_mismatch;
  }
  auto count = static_cast<int32_t>(get_be(bytes, snapshot_entries_at, 4));
  if (count < 0 ||
      bytes.size() - snapshot_header_size != static_cast<size_t>(count) * snapshot_entry_size) {
    return snapshot_defect::malformed;
  }
  out.reserve(static_cast<size_t>(count));
  size_t at = snapshot_header_size;
  for (int32_t i = 0; i < count; ++i) {
    producer_snapshot_entry e;
    e.producer_id = static_cast<int64_t>(get_be(bytes, at, 8));
    e.epoch = static_cast<int16_t>(get_be(bytes, at + 8, 2));
    e.last_sequence = static_cast<int32_t>(get_be(bytes, at + 10, 4));
    e.last_offset = static_cast<int64_t>(get_be(bytes, at + 14, 8));
    e.offset_delta = static_cast<int32_t>(get_be(bytes, at + 22, 4));
    e.timestamp = static_cast<int64_t>(get_be(bytes, at + 26, 8));
    e.coordinator_epoch = static_cast<int32_t>(get_be(bytes, at + 34, 4));
    e.current_txn_first_offset = static_cast<int64_t>(get_be(bytes, at + 38, 8));
    out.push_back(e);
    at += snapshot_entry_size;
  }
  return snapshot_defect::none;
}

std::string producer_snapshot_file_name(int64_t offset) {
  return segment_file_name(offset, snapshot_suffix);
}

producer_state_manager::producer_state_manager(file_system& fs, std::filesystem::path dir,
                                               int64_t producer_id_expiration_ms)
    : fs_(fs), dir_(std::move(dir)), producer_id_expiration_ms_(producer_id_expiration_ms) {}

append_check producer_state_manager::check(std::span<const producer_batch> batches) const {
  // What the batches of this append have done so far to one producer (Kafka's ProducerAppendInfo
  // .updatedEntry): it starts from the stored epoch and transaction but with no batches.
  struct pending_producer {
    int64_t producer_id;
    const producer_state_entry* stored;
    int16_t epoch;
    int32_t last_sequence;  // of this append's batches; no_sequence before the first
    bool in_transaction;
  };
  // One producer per append is the rule in practice: a linear search beats a map.
  std::vector<pending_producer> pending;

  for (size_t i = 0; i < batches.size(); ++i) {
    const producer_batch& b = batches[i];
    if (!b.has_producer_id()) continue;
    if (b.is_control || b.base_sequence < 0) return {append_verdict::invalid_record, i, {}};

    const producer_state_entry* stored = find(b.producer_id);
    if (stored != nullptr && stored->epoch == b.producer_epoch) {
      if (const producer_batch_metadata* dup =
              stored->find_batch(b.base_sequence, b.last_sequence())) {
        return {append_verdict::duplicate, i, *dup};
      }
    }

    auto it = std::find_if(pending.begin(), pending.end(), [&](const pending_producer& p) {
      return p.producer_id == b.producer_id;
    });
    if (it == pending.end()) {
      pending.push_back({b.producer_id, stored, stored ? stored->epoch : no_producer_epoch,
                         no_sequence, stored && stored->current_txn_first_offset >= 0});
      it = pending.end() - 1;
    }
    pending_producer& p = *it;

    if (b.producer_epoch < p.epoch) return {append_verdict::invalid_producer_epoch, i, {}};
    if (b.producer_epoch != p.epoch) {
      if (b.base_sequence != 0 && p.epoch != no_producer_epoch) {
        return {append_verdict::out_of_order_sequence, i, {}};
      }
    } else {
      int32_t last = p.last_sequence;
      if (last == no_sequence && p.stored != nullptr && p.stored->epoch == b.producer_epoch) {
        last = p.stored->last_sequence();
      }
      // A producer with no known epoch (new, or its state expired or was deleted with the log)
      // may start anywhere: see rule 5 in the header.
      bool known = p.stored != nullptr && p.stored->epoch != no_producer_epoch;
      if (known && !in_sequence(last, b.base_sequence)) {
        return {append_verdict::out_of_order_sequence, i, {}};
      }
    }
    p.epoch = b.producer_epoch;
    p.last_sequence = b.last_sequence();

    if (p.in_transaction && !b.is_transactional) return {append_verdict::invalid_txn_state, i, {}};
    if (b.is_transactional) p.in_transaction = true;
  }
  return {};
}

void producer_state_manager::update(const producer_batch& batch, int64_t base_offset) {
  int64_t last_offset = base_offset + batch.last_offset_delta;
  map_end_offset_ = last_offset + 1;
  if (!batch.has_producer_id() || batch.is_control) return;

  producer_state_entry& entry = producers_[batch.producer_id];
  set_epoch(entry, batch.producer_epoch);
  add_batch(entry, {batch.base_sequence, batch.last_sequence(), base_offset, last_offset,
                    batch.max_timestamp});
  entry.last_timestamp = batch.max_timestamp;
  if (batch.is_transactional && entry.current_txn_first_offset < 0) {
    entry.current_txn_first_offset = base_offset;
  }
}

void producer_state_manager::apply(const wire::record_batch& batch) {
  if (!batch.is_control()) {
    update(producer_batch::from(batch), batch.base_offset());
    return;
  }
  map_end_offset_ = batch.next_offset();
  if (batch.producer_id() < 0) return;
  std::optional<end_txn_marker> marker = read_end_txn_marker(batch);
  if (!marker) return;
  // A marker ends the producer's transaction and adds no batch; one with a newer epoch (the
  // coordinator bumped the producer) drops the old epoch's batches (ProducerStateEntry.update).
  producer_state_entry& entry = producers_[batch.producer_id()];
  set_epoch(entry, batch.producer_epoch());
  entry.coordinator_epoch = marker->coordinator_epoch;
  entry.current_txn_first_offset = -1;
  entry.last_timestamp = marker->timestamp;
}

const producer_state_entry* producer_state_manager::find(int64_t producer_id) const {
  auto it = producers_.find(producer_id);
  return it == producers_.end() ? nullptr : &it->second;
}

bool producer_state_manager::is_expired(const producer_state_entry& entry, int64_t now_ms) const {
  // An open transaction keeps its producer: the transaction coordinator still has to end it.
  return entry.current_txn_first_offset < 0 &&
         now_ms - entry.last_timestamp >= producer_id_expiration_ms_;
}

void producer_state_manager::remove_expired(int64_t now_ms) {
  std::erase_if(producers_, [&](const auto& kv) { return is_expired(kv.second, now_ms); });
}

std::error_code producer_state_manager::snapshot_offsets(std::vector<int64_t>& out) const {
  out.clear();
  std::vector<dir_entry> entries;
  if (auto ec = fs_.list(dir_, entries)) return ec;
  for (const dir_entry& entry : entries) {
    if (std::optional<int64_t> offset = parse_snapshot_file_name(entry.name)) {
      out.push_back(*offset);
    }
  }
  std::sort(out.begin(), out.end());
  return {};
}

std::optional<int64_t> producer_state_manager::newest_snapshot_at_or_below(int64_t offset) const {
  auto it = std::upper_bound(snapshots_.begin(), snapshots_.end(), offset);
  if (it == snapshots_.begin()) return std::nullopt;
  return *(it - 1);
}

void producer_state_manager::replace_state(producer_state_manager&& rebuilt) {
  producers_ = std::move(rebuilt.producers_);
  map_end_offset_ = rebuilt.map_end_offset_;
  last_snapshot_offset_ = rebuilt.last_snapshot_offset_;
  snapshots_ = std::move(rebuilt.snapshots_);
}

std::error_code producer_state_manager::list_snapshots() {
  return snapshot_offsets(snapshots_);
}

std::error_code producer_state_manager::remove_snapshot(int64_t offset) {
  std::erase(snapshots_, offset);
  return fs_.remove(dir_ / producer_snapshot_file_name(offset));
}

std::error_code producer_state_manager::pending_snapshot::write(file_system& fs) const {
  return replace_file(fs, path, content);
}

std::optional<producer_state_manager::pending_snapshot> producer_state_manager::prepare_snapshot() {
  if (map_end_offset_ <= last_snapshot_offset_) return std::nullopt;
  // Sorted by producer id so that the file is the same for the same state.
  std::vector<producer_snapshot_entry> entries;
  entries.reserve(producers_.size());
  for (const auto& [id, e] : producers_) {
    producer_snapshot_entry s;
    s.producer_id = id;
    s.epoch = e.epoch;
    s.last_sequence = e.last_sequence();
    s.last_offset = e.last_offset();
    s.offset_delta =
        e.batches.empty()
            ? 0
            : static_cast<int32_t>(e.batches.back().last_offset - e.batches.back().first_offset);
    s.timestamp = e.last_timestamp;
    s.coordinator_epoch = e.coordinator_epoch;
    s.current_txn_first_offset = e.current_txn_first_offset;
    entries.push_back(s);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.producer_id < b.producer_id; });
  last_snapshot_offset_ = map_end_offset_;
  if (snapshots_.empty() || snapshots_.back() < map_end_offset_) {
    snapshots_.push_back(map_end_offset_);
  }
  return pending_snapshot{dir_ / producer_snapshot_file_name(map_end_offset_),
                          format_producer_snapshot(entries)};
}

std::error_code producer_state_manager::take_snapshot() {
  std::optional<pending_snapshot> pending = prepare_snapshot();
  return pending ? pending->write(fs_) : std::error_code{};
}

std::error_code producer_state_manager::load_newest_snapshot(int64_t log_start_offset,
                                                             int64_t now_ms,
                                                             snapshot_reload_report& report) {
  std::vector<int64_t> offsets = snapshots_;
  for (auto it = offsets.rbegin(); it != offsets.rend(); ++it) {
    std::filesystem::path path = dir_ / producer_snapshot_file_name(*it);
    std::string content;
    bool missing = false;
    if (auto ec = read_small_file(fs_, path, content, missing)) return ec;
    if (missing) continue;
    std::vector<producer_snapshot_entry> entries;
    snapshot_defect defect = parse_producer_snapshot(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(content.data()), content.size()),
        entries);
    if (defect != snapshot_defect::none) {
      report.discarded.push_back({*it, defect});
      if (auto ec = remove_snapshot(*it)) return ec;
      continue;
    }
    for (const producer_snapshot_entry& s : entries) {
      producer_state_entry e;
      e.epoch = s.epoch;
      e.last_timestamp = s.timestamp;
      e.coordinator_epoch = s.coordinator_epoch;
      e.current_txn_first_offset = s.current_txn_first_offset;
      if (is_expired(e, now_ms)) continue;
      // A producer whose only record is a transaction marker has no data batch (last_offset -1).
      if (s.last_offset >= 0) {
        e.batches.push_back({decrement_sequence(s.last_sequence, s.offset_delta), s.last_sequence,
                             s.last_offset - s.offset_delta, s.last_offset, s.timestamp});
      }
      producers_[s.producer_id] = std::move(e);
    }
    report.loaded_offset = *it;
    map_end_offset_ = last_snapshot_offset_ = *it;
    return {};
  }
  map_end_offset_ = last_snapshot_offset_ = log_start_offset;
  return {};
}

std::error_code producer_state_manager::truncate_and_reload(int64_t log_start_offset,
                                                            int64_t log_end_offset, int64_t now_ms,
                                                            snapshot_reload_report& report) {
  report = {};
  if (auto ec = list_snapshots()) return ec;
  std::vector<int64_t> offsets = snapshots_;
  for (int64_t offset : offsets) {
    if (offset > log_end_offset || offset <= log_start_offset) {
      if (auto ec = remove_snapshot(offset)) return ec;
    }
  }
  if (log_end_offset != map_end_offset_) {
    producers_.clear();
    return load_newest_snapshot(log_start_offset, now_ms, report);
  }
  // The state is already right: only the log start moved.
  map_end_offset_ = std::max(map_end_offset_, log_start_offset);
  last_snapshot_offset_ = snapshots_.empty() ? log_start_offset : snapshots_.back();
  return {};
}

std::error_code producer_state_manager::truncate_fully_and_start_at(int64_t offset) {
  producers_.clear();
  if (auto ec = list_snapshots()) return ec;
  std::vector<int64_t> offsets = snapshots_;
  for (int64_t o : offsets) {
    if (auto ec = remove_snapshot(o)) return ec;
  }
  map_end_offset_ = offset;
  last_snapshot_offset_ = 0;
  return {};
}

std::vector<std::filesystem::path> producer_state_manager::take_all_and_start_at(int64_t offset) {
  std::vector<std::filesystem::path> doomed;
  for (int64_t o : snapshots_)
    doomed.push_back(dir_ / producer_snapshot_file_name(o));
  snapshots_.clear();
  producers_.clear();
  map_end_offset_ = offset;
  last_snapshot_offset_ = 0;
  return doomed;
}

std::error_code producer_state_manager::delete_snapshots_after(int64_t offset) {
  std::vector<int64_t> offsets = snapshots_;
  for (int64_t o : offsets) {
    if (o > offset) {
      if (auto ec = remove_snapshot(o)) return ec;
    }
  }
  // Otherwise take_snapshot() would think the deleted snapshot still covers the state.
  if (last_snapshot_offset_ > offset) {
    last_snapshot_offset_ = snapshots_.empty() ? 0 : snapshots_.back();
  }
  return {};
}

std::vector<std::filesystem::path> producer_state_manager::take_snapshots_before(int64_t offset) {
  constexpr size_t newest_kept = 2;
  std::vector<std::filesystem::path> doomed;
  size_t deletable = snapshots_.size() > newest_kept ? snapshots_.size() - newest_kept : 0;
  size_t n = 0;
  while (n < deletable && snapshots_[n] < offset) {
    doomed.push_back(dir_ / producer_snapshot_file_name(snapshots_[n]));
    ++n;
  }
  snapshots_.erase(snapshots_.begin(), snapshots_.begin() + static_cast<ptrdiff_t>(n));
  return doomed;
}

std::error_code producer_state_manager::delete_snapshots_before(int64_t offset) {
  for (const auto& path : take_snapshots_before(offset)) {
    if (auto ec = fs_.remove(path)) return ec;
  }
  return {};
}

}  // namespace sluice::storage
