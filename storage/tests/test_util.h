#pragma once
// Shared helpers for the storage tests: a temp-dir fixture that cleans up, batch builders, and a
// way to turn read() slices back into bytes.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "storage/disk_executor.h"
#include "storage/file_io.h"
#include "storage/log.h"
#include "storage/log_sink.h"
#include "wire/record_batch.h"

namespace sluice::storage::testing {

// A disk executor that runs nothing until the test says so, on the test's thread. Jobs run in
// submission order (which keeps every queue in order), each followed by its completion.
class manual_disk_executor : public disk_executor {
 public:
  void submit(std::string queue, std::function<void()> work, std::function<void()> done) override {
    jobs_.push_back({std::move(queue), std::move(work), std::move(done)});
  }
  // Runs one job and its completion; false when there was none.
  bool run_one() {
    if (jobs_.empty()) return false;
    job j = std::move(jobs_.front());
    jobs_.pop_front();
    j.work();
    j.done();
    ++ran_;
    return true;
  }
  // Runs the next job's work but not its completion, which waits for complete_one(): the window
  // in which a real executor's completion is still on its way to the owner's thread. False when
  // there was no job.
  bool run_work_only() {
    if (jobs_.empty()) return false;
    job j = std::move(jobs_.front());
    jobs_.pop_front();
    j.work();
    ++ran_;
    completions_.push_back(std::move(j.done));
    return true;
  }
  // Runs the oldest completion held back by run_work_only(); false when there was none.
  bool complete_one() {
    if (completions_.empty()) return false;
    std::function<void()> done = std::move(completions_.front());
    completions_.pop_front();
    done();
    return true;
  }
  // Runs every job, including those that completions submit; returns how many ran.
  size_t drain() {
    size_t n = 0;
    while (run_one())
      ++n;
    return n;
  }
  size_t pending() const { return jobs_.size(); }
  size_t ran() const { return ran_; }
  std::vector<std::string> pending_queues() const {
    std::vector<std::string> out;
    for (const job& j : jobs_)
      out.push_back(j.queue);
    return out;
  }

 private:
  struct job {
    std::string queue;
    std::function<void()> work;
    std::function<void()> done;
  };
  std::deque<job> jobs_;
  std::deque<std::function<void()>> completions_;
  size_t ran_ = 0;
};

// log::open's load states in the words the tests use.
inline load_state clean_load() {
  load_state s;
  s.clean_shutdown = true;
  return s;
}
inline load_state crash_load(int64_t recovery_point = 0, int64_t log_start_offset = 0) {
  load_state s;
  s.recovery_point = recovery_point;
  s.log_start_offset = log_start_offset;
  return s;
}

// log::append, completing the roll it may start (the disk executor runs its jobs) and appending
// again: what the broker's partition does, in one blocking call.
inline std::error_code append_through_roll(log& l, manual_disk_executor& disk,
                                           std::span<uint8_t> batches, int32_t leader_epoch,
                                           append_info& out, int64_t now_ms = wall_clock_ms()) {
  std::error_code ec = l.append(batches, leader_epoch, out, now_ms);
  if (ec != errc::roll_in_progress) return ec;
  disk.drain();
  return l.append(batches, leader_epoch, out, now_ms);
}

// log::truncate_to run to its end (the disk executor runs every job), as the broker's replica
// manager awaits it: its result.
inline std::error_code truncate_through(log& l, manual_disk_executor& disk, int64_t offset) {
  std::optional<std::error_code> result;
  l.truncate_to(offset, [&result](std::error_code ec) { result = ec; });
  disk.drain();
  EXPECT_TRUE(result.has_value()) << "truncate_to(" << offset << ") never completed";
  return result.value_or(make_error_code(errc::log_closed));
}

class temp_dir_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-storage-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    // Capture storage's log lines so tests can check what was reported.
    set_log_sink([this](log_level, std::string_view line) { events_.emplace_back(line); });
  }
  void TearDown() override {
    set_log_sink({});
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  log_env env() { return {default_file_system(), disk_}; }
  std::unique_ptr<log> open_log_at(const std::filesystem::path& dir, topic_partition tp,
                                   log_config cfg, const load_state& state, std::error_code& ec) {
    return log::open(dir, std::move(tp), cfg, env(), state, ec);
  }

  std::filesystem::path dir_;
  std::vector<std::string> events_;
  manual_disk_executor disk_;
};

// An uncompressed producer batch of `records` records with timestamps first_ts, first_ts +
// ts_step, ... and values of `value_size` bytes.
inline std::vector<uint8_t> make_batch(int records, int64_t first_ts = 1000, size_t value_size = 10,
                                       int64_t ts_step = 1) {
  std::vector<std::vector<uint8_t>> values(records, std::vector<uint8_t>(value_size, 'x'));
  std::vector<wire::record_to_build> rs;
  for (int i = 0; i < records; ++i) {
    rs.push_back({first_ts + i * ts_step, std::nullopt, std::span<const uint8_t>(values[i])});
  }
  return wire::build_record_batch({}, rs);
}

// A COMMIT transaction marker at `offset`: EndTransactionMarker key {version 0, type 1 = COMMIT},
// value {version 0, coordinator epoch}.
inline std::vector<uint8_t> commit_marker(int64_t offset, int64_t producer_id, int16_t epoch,
                                          int32_t coordinator_epoch, int64_t ts) {
  static const uint8_t key[] = {0, 0, 0, 1};
  const uint8_t value[] = {0,
                           0,
                           static_cast<uint8_t>(coordinator_epoch >> 24),
                           static_cast<uint8_t>(coordinator_epoch >> 16),
                           static_cast<uint8_t>(coordinator_epoch >> 8),
                           static_cast<uint8_t>(coordinator_epoch)};
  wire::record_to_build r{ts, std::span(key), std::span<const uint8_t>(value)};
  wire::batch_build_options o;
  o.base_offset = offset;
  o.producer_id = producer_id;
  o.producer_epoch = epoch;
  o.attributes = wire::batch_attribute::transactional | wire::batch_attribute::control;
  return wire::build_record_batch(o, std::span(&r, 1));
}

// The same from an idempotent producer: `records` records starting at sequence `base_sequence`.
// Timestamped now by default, since a reload drops producers idle for producer.id.expiration.ms.
inline std::vector<uint8_t> make_producer_batch(int64_t producer_id, int16_t epoch,
                                                int32_t base_sequence, int records = 1,
                                                int64_t first_ts = wall_clock_ms()) {
  std::vector<uint8_t> value(10, 'p');
  std::vector<wire::record_to_build> rs;
  for (int i = 0; i < records; ++i) {
    rs.push_back({first_ts + i, std::nullopt, std::span<const uint8_t>(value)});
  }
  return wire::build_record_batch(
      {.producer_id = producer_id, .producer_epoch = epoch, .base_sequence = base_sequence}, rs);
}

inline std::vector<uint8_t> file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline std::string file_text(const std::filesystem::path& p) {
  std::vector<uint8_t> b = file_bytes(p);
  return {b.begin(), b.end()};
}

// The bytes a read() result would put on the wire.
inline std::vector<uint8_t> slurp(const read_info& info) {
  std::vector<uint8_t> out;
  for (const wire::file_slice& s : info.slices) {
    std::vector<uint8_t> buf(static_cast<size_t>(s.length));
    ssize_t n = ::pread(s.fd, buf.data(), buf.size(), s.position);
    EXPECT_EQ(n, s.length);
    out.insert(out.end(), buf.begin(), buf.end());
  }
  return out;
}

struct batch_summary {
  int64_t base_offset;
  int64_t last_offset;
  bool operator==(const batch_summary&) const = default;
};

// The batches in `bytes`, each checked to be whole and CRC-valid.
inline std::vector<batch_summary> batches_in(const std::vector<uint8_t>& bytes) {
  std::vector<batch_summary> out;
  wire::batch_reader r(bytes);
  while (auto b = r.next()) {
    EXPECT_EQ(b->validate(), wire::batch_error::ok);
    out.push_back({b->base_offset(), b->last_offset()});
  }
  EXPECT_EQ(r.error(), wire::batch_error::ok);
  return out;
}

inline std::string seg_name(int64_t base, const char* suffix) {
  std::string digits = std::to_string(base);
  return std::string(20 - digits.size(), '0') + digits + suffix;
}

}  // namespace sluice::storage::testing
