#include "storage/log.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <string_view>

#include "storage/checkpoint.h"
#include "storage/file_io.h"
#include "storage/log_sink.h"
#include "storage/segment.h"
#include "wire/record_batch.h"

namespace sluice::storage {

namespace {

constexpr size_t position_hint_slots = 8;

errc map_batch_error(wire::batch_error e) {
  switch (e) {
    case wire::batch_error::truncated:
    case wire::batch_error::invalid_length:
    case wire::batch_error::crc_mismatch:
      return errc::corrupt_message;
    case wire::batch_error::ok:  // not reached: callers map errors only
    case wire::batch_error::unsupported_magic:
    case wire::batch_error::invalid_offset_delta:
    case wire::batch_error::offset_overflow:
    case wire::batch_error::record_count_mismatch:
      return errc::invalid_record;
  }
  return errc::invalid_record;
}

// Values the code below relies on; the server validates topic configs before they get here.
log_config sanitized(log_config cfg) {
  cfg.segment_bytes =
      std::clamp<int64_t>(cfg.segment_bytes, wire::record_batch_header_size, INT32_MAX);
  cfg.index_interval_bytes = std::max(cfg.index_interval_bytes, 0);
  cfg.segment_ms = std::max<int64_t>(cfg.segment_ms, 1);
  return cfg;
}

// Under CreateTime a batch must not claim LogAppendTime (LogValidator sets the topic's type).
void clear_log_append_time(wire::mutable_record_batch& b) {
  // The attribute bits live in the low byte of the big-endian int16.
  b.mutable_bytes()[wire::batch_field::attributes + 1] &=
      static_cast<uint8_t>(~wire::batch_attribute::log_append_time);
  b.update_crc();
}

}  // namespace

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

log::log(std::filesystem::path dir, topic_partition tp, log_config cfg, log_env env)
    : dir_(std::move(dir)),
      tp_(std::move(tp)),
      cfg_(sanitized(cfg)),
      fs_(env.fs),
      disk_(env.disk),
      queue_(dir_.string()),
      producers_(env.fs, dir_, cfg_.producer_id_expiration_ms),
      hints_(position_hint_slots) {}

void log::set_config(const log_config& cfg) {
  cfg_ = sanitized(cfg);
  producers_.set_producer_id_expiration_ms(cfg_.producer_id_expiration_ms);
}

log::~log() {
  // Waiters must hear something: a produce waiting on a log that goes away is not durable.
  mark_removed();
}

std::string log::name() const {
  return partition_dir_name(tp_);
}

std::unique_ptr<log> log::open(const std::filesystem::path& dir, topic_partition tp, log_config cfg,
                               log_env env, const load_state& state, std::error_code& ec) {
  std::unique_ptr<log> l(new log(dir, std::move(tp), cfg, env));
  ec = l->load(state);
  if (ec) return nullptr;
  return l;
}

std::error_code log::load(const load_state& state) {
  const int64_t now_ms = wall_clock_ms();
  last_flush_ms_ = now_ms;
  if (auto ec = fs_.create_directories(dir_)) return ec;

  std::string text;
  bool missing = false;
  if (auto ec = read_small_file(fs_, dir_ / partition_metadata_file, text, missing)) return ec;
  if (!missing) {
    topic_id_ = parse_partition_metadata(text);
    if (!topic_id_) {
      // Kafka refuses to load such a partition rather than guess its topic id.
      log_event("storage: " + name() + ": malformed " + partition_metadata_file);
      return errc::io_error;
    }
  }

  // Collect segment base offsets; drop left-overs of interrupted operations and orphan indexes.
  std::vector<dir_entry> entries;
  if (auto ec = fs_.list(dir_, entries)) return ec;
  std::vector<int64_t> bases;
  std::vector<std::pair<int64_t, std::filesystem::path>> index_files;
  for (const dir_entry& entry : entries) {
    const std::string& file = entry.name;
    if (file.ends_with(".tmp") || file.ends_with(".deleted") || file.ends_with(".cleaned") ||
        file.ends_with(".swap")) {
      if (auto ec = fs_.remove(dir_ / file)) return ec;
      continue;
    }
    int64_t base = 0;
    std::string_view kind;
    if (!parse_segment_file_name(file, base, kind)) continue;
    if (kind == "log") {
      bases.push_back(base);
    } else if (kind == "index" || kind == "timeindex") {
      index_files.emplace_back(base, dir_ / file);
    }
  }
  std::sort(bases.begin(), bases.end());
  for (const auto& [base, path] : index_files) {
    if (!std::binary_search(bases.begin(), bases.end(), base)) {
      if (auto ec = fs_.remove(path)) return ec;
    }
  }

  std::error_code ec;
  for (int64_t base : bases) {
    std::unique_ptr<segment> s = segment::open(fs_, dir_, base, now_ms, ec);
    if (ec) return ec;
    segments_.push_back(std::move(s));
  }

  // Without a checkpointed recovery point: after a clean shutdown everything was flushed at close
  // (Kafka skips recovery then); after a crash nothing is known to be durable.
  const int64_t recovery_point =
      state.recovery_point ? *state.recovery_point : (state.clean_shutdown ? INT64_MAX : 0);
  auto progress_line = [this](const segment& s) {
    return [this, file = s.log_path().filename().string()](int64_t scanned, int64_t total) {
      log_event("storage: " + name() + ": recovering " + file + ": " +
                    std::to_string(scanned >> 20) + " of " + std::to_string(total >> 20) +
                    " MiB checked",
                log_level::info);
    };
  };
  auto corrupt = [this](const segment& s, const segment::recovery_result& r) {
    log_event("storage: " + name() + ": " + s.log_path().filename().string() +
              " holds an invalid batch below the recovery point (" + r.reason +
              "); that data was synced and acknowledged, so it is not truncated away: the "
              "partition cannot be loaded");
    return make_error_code(errc::corrupt_log);
  };
  for (size_t i = 0; i < segments_.size(); ++i) {
    segment& s = *segments_[i];
    const bool wholly_below = i + 1 < segments_.size()
                                  ? segments_[i + 1]->base_offset() <= recovery_point
                                  : recovery_point == INT64_MAX;
    // After a clean shutdown every segment was flushed and closed: trusted as Kafka trusts it,
    // with a sanity check of its indexes (mapped, for every segment but the last) and, for the
    // last, a header walk after its last index entry.
    if (wholly_below || state.clean_shutdown) {
      bool needs_recovery = false;
      if (i + 1 < segments_.size()) {
        ec = s.load_inactive(segments_[i + 1]->base_offset(), needs_recovery);
      } else {
        ec = s.load(needs_recovery);
      }
      if (ec) return ec;
      if (!needs_recovery) continue;
    }
    segment::recovery_result r;
    ec = s.recover(cfg_.index_interval_bytes, wholly_below ? INT64_MAX : recovery_point, r,
                   progress_line(s));
    if (ec == errc::corrupt_log) return corrupt(s, r);
    if (ec) return ec;
    if (!wholly_below && !state.clean_shutdown && r.scanned_bytes + r.truncated_bytes > 0) {
      log_event("storage: " + name() + ": recovered " + s.log_path().filename().string() +
                    ": checked " + std::to_string(r.scanned_bytes) + " bytes from byte " +
                    std::to_string(r.scanned_from) + " of " +
                    std::to_string(r.scanned_from + r.scanned_bytes + r.truncated_bytes),
                log_level::info);
    }
    if (r.truncated_bytes == 0) {
      if (wholly_below || state.clean_shutdown) {
        log_event("storage: " + name() + ": rebuilt the indexes of " +
                  s.log_path().filename().string());
      }
      continue;
    }
    // Everything after the first bad batch lies above the recovery point: never acknowledged as
    // durable, so it goes (Kafka's LogLoader.recoverLog does the same).
    size_t later = segments_.size() - i - 1;
    for (size_t j = i + 1; j < segments_.size(); ++j) {
      segments_[j]->close();
      if ((ec = segments_[j]->remove_files())) return ec;
    }
    segments_.resize(i + 1);
    std::string line = "storage: " + name() + ": recovery truncated " +
                       s.log_path().filename().string() + " at byte " + std::to_string(s.size()) +
                       " (offset " + std::to_string(s.next_offset()) + "), dropping " +
                       std::to_string(r.truncated_bytes) + " bytes: " + r.reason;
    if (later > 0) line += "; deleted " + std::to_string(later) + " later segment(s)";
    log_event(line);
    break;
  }

  if (segments_.empty()) {
    std::unique_ptr<segment> s = segment::create(fs_, dir_, state.log_start_offset, now_ms, ec);
    if (ec) return ec;
    segments_.push_back(std::move(s));  // its directory entries are synced below
  }
  log_start_offset_ = std::max(state.log_start_offset, segments_.front()->base_offset());
  if (log_start_offset_ > log_end_offset()) {
    // The log lost its tail (an unclean shutdown) below a start that DeleteRecords had already
    // moved: every record left lies below the start, so restart empty there rather than move
    // the start back and serve deleted records.
    log_event("storage: " + name() + ": log end offset " + std::to_string(log_end_offset()) +
              " is below the checkpointed log start offset " + std::to_string(log_start_offset_) +
              "; every record left lies below the start: restarting the log empty there");
    if ((ec = truncate_fully(log_start_offset_))) return ec;
  }

  // What recovery kept may still be only in the page cache (a process crash): make it durable,
  // so that the recovery point can be the log end.
  for (auto& s : segments_) {
    if (s->has_unsynced_data() && (ec = s->flush())) return ec;
  }
  if ((ec = fs_.sync_dir(dir_))) return ec;
  if (state.recovery_point && *state.recovery_point != INT64_MAX &&
      *state.recovery_point > log_end_offset()) {
    // Kafka takes the smaller of the two too: a truncation whose checkpoint a crash prevented.
    log_event("storage: " + name() + ": log end offset " + std::to_string(log_end_offset()) +
              " is below the checkpointed recovery point " + std::to_string(*state.recovery_point));
  }
  recovery_point_ = log_end_offset();
  high_watermark_ = log_start_offset();
  if (auto ec = load_leader_epochs()) return ec;
  return load_producer_state(now_ms, state.clean_shutdown);
}

std::error_code log::load_leader_epochs() {
  const std::filesystem::path path = dir_ / leader_epoch_checkpoint_file;
  std::string text;
  bool missing = false;
  if (auto ec = read_small_file(fs_, path, text, missing)) return ec;
  std::optional<std::vector<epoch_entry>> parsed;
  if (!missing) parsed = parse_leader_epoch_checkpoint(text);
  bool rewrite = false;
  if (parsed) {
    epochs_ = leader_epoch_cache(std::move(*parsed));
    // Entries past the log end belong to batches that recovery cut away. Kafka also drops one
    // that starts exactly at the log end (an epoch that has not written yet) and gets it back
    // from its controller when the partition becomes leader again; without a controller, that
    // entry is where this partition's current epoch is kept, so it stays.
    rewrite = epochs_.truncate_from_end(log_end_offset() + 1);
    // The file can also lag the batches (a crash before its write landed): a last batch with a
    // newer epoch than the latest entry says something follows it.
    for (size_t i = segments_.size(); i-- > 0;) {
      const segment& s = *segments_[i];
      if (s.size() == 0) continue;
      segment::batch_info last;
      int64_t position = 0;
      if (auto ec = s.find(s.next_offset() - 1, 0, position, last)) return ec;
      if (last.partition_leader_epoch >= 0 &&
          (epochs_.empty() || last.partition_leader_epoch > *epochs_.latest_epoch())) {
        const size_t from =
            epochs_.empty() ? 0 : segment_for(epochs_.entries().back().start_offset);
        if (auto ec = scan_leader_epochs(from)) return ec;
        rewrite = true;
      }
      break;
    }
  } else {
    if (!missing) {
      log_event("storage: " + name() + ": " + leader_epoch_checkpoint_file +
                " is malformed; rebuilding it from the batches");
    }
    epochs_ = {};
    if (auto ec = scan_leader_epochs(0)) return ec;
    rewrite = !missing || !epochs_.empty();
  }
  rewrite = epochs_.truncate_from_end(log_end_offset() + 1) || rewrite;
  rewrite = epochs_.truncate_from_start(log_start_offset_) || rewrite;
  if (!rewrite) return {};
  return replace_file(fs_, path, format_leader_epoch_checkpoint(epochs_.entries()));
}

std::error_code log::scan_leader_epochs(size_t from) {
  for (size_t i = from; i < segments_.size(); ++i) {
    const segment& s = *segments_[i];
    if (s.size() == 0) continue;
    segment::batch_info first;
    segment::batch_info last;
    int64_t position = 0;
    if (auto ec = s.batch_at(0, first)) return ec;
    if (auto ec = s.find(s.next_offset() - 1, 0, position, last)) return ec;
    // Kafka's rule (LogSegment.recover): only an epoch newer than the latest one adds an entry,
    // so batches that an entry already covers change nothing.
    auto add = [this](const segment::batch_info& b) {
      if (b.partition_leader_epoch >= 0 &&
          (epochs_.empty() || b.partition_leader_epoch > *epochs_.latest_epoch())) {
        epochs_.assign(b.partition_leader_epoch, b.base_offset);
      }
    };
    if (first.partition_leader_epoch == last.partition_leader_epoch) {
      add(first);
      continue;
    }
    for (int64_t p = 0; p < s.size();) {
      segment::batch_info b;
      if (auto ec = s.batch_at(p, b)) return ec;
      add(b);
      p += b.size;
    }
  }
  return {};
}

void log::write_leader_epochs_async() {
  auto r = std::make_shared<std::error_code>();
  // In this log's queue, so that the writes land in the order the cache changed.
  disk_.submit(
      queue_,
      [&fs = fs_, path = dir_ / leader_epoch_checkpoint_file,
       text = format_leader_epoch_checkpoint(epochs_.entries()),
       r] { *r = replace_file(fs, path, text); },
      [this, alive = std::weak_ptr<int>(alive_), r] {
        if (!alive.expired() && !closed_ && *r) go_offline("leader-epoch-checkpoint write", *r);
      });
}

void log::assign_epoch_start(int32_t epoch) {
  if (closed_ || offline_) return;
  if (truncating_to_) {
    // The epoch starts where the truncation leaves the log end.
    writable_waiters_.push_back([this, epoch] { assign_epoch_start(epoch); });
    return;
  }
  if (epochs_.assign(epoch, log_end_offset())) write_leader_epochs_async();
}

std::error_code log::load_producer_state(int64_t now_ms, bool after_clean_shutdown) {
  snapshot_reload_report report;
  if (auto ec =
          producers_.truncate_and_reload(log_start_offset_, log_end_offset(), now_ms, report)) {
    return ec;
  }
  for (const auto& d : report.discarded) {
    log_event("storage: " + name() + ": deleted producer snapshot " +
              producer_snapshot_file_name(d.offset) + ": " + to_string(d.defect));
  }
  if (after_clean_shutdown && !report.loaded_offset && report.discarded.empty() &&
      log_end_offset() > log_start_offset_) {
    // A clean shutdown writes a snapshot at the log end, so none at all means a log written
    // before snapshots existed. Kafka's rule (UnifiedLog.rebuildProducerState): start empty at
    // the log end instead of reading the whole log, which for a large log would make the start
    // take as long as reading it. Only producers in flight across the upgrade lose dedup.
    return producers_.truncate_fully_and_start_at(log_end_offset());
  }
  int64_t from = producers_.map_end_offset();
  if (from >= log_end_offset()) return {};
  // When the state restarts at a log start inside a batch, that batch is applied whole, as
  // Kafka's replay does: its producer did write it.
  for (size_t i = segment_for(from); i < segments_.size(); ++i) {
    std::error_code ec = segments_[i]->for_each_batch(
        from, [&](const wire::record_batch& b) { producers_.apply(b); });
    if (ec) {
      log_event("storage: " + name() + ": producer state replay failed in " +
                segments_[i]->log_path().filename().string() + ": " + ec.message());
      return ec;
    }
  }
  return {};
}

void log::set_topic_id(wire::uuid id, std::error_code& ec) {
  ec.clear();
  if (topic_id_) {
    if (*topic_id_ != id) ec = errc::inconsistent_topic_id;
    return;
  }
  if ((ec = replace_file(fs_, dir_ / partition_metadata_file, format_partition_metadata(id)))) {
    return;
  }
  topic_id_ = id;
}

int64_t log::log_end_offset() const {
  const int64_t end = segments_.back()->next_offset();
  return truncating_to_ ? std::min(end, *truncating_to_) : end;
}

void log::set_high_watermark(int64_t hw) {
  // The log end lies below the start only while a truncation restarts the log.
  high_watermark_ =
      std::clamp(hw, log_start_offset(), std::max(log_start_offset(), log_end_offset()));
}

int64_t log::size_bytes() const {
  int64_t n = 0;
  for (const auto& s : segments_)
    n += s->size();
  return n;
}

size_t log::index_heap_bytes() const {
  size_t n = 0;
  for (const auto& s : segments_)
    n += s->index_heap_bytes();
  return n;
}

size_t log::segment_for(int64_t offset) const {
  auto it = std::upper_bound(
      segments_.begin(), segments_.end(), offset,
      [](int64_t o, const std::unique_ptr<segment>& s) { return o < s->base_offset(); });
  return it == segments_.begin() ? 0 : static_cast<size_t>(it - segments_.begin() - 1);
}

std::error_code log::append(std::span<uint8_t> batches, int32_t leader_epoch, append_info& out,
                            int64_t now_ms) {
  out = {};
  if (closed_) return errc::log_closed;
  if (offline_) return errc::log_offline;
  if (rolling_) return errc::roll_in_progress;
  if (batches.empty()) return errc::invalid_record;

  // Validate everything before touching anything: an append is all or nothing.
  wire::batch_reader reader(batches);
  std::vector<wire::record_batch> views;
  std::vector<producer_batch> producer_batches;
  const bool log_append_time = cfg_.message_timestamp_type == timestamp_type::log_append_time;
  // The append's largest timestamp as it will be once stamped: what segment.ms compares.
  int64_t max_ts = -1;
  int64_t last_offset_delta_sum = 0;
  while (auto b = reader.next()) {
    // Kafka checks the size before the CRC (UnifiedLog.analyzeAndValidateRecords).
    if (b->size_bytes() > cfg_.max_message_bytes) return errc::record_too_large;
    if (wire::batch_error e = b->validate(); e != wire::batch_error::ok) return map_batch_error(e);
    views.push_back(*b);
    producer_batches.push_back(producer_batch::from(*b));
    max_ts = std::max(max_ts, log_append_time ? now_ms : b->max_timestamp());
    last_offset_delta_sum += b->last_offset_delta() + 1;
  }
  if (reader.error() != wire::batch_error::ok) return map_batch_error(reader.error());
  auto bytes = static_cast<int64_t>(batches.size());
  if (bytes > cfg_.segment_bytes) return errc::record_batch_too_large;
  const int64_t first = log_end_offset();
  if (first > INT64_MAX - last_offset_delta_sum) return errc::invalid_record;
  const int64_t last = first + last_offset_delta_sum - 1;

  append_check verdict = producers_.check(producer_batches);
  switch (verdict.verdict) {
    case append_verdict::accept:
      break;
    case append_verdict::duplicate:
      out.base_offset = verdict.original.first_offset;
      out.last_offset = verdict.original.last_offset;
      out.max_timestamp = verdict.original.max_timestamp;
      // Kafka answers a duplicate with the original batch's timestamp as its log append time;
      // under CreateTime that would be a create time, so -1 is reported there instead.
      if (cfg_.message_timestamp_type == timestamp_type::log_append_time) {
        out.log_append_time = verdict.original.max_timestamp;
      }
      out.log_start_offset = log_start_offset_;
      out.duplicate = true;
      return {};
    case append_verdict::out_of_order_sequence:
      return errc::out_of_order_sequence;
    case append_verdict::invalid_producer_epoch:
      return errc::invalid_producer_epoch;
    case append_verdict::invalid_txn_state:
      return errc::invalid_txn_state;
    case append_verdict::invalid_record:
      return errc::invalid_record;
  }

  if (auto ec = roll_if_due(bytes, last, max_ts, now_ms)) return ec;

  // Stamp the broker's fields in place. Offsets and the leader epoch lie outside the CRC; the
  // timestamp type does not, so it costs a CRC pass over each batch it changes.
  int64_t next = first;
  for (size_t pos = 0; pos < batches.size();) {
    auto size = static_cast<size_t>(wire::record_batch(batches.subspan(pos)).size_bytes());
    wire::mutable_record_batch b(batches.subspan(pos, size));
    b.set_base_offset(next);
    b.set_partition_leader_epoch(leader_epoch);
    if (log_append_time) {
      b.set_max_timestamp_and_log_append_time(now_ms);
    } else if (b.is_log_append_time()) {
      clear_log_append_time(b);
    }
    next = b.next_offset();
    pos += size;
  }

  if (auto ec = write_batches(batches, views, out)) return ec;
  out.log_append_time = log_append_time ? now_ms : -1;
  return {};
}

std::error_code log::append_replicated(std::span<const uint8_t> batches, append_info& out,
                                       int64_t now_ms) {
  out = {};
  if (closed_) return errc::log_closed;
  if (offline_) return errc::log_offline;
  if (rolling_) return errc::roll_in_progress;
  out.log_start_offset = log_start_offset_;

  // Every whole batch is checked before anything is written, even those past what one segment
  // takes (step 3): a bad batch anywhere leaves the log as it was.
  wire::batch_reader reader(batches);
  std::vector<wire::record_batch> views;
  int64_t expected = log_end_offset();
  while (auto b = reader.next()) {
    if (wire::batch_error e = b->validate(); e != wire::batch_error::ok) return map_batch_error(e);
    if (b->base_offset() != expected) {
      return views.empty() ? errc::offset_out_of_range : errc::invalid_record;
    }
    expected = b->next_offset();
    views.push_back(*b);
  }
  // Kafka cuts a fetch response at max_bytes wherever that falls: a trailing partial batch is
  // the next fetch's business, not an error. Bad framing is.
  if (reader.error() != wire::batch_error::ok && reader.error() != wire::batch_error::truncated) {
    return map_batch_error(reader.error());
  }
  if (views.empty()) return {};

  // One append goes to one segment, as on the leader path; refusing a fetch that does not fit
  // would stall replication for good, so the rest waits for the next call instead.
  const int64_t first = views.front().base_offset();
  size_t count = 0;
  int64_t bytes = 0;
  int64_t max_ts = -1;
  for (const wire::record_batch& b : views) {
    if (count > 0 &&
        (bytes + b.size_bytes() > cfg_.segment_bytes || b.last_offset() - first > INT32_MAX)) {
      break;
    }
    ++count;
    bytes += b.size_bytes();
    max_ts = std::max(max_ts, b.max_timestamp());
  }
  if (auto ec = roll_if_due(bytes, views[count - 1].last_offset(), max_ts, now_ms)) return ec;
  return write_batches(batches.first(static_cast<size_t>(bytes)),
                       std::span<const wire::record_batch>(views).first(count), out);
}

std::error_code log::roll_if_due(int64_t bytes, int64_t last_offset, int64_t max_timestamp,
                                 int64_t now_ms) {
  segment* active = segments_.back().get();
  if (active->size() > 0) {
    bool due = active->size() + bytes > cfg_.segment_bytes ||
               last_offset - active->base_offset() > INT32_MAX;
    if (!due) {
      if (auto ec = time_to_roll(max_timestamp, now_ms, due)) return ec;
    }
    if (due) {
      start_roll(now_ms);
      return errc::roll_in_progress;
    }
  }
  // Even a fresh segment cannot index offsets more than 2^31 - 1 past its base.
  if (last_offset - active->base_offset() > INT32_MAX) return errc::invalid_record;
  return {};
}

std::error_code log::write_batches(std::span<const uint8_t> bytes,
                                   std::span<const wire::record_batch> batches, append_info& out) {
  const int64_t first = batches.front().base_offset();
  const int64_t last = batches.back().last_offset();
  // Kafka's offsetOfMaxTimestamp: the last offset of the first batch holding the largest one.
  int64_t max_ts = -1;
  int64_t offset_of_max_ts = first;
  for (const wire::record_batch& b : batches) {
    if (b.max_timestamp() > max_ts) {
      max_ts = b.max_timestamp();
      offset_of_max_ts = b.last_offset();
    }
  }
  segment& active = *segments_.back();
  if (auto ec = active.append(bytes, last, max_ts, offset_of_max_ts, cfg_.index_interval_bytes)) {
    go_offline("write", ec);
    return errc::log_offline;
  }
  // Kafka assigns each batch's epoch: a newer one adds an entry at its first batch, the epoch
  // already latest changes nothing, and an older one drops the entries it contradicts (a
  // follower's stale epoch that the leader never had).
  bool epochs_changed = false;
  for (const wire::record_batch& b : batches) {
    producers_.apply(b);
    epochs_changed = epochs_.assign(b.partition_leader_epoch(), b.base_offset()) || epochs_changed;
  }
  if (epochs_changed) write_leader_epochs_async();
  out.base_offset = first;
  out.last_offset = last;
  out.max_timestamp = max_ts;
  out.batch_count = static_cast<int32_t>(batches.size());
  out.bytes = static_cast<int64_t>(bytes.size());
  out.log_start_offset = log_start_offset_;
  return {};
}

void log::when_writable(std::function<void()> fn) {
  if (!rolling_) {
    fn();
    return;
  }
  writable_waiters_.push_back(std::move(fn));
}

void log::notify_writable() {
  std::vector<std::function<void()>> waiters = std::move(writable_waiters_);
  writable_waiters_.clear();
  for (auto& fn : waiters)
    fn();
}

std::error_code log::time_to_roll(int64_t append_max_timestamp, int64_t now_ms, bool& due) {
  // Kafka's LogSegment.shouldRoll / timeWaitedForRoll: the timestamps of the data when the
  // segment's first append had one, so a replayed or late burst rolls by event time; the wall
  // clock since the segment's creation otherwise.
  segment& active = *segments_.back();
  int64_t base_ts = -1;
  if (auto ec = active.rolling_base_timestamp(base_ts)) return ec;
  int64_t waited = base_ts >= 0 ? append_max_timestamp - base_ts : now_ms - active.created_ms();
  due = waited > cfg_.segment_ms;
  return {};
}

void log::start_roll(int64_t now_ms) {
  if (rolling_) return;
  rolling_ = true;
  const int64_t base = log_end_offset();
  struct result {
    std::error_code ec;
    std::shared_ptr<file_handle> file;
  };
  auto r = std::make_shared<result>();
  // Its own queue: creating the files need not wait behind a sync of the old segment.
  disk_.submit(
      queue_ + "#roll",
      [&fs = fs_, dir = dir_, base, r] { r->ec = segment::create_files(fs, dir, base, r->file); },
      [this, alive = std::weak_ptr<int>(alive_), base, now_ms, r] {
        if (alive.expired()) return;
        finish_roll(base, now_ms, r->ec, std::move(r->file));
      });
}

void log::finish_roll(int64_t base, int64_t created_ms, std::error_code ec,
                      std::shared_ptr<file_handle> file) {
  rolling_ = false;
  if (closed_) return;
  if (ec) {
    go_offline("segment roll", ec);
    notify_writable();
    return;
  }
  segment& old = *segments_.back();
  old.append_final_time_entry();
  segment_flush flush = old.take_flush(/*sync_log=*/true);
  const int64_t old_base = old.base_offset();
  std::filesystem::path offset_index_path = old.offset_index_path();
  std::filesystem::path time_index_path = old.time_index_path();
  segments_.push_back(segment::adopt(fs_, dir_, base, created_ms, std::move(file)));
  // Kafka snapshots producer state at every new segment's base, so that a restart replays at
  // most the active segment. Taken now, written after the data it covers is durable.
  std::optional<producer_state_manager::pending_snapshot> snapshot = producers_.prepare_snapshot();
  struct result {
    std::error_code ec;
    std::shared_ptr<const index_mapping> offsets;
    std::shared_ptr<const index_mapping> times;
  };
  auto r = std::make_shared<result>();
  disk_.submit(
      queue_,
      [&fs = fs_, dir = dir_, flush = std::move(flush), snapshot = std::move(snapshot), r,
       offset_index_path, time_index_path, this_tp = name()] {
        // The old segment's data and indexes, then the new segment's directory entry: after
        // this every offset below `base` survives a power loss.
        if ((r->ec = flush.run(fs))) return;
        if ((r->ec = fs.sync_dir(dir))) return;
        // Only an optimisation (a failure costs replay time, not data): logged, not fatal.
        if (snapshot) {
          if (std::error_code sec = snapshot->write(fs)) {
            log_event("storage: " + this_tp + ": producer snapshot " +
                      snapshot->path.filename().string() + " failed: " + sec.message());
          }
        }
        // The old segment's indexes are complete on disk: read through mappings from now on, so
        // that the heap holds only the active segment's entries. A failure only costs memory.
        std::error_code mec;
        r->offsets = index_mapping::map(fs, offset_index_path, mec);
        if (!mec) r->times = index_mapping::map(fs, time_index_path, mec);
        if (mec) r->offsets.reset();
      },
      [this, alive = std::weak_ptr<int>(alive_), base, old_base, r] {
        if (alive.expired() || closed_) return;
        if (r->ec) {
          go_offline("flush of the rolled segment", r->ec);
          return;
        }
        if (r->offsets && r->times) {
          size_t i = segment_for(old_base);
          if (i < segments_.size() && segments_[i]->base_offset() == old_base) {
            segments_[i]->adopt_index_mappings(std::move(r->offsets), std::move(r->times));
          }
        }
        advance_recovery_point(base);
      });
  notify_writable();
}

void log::when_durable(int64_t offset, durability_callback done) {
  if (offset <= recovery_point_) {
    done({});
    return;
  }
  if (closed_) {
    done(errc::log_closed);
    return;
  }
  if (offline_) {
    done(errc::log_offline);
    return;
  }
  durability_waiters_.push_back({offset, std::move(done)});
  start_sync();
}

void log::flush_async(std::function<void()> done) {
  if (!closed_ && !offline_ && truncating_to_) {
    // After the truncation, whose job syncs what remains: entries taken for writing now could be
    // ones it cuts.
    writable_waiters_.push_back(
        [this, done = std::move(done)]() mutable { flush_async(std::move(done)); });
    return;
  }
  if (closed_ || offline_ ||
      (recovery_point_ >= log_end_offset() && !segments_.back()->has_unwritten_index_entries())) {
    if (done) done();
    return;
  }
  segment& active = *segments_.back();
  // The data and the index entries so far (time index before offset index: segment_flush), so
  // that a recovery can start from the last entry instead of the segment's first byte.
  const int64_t target = log_end_offset();
  segment_flush flush = active.take_flush(/*sync_log=*/true);
  auto r = std::make_shared<std::error_code>();
  disk_.submit(
      queue_, [&fs = fs_, flush = std::move(flush), r] { *r = flush.run(fs); },
      [this, alive = std::weak_ptr<int>(alive_), target, r, done = std::move(done)] {
        if (!alive.expired() && !closed_) {
          if (*r) {
            go_offline("flush", *r);
          } else {
            advance_recovery_point(target);
          }
        }
        if (done) done();
      });
}

void log::start_sync() {
  // A truncation's completion releases (or fails) the waiters itself: its job syncs what remains.
  if (sync_in_flight_ || truncating_to_) return;
  const int64_t target = log_end_offset();
  if (target <= recovery_point_) return;
  sync_in_flight_ = true;
  // The active segment holds everything between the recovery point and the log end, except
  // what a rolled segment's flush (queued ahead of this job on the same queue) makes durable.
  // A group commit is one fdatasync; index entries wait for the periodic flush.
  segment_flush flush = segments_.back()->take_sync();
  auto r = std::make_shared<std::error_code>();
  disk_.submit(
      queue_, [&fs = fs_, flush = std::move(flush), r] { *r = flush.run(fs); },
      [this, alive = std::weak_ptr<int>(alive_), target, r] {
        if (alive.expired()) return;
        sync_done(target, *r);
      });
}

void log::sync_done(int64_t target, std::error_code ec) {
  sync_in_flight_ = false;
  if (closed_) return;
  ++sync_count_;
  if (ec) {
    go_offline("fsync", ec);
    return;
  }
  advance_recovery_point(target);
  // Everything that arrived while the sync ran shares the next one.
  if (!durability_waiters_.empty()) start_sync();
}

void log::advance_recovery_point(int64_t offset) {
  if (offset > recovery_point_) recovery_point_ = std::min(offset, log_end_offset());
  last_flush_ms_ = wall_clock_ms();
  std::vector<durability_waiter> released;
  std::erase_if(durability_waiters_, [&](durability_waiter& w) {
    if (w.offset > recovery_point_) return false;
    released.push_back(std::move(w));
    return true;
  });
  synced_waiters_ += released.size();
  for (auto& w : released)
    w.done({});
}

void log::go_offline(std::string_view what, std::error_code ec) {
  if (!offline_) {
    offline_ = true;
    log_event("storage: " + name() + ": " + std::string(what) + " failed (" + ec.message() +
              "); the partition is offline until the broker restarts and recovers it");
  }
  std::vector<durability_waiter> waiters = std::move(durability_waiters_);
  durability_waiters_.clear();
  for (auto& w : waiters)
    w.done(errc::log_offline);
}

void log::remember_position(int64_t offset, int64_t segment_base, int64_t position) const {
  for (position_hint& h : hints_) {
    if (h.offset == offset) {
      h = {offset, segment_base, position};
      return;
    }
  }
  hints_[next_hint_] = {offset, segment_base, position};
  next_hint_ = (next_hint_ + 1) % hints_.size();
}

std::error_code log::locate(size_t seg, int64_t offset, int64_t& position, read_mode mode) const {
  const segment& s = *segments_[seg];
  for (const position_hint& h : hints_) {
    if (h.offset == offset && h.segment_base == s.base_offset() && h.position <= s.size()) {
      position = h.position;
      return {};
    }
  }
  segment::batch_info first;
  return s.find(offset, 0, position, first, mode);
}

namespace {

// How much of a segment a warm-up reads when a header read would have blocked: what a consumer's
// next fetches read next.
constexpr int64_t warm_ahead_bytes = 1 << 20;
// The part of the active segment written recently enough to be in the page cache: fetches of it
// (tailing consumers, followers) are not checked, so that the usual fetch costs no extra system
// call.
constexpr int64_t hot_tail_bytes = 16 << 20;

}  // namespace

std::error_code log::read(int64_t offset, int64_t max_bytes, int64_t max_offset, bool min_one,
                          read_info& out, read_mode mode) const {
  out.slices.clear();
  out.bytes = 0;
  out.cold.reset();
  const bool cached_only = mode == read_mode::cached_only;
  // What to warm before reading again, when the data is not in memory.
  auto cold_range = [&](const segment& s, int64_t position, int64_t length) {
    out.slices.clear();
    out.bytes = 0;
    out.cold = cold_data{s.shared_file(), s.log_path(), position, length, {}};
    return make_error_code(errc::would_block);
  };
  // The recently written tail of the active segment is read as it is (see hot_tail_bytes).
  auto mode_at = [&](const segment& s, int64_t position) {
    return &s == segments_.back().get() && position >= s.size() - hot_tail_bytes
               ? read_mode::may_block
               : mode;
  };
  auto cold_index = [&](const segment& s) {
    out.slices.clear();
    out.bytes = 0;
    out.cold = cold_data{
        s.shared_file(), s.log_path(), 0, 0, {s.offset_index_path(), s.time_index_path()}};
    return make_error_code(errc::would_block);
  };
  if (closed_) return errc::log_closed;
  if (offline_) return errc::log_offline;
  if (offset < log_start_offset() || offset > log_end_offset()) return errc::offset_out_of_range;
  max_offset = std::min(max_offset, log_end_offset());
  if (offset >= max_offset) return {};

  size_t seg = segment_for(offset);
  int64_t position = 0;
  if (cached_only && !segments_[seg]->index_resident()) return cold_index(*segments_[seg]);
  if (std::error_code ec =
          locate(seg, offset, position,
                 mode_at(*segments_[seg],
                         segments_[seg]->skip_ahead(0, segments_[seg]->size(), offset)))) {
    if (ec != errc::would_block) {
      // A truncation job may have cut the file already where the batch holding `offset` began:
      // that batch goes, and nothing of it is served.
      if (being_cut(*segments_[seg])) return {};
      return ec;
    }
    const segment& s = *segments_[seg];
    int64_t from = s.skip_ahead(0, s.size(), offset);
    return cold_range(s, from, std::min(warm_ahead_bytes, s.size() - from));
  }

  // End of the last batch taken and the offset after it, for the position cache.
  int64_t end_offset = -1;
  bool done = false;
  for (; seg < segments_.size() && !done; ++seg, position = 0) {
    const segment& s = *segments_[seg];
    if (cached_only && !s.index_resident()) return cold_index(s);
    int64_t start = position;
    int64_t budget = max_bytes - out.bytes;
    if (s.next_offset() <= max_offset && s.size() - start <= budget) {
      // The common tailing case: everything left in this segment fits. No header reads.
      position = s.size();
      if (position > start) end_offset = s.next_offset();
    } else {
      // Jump over whole indexed appends that fit, then walk headers to the exact boundary.
      int64_t byte_limit =
          budget >= s.size() - start ? s.size() : start + std::max<int64_t>(budget, 0);
      position = s.skip_ahead(start, byte_limit, max_offset);
      if (position > start) end_offset = -1;  // not known until a header is read
      while (position < s.size()) {
        segment::batch_info b;
        if (std::error_code ec = s.batch_at(position, b, mode_at(s, position))) {
          if (ec == errc::would_block) {
            return cold_range(s, position, std::min(warm_ahead_bytes, s.size() - position));
          }
          if (being_cut(s)) {
            // The truncation job cut the file here already: the batch holding the cut began
            // here, and nothing from it on is served.
            done = true;
            break;
          }
          log_event("storage: " + name() + ": unreadable batch at byte " +
                    std::to_string(position) + " of " + s.log_path().filename().string() + ": " +
                    ec.message());
          if (out.bytes == 0 && position == start) return ec;
          done = true;
          break;
        }
        end_offset = b.base_offset;
        if (b.last_offset >= max_offset) {
          done = true;
          break;
        }
        if (position + b.size - start > budget) {
          // Kafka's minOneMessage: an oversized first batch still goes out whole.
          if (min_one && out.bytes == 0 && position == start) {
            position += b.size;
            end_offset = b.last_offset + 1;
          }
          done = true;
          break;
        }
        position += b.size;
        end_offset = b.last_offset + 1;
      }
      if (position == s.size() && !done) end_offset = s.next_offset();
    }
    if (position > start) {
      out.slices.push_back({s.fd(), start, position - start, s.keep_alive()});
      out.bytes += position - start;
    }
    // Full, but only once something was taken: with min_one an empty result must still look at
    // the next segment when this one had nothing left.
    if (!out.slices.empty() && out.bytes >= max_bytes) done = true;
    if (done || seg + 1 == segments_.size()) {
      if (end_offset >= 0) remember_position(end_offset, s.base_offset(), position);
      break;
    }
  }
  if (cached_only) {
    // sendfile would wait for the disk on pages that are not cached: warm them first.
    const segment& active = *segments_.back();
    for (const wire::file_slice& slice : out.slices) {
      if (slice.fd == active.fd() && slice.position >= active.size() - hot_tail_bytes) continue;
      if (!fs_.cached(slice.fd, slice.position, slice.length)) {
        size_t i = 0;
        while (i < segments_.size() && segments_[i]->fd() != slice.fd)
          ++i;
        return cold_range(*segments_[i], slice.position, slice.length);
      }
    }
  }
  return {};
}

void log::warm_async(const cold_data& cold, std::function<void(std::error_code)> done) {
  auto r = std::make_shared<std::error_code>();
  // A queue of its own: a warm-up need not wait behind this log's syncs, nor they behind it.
  disk_.submit(
      queue_ + "#read",
      [&fs = fs_, cold, r] {
        if (cold.index_files.empty()) {
          *r = fs.load_into_cache(cold.file->fd(), cold.position, cold.length, cold.path);
          return;
        }
        for (const auto& path : cold.index_files) {
          file_handle fd;
          bool missing = false;
          if ((*r = fs.open(path, O_RDONLY, fd, &missing)) || missing) return;
          int64_t size = 0;
          if ((*r = fs.size(fd.fd(), path, size))) return;
          if ((*r = fs.load_into_cache(fd.fd(), 0, size, path))) return;
        }
      },
      [r, done = std::move(done)] { done(*r); });
}

std::optional<std::pair<int64_t, int64_t>> log::timestamp_and_offset_for(int64_t ts) const {
  // While a truncation runs, a segment's files may be shorter than it says (a restart empties
  // them in place, index mappings included): time look-ups, which only a leader serves, find
  // nothing.
  if (closed_ || truncating_to_) return std::nullopt;
  for (const auto& s : segments_) {
    if (s->max_timestamp().timestamp < ts) continue;
    std::optional<timestamp_offset> found;
    if (std::error_code ec = s->find_timestamp(ts, log_start_offset(), found)) {
      log_event("storage: " + name() + ": timestamp search failed in " +
                s->log_path().filename().string() + ": " + ec.message());
      return std::nullopt;
    }
    if (found) return std::make_pair(found->timestamp, found->offset);
  }
  return std::nullopt;
}

std::optional<int64_t> log::offset_for_timestamp(int64_t ts) const {
  if (auto found = timestamp_and_offset_for(ts)) return found->second;
  return std::nullopt;
}

std::pair<int64_t, int64_t> log::max_timestamp_and_offset() const {
  const segment* best = nullptr;
  for (const auto& s : segments_) {
    if (s->max_timestamp().timestamp >= 0 &&
        (best == nullptr || s->max_timestamp().timestamp > best->max_timestamp().timestamp)) {
      best = s.get();
    }
  }
  if (best == nullptr || closed_ || truncating_to_)
    return {-1, -1};  // see timestamp_and_offset_for
  timestamp_offset r;
  if (std::error_code ec = best->max_timestamp_record(r)) {
    log_event("storage: " + name() + ": max timestamp look-up failed: " + ec.message());
    return {best->max_timestamp().timestamp, best->max_timestamp().offset};
  }
  return {r.timestamp, r.offset};
}

std::error_code log::flush() {
  if (closed_) return errc::log_closed;
  if (offline_) return errc::log_offline;
  if (auto ec = segments_.back()->flush()) {
    go_offline("fsync", ec);
    return errc::log_offline;
  }
  advance_recovery_point(log_end_offset());
  return {};
}

std::error_code log::truncate_fully(int64_t offset) {
  // The new, empty active segment first, so that if it cannot be created the log is left as it
  // was; a segment already named for `offset` (possible once the log start lies inside the
  // first segment) is emptied and kept instead, since creating it anew would be undone when the
  // old files are removed.
  std::error_code ec;
  std::unique_ptr<segment> fresh;
  for (auto& s : segments_) {
    if (s->base_offset() == offset) {
      if ((ec = s->truncate_to(offset))) return ec;
      fresh = std::move(s);
    }
  }
  if (!fresh) {
    fresh = segment::create(fs_, dir_, offset, wall_clock_ms(), ec);
    if (ec) return ec;
  }
  for (auto& s : segments_) {
    if (!s) continue;
    s->close();
    if (std::error_code e = s->remove_files(); e && !ec) ec = e;
  }
  segments_.clear();
  segments_.push_back(std::move(fresh));
  log_start_offset_ = offset;
  if (!epochs_.empty()) {
    epochs_ = {};
    if (std::error_code e = replace_file(fs_, dir_ / leader_epoch_checkpoint_file,
                                         format_leader_epoch_checkpoint({}));
        e && !ec) {
      ec = e;
    }
  }
  if (std::error_code e = fs_.sync_dir(dir_); e && !ec) ec = e;
  if (std::error_code e = producers_.truncate_fully_and_start_at(offset); e && !ec) ec = e;
  return ec;
}

// What truncate_to hands its job (step 1) and what the job hands back (step 2).
struct log::truncation {
  int64_t offset = 0;  // where to cut: log start <= offset < log end
  int64_t log_start = 0;
  int64_t now_ms = 0;
  int64_t producer_id_expiration_ms = 0;
  // Detached copies of the segments the producer-state replay reads, oldest first: from the one
  // holding the newest snapshot at or below `offset` (usually the kept segment's base or the one
  // before it: a snapshot is taken at every roll) to the one holding `offset`, which the job
  // cuts and the owner installs.
  std::vector<std::unique_ptr<segment>> segments;
  // The base offsets of the segments before those, from the one holding the log start: opened
  // by path only when that snapshot turns out unusable and the replay starts earlier.
  std::vector<int64_t> earlier_bases;
  // The files of the segments above the cut: newest segment first, each .log before its indexes.
  std::vector<std::filesystem::path> doomed;
  // The leader epochs; the job writes their checkpoint cut at the new end.
  std::vector<epoch_entry> epochs;

  std::error_code ec;
  std::string failed;  // what failed, for the log line
  int64_t new_end = -1;
  // Rebuilt for the new end; unset when that lies below the log start.
  std::optional<producer_state_manager> producers;
  snapshot_reload_report report;
};

void log::truncate_to(int64_t offset, std::function<void(std::error_code)> done) {
  if (closed_) return done(errc::log_closed);
  if (offline_) return done(errc::log_offline);
  if (rolling_) {
    // A roll, restart or truncation in flight changes the segments first; the cut is then made
    // in what they leave.
    writable_waiters_.push_back(
        [this, alive = std::weak_ptr<int>(alive_), offset, done = std::move(done)]() mutable {
          if (alive.expired()) return done(errc::log_closed);
          truncate_to(offset, std::move(done));
        });
    return;
  }
  if (offset >= log_end_offset()) {
    // No batch goes, but the epoch cache may end in an epoch that holds none: this broker led
    // it and appended nothing before the next leader came. The leader's answer says that epoch
    // is not in its log; kept, it would be this follower's LastFetchedEpoch again and again
    // (Kafka's UnifiedLog.truncateTo does the same).
    if (epochs_.truncate_from_end(log_end_offset())) write_leader_epochs_async();
    return done({});
  }

  // Step 1, bookkeeping only: from here on appends wait, reads stop below `offset`, and nothing
  // on this thread touches the files the job works on (see log.h).
  rolling_ = true;
  truncating_to_ = offset;
  std::fill(hints_.begin(), hints_.end(), position_hint{});
  recovery_point_ = std::min(recovery_point_, offset);
  if (offset < log_start_offset_) {
    // Every offset at or above the start goes: the log restarts, empty, at `offset`.
    restart_at(offset, std::move(done));
    return;
  }
  high_watermark_ = std::min(high_watermark_, offset);
  auto t = std::make_shared<truncation>();
  t->offset = offset;
  t->log_start = log_start_offset_;
  t->now_ms = wall_clock_ms();
  t->producer_id_expiration_ms = cfg_.producer_id_expiration_ms;
  const size_t keep = segment_for(offset);
  const size_t first = segment_for(log_start_offset_);
  // Snapshots at or below the log start are not used (truncate_and_reload deletes them).
  const std::optional<int64_t> snapshot = producers_.newest_snapshot_at_or_below(offset);
  const size_t first_copied =
      snapshot && *snapshot > log_start_offset_ ? std::max(first, segment_for(*snapshot)) : first;
  for (size_t i = first; i < first_copied; ++i)
    t->earlier_bases.push_back(segments_[i]->base_offset());
  for (size_t i = first_copied; i <= keep; ++i)
    t->segments.push_back(segments_[i]->detached_copy());
  for (size_t i = segments_.size(); i-- > keep + 1;) {
    for (auto& p : segments_[i]->file_paths())
      t->doomed.push_back(std::move(p));
  }
  t->epochs = epochs_.entries();
  disk_.submit(
      queue_, [&fs = fs_, dir = dir_, t] { run_truncation(fs, dir, *t); },
      [this, alive = std::weak_ptr<int>(alive_), t, done = std::move(done)]() mutable {
        if (alive.expired()) return done(errc::log_closed);
        finish_truncation(*t, std::move(done));
      });
}

void log::run_truncation(file_system& fs, const std::filesystem::path& dir, truncation& t) {
  auto fail = [&t](std::string what, std::error_code ec) {
    t.failed = std::move(what);
    t.ec = ec;
  };
  segment& kept = *t.segments.back();
  // Where the cut falls: the batch holding `offset` goes whole.
  int64_t position = 0;
  segment::batch_info holding;
  if (std::error_code ec = kept.find(t.offset, 0, position, holding)) {
    return fail("reading " + kept.log_path().filename().string(), ec);
  }
  const int64_t cut_at = position < kept.size() ? holding.base_offset : kept.next_offset();
  // The epochs first: a crash before the cut then leaves batches newer than the checkpoint,
  // which load() adds back from them; one after it, never entries past the log end (load()
  // would keep one starting exactly there as the current epoch).
  leader_epoch_cache epochs(std::move(t.epochs));
  if (epochs.truncate_from_end(cut_at)) {
    if (std::error_code ec = replace_file(fs, dir / leader_epoch_checkpoint_file,
                                          format_leader_epoch_checkpoint(epochs.entries()))) {
      return fail("writing " + std::string(leader_epoch_checkpoint_file), ec);
    }
  }
  // Above the cut next, newest segment first: a crash part-way leaves a shorter log, never one
  // with a gap, which recovery would take for offsets the leader never had.
  for (const auto& p : t.doomed) {
    if (std::error_code ec = fs.remove(p)) return fail("deleting " + p.filename().string(), ec);
  }
  if (!t.doomed.empty()) {
    if (std::error_code ec = fs.sync_dir(dir)) return fail("syncing the directory", ec);
  }
  if (std::error_code ec = kept.truncate_copy_to(t.offset)) {
    return fail("cutting " + kept.log_path().filename().string(), ec);
  }
  t.new_end = kept.next_offset();
  if (t.new_end >= t.log_start) {
    producer_state_manager& producers = t.producers.emplace(fs, dir, t.producer_id_expiration_ms);
    if (std::error_code ec =
            producers.truncate_and_reload(t.log_start, t.new_end, t.now_ms, t.report)) {
      return fail("reloading producer state", ec);
    }
    // As load_producer_state: the batches after the snapshot, a batch holding the log start
    // applied whole.
    const int64_t from = producers.map_end_offset();
    auto apply = [&producers](const wire::record_batch& b) { producers.apply(b); };
    const int64_t copied_from = t.segments.front()->base_offset();
    for (size_t i = 0; i < t.earlier_bases.size() && from < copied_from; ++i) {
      const int64_t base = t.earlier_bases[i];
      const int64_t next = i + 1 < t.earlier_bases.size() ? t.earlier_bases[i + 1] : copied_from;
      if (next <= from) continue;
      std::error_code ec;
      std::unique_ptr<segment> s = segment::open(fs, dir, base, t.now_ms, ec);
      if (!ec) ec = s->for_each_batch(from, apply);
      if (ec) return fail("replaying producer state from " + segment_file_name(base, ".log"), ec);
    }
    for (const auto& s : t.segments) {
      if (s->next_offset() <= from) continue;
      if (std::error_code ec = s->for_each_batch(from, apply)) {
        return fail("replaying producer state from " + s->log_path().filename().string(), ec);
      }
    }
  }
  // The renamed index files and the deleted snapshots.
  if (std::error_code ec = fs.sync_dir(dir)) return fail("syncing the directory", ec);
}

void log::finish_truncation(truncation& t, std::function<void(std::error_code)> done) {
  if (closed_) {
    // Closed or removed meanwhile: its waiters were told already.
    truncating_to_.reset();
    rolling_ = false;
    return done(errc::log_closed);
  }
  if (t.ec || offline_) {
    // Nothing is installed: the job may have stopped part-way (segments above the cut gone, the
    // kept one cut or not), so what this log holds in memory no longer describes the files. It
    // serves nothing more until a restart recovers it from them; each step leaves them loadable.
    if (t.ec)
      go_offline("truncation to offset " + std::to_string(t.offset) + " (" + t.failed + ")", t.ec);
    truncating_to_.reset();
    rolling_ = false;
    notify_writable();
    return done(t.ec ? t.ec : make_error_code(errc::log_offline));
  }

  // Step 3. Retention and log-start moves waited, so the kept segment is where it was.
  const int64_t old_end = segments_.back()->next_offset();
  std::unique_ptr<segment> cut = std::move(t.segments.back());
  const size_t keep = segment_for(cut->base_offset());
  int64_t bytes = segments_[keep]->size() - cut->size();
  const size_t deleted = segments_.size() - keep - 1;
  for (size_t i = keep + 1; i < segments_.size(); ++i) {
    bytes += segments_[i]->size();
    // Slices already handed out keep their descriptor (keep_alive).
    segments_[i]->close();
  }
  segments_.resize(keep + 1);
  segments_[keep] = std::move(cut);
  std::fill(hints_.begin(), hints_.end(), position_hint{});
  const int64_t new_end = segments_.back()->next_offset();
  if (new_end < log_start_offset_) {
    // Whole batches go, and the one holding the log start went too: every offset at or above the
    // start is gone, and moving the start back would expose deleted records. The log restarts,
    // empty, at its start; appends wait on.
    log_event("storage: " + name() + ": truncation to offset " + std::to_string(t.offset) +
                  " cut the batch holding log start offset " + std::to_string(log_start_offset_) +
                  "; the log starts again there",
              log_level::info);
    restart_at(log_start_offset_, std::move(done));
    return;
  }
  truncating_to_.reset();
  for (const auto& d : t.report.discarded) {
    log_event("storage: " + name() + ": deleted producer snapshot " +
              producer_snapshot_file_name(d.offset) + ": " + to_string(d.defect));
  }
  producers_.replace_state(std::move(*t.producers));
  epochs_.truncate_from_end(new_end);  // as the job wrote them
  high_watermark_ = std::clamp(high_watermark_, log_start_offset_, new_end);
  // The job fdatasynced the cut segment, and each earlier one was synced by its roll's flush, a
  // job of the same queue: everything that remains is on stable storage.
  recovery_point_ = std::min(recovery_point_, new_end);
  advance_recovery_point(new_end);
  std::vector<durability_waiter> orphans;
  std::erase_if(durability_waiters_, [&](durability_waiter& w) {
    if (w.offset <= new_end) return false;
    orphans.push_back(std::move(w));
    return true;
  });
  for (auto& w : orphans)
    w.done(errc::log_closed);
  log_event("storage: " + name() + ": truncated to offset " + std::to_string(t.offset) +
                ": log end " + std::to_string(old_end) + " -> " + std::to_string(new_end) + ", " +
                std::to_string(bytes) + " bytes and " + std::to_string(deleted) +
                " segment(s) deleted",
            log_level::info);
  rolling_ = false;
  notify_writable();
  done({});
}

bool log::being_cut(const segment& s) const {
  return truncating_to_ && &s == segments_[segment_for(*truncating_to_)].get();
}

void log::start_again_at(int64_t offset, std::function<void(std::error_code)> done) {
  if (closed_) return done(errc::log_closed);
  if (offline_) return done(errc::log_offline);
  if (offset <= log_end_offset()) return done(errc::offset_out_of_range);
  if (rolling_) {
    // A roll in flight would add its segment after the new start's: it finishes first.
    writable_waiters_.push_back(
        [this, alive = std::weak_ptr<int>(alive_), offset, done = std::move(done)]() mutable {
          if (alive.expired()) return done(errc::log_closed);
          start_again_at(offset, std::move(done));
        });
    return;
  }
  rolling_ = true;
  restart_at(offset, std::move(done));
}

void log::restart_at(int64_t offset, std::function<void(std::error_code)> done) {
  struct result {
    std::error_code ec;
    std::shared_ptr<file_handle> file;
  };
  auto r = std::make_shared<result>();
  disk_.submit(
      queue_,
      [&fs = fs_, dir = dir_, offset, r] {
        r->ec = segment::create_files(fs, dir, offset, r->file);
      },
      [this, alive = std::weak_ptr<int>(alive_), offset, r, done = std::move(done)]() mutable {
        if (alive.expired()) return done(errc::log_closed);
        finish_start_again(offset, r->ec, std::move(r->file), std::move(done));
      });
}

void log::finish_start_again(int64_t offset, std::error_code ec, std::shared_ptr<file_handle> file,
                             std::function<void(std::error_code)> done) {
  rolling_ = false;
  truncating_to_.reset();
  if (closed_) return done(errc::log_closed);
  if (ec) {
    go_offline("starting the log again at " + std::to_string(offset), ec);
    notify_writable();
    return done(ec);
  }
  std::fill(hints_.begin(), hints_.end(), position_hint{});
  const int64_t old_end = segments_.back()->next_offset();
  size_t count = 0;
  int64_t bytes = 0;
  std::vector<std::filesystem::path> doomed;
  for (auto& s : segments_) {
    bytes += s->size();
    // A segment already based at `offset` (a truncation below a log start inside the first
    // segment) had its files emptied by the job: they are the new segment's now.
    if (s->base_offset() != offset) {
      ++count;
      for (auto& p : s->file_paths())
        doomed.push_back(std::move(p));
    }
    // Slices already handed out keep their descriptor (keep_alive).
    s->close();
  }
  segments_.clear();
  segments_.push_back(segment::adopt(fs_, dir_, offset, wall_clock_ms(), std::move(file)));
  log_start_offset_ = offset;
  high_watermark_ = offset;
  recovery_point_ = offset;
  for (auto& p : producers_.take_all_and_start_at(offset))
    doomed.push_back(std::move(p));
  std::vector<durability_waiter> orphans = std::move(durability_waiters_);
  durability_waiters_.clear();
  for (auto& w : orphans)
    w.done(errc::log_closed);
  unlink_async(std::move(doomed), "deleting the old segments", std::move(done));
  // After the deletions in the queue: a crash between them leaves a checkpoint that load() cuts
  // to the log start.
  if (!epochs_.empty()) {
    epochs_ = {};
    write_leader_epochs_async();
  }
  log_event("storage: " + name() + ": deleted " + std::to_string(count) + " segment(s), " +
                std::to_string(bytes) + " bytes, log end " + std::to_string(old_end) +
                "; the log starts again at offset " + std::to_string(offset),
            log_level::info);
  notify_writable();
}

std::error_code log::delete_records_before(int64_t offset, int64_t& new_log_start,
                                           std::function<void(std::error_code)> files_deleted) {
  new_log_start = log_start_offset_;
  if (closed_) return errc::log_closed;
  // The truncation's job rebuilds producer state from this start, and may restart the log at it.
  if (truncating_to_) return errc::roll_in_progress;
  constexpr int64_t high_watermark_sentinel = -1;  // DeleteRecordsRequest.HIGH_WATERMARK
  if (offset == high_watermark_sentinel) offset = high_watermark_;
  if (offset < 0 || offset > high_watermark_) return errc::offset_out_of_range;
  if (offline_) return errc::log_offline;
  raise_log_start(offset, "DeleteRecords", std::move(files_deleted));
  new_log_start = log_start_offset_;
  return {};
}

std::error_code log::follow_leader_log_start(int64_t leader_log_start, int64_t& new_log_start,
                                             std::function<void(std::error_code)> files_deleted) {
  new_log_start = log_start_offset_;
  if (closed_) return errc::log_closed;
  if (leader_log_start <= log_start_offset_) {
    if (files_deleted) files_deleted({});
    return {};
  }
  if (truncating_to_) return errc::roll_in_progress;  // as delete_records_before
  if (leader_log_start > high_watermark_) return errc::offset_out_of_range;
  if (offline_) return errc::log_offline;
  raise_log_start(leader_log_start, "the leader's log start offset", std::move(files_deleted));
  new_log_start = log_start_offset_;
  return {};
}

void log::raise_log_start(int64_t offset, std::string_view reason,
                          std::function<void(std::error_code)> files_deleted) {
  // The recovery point stays: a start inside a segment says nothing about what is durable there.
  log_start_offset_ = std::max(log_start_offset_, offset);
  size_t below = 0;
  while (below + 1 < segments_.size() && segments_[below + 1]->base_offset() <= log_start_offset_) {
    ++below;
  }
  delete_oldest_segments(below, reason, std::move(files_deleted));
}

size_t log::enforce_retention(int64_t now_ms) {
  // During a truncation the segments stay as its job was told they are.
  if (closed_ || offline_ || truncating_to_) return 0;
  // Kafka's deletableSegments: a prefix of the log, never the active segment, and only segments
  // that end at or below the high watermark.
  auto deletable_prefix = [&](auto&& deletable) {
    size_t n = 0;
    while (n + 1 < segments_.size() && segments_[n + 1]->base_offset() <= high_watermark_ &&
           deletable(n)) {
      ++n;
    }
    return n;
  };
  size_t deleted = 0;
  auto delete_prefix = [&](size_t n, const std::string& reason) {
    delete_oldest_segments(n, reason);
    deleted += n;
    return true;
  };

  if (cfg_.retention_ms >= 0) {
    size_t n = deletable_prefix([&](size_t i) {
      int64_t largest = 0;
      if (std::error_code ec = segments_[i]->largest_timestamp(largest)) {
        log_event("storage: " + name() + ": " + ec.message());
        return false;
      }
      return now_ms - largest > cfg_.retention_ms;
    });
    if (!delete_prefix(n, "retention.ms " + std::to_string(cfg_.retention_ms) + " breached")) {
      return deleted;
    }
  }
  if (cfg_.retention_bytes >= 0) {
    int64_t excess = size_bytes() - cfg_.retention_bytes;
    size_t n = deletable_prefix([&](size_t i) {
      if (excess - segments_[i]->size() < 0) return false;
      excess -= segments_[i]->size();
      return true;
    });
    if (!delete_prefix(n,
                       "retention.bytes " + std::to_string(cfg_.retention_bytes) + " breached")) {
      return deleted;
    }
  }
  // Segments left wholly below a start that DeleteRecords or a checkpoint moved.
  size_t n = deletable_prefix(
      [&](size_t i) { return segments_[i + 1]->base_offset() <= log_start_offset_; });
  delete_prefix(n, "below the log start offset");
  return deleted;
}

void log::delete_oldest_segments(size_t count, std::string_view reason,
                                 std::function<void(std::error_code)> done) {
  std::vector<std::filesystem::path> doomed;
  int64_t bytes = 0;
  if (count > 0) {
    std::fill(hints_.begin(), hints_.end(), position_hint{});
    for (size_t i = 0; i < count; ++i) {
      bytes += segments_[i]->size();
      for (auto& p : segments_[i]->file_paths())
        doomed.push_back(std::move(p));
      // Slices already handed out keep their descriptor (keep_alive).
      segments_[i]->close();
    }
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(count));
    log_start_offset_ = std::max(log_start_offset_, segments_.front()->base_offset());
    high_watermark_ = std::max(high_watermark_, log_start_offset_);
    // Nothing lies below the first segment any more, so nothing below it needs recovery.
    recovery_point_ = std::max(recovery_point_, segments_.front()->base_offset());
  }
  if (epochs_.truncate_from_start(log_start_offset_)) write_leader_epochs_async();
  std::vector<std::filesystem::path> snapshots =
      producers_.take_snapshots_before(log_start_offset_);
  if (doomed.empty() && snapshots.empty()) {
    if (done) done({});
    return;
  }
  for (auto& p : snapshots)
    doomed.push_back(std::move(p));
  unlink_async(std::move(doomed), "segment deletion", std::move(done));
  if (count > 0) {
    log_event("storage: " + name() + ": deleted " + std::to_string(count) + " segment(s), " +
                  std::to_string(bytes) + " bytes (" + std::string(reason) +
                  "); log start offset " + std::to_string(log_start_offset_),
              log_level::info);
  }
}

void log::unlink_async(std::vector<std::filesystem::path> doomed, std::string_view what,
                       std::function<void(std::error_code)> done) {
  auto r = std::make_shared<std::error_code>();
  // The .log files first (callers list them so): a crash part-way leaves orphan indexes, which
  // load() removes.
  disk_.submit(
      queue_,
      [&fs = fs_, dir = dir_, doomed = std::move(doomed), r] {
        for (const auto& p : doomed) {
          if (std::error_code ec = fs.remove(p); ec && !*r) *r = ec;
        }
        if (std::error_code ec = fs.sync_dir(dir); ec && !*r) *r = ec;
      },
      [this, alive = std::weak_ptr<int>(alive_), r, what = std::string(what),
       done = std::move(done)] {
        if (done) done(*r);
        if (alive.expired() || closed_ || !*r) return;
        go_offline(what, *r);
      });
}

void log::remove_expired_producers(int64_t now_ms) {
  producers_.remove_expired(now_ms);
}

void log::close() {
  if (closed_) return;
  if (truncating_to_) {
    // A truncation job is still to run (a test's manual executor): the files are its, and a
    // flush or snapshot now would write what it is about to cut. The next open recovers.
    log_event("storage: " + name() + ": closed while a truncation is pending");
    for (auto& s : segments_)
      s->close();
    mark_removed();
    return;
  }
  segment& active = *segments_.back();
  active.append_final_time_entry();
  std::error_code ec;
  if (offline_) {
    ec = errc::log_offline;
  } else {
    ec = active.flush();
  }
  if (ec) {
    log_event("storage: " + name() + ": flush on close failed: " + ec.message());
  } else {
    advance_recovery_point(log_end_offset());
  }
  // Only after a good flush: a snapshot must never cover offsets that are not durable in the .log.
  if (!ec) ec = producers_.take_snapshot();
  if (ec) log_event("storage: " + name() + ": producer snapshot on close failed: " + ec.message());
  for (auto& s : segments_)
    s->close();
  closed_ = true;
  mark_removed();
}

void log::mark_removed() {
  closed_ = true;
  rolling_ = false;
  std::vector<durability_waiter> waiters = std::move(durability_waiters_);
  durability_waiters_.clear();
  for (auto& w : waiters)
    w.done(errc::log_closed);
  // Writers waiting for a roll try again and get errc::log_closed.
  notify_writable();
}

}  // namespace sluice::storage
