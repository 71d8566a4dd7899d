// Golden vectors captured from real client traffic: kcat 1.7.1 on librdkafka 2.0.2 talking to
// sluice through wire/tests/capture/capture_proxy.py (wire/README.md, "Captured vectors").
//
// Each file in wire/tests/captured/ is one whole frame as it crossed the socket (int32 size,
// header, body), named <api>_<request|response>_v<N>_<NNN>.hex; a request and its response share
// <NNN>. For every file, whatever is in the directory:
//   - the header and body decode with the generated message of that API and version, and use up
//     every byte (a response's header version follows from its API and version; ApiVersions'
//     is always v0);
//   - size prefix, header and body re-encode to the identical bytes, and size() agrees;
//   - every proper prefix of the body fails to decode.
// Then a few facts about what the client sent and the broker answered, which also check that the
// capture is whole (each response pairs with its request, offsets add up across files).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "wire/generated/api_specs.h"
#include "wire/generated/messages.h"
#include "wire/record_batch.h"
#include "wire/tests/test_util.h"

namespace sluice::wire {
namespace {

using testing::encode_bytes;
using testing::from_hex;
using testing::to_hex;

// ---- reading the directory -------------------------------------------------------------------

struct capture_name {
  std::string api;  // snake_case, e.g. "list_offsets"
  bool request = false;
  int16_t version = 0;
  int index = 0;
};

std::optional<capture_name> parse_name(const std::string& file) {
  static const std::regex re(R"(^([a-z_]+)_(request|response)_v(\d+)_(\d{3})\.hex$)");
  std::smatch m;
  if (!std::regex_match(file, m, re)) return std::nullopt;
  return capture_name{m[1], m[2] == "request", static_cast<int16_t>(std::stoi(m[3])),
                      std::stoi(m[4])};
}

// "ListOffsets" -> "list_offsets", the naming of capture_proxy.py.
std::string snake_case(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') {
      if (!out.empty()) out.push_back('_');
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

const api_spec* find_api_by_name(const std::string& api) {
  for (const api_spec& s : all_api_specs()) {
    if (snake_case(s.name) == api) return &s;
  }
  return nullptr;
}

std::filesystem::path captured_dir() {
  return SLUICE_CAPTURED_DIR;
}

// File names (not paths), sorted.
std::vector<std::string> captured_files() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(captured_dir(), ec)) {
    if (entry.path().extension() == ".hex") out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> read_capture(const std::string& file) {
  std::ifstream in(captured_dir() / file);
  std::stringstream text;
  text << in.rdbuf();
  return from_hex(text.str());
}

// ---- decoding a frame ------------------------------------------------------------------------

template <class M>
constexpr bool is_request = std::is_same_v<M, typename api<M::api_key>::request>;

// One decoded frame. Records in `body` point into `bytes`, so it is neither copied nor moved.
template <class M>
struct captured_frame {
  using header_type = std::conditional_t<is_request<M>, request_header, response_header>;

  captured_frame() = default;
  captured_frame(const captured_frame&) = delete;
  captured_frame& operator=(const captured_frame&) = delete;

  std::string file;
  int index = 0;
  int16_t version = 0;
  int16_t header_version = 0;
  std::vector<uint8_t> bytes;
  size_t body_offset = 0;  // in `bytes`
  header_type header;
  M body;
};

template <class M>
int16_t header_version_of(int16_t version) {
  if constexpr (is_request<M>) {
    return request_header_version(M::api_key, version);
  } else {
    return response_header_version(M::api_key, version);
  }
}

// Decodes `file` as a frame of M at the version its name gives; failures are reported through
// gtest, with the file name.
template <class M>
std::unique_ptr<captured_frame<M>> load(const std::string& file) {
  SCOPED_TRACE(file);
  auto name = parse_name(file);
  EXPECT_TRUE(name.has_value());
  auto f = std::make_unique<captured_frame<M>>();
  if (!name) return f;
  f->file = file;
  f->index = name->index;
  f->version = name->version;
  f->header_version = header_version_of<M>(name->version);
  f->bytes = read_capture(file);

  reader r(f->bytes);
  int32_t size = r.i32();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(static_cast<size_t>(size), r.remaining()) << "size prefix";
  if constexpr (is_request<M>) {
    // Request header v1 is a prefix of v2: key and version can be read before choosing.
    request_header probe;
    reader pr(std::span<uint8_t>(f->bytes).subspan(4));
    EXPECT_TRUE(probe.decode(pr, 1));
    EXPECT_EQ(probe.request_api_key, M::api_key);
    EXPECT_EQ(probe.request_api_version, f->version);
  }
  EXPECT_TRUE(f->header.decode(r, f->header_version)) << "header";
  f->body_offset = r.position();
  EXPECT_TRUE(f->body.decode(r, f->version)) << "body, failed at byte " << r.position();
  EXPECT_EQ(r.remaining(), 0u) << "trailing bytes";
  return f;
}

// All captures of M, in <NNN> order.
template <class M>
std::vector<std::unique_ptr<captured_frame<M>>> load_all() {
  const api_spec* spec = find_api_spec(M::api_key);
  std::vector<std::unique_ptr<captured_frame<M>>> out;
  for (const std::string& file : captured_files()) {
    auto name = parse_name(file);
    if (name && name->api == snake_case(spec->name) && name->request == is_request<M>) {
      out.push_back(load<M>(file));
    }
  }
  return out;
}

// The generic check of one file, M chosen from its name.
template <class M>
void check_file(const std::string& file) {
  auto f = load<M>(file);
  SCOPED_TRACE(file);
  if (::testing::Test::HasFailure()) return;
  frame out;
  {
    writer w(out);
    w.i32(static_cast<int32_t>(f->bytes.size() - 4));
    f->header.encode(w, f->header_version);
    f->body.encode(w, f->version);
  }
  EXPECT_TRUE(out.slices.empty());
  EXPECT_EQ(to_hex(out.bytes), to_hex(f->bytes)) << "re-encoded frame differs";
  EXPECT_EQ(f->header.size(f->header_version), static_cast<int64_t>(f->body_offset - 4));
  EXPECT_EQ(f->body.size(f->version), static_cast<int64_t>(f->bytes.size() - f->body_offset));
  testing::expect_prefixes_fail<M>(std::span<const uint8_t>(f->bytes).subspan(f->body_offset),
                                   f->version);
}

template <class... M>
bool check_file_as(int16_t key, bool request, const std::string& file, message_list<M...>) {
  return ((M::api_key == key && is_request<M> == request ? (check_file<M>(file), true) : false) ||
          ...);
}

// ---- every file ------------------------------------------------------------------------------

class captured_file : public ::testing::TestWithParam<std::string> {};

TEST_P(captured_file, decodes_whole_and_reencodes_identically) {
  const std::string& file = GetParam();
  auto name = parse_name(file);
  ASSERT_TRUE(name.has_value()) << file << ": not <api>_<request|response>_v<N>_<NNN>.hex";
  const api_spec* spec = find_api_by_name(name->api);
  ASSERT_NE(spec, nullptr) << file << ": unknown API " << name->api;
  ASSERT_GE(name->version, spec->min_version);
  ASSERT_LE(name->version, spec->max_version);
  EXPECT_TRUE(check_file_as(spec->key, name->request, file, all_messages{}));
}

INSTANTIATE_TEST_SUITE_P(captured, captured_file, ::testing::ValuesIn(captured_files()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.substr(0, info.param.size() - 4);  // no ".hex"
                         });

TEST(captured, every_response_pairs_with_its_request) {
  std::vector<std::string> files = captured_files();
  std::set<std::string> names(files.begin(), files.end());
  int responses = 0;
  for (const std::string& file : files) {
    auto name = parse_name(file);
    ASSERT_TRUE(name.has_value()) << file;
    if (name->request) continue;
    ++responses;
    std::string request = file;
    request.replace(request.find("_response_"), 10, "_request_");
    ASSERT_TRUE(names.count(request)) << file << " has no " << request;
    // Correlation ids: request bytes 8..11, response bytes 4..7.
    std::vector<uint8_t> q = read_capture(request);
    std::vector<uint8_t> p = read_capture(file);
    ASSERT_GE(q.size(), 12u);
    ASSERT_GE(p.size(), 8u);
    EXPECT_TRUE(std::equal(p.begin() + 4, p.begin() + 8, q.begin() + 8)) << file;
  }
  // The set re-captured by capture_proxy.py --broker covers these APIs.
  for (std::string api :
       {"api_versions", "metadata", "produce", "fetch", "list_offsets", "find_coordinator"}) {
    EXPECT_TRUE(std::any_of(files.begin(), files.end(),
                            [&](const std::string& f) { return f.starts_with(api + "_"); }))
        << "no capture of " << api;
  }
  EXPECT_GE(responses, 6);
}

TEST(captured, requests_come_from_librdkafka) {
  // librdkafka's default client.id, which kcat keeps.
  for (const auto& f : load_all<api_versions_request>())
    EXPECT_EQ(f->header.client_id, "rdkafka");
  for (const auto& f : load_all<metadata_request>())
    EXPECT_EQ(f->header.client_id, "rdkafka");
  for (const auto& f : load_all<produce_request>())
    EXPECT_EQ(f->header.client_id, "rdkafka");
  for (const auto& f : load_all<fetch_request>())
    EXPECT_EQ(f->header.client_id, "rdkafka");
  for (const auto& f : load_all<list_offsets_request>())
    EXPECT_EQ(f->header.client_id, "rdkafka");
  for (const auto& f : load_all<find_coordinator_request>())
    EXPECT_EQ(f->header.client_id, "rdkafka");
}

// ---- ApiVersions -----------------------------------------------------------------------------

TEST(captured, api_versions) {
  // librdkafka opens every connection with ApiVersions v3 (flexible, request header v2).
  auto requests = load_all<api_versions_request>();
  ASSERT_FALSE(requests.empty());
  for (const auto& f : requests) {
    EXPECT_EQ(f->version, 3);
    EXPECT_EQ(f->header_version, 2);
    EXPECT_EQ(f->body.client_software_name, "librdkafka");
    EXPECT_EQ(f->body.client_software_version, "2.0.2");
  }
  auto responses = load_all<api_versions_response>();
  ASSERT_FALSE(responses.empty());
  for (const auto& f : responses) {
    // A flexible body behind header v0: the correlation id and no tag section.
    EXPECT_EQ(f->header_version, 0);
    EXPECT_EQ(f->body_offset, 8u);
    EXPECT_EQ(f->body.error_code, 0);
    using range = std::pair<int16_t, int16_t>;
    std::map<int16_t, range> ranges;
    for (const auto& k : f->body.api_keys)
      ranges[k.api_key] = {k.min_version, k.max_version};
    // Produce advertised from v0 (served from v3), up to v9; sluice's registry.
    EXPECT_EQ(ranges[produce_request::api_key], range(0, 9));
    EXPECT_EQ(ranges[api_versions_request::api_key], range(0, 3));
    EXPECT_TRUE(ranges.count(fetch_request::api_key));
    EXPECT_TRUE(ranges.count(metadata_request::api_key));
  }
}

// ---- Produce ---------------------------------------------------------------------------------

// The one batch of a single-topic, single-partition produce request.
std::optional<record_batch> only_batch(const produce_request& p) {
  if (p.topic_data.size() != 1 || p.topic_data[0].partition_data.size() != 1) return std::nullopt;
  batch_reader br(p.topic_data[0].partition_data[0].records.bytes);
  std::optional<record_batch> b = br.next();
  if (!b || br.next() || br.error() != batch_error::ok) return std::nullopt;
  return b;
}

bool contains(std::span<const uint8_t> haystack, std::string_view needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

std::string as_string(std::optional<std::span<const uint8_t>> s) {
  return s ? std::string(s->begin(), s->end()) : "<null>";
}

TEST(captured, produce_requests_carry_valid_record_batches) {
  auto requests = load_all<produce_request>();
  ASSERT_FALSE(requests.empty());
  std::set<int> codecs;
  for (const auto& f : requests) {
    SCOPED_TRACE(f->file);
    EXPECT_EQ(f->body.acks, -1);  // kcat's default acks=all
    EXPECT_FALSE(f->body.transactional_id.has_value());
    ASSERT_EQ(f->body.topic_data.size(), 1u);
    EXPECT_EQ(f->body.topic_data[0].name, "captured");
    ASSERT_EQ(f->body.topic_data[0].partition_data.size(), 1u);
    EXPECT_EQ(f->body.topic_data[0].partition_data[0].index, 0);
    std::optional<record_batch> batch = only_batch(f->body);
    ASSERT_TRUE(batch.has_value()) << "not exactly one well-framed batch";
    EXPECT_EQ(batch->validate(), batch_error::ok);  // magic 2, lengths, CRC-32C, counts
    EXPECT_EQ(batch->base_offset(), 0);             // the broker assigns offsets
    EXPECT_EQ(batch->producer_id(), -1);            // not idempotent
    codecs.insert(batch->compression());
    if (batch->compression() != 0) continue;
    // The uncompressed one: kcat -K : -H trace=t1 -H origin=kcat, lines k1:v1 and k2:v2.
    record_reader rr(*batch);
    std::vector<std::string> keys, values;
    while (auto rec = rr.next()) {
      keys.push_back(as_string(rec->key));
      values.push_back(as_string(rec->value));
      EXPECT_EQ(rec->header_count, 2);
      EXPECT_TRUE(contains(rec->headers, "trace"));
      EXPECT_TRUE(contains(rec->headers, "origin"));
    }
    EXPECT_TRUE(rr.ok());
    EXPECT_EQ(keys, (std::vector<std::string>{"k1", "k2"}));
    EXPECT_EQ(values, (std::vector<std::string>{"v1", "v2"}));
  }
  // none, gzip, snappy, lz4, zstd.
  EXPECT_EQ(codecs, (std::set<int>{0, 1, 2, 3, 4}));
}

// Records produced by the captured Produce requests (all of the capture's, in order).
int64_t produced_records() {
  int64_t n = 0;
  for (const auto& f : load_all<produce_request>()) {
    if (auto b = only_batch(f->body)) n += b->records_count();
  }
  return n;
}

TEST(captured, produce_responses_assign_consecutive_offsets) {
  auto requests = load_all<produce_request>();
  auto responses = load_all<produce_response>();
  ASSERT_EQ(requests.size(), responses.size());
  // The capture starts from an empty log, so each batch lands right after the previous ones.
  int64_t next = 0;
  for (size_t i = 0; i < responses.size(); ++i) {
    SCOPED_TRACE(responses[i]->file);
    ASSERT_EQ(responses[i]->body.responses.size(), 1u);
    const auto& topic = responses[i]->body.responses[0];
    EXPECT_EQ(topic.name, "captured");
    ASSERT_EQ(topic.partition_responses.size(), 1u);
    EXPECT_EQ(topic.partition_responses[0].error_code, 0);
    EXPECT_EQ(topic.partition_responses[0].base_offset, next);
    EXPECT_EQ(topic.partition_responses[0].log_append_time_ms, -1);  // CreateTime topic
    std::optional<record_batch> batch = only_batch(requests[i]->body);
    ASSERT_TRUE(batch.has_value());
    next += batch->records_count();
  }
}

// ---- Fetch -----------------------------------------------------------------------------------

TEST(captured, fetch_responses_hold_the_produced_batches) {
  auto requests = load_all<fetch_request>();
  auto responses = load_all<fetch_response>();
  ASSERT_EQ(requests.size(), responses.size());
  ASSERT_FALSE(responses.empty());
  const int64_t produced = produced_records();
  bool saw_everything = false;
  for (size_t i = 0; i < responses.size(); ++i) {
    SCOPED_TRACE(responses[i]->file);
    const fetch_request& q = requests[i]->body;
    const fetch_response& p = responses[i]->body;
    ASSERT_EQ(q.topics.size(), 1u);
    ASSERT_EQ(q.topics[0].partitions.size(), 1u);
    const int64_t fetch_offset = q.topics[0].partitions[0].fetch_offset;
    // librdkafka's defaults: fetch.wait.max.ms 500, isolation.level read_committed, no fetch
    // session (KIP-227 epoch -1), fetch.message.max.bytes 1 MiB, no client.rack.
    EXPECT_EQ(q.replica_id, -1);
    EXPECT_EQ(q.max_wait_ms, 500);
    EXPECT_EQ(q.isolation_level, 1);
    EXPECT_EQ(q.session_epoch, -1);
    EXPECT_EQ(q.topics[0].partitions[0].partition_max_bytes, 1 << 20);
    EXPECT_EQ(q.rack_id, "");
    EXPECT_EQ(p.error_code, 0);
    ASSERT_EQ(p.responses.size(), 1u);
    EXPECT_EQ(p.responses[0].topic, "captured");
    ASSERT_EQ(p.responses[0].partitions.size(), 1u);
    const auto& part = p.responses[0].partitions[0];
    EXPECT_EQ(part.error_code, 0);
    EXPECT_EQ(part.high_watermark, produced);
    // The broker's batches, back to back and whole (no partial batch at the end here).
    batch_reader br(part.records.bytes);
    int64_t next = -1;
    int64_t count = 0;
    while (auto b = br.next()) {
      EXPECT_EQ(b->validate(), batch_error::ok);
      if (next < 0) {
        EXPECT_LE(b->base_offset(), fetch_offset);
      } else {
        EXPECT_EQ(b->base_offset(), next);
      }
      next = b->next_offset();
      count += b->records_count();
    }
    EXPECT_EQ(br.error(), batch_error::ok);
    if (fetch_offset == 0 && count == produced) saw_everything = true;
    if (count == 0) {
      EXPECT_EQ(fetch_offset, part.high_watermark);  // a poll at the end
    }
  }
  EXPECT_TRUE(saw_everything) << "no fetch from offset 0 returned all " << produced << " records";
}

// ---- ListOffsets -----------------------------------------------------------------------------

TEST(captured, list_offsets_earliest_latest_and_by_timestamp) {
  auto requests = load_all<list_offsets_request>();
  auto responses = load_all<list_offsets_response>();
  ASSERT_EQ(requests.size(), responses.size());
  const int64_t produced = produced_records();
  std::set<std::string> kinds;
  for (size_t i = 0; i < responses.size(); ++i) {
    SCOPED_TRACE(responses[i]->file);
    const list_offsets_request& q = requests[i]->body;
    EXPECT_EQ(q.replica_id, -1);  // a client, not a follower
    ASSERT_EQ(q.topics.size(), 1u);
    ASSERT_EQ(q.topics[0].partitions.size(), 1u);
    const int64_t ts = q.topics[0].partitions[0].timestamp;
    ASSERT_EQ(responses[i]->body.topics.size(), 1u);
    ASSERT_EQ(responses[i]->body.topics[0].partitions.size(), 1u);
    const auto& answer = responses[i]->body.topics[0].partitions[0];
    EXPECT_EQ(answer.error_code, 0);
    if (ts == -2) {  // earliest
      kinds.insert("earliest");
      EXPECT_EQ(answer.offset, 0);
    } else if (ts == -1) {  // latest
      kinds.insert("latest");
      EXPECT_EQ(answer.offset, produced);
    } else {
      // The first batch whose records are all at or after ts. capture_proxy.py takes ts between
      // two produce steps, so it falls between batches.
      kinds.insert("timestamp");
      int64_t expected = -1;
      auto produce_requests = load_all<produce_request>();
      auto produce_responses = load_all<produce_response>();
      for (size_t j = 0; j < produce_requests.size() && expected < 0; ++j) {
        std::optional<record_batch> b = only_batch(produce_requests[j]->body);
        ASSERT_TRUE(b.has_value());
        if (b->base_timestamp() >= ts) {
          expected = produce_responses[j]->body.responses[0].partition_responses[0].base_offset;
          EXPECT_EQ(answer.timestamp, b->base_timestamp());
        } else {
          EXPECT_LT(b->max_timestamp(), ts) << "ts falls inside a batch";
        }
      }
      EXPECT_EQ(answer.offset, expected);
    }
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"earliest", "latest", "timestamp"}));
}

// ---- Metadata and FindCoordinator -------------------------------------------------------------

TEST(captured, metadata) {
  std::set<std::string> asked;
  for (const auto& f : load_all<metadata_request>()) {
    const auto& topics = f->body.topics;
    if (!topics) {
      asked.insert("all topics");
    } else if (topics->empty()) {
      asked.insert("brokers only");
    } else {
      ASSERT_EQ(topics->size(), 1u);
      EXPECT_EQ((*topics)[0].name, "captured");
      asked.insert("one topic");
    }
  }
  EXPECT_EQ(asked, (std::set<std::string>{"all topics", "brokers only", "one topic"}));

  for (const auto& f : load_all<metadata_response>()) {
    SCOPED_TRACE(f->file);
    const metadata_response& m = f->body;
    ASSERT_EQ(m.brokers.size(), 1u);
    EXPECT_EQ(m.brokers[0].node_id, 1);
    EXPECT_EQ(m.brokers[0].host, "127.0.0.1");  // advertised: the capture proxy
    EXPECT_EQ(m.controller_id, 1);
    EXPECT_TRUE(m.cluster_id.has_value());
    for (const auto& t : m.topics) {
      EXPECT_EQ(t.error_code, 0);
      EXPECT_EQ(t.name, "captured");
      ASSERT_EQ(t.partitions.size(), 1u);
      EXPECT_EQ(t.partitions[0].leader_id, 1);
      EXPECT_EQ(t.partitions[0].replica_nodes, std::vector<int32_t>{1});
    }
  }
}

TEST(captured, find_coordinator_points_at_the_advertised_broker) {
  auto requests = load_all<find_coordinator_request>();
  auto responses = load_all<find_coordinator_response>();
  ASSERT_FALSE(requests.empty());
  ASSERT_EQ(requests.size(), responses.size());
  auto metadata = load_all<metadata_response>();
  ASSERT_FALSE(metadata.empty());
  ASSERT_FALSE(metadata[0]->body.brokers.empty());
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(responses[i]->file);
    EXPECT_EQ(requests[i]->body.key, "captured-group");
    EXPECT_EQ(requests[i]->body.key_type, 0);  // group
    const find_coordinator_response& r = responses[i]->body;
    EXPECT_EQ(r.error_code, 0);
    EXPECT_EQ(r.node_id, 1);
    EXPECT_EQ(r.host, "127.0.0.1");
    EXPECT_EQ(r.port, metadata[0]->body.brokers[0].port);
  }
}

}  // namespace
}  // namespace sluice::wire
