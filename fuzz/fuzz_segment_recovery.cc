// libFuzzer target: crash recovery of one partition whose only segment file holds the input.
// The input becomes t-0/00000000000000000000.log in a fresh directory, the log is opened as after
// an unclean shutdown with nothing known to be flushed, and what recovery kept is read back batch
// by batch; then one batch is appended. Checked: the offsets are ordered, every read inside the
// log succeeds or fails with a storage error, every batch read back is valid and holds the offset
// asked for, and the append lands at the old log end offset.
//
// Kept to the public log API (open, read, append, close). Storage's log lines are dropped unless
// SLUICE_FUZZ_LOG is set (for reproducing).

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "storage/disk_executor.h"
#include "storage/errc.h"
#include "storage/file_io.h"
#include "storage/log.h"
#include "storage/log_sink.h"
#include "wire/record_batch.h"

namespace {

using namespace sluice;

// Runs a job when the target says so, on the fuzzer's thread. Opening and the small append here
// submit none (no roll, no sync); any that appear are run before the log is closed.
class deferred_executor : public storage::disk_executor {
 public:
  void submit(std::string, std::function<void()> work, std::function<void()> done) override {
    jobs_.push_back({std::move(work), std::move(done)});
  }
  void run_all() {
    while (!jobs_.empty()) {
      auto job = std::move(jobs_.front());
      jobs_.erase(jobs_.begin());
      job.first();
      job.second();
    }
  }

 private:
  std::vector<std::pair<std::function<void()>, std::function<void()>>> jobs_;
};

// Reads per batch: enough to hit the first, middle and last offsets of each.
constexpr int64_t max_reads_per_batch = 8;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_segment_recovery: %s\n", what.c_str());
  std::abort();
}

std::filesystem::path& scratch_root() {
  static std::filesystem::path root;
  return root;
}

// The bytes of a read's slices, read back from the segment files.
std::vector<uint8_t> slice_bytes(const storage::read_info& info) {
  std::vector<uint8_t> out;
  for (const wire::file_slice& s : info.slices) {
    size_t at = out.size();
    out.resize(at + static_cast<size_t>(s.length));
    ssize_t n = ::pread(s.fd, out.data() + at, static_cast<size_t>(s.length), s.position);
    if (n != s.length) fail("a slice extends past its file");
  }
  return out;
}

// A read at `offset` must give whole valid batches, the first one holding `offset` or, in a gap
// between batches, the next one above it. Returns that first batch's next offset, or nullopt
// when the read failed with a storage error (allowed, but the walk stops there).
std::optional<int64_t> check_read(const storage::log& log, int64_t offset) {
  storage::read_info info;
  const int64_t end = log.log_end_offset();
  std::error_code ec = log.read(offset, /*max_bytes=*/1, end, /*min_one=*/true, info);
  if (ec) {
    if (ec.category() != storage::storage_category()) fail("read failed: " + ec.message());
    return std::nullopt;
  }
  std::vector<uint8_t> bytes = slice_bytes(info);
  if (static_cast<int64_t>(bytes.size()) != info.bytes) fail("read_info::bytes is wrong");
  if (bytes.empty()) fail("a read below the log end offset returned nothing");
  wire::batch_reader reader(bytes);
  std::optional<wire::record_batch> first;
  while (std::optional<wire::record_batch> b = reader.next()) {
    if (b->validate(/*check_record_count=*/false) != wire::batch_error::ok) {
      fail("recovery kept an invalid batch");
    }
    if (b->next_offset() > end) fail("a read returned offsets at or past the log end");
    if (!first) first = b;
  }
  if (reader.error() != wire::batch_error::ok) fail("a read returned a partial batch");
  if (first->last_offset() < offset) fail("a read started below the offset asked for");
  return first->next_offset();
}

void check_log(storage::log& log, size_t input_size) {
  const int64_t start = log.log_start_offset();
  const int64_t end = log.log_end_offset();
  if (end < start) {
    fail("log end offset " + std::to_string(end) + " below log start offset " +
         std::to_string(start));
  }
  if (start < 0) fail("negative log start offset");
  if (log.size_bytes() > static_cast<int64_t>(input_size)) fail("recovery grew the segment");
  if (log.recovery_point() != end) fail("the recovery point is not the log end after recovery");

  // Walk the log batch by batch; inside each batch, read a few offsets.
  int64_t offset = start;
  while (offset < end) {
    std::optional<int64_t> next = check_read(log, offset);
    if (!next) break;
    if (*next <= offset) fail("a read did not move forward");
    const int64_t step = std::max<int64_t>(1, (*next - offset) / max_reads_per_batch);
    for (int64_t o = offset + step; o < *next; o += step) {
      std::optional<int64_t> again = check_read(log, o);
      if (again && *again != *next) fail("offsets of one batch read different batches");
    }
    offset = *next;
  }

  storage::read_info info;
  if (log.read(end, 1, end, true, info) || !info.slices.empty()) {
    fail("a read at the log end offset is not empty");
  }
  if (end < INT64_MAX &&
      log.read(end + 1, 1, end, true, info) != storage::errc::offset_out_of_range) {
    fail("a read past the log end offset is not out of range");
  }
}

void check_append(storage::log& log, deferred_executor& disk) {
  const int64_t end = log.log_end_offset();
  const std::vector<uint8_t> value(3, 'v');
  const wire::record_to_build record{1000, std::nullopt, std::span<const uint8_t>(value)};
  std::vector<uint8_t> batch = wire::build_record_batch({}, std::span(&record, 1));
  storage::append_info info;
  std::error_code ec = log.append(batch, 0, info, /*now_ms=*/2000);
  if (ec == storage::errc::roll_in_progress) {
    // A recovered segment may leave no room for the next offset (its offsets reach 2^31 - 1 past
    // its base): the log rolls first, as Kafka's does, and the append then lands in the new one.
    disk.run_all();
    ec = log.append(batch, 0, info, /*now_ms=*/2000);
  }
  if (ec) {
    // Only a log whose offsets are about to run out may refuse a small valid batch.
    if (end < INT64_MAX - INT32_MAX) fail("appending a valid batch failed: " + ec.message());
    return;
  }
  if (info.base_offset != end || info.last_offset != end) {
    fail("the append did not land at the log end offset " + std::to_string(end));
  }
  if (log.log_end_offset() != end + 1) fail("the append did not move the log end offset by one");
  if (check_read(log, end) != end + 1) fail("the appended batch does not read back");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-fuzz-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) fail("cannot create a scratch directory");
  scratch_root() = tmpl;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(scratch_root(), ec);
  });
  if (std::getenv("SLUICE_FUZZ_LOG") == nullptr) {
    storage::set_log_sink([](storage::log_level, std::string_view) {});
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path dir = scratch_root() / "t-0";
  std::error_code fs_ec;
  std::filesystem::remove_all(dir, fs_ec);
  std::filesystem::create_directory(dir, fs_ec);
  if (fs_ec) fail("cannot create " + dir.string());
  {
    std::ofstream out(dir / "00000000000000000000.log", std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) fail("cannot write the segment");
  }

  std::error_code ec;
  deferred_executor disk;
  storage::load_state after_a_crash;
  after_a_crash.recovery_point = 0;  // nothing known to be durable: everything is checked
  std::unique_ptr<storage::log> log =
      storage::log::open(dir, {"t", 0}, storage::log_config{},
                         {storage::default_file_system(), disk}, after_a_crash, ec);
  if (log) {
    check_log(*log, size);
    check_append(*log, disk);
    disk.run_all();
    log->close();
  } else if (ec.category() != storage::storage_category()) {
    fail("open failed outside storage's errors: " + ec.message());
  }
  log.reset();
  std::filesystem::remove_all(dir, fs_ec);
  return 0;
}
