#include "server/groups/offsets_log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <utility>

#include <boost/asio/post.hpp>

#include "server/errors.h"
#include "server/logging.h"
#include "storage/errc.h"
#include "wire/codec.h"
#include "wire/record_batch.h"

namespace sluice::server {

namespace offsets_record {
namespace {

template <class F>
std::vector<uint8_t> encode(F&& body) {
  wire::frame f;
  // Also keeps GCC 12 from a false -Wstringop-overflow on the first insert into an empty vector.
  f.bytes.reserve(64);
  {
    wire::writer w(f);
    body(w);
  }
  return std::move(f.bytes);
}

// wire::reader wants a mutable span (it hands out mutable views for in-place patching of
// produce batches); it never writes through it, and nothing here keeps its views.
wire::reader reader_over(std::span<const uint8_t> bytes) {
  return wire::reader(std::span<uint8_t>(const_cast<uint8_t*>(bytes.data()), bytes.size()));
}

bool finished(const wire::reader& r) {
  return r.ok() && r.remaining() == 0;
}

// The tag section closing each struct of a flexible version; no tags are defined, so all are
// skipped.
void skip_tags(wire::reader& r) {
  std::vector<wire::raw_tagged_field> ignored;
  r.tagged_fields(ignored, [](uint32_t, wire::reader&) { return false; });
}

}  // namespace

std::vector<uint8_t> offset_commit_key(std::string_view group_id, const topic_partition& tp) {
  return encode([&](wire::writer& w) {
    w.i16(offset_commit_key_version);
    w.string(group_id, false);
    w.string(tp.topic, false);
    w.i32(tp.partition);
  });
}

std::vector<uint8_t> offset_commit_value(const committed_offset& value) {
  return encode([&](wire::writer& w) {
    w.i16(offset_commit_value_version);
    w.i64(value.offset);
    w.i32(value.leader_epoch);
    w.string(value.metadata, false);
    w.i64(value.commit_timestamp_ms);
  });
}

std::vector<uint8_t> group_metadata_key(std::string_view group_id) {
  return encode([&](wire::writer& w) {
    w.i16(group_metadata_key_version);
    w.string(group_id, false);
  });
}

std::vector<uint8_t> group_metadata_value(const group_metadata_record& record,
                                          int64_t current_state_timestamp_ms) {
  return encode([&](wire::writer& w) {
    w.i16(group_metadata_value_version);
    w.string(record.protocol_type, false);
    w.i32(record.generation);
    w.nullable_string(record.protocol_name, false);
    w.nullable_string(record.leader, false);
    w.i64(current_state_timestamp_ms);
    w.array_length(static_cast<int32_t>(record.members.size()), false);
    for (const group_metadata_record::member& m : record.members) {
      w.string(m.member_id, false);
      w.nullable_string(m.group_instance_id, false);
      w.string(m.client_id, false);
      w.string(m.client_host, false);
      w.i32(m.rebalance_timeout_ms);
      w.i32(m.session_timeout_ms);
      w.bytes(m.subscription, false);
      w.bytes(m.assignment, false);
    }
  });
}

bool decode_key(std::span<const uint8_t> bytes, key& out) {
  wire::reader r = reader_over(bytes);
  out = key{};
  out.version = r.i16();
  if (!r.ok()) return false;
  switch (out.version) {
    case 0:
    case 1:
      out.type = key::kind::offset_commit;
      out.group_id = r.string(false);
      out.partition.topic = r.string(false);
      out.partition.partition = r.i32();
      return finished(r);
    case 2:
      out.type = key::kind::group_metadata;
      out.group_id = r.string(false);
      return finished(r);
    default:
      out.type = key::kind::unknown;
      return true;
  }
}

bool decode_offset_commit_value(std::span<const uint8_t> bytes, committed_offset& out) {
  wire::reader r = reader_over(bytes);
  int16_t version = r.i16();
  if (!r.ok() || version < 0 || version > 4) return false;
  bool flexible = version >= 4;
  out = committed_offset{};
  out.offset = r.i64();
  if (version >= 3) out.leader_epoch = r.i32();
  out.metadata = r.string(flexible);
  out.commit_timestamp_ms = r.i64();
  if (version == 1) r.i64();  // expireTimestamp: per-commit retention, dropped by Kafka 2.1+
  if (flexible) skip_tags(r);
  return finished(r);
}

bool decode_group_metadata_value(std::span<const uint8_t> bytes, group_metadata_record& out,
                                 int64_t& current_state_timestamp_ms) {
  wire::reader r = reader_over(bytes);
  int16_t version = r.i16();
  if (!r.ok() || version < 0 || version > 4) return false;
  bool flexible = version >= 4;
  out = group_metadata_record{};
  out.protocol_type = r.string(flexible);
  out.generation = r.i32();
  out.protocol_name = r.nullable_string(flexible);
  out.leader = r.nullable_string(flexible);
  current_state_timestamp_ms = version >= 2 ? r.i64() : -1;
  // A member is at least 3 strings, 2 bytes and an int32: 1 byte each even in compact form.
  int32_t count = r.array_length(flexible, 6);
  if (count < 0) return false;
  out.members.resize(static_cast<size_t>(count));
  for (group_metadata_record::member& m : out.members) {
    m.member_id = r.string(flexible);
    if (version >= 3) m.group_instance_id = r.nullable_string(flexible);
    m.client_id = r.string(flexible);
    m.client_host = r.string(flexible);
    // Before v1 one timeout served both, as in JoinGroup v0.
    if (version >= 1) m.rebalance_timeout_ms = r.i32();
    m.session_timeout_ms = r.i32();
    if (version == 0) m.rebalance_timeout_ms = m.session_timeout_ms;
    m.subscription = r.bytes(flexible);
    m.assignment = r.bytes(flexible);
    if (flexible) skip_tags(r);
    if (!r.ok()) return false;
  }
  if (flexible) skip_tags(r);
  return finished(r);
}

}  // namespace offsets_record

// ---- replay ----------------------------------------------------------------------------------

namespace {

// How much one log::read asks for; a batch larger than this still comes whole (min_one).
constexpr int64_t replay_read_bytes = 1 << 20;

std::error_code pread_all(const wire::file_slice& slice, std::vector<uint8_t>& out) {
  out.resize(static_cast<size_t>(slice.length));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(slice.fd, out.data() + done, out.size() - done,
                        static_cast<off_t>(slice.position + static_cast<int64_t>(done)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno, std::system_category()};
    }
    if (n == 0) return storage::errc::corrupt_message;  // the file ends inside the slice
    done += static_cast<size_t>(n);
  }
  return {};
}

// Applies one record to the state: the last record per key wins, a null value deletes.
std::error_code apply_record(const wire::record_view& rec,
                             std::map<std::string, persisted_group, std::less<>>& groups,
                             replay_stats& stats) {
  using offsets_record::key;
  key k;
  if (!rec.key || !offsets_record::decode_key(*rec.key, k)) return storage::errc::invalid_record;
  if (k.type == key::kind::unknown) {
    ++stats.skipped_records;
    return {};
  }
  auto it = groups.find(k.group_id);
  if (!rec.value) {
    if (it == groups.end()) return {};
    if (k.type == key::kind::offset_commit) {
      it->second.offsets.erase(k.partition);
    } else {
      it->second.metadata.reset();
      it->second.current_state_timestamp_ms = -1;
    }
    if (!it->second.metadata && it->second.offsets.empty()) groups.erase(it);
    return {};
  }
  if (it == groups.end()) it = groups.emplace(k.group_id, persisted_group{}).first;
  if (k.type == key::kind::offset_commit) {
    committed_offset value;
    if (!offsets_record::decode_offset_commit_value(*rec.value, value))
      return storage::errc::invalid_record;
    it->second.offsets[k.partition] = std::move(value);
  } else {
    group_metadata_record value;
    int64_t ts = -1;
    if (!offsets_record::decode_group_metadata_value(*rec.value, value, ts))
      return storage::errc::invalid_record;
    it->second.metadata = std::move(value);
    it->second.current_state_timestamp_ms = ts;
  }
  return {};
}

}  // namespace

namespace {

// Replays the batches in `buffer` (whole batches read from `where`), moving `offset` past each.
std::error_code replay_batches(std::span<const uint8_t> buffer, const std::string& where,
                               int64_t& offset,
                               std::map<std::string, persisted_group, std::less<>>& out,
                               replay_stats& st) {
  wire::batch_reader batches(buffer);
  while (std::optional<wire::record_batch> batch = batches.next()) {
    offset = batch->next_offset();
    ++st.batches;
    if (batch->validate(false) != wire::batch_error::ok) {
      log_error(where, ": batch at offset ", batch->base_offset(), " is corrupt");
      return storage::errc::corrupt_message;
    }
    if (batch->is_control() || batch->is_transactional()) {
      // Transactional offset commits (TxnOffsetCommit) would wait for their commit marker;
      // Sluice writes none yet.
      ++st.skipped_batches;
      continue;
    }
    if (batch->compression() != 0) {
      log_error(where, ": compressed batch at offset ", batch->base_offset(),
                " (not supported in __consumer_offsets)");
      return storage::errc::invalid_record;
    }
    wire::record_reader records(*batch);
    while (std::optional<wire::record_view> rec = records.next()) {
      ++st.records;
      if (std::error_code ec = apply_record(*rec, out, st)) {
        log_error(where, ": undecodable record at offset ",
                  batch->base_offset() + rec->offset_delta);
        return ec;
      }
    }
    if (!records.ok()) {
      log_error(where, ": malformed records in batch at offset ", batch->base_offset());
      return storage::errc::invalid_record;
    }
  }
  if (batches.error() != wire::batch_error::ok) {
    log_error(where, ": bad batch framing near offset ", offset);
    return storage::errc::corrupt_message;
  }
  return {};
}

std::string name_of(const storage::log& log) {
  return log.tp().topic + "-" + std::to_string(log.tp().partition);
}

}  // namespace

std::error_code read_consumer_offsets(const storage::log& log,
                                      std::map<std::string, persisted_group, std::less<>>& out,
                                      replay_stats* stats) {
  replay_stats local;
  replay_stats& st = stats ? *stats : local;
  const std::string where = name_of(log);
  int64_t offset = log.log_start_offset();
  const int64_t end = log.log_end_offset();
  std::vector<uint8_t> buffer;
  while (offset < end) {
    storage::read_info info;
    if (std::error_code ec = log.read(offset, replay_read_bytes, end, true, info)) return ec;
    if (info.slices.empty()) break;  // nothing below `end` after `offset`: cannot happen
    for (const wire::file_slice& slice : info.slices) {
      if (std::error_code ec = pread_all(slice, buffer)) return ec;
      if (std::error_code ec = replay_batches(buffer, where, offset, out, st)) return ec;
    }
  }
  if (st.skipped_records > 0) {
    log_warn(where, ": skipped ", st.skipped_records, " records with unknown key versions");
  }
  return {};
}

namespace {

// The state of one asynchronous replay: the io thread finds the next slices (never waiting for
// the disk: cold pages are warmed first), a disk job reads and decodes them; the two take turns,
// so the state is never touched by both at once.
struct consumer_offsets_load : std::enable_shared_from_this<consumer_offsets_load> {
  std::shared_ptr<partition> owner;
  storage::disk_executor* disk = nullptr;
  std::string queue;
  std::string where;
  int64_t offset = 0;
  int64_t end = 0;
  int64_t bytes_read = 0;
  int64_t next_progress_bytes = 0;
  loaded_consumer_offsets result;
  std::function<void(std::error_code, loaded_consumer_offsets)> done;

  static constexpr int64_t progress_every_bytes = int64_t{256} << 20;

  void finish(std::error_code ec) {
    if (!ec && result.stats.skipped_records > 0) {
      log_warn(where, ": skipped ", result.stats.skipped_records,
               " records with unknown key versions");
    }
    auto callback = std::move(done);
    callback(ec, std::move(result));
  }

  void step() {
    if (offset >= end) {
      finish({});
      return;
    }
    storage::read_info info;
    std::error_code ec = owner->log().read(offset, replay_read_bytes, end, true, info,
                                           storage::read_mode::cached_only);
    if (ec == storage::errc::would_block && info.cold) {
      owner->log().warm_async(*info.cold, [self = shared_from_this()](std::error_code wec) {
        if (wec) {
          self->finish(wec);
          return;
        }
        self->step();
      });
      return;
    }
    if (ec) {
      finish(ec);
      return;
    }
    if (info.slices.empty()) {
      finish({});
      return;
    }
    auto failure = std::make_shared<std::error_code>();
    disk->submit(
        queue,
        [self = shared_from_this(), slices = std::move(info.slices), failure] {
          std::vector<uint8_t> buffer;
          for (const wire::file_slice& slice : slices) {
            if ((*failure = pread_all(slice, buffer))) return;
            self->bytes_read += static_cast<int64_t>(buffer.size());
            if ((*failure = replay_batches(buffer, self->where, self->offset, self->result.groups,
                                           self->result.stats))) {
              return;
            }
          }
        },
        [self = shared_from_this(), failure] {
          if (*failure) {
            self->finish(*failure);
            return;
          }
          if (self->bytes_read >= self->next_progress_bytes) {
            log_info(self->where, ": loading groups: ", self->bytes_read >> 20,
                     " MiB read, at offset ", self->offset, " of ", self->end);
            self->next_progress_bytes += progress_every_bytes;
          }
          self->step();
        });
  }
};

}  // namespace

void load_consumer_offsets_async(
    std::shared_ptr<partition> p, storage::disk_executor& disk,
    std::function<void(std::error_code, loaded_consumer_offsets)> done) {
  auto load = std::make_shared<consumer_offsets_load>();
  load->where = name_of(p->log());
  load->queue = "load " + load->where;
  load->offset = p->log_start_offset();
  load->end = p->log_end_offset();
  load->next_progress_bytes = consumer_offsets_load::progress_every_bytes;
  load->owner = std::move(p);
  load->disk = &disk;
  load->done = std::move(done);
  load->step();
}

void deliver(const std::map<std::string, persisted_group, std::less<>>& groups,
             group_loader& loader) {
  for (const auto& [group_id, g] : groups) {
    if (g.metadata) loader.load_group(group_id, *g.metadata, g.current_state_timestamp_ms);
    for (const auto& [tp, value] : g.offsets)
      loader.load_offset(group_id, offset_record{tp, value});
  }
}

std::error_code replay_consumer_offsets(const storage::log& log, group_loader& loader,
                                        replay_stats* stats) {
  std::map<std::string, persisted_group, std::less<>> groups;
  if (std::error_code ec = read_consumer_offsets(log, groups, stats)) return ec;
  deliver(groups, loader);
  return {};
}

// ---- writing -----------------------------------------------------------------------------------

namespace {

int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What Kafka's GroupMetadataManager.storeGroup and storeOffsets map alike: a lost leadership or
// a storage failure is NOT_COORDINATOR (the client looks the coordinator up again), too few
// in-sync replicas COORDINATOR_NOT_AVAILABLE (it retries).
std::optional<wire::error_code> coordinator_error(wire::error_code e) {
  using wire::error_code;
  switch (e) {
    case error_code::kafka_storage_error:
    case error_code::not_leader_or_follower:
      return error_code::not_coordinator;
    case error_code::unknown_topic_or_partition:
    case error_code::not_enough_replicas:
    case error_code::not_enough_replicas_after_append:
      return error_code::coordinator_not_available;
    default:
      return std::nullopt;
  }
}

// storeGroup (also applied by Kafka 4's GroupCoordinatorService.normalizeException to failed
// DeleteGroups and OffsetDelete writes): a timeout is REBALANCE_IN_PROGRESS, the members rejoin.
wire::error_code group_write_error(wire::error_code e) {
  if (std::optional<wire::error_code> c = coordinator_error(e)) return *c;
  return e == wire::error_code::request_timed_out ? wire::error_code::rebalance_in_progress
                                                  : wire::error_code::unknown_server_error;
}

// storeOffsets: an oversized commit is INVALID_COMMIT_OFFSET_SIZE, a timeout stays
// REQUEST_TIMED_OUT.
wire::error_code offset_commit_error(wire::error_code e) {
  using wire::error_code;
  if (std::optional<error_code> c = coordinator_error(e)) return *c;
  switch (e) {
    case error_code::message_too_large:
    case error_code::record_list_too_large:
      return error_code::invalid_commit_offset_size;
    case error_code::request_timed_out:
      return error_code::request_timed_out;
    default:
      return error_code::unknown_server_error;
  }
}

}  // namespace

offsets_log::offsets_log(partition& p, boost::asio::any_io_executor executor,
                         std::function<int64_t()> now_ms)
    : partition_(p),
      keep_partition_(p.weak_from_this().lock()),
      executor_(std::move(executor)),
      now_ms_(now_ms ? std::move(now_ms) : std::function<int64_t()>(system_now_ms)) {}

std::shared_ptr<std::vector<uint8_t>> offsets_log::batch_of(
    const std::vector<pending_record>& records, int64_t now) {
  std::vector<wire::record_to_build> to_build;
  to_build.reserve(records.size());
  for (const pending_record& r : records) {
    wire::record_to_build b;
    b.timestamp = now;
    b.key = std::span<const uint8_t>(r.key);
    if (r.value) b.value = std::span<const uint8_t>(*r.value);
    to_build.push_back(b);
  }
  return std::make_shared<std::vector<uint8_t>>(wire::build_record_batch({}, to_build));
}

void offsets_log::append_then(const std::vector<pending_record>& records, int64_t now,
                              completion done, wire::error_code (*map)(wire::error_code),
                              std::string_view what, std::string_view group_id) {
  auto write = std::make_shared<pending_write>();
  write->done = std::move(done);
  in_order_.push_back(write);
  if (records.empty()) {
    complete(write, wire::error_code::none);
    return;
  }
  auto fail_with = [this, write, map, what = std::string(what), group = std::string(group_id)](
                       wire::error_code e, const std::string& why) {
    log_error(consumer_offsets_topic, "-", partition_.index(), ": ", what, " of group ",
              log_safe(group), " failed: ", why);
    complete(write, map(e));
  };
  if (!partition_.is_leader()) {
    // Leadership moved before the coordinator unloaded the group: a follower's log takes only
    // its leader's batches.
    fail_with(wire::error_code::not_leader_or_follower, "this broker no longer leads it");
    return;
  }
  auto fail = [fail_with](std::error_code ec) { fail_with(to_kafka_error(ec), ec.message()); };
  // The batch lives until the append is made: it may wait behind a segment roll.
  auto batch = batch_of(records, now);
  partition_.append(*batch, [this, alive = std::weak_ptr<int>(alive_), batch, write, fail,
                             fail_with](std::error_code ec, const storage::append_info& info) {
    if (alive.expired()) return;
    if (ec) {
      fail(ec);
      return;
    }
    const int64_t end = info.last_offset + 1;
    // Kafka appends group records with acks=all (offsets.commit.required.acks): in a cluster
    // every in-sync replica must have the batch, within offsets.commit.timeout.ms; then the
    // write counts once the broker's durability contract says it is durable.
    auto durable = [this, alive, write, fail, end] {
      partition_.when_acknowledgeable(end, -1, [this, alive, write, fail](std::error_code dec) {
        if (alive.expired()) return;
        if (dec) {
          fail(dec);
          return;
        }
        complete(write, wire::error_code::none);
      });
    };
    if (partition_.tracker() == nullptr || !replication_) {
      durable();
      return;
    }
    struct wait_state {
      bool answered = false;
      timer_handle deadline;
    };
    auto state = std::make_shared<wait_state>();
    auto answer = [alive, state, durable, fail_with](wire::error_code e) {
      if (alive.expired() || state->answered) return;
      state->answered = true;
      state->deadline.cancel();
      if (e != wire::error_code::none) {
        fail_with(e, std::string("waiting for the in-sync replicas: ") +
                         std::string(wire::error_name(e)));
        return;
      }
      durable();
    };
    state->deadline = replication_->timers->schedule(
        replication_->timeout, [answer] { answer(wire::error_code::request_timed_out); });
    const int32_t min_isr =
        replication_->min_insync_replicas ? replication_->min_insync_replicas() : 1;
    partition_.when_replicated(end, min_isr, answer);
  });
}

void offsets_log::complete(const std::shared_ptr<pending_write>& write, wire::error_code result) {
  write->result = result;
  // Completions keep the order of the writes (the coordinator applies each change in its
  // completion), and always run after the call that started them returned.
  while (!in_order_.empty() && in_order_.front()->result) {
    std::shared_ptr<pending_write> next = std::move(in_order_.front());
    in_order_.pop_front();
    boost::asio::post(executor_, [next] { next->done(*next->result); });
  }
}

void offsets_log::store_group(std::string_view group_id, const group_metadata_record& record,
                              completion done) {
  int64_t now = now_ms_();
  std::vector<pending_record> records;
  records.push_back({offsets_record::group_metadata_key(group_id),
                     offsets_record::group_metadata_value(record, now)});
  append_then(records, now, std::move(done), group_write_error, "storing the metadata", group_id);
}

void offsets_log::store_offsets(std::string_view group_id, std::span<const offset_record> offsets,
                                completion done) {
  std::vector<pending_record> records;
  records.reserve(offsets.size());
  for (const offset_record& o : offsets) {
    records.push_back({offsets_record::offset_commit_key(group_id, o.partition),
                       offsets_record::offset_commit_value(o.value)});
  }
  append_then(records, now_ms_(), std::move(done), offset_commit_error, "storing offsets",
              group_id);
}

void offsets_log::remove_offsets(std::string_view group_id,
                                 std::span<const topic_partition> partitions, completion done) {
  std::vector<pending_record> records;
  records.reserve(partitions.size());
  for (const topic_partition& tp : partitions)
    records.push_back({offsets_record::offset_commit_key(group_id, tp), std::nullopt});
  append_then(records, now_ms_(), std::move(done), group_write_error, "tombstones for offsets",
              group_id);
}

void offsets_log::remove_group(std::string_view group_id,
                               std::span<const topic_partition> partitions, completion done) {
  std::vector<pending_record> records;
  records.reserve(partitions.size() + 1);
  for (const topic_partition& tp : partitions)
    records.push_back({offsets_record::offset_commit_key(group_id, tp), std::nullopt});
  records.push_back({offsets_record::group_metadata_key(group_id), std::nullopt});
  append_then(records, now_ms_(), std::move(done), group_write_error, "tombstones", group_id);
}

}  // namespace sluice::server
