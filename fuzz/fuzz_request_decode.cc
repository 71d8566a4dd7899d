// libFuzzer target: one request as the broker reads it off a socket (the frame without its int32
// size prefix: request header, then body). The header's first four bytes, api key and api
// version, pick the generated codec as server/api_registry.cc does; header and body are decoded
// the same way. A decoded request is re-encoded and decoded again, and both encodings must be the
// same bytes, exactly size() long.
//
// Keys and versions are those of wire/schema (wire::all_api_specs()), a superset of what the
// broker serves: the server's registry would drag in Asio and every handler, and the codec is the
// same for a version the broker does not serve.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <type_traits>
#include <vector>

#include "wire/codec.h"
#include "wire/frame.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/messages.h"
#include "wire/generated/request_header.h"

namespace {

using namespace sluice;

[[noreturn]] void fail(const char* what, int16_t key, int16_t version) {
  std::fprintf(stderr, "fuzz_request_decode: API %d v%d: %s\n", key, version, what);
  std::abort();
}

template <class Req>
struct request {
  wire::request_header header;
  Req body;
};

// As api_registry.cc's invoke(): the header at the version the API key and version call for,
// then the body. Bytes after the body are ignored there too.
template <class Req>
bool decode(std::span<uint8_t> bytes, int16_t key, int16_t version, request<Req>& out,
            size_t& consumed) {
  wire::reader r(bytes);
  if (!out.header.decode(r, wire::request_header_version(key, version))) return false;
  if (!out.body.decode(r, version)) return false;
  consumed = r.position();
  return true;
}

template <class Req>
std::vector<uint8_t> encode(const request<Req>& req, int16_t key, int16_t version) {
  const int16_t header_version = wire::request_header_version(key, version);
  wire::frame f;
  {
    wire::writer w(f);
    req.header.encode(w, header_version);
    req.body.encode(w, version);
  }
  // A decoded request holds its records as bytes; only responses carry file slices.
  if (!f.slices.empty()) fail("a decoded request encoded with file slices", key, version);
  const int64_t expected = req.header.size(header_version) + req.body.size(version);
  if (expected != static_cast<int64_t>(f.bytes.size())) {
    fail("size() differs from the encoded length", key, version);
  }
  return std::move(f.bytes);
}

template <class Req>
void round_trip(std::span<uint8_t> input, int16_t key, int16_t version) {
  request<Req> first;
  size_t consumed = 0;
  if (!decode(input, key, version, first, consumed)) return;
  std::vector<uint8_t> encoded = encode(first, key, version);

  // `second` may point into `encoded` (records), which outlives it.
  request<Req> second;
  if (!decode(std::span<uint8_t>(encoded), key, version, second, consumed)) {
    fail("the re-encoded request does not decode", key, version);
  }
  if (consumed != encoded.size()) fail("the re-encoded request has trailing bytes", key, version);
  if (encode(second, key, version) != encoded) {
    fail("decode-encode is not stable: the second encoding differs", key, version);
  }
}

// KIP-511: an ApiVersions request at a version the broker does not know still gets its header
// read, at the highest version known, to answer UNSUPPORTED_VERSION.
void round_trip_header_only(std::span<uint8_t> input, int16_t key, int16_t max_version) {
  const int16_t header_version = wire::request_header_version(key, max_version);
  wire::reader r(input);
  wire::request_header first;
  if (!first.decode(r, header_version)) return;
  wire::frame f;
  {
    wire::writer w(f);
    first.encode(w, header_version);
  }
  wire::reader again(f.bytes);
  wire::request_header second;
  if (!second.decode(again, header_version) || again.remaining() != 0) {
    fail("the re-encoded header does not decode", key, max_version);
  }
  wire::frame g;
  {
    wire::writer w(g);
    second.encode(w, header_version);
  }
  if (g.bytes != f.bytes) fail("header decode-encode is not stable", key, max_version);
}

using round_trip_fn = void (*)(std::span<uint8_t>, int16_t, int16_t);

struct request_entry {
  int16_t key;
  round_trip_fn run;
};

template <class T>
constexpr bool is_request = std::is_same_v<T, typename wire::api<T::api_key>::request>;

template <class... T>
std::vector<request_entry> request_table(wire::message_list<T...>) {
  std::vector<request_entry> table;
  ((is_request<T> ? table.push_back({T::api_key, &round_trip<T>}) : void()), ...);
  return table;
}

const std::vector<request_entry>& requests() {
  static const std::vector<request_entry> table = request_table(wire::all_messages{});
  return table;
}

round_trip_fn find_round_trip(int16_t key) {
  for (const request_entry& e : requests()) {
    if (e.key == key) return e.run;
  }
  return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Every API key of the spec table must reach a codec here, or part of the protocol would go
  // unfuzzed without anyone noticing.
  for (const wire::api_spec& spec : wire::all_api_specs()) {
    if (find_round_trip(spec.key) == nullptr) fail("no request codec", spec.key, 0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  // A copy the codec may point into, sized exactly so that ASan catches any read past the end.
  std::vector<uint8_t> input(data, data + size);
  const auto key = static_cast<int16_t>((input[0] << 8) | input[1]);
  const auto version = static_cast<int16_t>((input[2] << 8) | input[3]);
  const wire::api_spec* spec = wire::find_api_spec(key);
  if (spec == nullptr) return 0;
  if (version < spec->min_version || version > spec->max_version) {
    if (key == wire::api_versions_request::api_key) {
      round_trip_header_only(input, key, spec->max_version);
    }
    return 0;
  }
  find_round_trip(key)(input, key, version);
  return 0;
}
