#pragma once
// Shared helpers for the storage tests: a temp-dir fixture that cleans up, batch builders, and a
// way to turn read() slices back into bytes.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "storage/log.h"
#include "storage/log_sink.h"
#include "wire/record_batch.h"

namespace sluice::storage::testing {

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

  std::filesystem::path dir_;
  std::vector<std::string> events_;
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
