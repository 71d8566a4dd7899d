// Writes the seed corpora of the fuzz targets (fuzz/README.md "Seeds"):
//
//   build-fuzz/fuzz/fuzz_make_seeds fuzz/corpus wire/tests/captured
//
// request_decode/: every request of wire/schema at its lowest and highest version, filled by the
// generated test samples (so every API starts from a well-formed input), plus the request frames
// captured from kcat in wire/tests/captured without their size prefix. record_batch/ and
// segment_recovery/: a few valid batches and segments built with wire::build_record_batch.
// Deterministic: re-running rewrites the same files.

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "wire/codec.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/messages.h"
#include "wire/generated/testing/message_samples.h"
#include "wire/record_batch.h"

namespace {

using namespace sluice;
namespace fs = std::filesystem;

using bytes = std::vector<uint8_t>;

void write_file(const fs::path& path, std::span<const uint8_t> b) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

// ---- request_decode ---------------------------------------------------------------------------

template <class Req>
bytes sample_request(int16_t version) {
  Req body;
  wire::testing::fill_sample(body, version, /*seed=*/1);
  wire::request_header header;
  header.request_api_key = Req::api_key;
  header.request_api_version = version;
  header.correlation_id = 7;
  header.client_id = "fuzz";
  wire::frame f;
  {
    wire::writer w(f);
    header.encode(w, wire::request_header_version(Req::api_key, version));
    body.encode(w, version);
  }
  return f.bytes;
}

template <class Req>
void write_request_samples(const fs::path& dir) {
  const std::string name(wire::find_api_spec(Req::api_key)->name);
  for (int16_t v : {Req::min_version, Req::max_version}) {
    write_file(dir / (name + "_v" + std::to_string(v)), sample_request<Req>(v));
  }
}

template <class... T>
void write_all_request_samples(const fs::path& dir, wire::message_list<T...>) {
  (
      [&] {
        if constexpr (std::is_same_v<T, typename wire::api<T::api_key>::request>) {
          write_request_samples<T>(dir);
        }
      }(),
      ...);
}

// A captured .hex file is one whole frame: int32 size, header, body. The fuzz input has no size.
void write_captured_requests(const fs::path& captured, const fs::path& dir) {
  for (const fs::directory_entry& e : fs::directory_iterator(captured)) {
    const std::string file = e.path().filename().string();
    if (e.path().extension() != ".hex" || file.find("_request_") == std::string::npos) continue;
    std::ifstream in(e.path());
    std::string hex((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes frame;
    int high = -1;
    for (char c : hex) {
      if (!std::isxdigit(static_cast<unsigned char>(c))) continue;
      int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
      if (high < 0) {
        high = d;
      } else {
        frame.push_back(static_cast<uint8_t>(high << 4 | d));
        high = -1;
      }
    }
    if (frame.size() <= 4) continue;
    write_file(dir / ("captured_" + e.path().stem().string()),
               std::span<const uint8_t>(frame).subspan(4));
  }
}

// ---- batches ----------------------------------------------------------------------------------

bytes batch(int64_t base_offset, int records, int64_t first_ts = 1700000000000,
            wire::batch_build_options options = {}) {
  std::vector<bytes> keys, values;
  for (int i = 0; i < records; ++i) {
    keys.push_back(bytes{'k', static_cast<uint8_t>('0' + i)});
    values.push_back(bytes(5 + i, static_cast<uint8_t>('a' + i)));
  }
  std::vector<wire::record_to_build> rs;
  for (int i = 0; i < records; ++i) {
    std::optional<std::span<const uint8_t>> key;
    if (i % 2 == 0) key = keys[i];  // null keys too
    rs.push_back({first_ts + i, key, std::span<const uint8_t>(values[i])});
  }
  options.base_offset = base_offset;
  return wire::build_record_batch(options, rs);
}

// A batch whose attributes claim a codec: the records are then one opaque blob.
bytes compressed_batch(int64_t base_offset) {
  bytes b = batch(base_offset, 3);
  wire::mutable_record_batch m(b);
  b[wire::batch_field::attributes + 1] |= 0x01;  // gzip
  m.update_crc();
  return b;
}

const wire::batch_build_options producer{
    .producer_id = 1000, .producer_epoch = 0, .base_sequence = 0};

wire::batch_build_options producer_at(int32_t sequence) {
  wire::batch_build_options o = producer;
  o.base_sequence = sequence;
  return o;
}

void write_batches(const fs::path& dir) {
  write_file(dir / "one_batch", batch(0, 2));
  write_file(dir / "two_batches", concat({batch(0, 1), batch(1, 3)}));
  write_file(dir / "idempotent", batch(5, 2, 1700000000000, producer));
  write_file(dir / "compressed", compressed_batch(0));
  write_file(dir / "empty_batch", batch(0, 0));
}

void write_segments(const fs::path& dir) {
  write_file(dir / "consecutive", concat({batch(0, 2), batch(2, 3), batch(5, 1)}));
  write_file(dir / "gap", concat({batch(0, 1), batch(10, 2)}));
  write_file(dir / "producer", concat({batch(0, 2, 1700000000000, producer),
                                       batch(2, 1, 1700000000002, producer_at(2))}));
  write_file(dir / "compressed", concat({compressed_batch(0), batch(3, 1)}));
  bytes torn = concat({batch(0, 2), batch(2, 2)});
  torn.resize(torn.size() - 7);
  write_file(dir / "torn_tail", torn);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <fuzz/corpus> <wire/tests/captured>\n", argv[0]);
    return 2;
  }
  const fs::path corpus = argv[1];
  write_all_request_samples(corpus / "request_decode", wire::all_messages{});
  write_captured_requests(argv[2], corpus / "request_decode");
  write_batches(corpus / "record_batch");
  write_segments(corpus / "segment_recovery");
  return 0;
}
