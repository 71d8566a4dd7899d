// Generated messages against bytes.
//
// (a) Golden vectors written by hand from the specs in wire/schema, one field per line: decode
//     must give the expected struct, and the struct must encode to the identical bytes.
// (b) Every generated message at every version: default and filled structs round-trip.
// (c) Every proper prefix of a golden vector fails to decode; random and mutated buffers never
//     crash (the tests also run under ASan/UBSan) and whatever decodes re-encodes consistently.
//
// Golden vectors captured from real clients are in wire/tests/captured/, checked by
// captured_test.cc (wire/README.md, "Captured vectors").

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <typeinfo>
#include <vector>

#include "wire/generated/api_specs.h"
#include "wire/generated/messages.h"
#include "wire/generated/testing/message_samples.h"
#include "wire/tests/test_util.h"

namespace sluice::wire {
namespace {

using testing::encode_bytes;
using testing::expect_golden;
using testing::from_hex;

// One RecordBatch v2 (73 bytes): base offset 0, one record, null key, value "hello", CRC-32C
// correct. The codec treats it as opaque bytes; it is here so the vectors look like real traffic.
constexpr const char* batch_hex =
    "0000000000000000"           // base_offset
    "0000003d"                   // batch_length 61
    "ffffffff"                   // partition_leader_epoch -1
    "02"                         // magic
    "e641a44b"                   // crc32c
    "0000"                       // attributes
    "00000000"                   // last_offset_delta
    "0000018bcfe56800"           // base_timestamp
    "0000018bcfe56800"           // max_timestamp
    "ffffffffffffffff"           // producer_id
    "ffff"                       // producer_epoch
    "ffffffff"                   // base_sequence
    "00000001"                   // records_count
    "16000000010a68656c6c6f00";  // record: length 11, attrs, ts delta, offset delta, key null,
                                 // value "hello", no headers

std::vector<uint8_t>& batch_bytes() {
  static std::vector<uint8_t> b = from_hex(batch_hex);
  return b;
}

records batch_records() {
  records r;
  r.bytes = batch_bytes();
  return r;
}

std::string hex(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts)
    out += p;
  return out;
}

uuid make_uuid(uint8_t first) {
  uuid u{};
  for (size_t i = 0; i < u.size(); ++i)
    u[i] = static_cast<uint8_t>(first + i);
  return u;
}

// ---- headers ---------------------------------------------------------------------------------

TEST(golden, request_header_v1) {
  request_header h;
  h.request_api_key = 3;
  h.request_api_version = 1;
  h.correlation_id = 7;
  h.client_id = "kcat";
  expect_golden(
      "0003"            // request_api_key: Metadata
      "0001"            // request_api_version
      "00000007"        // correlation_id
      "0004 6b636174",  // client_id "kcat" (classic string)
      1, h);

  h.client_id = std::nullopt;
  expect_golden("0003 0001 00000007 ffff", 1, h);  // client_id null
}

TEST(golden, request_header_v2_keeps_classic_client_id) {
  request_header h;
  h.request_api_key = 18;
  h.request_api_version = 3;
  h.correlation_id = 1;
  h.client_id = "kcat";
  expect_golden(
      "0012"           // request_api_key: ApiVersions
      "0003"           // request_api_version
      "00000001"       // correlation_id
      "0004 6b636174"  // client_id: int16 length even in v2 ("flexibleVersions": "none")
      "00",            // tagged fields
      2, h);
}

TEST(golden, response_header_v0_and_v1) {
  response_header h;
  h.correlation_id = 0x01020304;
  expect_golden("01020304", 0, h);
  expect_golden("01020304 00", 1, h);
}

TEST(golden, header_versions) {
  EXPECT_EQ(request_header_version(18, 0), 1);
  EXPECT_EQ(request_header_version(18, 3), 2);
  EXPECT_EQ(request_header_version(0, 8), 1);
  EXPECT_EQ(request_header_version(0, 9), 2);
  EXPECT_EQ(request_header_version(7, 0), 0);  // ControlledShutdown v0
  EXPECT_EQ(request_header_version(7, 1), 1);
  EXPECT_EQ(request_header_version(7, 3), 2);
  EXPECT_EQ(response_header_version(18, 0), 0);
  EXPECT_EQ(response_header_version(18, 3), 0);  // ApiVersions: always v0
  EXPECT_EQ(response_header_version(1, 11), 0);
  EXPECT_EQ(response_header_version(1, 12), 1);
  EXPECT_EQ(response_header_version(3, 9), 1);
}

TEST(golden, api_specs_table) {
  const api_spec* produce = find_api_spec(0);
  ASSERT_NE(produce, nullptr);
  EXPECT_EQ(produce->name, "Produce");
  EXPECT_EQ(produce->min_version, 0);
  EXPECT_EQ(produce->max_version, 13);
  EXPECT_EQ(produce->flexible_from, 9);
  const api_spec* sasl = find_api_spec(17);
  ASSERT_NE(sasl, nullptr);
  EXPECT_EQ(sasl->flexible_from, INT16_MAX);
  const api_spec* controlled_shutdown = find_api_spec(7);
  ASSERT_NE(controlled_shutdown, nullptr);
  EXPECT_EQ(controlled_shutdown->name, "ControlledShutdown");
  EXPECT_EQ(controlled_shutdown->max_version, 3);
  EXPECT_EQ(controlled_shutdown->flexible_from, 3);
  for (int16_t key : {45, 46}) {  // Alter/ListPartitionReassignments: v0 only, flexible
    const api_spec* reassignments = find_api_spec(key);
    ASSERT_NE(reassignments, nullptr);
    EXPECT_EQ(reassignments->min_version, 0);
    EXPECT_EQ(reassignments->max_version, 0);
    EXPECT_EQ(reassignments->flexible_from, 0);
  }
  EXPECT_EQ(find_api_spec(45)->name, "AlterPartitionReassignments");
  EXPECT_EQ(find_api_spec(46)->name, "ListPartitionReassignments");
  EXPECT_EQ(find_api_spec(2000), nullptr);
  EXPECT_EQ(find_api_spec(-1), nullptr);
  EXPECT_EQ(find_api_spec(1000), nullptr);
  EXPECT_TRUE(find_api_spec(26)->latest_version_unstable);  // EndTxn v5
  int16_t previous = -1;
  for (const api_spec& s : all_api_specs()) {
    EXPECT_GT(s.key, previous);
    previous = s.key;
  }
  EXPECT_EQ(produce_request::api_key, 0);
  EXPECT_EQ(fetch_response::flexible_from, 12);
  EXPECT_EQ(sasl_handshake_request::flexible_from, INT16_MAX);
}

TEST(golden, whole_request_frames) {
  // ApiVersions v3 as librdkafka sends it first: size, request header v2, body.
  request_header h = testing::expect_request_frame_roundtrip<api_versions_request>(
      "00000021"                 // size 33
      "0012 0003 00000001"       // api_key 18, version 3, correlation_id 1
      "0004 6b636174 00"         // client_id "kcat", header tags
      "0b 6c696272646b61666b61"  // client_software_name "librdkafka"
      "06 322e302e32 00");       // client_software_version "2.0.2", tags
  EXPECT_EQ(h.client_id, "kcat");
  // Metadata v1: request header v1, no tag section.
  h = testing::expect_request_frame_roundtrip<metadata_request>(
      "00000012"            // size 18
      "0003 0001 00000002"  // api_key 3, version 1, correlation_id 2
      "0004 6b636174"       // client_id "kcat"
      "ffffffff");          // topics: null
  EXPECT_EQ(h.correlation_id, 2);
}

// ---- ApiVersions -----------------------------------------------------------------------------

api_versions_response::api_version api_version(int16_t key, int16_t min, int16_t max) {
  api_versions_response::api_version v;
  v.api_key = key;
  v.min_version = min;
  v.max_version = max;
  return v;
}

TEST(golden, api_versions_request_v0_is_empty) {
  expect_golden("", 0, api_versions_request{});
}

TEST(golden, api_versions_request_v3) {
  api_versions_request r;
  r.client_software_name = "librdkafka";
  r.client_software_version = "2.0.2";
  expect_golden(
      "0b 6c696272646b61666b61"  // client_software_name "librdkafka" (compact)
      "06 322e302e32"            // client_software_version "2.0.2"
      "00",                      // tagged fields
      3, r);

  // A newer client's unknown tags survive decode and encode.
  r.unknown_tagged_fields = {{7, {0xbe, 0xef}}};
  expect_golden(hex({"0b 6c696272646b61666b61 06 322e302e32",
                     "01",            // one tagged field
                     "07 02 beef"}),  // tag 7, 2 bytes
                3, r);
}

TEST(golden, api_versions_response_v0) {
  api_versions_response r;
  r.api_keys = {api_version(0, 0, 11), api_version(18, 0, 4)};
  expect_golden(
      "0000"             // error_code
      "00000002"         // api_keys: 2 (int32 count)
      "0000 0000 000b"   //   Produce 0-11
      "0012 0000 0004",  //  ApiVersions 0-4
      0, r);
}

TEST(golden, api_versions_response_v3_with_tagged_fields) {
  api_versions_response r;
  r.api_keys = {api_version(0, 0, 11), api_version(18, 0, 4)};
  r.supported_features.emplace_back();
  r.supported_features[0].name = "metadata.version";
  r.supported_features[0].min_version = 1;
  r.supported_features[0].max_version = 20;
  r.finalized_features_epoch = 5;
  expect_golden(hex({"0000",                                 // error_code
                     "03",                                   // api_keys: 2 (compact)
                     "0000 0000 000b 00",                    //   Produce 0-11, tags
                     "0012 0000 0004 00",                    //   ApiVersions 0-4, tags
                     "00000000",                             // throttle_time_ms
                     "02",                                   // two tagged fields
                     "00 17",                                // tag 0 supported_features, 23 bytes
                     "02",                                   //   1 feature
                     "11 6d657461646174612e76657273696f6e",  // "metadata.version"
                     "0001 0014 00",                         //   min 1, max 20, tags
                     "01 08 0000000000000005"}),             // tag 1 finalized_features_epoch 5
                3, r);
}

// ---- Metadata --------------------------------------------------------------------------------

TEST(golden, metadata_request_v0) {
  metadata_request r;
  r.topics->push_back({});
  r.topics->back().name = "foo";
  expect_golden(
      "00000001"      // topics: 1
      "0003 666f6f",  //   name "foo"
      0, r);
  expect_golden("00000000", 0, metadata_request{});  // v0: empty = all topics
}

TEST(golden, metadata_request_v1_null_means_all_topics) {
  metadata_request r;
  r.topics = std::nullopt;
  expect_golden("ffffffff", 1, r);                   // topics: null
  expect_golden("00000000", 1, metadata_request{});  // empty: no topics
}

TEST(golden, metadata_request_v0_rejects_null_topics) {
  std::vector<uint8_t> b = from_hex("ffffffff");
  reader rd(b);
  metadata_request r;
  EXPECT_FALSE(r.decode(rd, 0));  // topics is nullable only from v1
}

TEST(golden, metadata_request_v9) {
  metadata_request r;
  r.topics->push_back({});
  r.topics->back().name = "foo";
  r.allow_auto_topic_creation = true;
  expect_golden(
      "02"         // topics: 1 (compact)
      "04 666f6f"  //   name "foo"
      "00"         //   tags
      "01"         // allow_auto_topic_creation
      "00"         // include_cluster_authorized_operations (v8-10)
      "00"         // include_topic_authorized_operations
      "00",        // tags
      9, r);
}

TEST(golden, metadata_request_v12_by_name_and_by_id) {
  metadata_request r;
  r.topics->push_back({});
  r.topics->back().name = "foo";
  r.topics->push_back({});
  r.topics->back().topic_id = make_uuid(0x10);
  r.topics->back().name = std::nullopt;
  r.allow_auto_topic_creation = false;
  r.include_topic_authorized_operations = true;
  expect_golden(hex({"03",                                // topics: 2
                     "00000000000000000000000000000000",  //   topic_id: zero
                     "04 666f6f",                         //   name "foo"
                     "00",                                //   tags
                     "101112131415161718191a1b1c1d1e1f",  //   topic_id
                     "00",                                //   name: null
                     "00",                                //   tags
                     "00",                                // allow_auto_topic_creation
                     "01",                                // include_topic_authorized_operations
                     "00"}),                              // tags
                12, r);
}

TEST(golden, metadata_response_v1) {
  metadata_response r;
  r.brokers.push_back({});
  r.brokers[0].node_id = 1;
  r.brokers[0].host = "localhost";
  r.brokers[0].port = 9092;
  r.controller_id = 1;
  r.topics.push_back({});
  r.topics[0].name = "foo";
  r.topics[0].partitions.push_back({});
  auto& p = r.topics[0].partitions[0];
  p.leader_id = 1;
  p.replica_nodes = {1};
  p.isr_nodes = {1};
  expect_golden(hex({"00000001",                 // brokers: 1
                     "00000001",                 //   node_id
                     "0009 6c6f63616c686f7374",  //   host "localhost"
                     "00002384",                 //   port 9092
                     "ffff",                     //   rack: null
                     "00000001",                 // controller_id
                     "00000001",                 // topics: 1
                     "0000",                     //   error_code
                     "0003 666f6f",              //   name "foo"
                     "00",                       //   is_internal
                     "00000001",                 //   partitions: 1
                     "0000",                     //     error_code
                     "00000000",                 //     partition_index
                     "00000001",                 //     leader_id
                     "00000001 00000001",        //     replica_nodes [1]
                     "00000001 00000001"}),      //     isr_nodes [1]
                1, r);
}

TEST(golden, metadata_response_v12) {
  metadata_response r;
  r.brokers.push_back({});
  r.brokers[0].node_id = 1;
  r.brokers[0].host = "localhost";
  r.brokers[0].port = 9092;
  r.cluster_id = "sluice-cluster";
  r.controller_id = 1;
  r.topics.push_back({});
  auto& t = r.topics[0];
  t.name = "foo";
  t.topic_id = make_uuid(0x20);
  t.partitions.push_back({});
  auto& p = t.partitions[0];
  p.leader_id = 1;
  p.leader_epoch = 0;
  p.replica_nodes = {1};
  p.isr_nodes = {1};
  expect_golden(hex({"00000000",                          // throttle_time_ms
                     "02",                                // brokers: 1
                     "00000001",                          //   node_id
                     "0a 6c6f63616c686f7374",             //   host "localhost"
                     "00002384",                          //   port
                     "00",                                //   rack: null
                     "00",                                //   tags
                     "0f 736c756963652d636c7573746572",   // cluster_id "sluice-cluster"
                     "00000001",                          // controller_id
                     "02",                                // topics: 1
                     "0000",                              //   error_code
                     "04 666f6f",                         //   name "foo"
                     "202122232425262728292a2b2c2d2e2f",  //   topic_id
                     "00",                                //   is_internal
                     "02",                                //   partitions: 1
                     "0000",                              //     error_code
                     "00000000",                          //     partition_index
                     "00000001",                          //     leader_id
                     "00000000",                          //     leader_epoch
                     "02 00000001",                       //     replica_nodes [1]
                     "02 00000001",                       //     isr_nodes [1]
                     "01",                                //     offline_replicas []
                     "00",                                //     tags
                     "80000000",                          //   topic_authorized_operations
                     "00",                                //   tags
                     "00"}),                              // tags
                12, r);
}

// ---- Produce ---------------------------------------------------------------------------------

produce_request sample_produce() {
  produce_request r;
  r.transactional_id = std::nullopt;
  r.acks = -1;
  r.timeout_ms = 30000;
  r.topic_data.push_back({});
  r.topic_data[0].name = "foo";
  r.topic_data[0].partition_data.push_back({});
  r.topic_data[0].partition_data[0].index = 0;
  r.topic_data[0].partition_data[0].records = batch_records();
  return r;
}

TEST(golden, produce_request_v3) {
  expect_golden(hex({"ffff",         // transactional_id: null
                     "ffff",         // acks -1
                     "00007530",     // timeout_ms 30000
                     "00000001",     // topic_data: 1
                     "0003 666f6f",  //   name "foo"
                     "00000001",     //   partition_data: 1
                     "00000000",     //     index
                     "00000049",     //     records: 73 bytes
                     batch_hex}),
                3, sample_produce());
}

TEST(golden, produce_request_v9) {
  expect_golden(hex({"00",         // transactional_id: null
                     "ffff",       // acks -1
                     "00007530",   // timeout_ms
                     "02",         // topic_data: 1
                     "04 666f6f",  //   name "foo"
                     "02",         //   partition_data: 1
                     "00000000",   //     index
                     "4a",         //     records: 73 bytes (compact)
                     batch_hex,
                     "00",    //     tags
                     "00",    //   tags
                     "00"}),  // tags
                9, sample_produce());
}

TEST(golden, produce_request_records_point_into_the_request) {
  std::vector<uint8_t> b = from_hex(
      hex({"ffff ffff 00007530 00000001 0003 666f6f 00000001", "00000000 00000049", batch_hex}));
  reader r(b);
  produce_request p;
  ASSERT_TRUE(p.decode(r, 3));
  const records& rec = p.topic_data[0].partition_data[0].records;
  EXPECT_EQ(rec.bytes.data(), b.data() + (b.size() - 73));
  EXPECT_EQ(rec.size(), 73);
}

TEST(golden, produce_response_v7) {
  produce_response r;
  r.responses.push_back({});
  r.responses[0].name = "foo";
  r.responses[0].partition_responses.push_back({});
  auto& p = r.responses[0].partition_responses[0];
  p.base_offset = 5;
  p.log_append_time_ms = -1;
  p.log_start_offset = 0;
  expect_golden(hex({"00000001",          // responses: 1
                     "0003 666f6f",       //   name
                     "00000001",          //   partition_responses: 1
                     "00000000",          //     index
                     "0000",              //     error_code
                     "0000000000000005",  //     base_offset
                     "ffffffffffffffff",  //     log_append_time_ms
                     "0000000000000000",  //     log_start_offset
                     "00000000"}),        // throttle_time_ms
                7, r);
}

TEST(golden, produce_response_v9_with_record_errors) {
  produce_response r;
  r.responses.push_back({});
  r.responses[0].name = "foo";
  r.responses[0].partition_responses.push_back({});
  auto& p = r.responses[0].partition_responses[0];
  p.error_code = 87;  // INVALID_RECORD
  p.base_offset = -1;
  p.log_append_time_ms = -1;
  p.log_start_offset = 0;
  p.record_errors.push_back({});  // batch_index 0, message null
  p.error_message = "bad";
  expect_golden(hex({"02",                // responses: 1
                     "04 666f6f",         //   name
                     "02",                //   partition_responses: 1
                     "00000000",          //     index
                     "0057",              //     error_code 87
                     "ffffffffffffffff",  //     base_offset
                     "ffffffffffffffff",  //     log_append_time_ms
                     "0000000000000000",  //     log_start_offset
                     "02",                //     record_errors: 1
                     "00000000",          //       batch_index
                     "00",                //       batch_index_error_message: null
                     "00",                //       tags
                     "04 626164",         //     error_message "bad"
                     "00",                //     tags
                     "00",                //   tags
                     "00000000",          // throttle_time_ms
                     "00"}),              // tags
                9, r);
}

// ---- Fetch -----------------------------------------------------------------------------------

fetch_request sample_fetch() {
  fetch_request r;
  r.replica_id = -1;
  r.max_wait_ms = 500;
  r.min_bytes = 1;
  r.max_bytes = 52428800;
  r.topics.push_back({});
  r.topics[0].topic = "foo";
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[0].partition_max_bytes = 1048576;
  return r;
}

TEST(golden, fetch_request_v4) {
  expect_golden(hex({"ffffffff",          // replica_id
                     "000001f4",          // max_wait_ms 500
                     "00000001",          // min_bytes
                     "03200000",          // max_bytes 50 MiB
                     "00",                // isolation_level
                     "00000001",          // topics: 1
                     "0003 666f6f",       //   topic
                     "00000001",          //   partitions: 1
                     "00000000",          //     partition
                     "0000000000000000",  //     fetch_offset
                     "00100000"}),        //     partition_max_bytes 1 MiB
                4, sample_fetch());
}

TEST(golden, fetch_request_v11) {
  fetch_request r = sample_fetch();
  r.isolation_level = 1;
  r.topics[0].partitions[0].fetch_offset = 42;
  expect_golden(hex({"ffffffff",          // replica_id
                     "000001f4",          // max_wait_ms
                     "00000001",          // min_bytes
                     "03200000",          // max_bytes
                     "01",                // isolation_level: read_committed
                     "00000000",          // session_id
                     "ffffffff",          // session_epoch -1: no session
                     "00000001",          // topics: 1
                     "0003 666f6f",       //   topic
                     "00000001",          //   partitions: 1
                     "00000000",          //     partition
                     "ffffffff",          //     current_leader_epoch
                     "000000000000002a",  //     fetch_offset 42
                     "ffffffffffffffff",  //     log_start_offset
                     "00100000",          //     partition_max_bytes
                     "00000000",          // forgotten_topics_data: 0
                     "0000"}),            // rack_id ""
                11, r);
}

TEST(golden, fetch_request_v12_known_and_unknown_tags) {
  fetch_request r = sample_fetch();
  r.cluster_id = "c1";
  // Tag 1 is ReplicaState only from v15: at v12 it is an unknown tag and is kept verbatim.
  r.unknown_tagged_fields = {{1, {0xbe, 0xef}}};
  expect_golden(hex({"ffffffff",          // replica_id
                     "000001f4",          // max_wait_ms
                     "00000001",          // min_bytes
                     "03200000",          // max_bytes
                     "00",                // isolation_level
                     "00000000",          // session_id
                     "ffffffff",          // session_epoch
                     "02",                // topics: 1
                     "04 666f6f",         //   topic
                     "02",                //   partitions: 1
                     "00000000",          //     partition
                     "ffffffff",          //     current_leader_epoch
                     "0000000000000000",  //     fetch_offset
                     "ffffffff",          //     last_fetched_epoch
                     "ffffffffffffffff",  //     log_start_offset
                     "00100000",          //     partition_max_bytes
                     "00",                //     tags
                     "00",                //   tags
                     "01",                // forgotten_topics_data: 0
                     "01",                // rack_id ""
                     "02",                // two tagged fields
                     "00 03 03 6331",     //   tag 0 cluster_id "c1"
                     "01 02 beef"}),      //   tag 1 (unknown at v12)
                12, r);
}

TEST(golden, fetch_response_v4) {
  fetch_response r;
  r.responses.push_back({});
  r.responses[0].topic = "foo";
  r.responses[0].partitions.push_back({});
  auto& p = r.responses[0].partitions[0];
  p.high_watermark = 1;
  p.last_stable_offset = 1;
  p.aborted_transactions = std::nullopt;
  p.records = batch_records();
  expect_golden(hex({"00000000",          // throttle_time_ms
                     "00000001",          // responses: 1
                     "0003 666f6f",       //   topic
                     "00000001",          //   partitions: 1
                     "00000000",          //     partition_index
                     "0000",              //     error_code
                     "0000000000000001",  //     high_watermark
                     "0000000000000001",  //     last_stable_offset
                     "ffffffff",          //     aborted_transactions: null
                     "00000049",          //     records: 73 bytes
                     batch_hex}),
                4, r);
}

TEST(golden, fetch_response_v12_with_tagged_current_leader) {
  fetch_response r;
  r.responses.push_back({});
  r.responses[0].topic = "foo";
  r.responses[0].partitions.push_back({});
  auto& p = r.responses[0].partitions[0];
  p.high_watermark = 1;
  p.last_stable_offset = 1;
  p.log_start_offset = 0;
  p.aborted_transactions.emplace();  // empty, not null
  p.current_leader.leader_id = 1;
  p.current_leader.leader_epoch = 5;
  p.records = batch_records();
  expect_golden(hex({"00000000",          // throttle_time_ms
                     "0000",              // error_code
                     "00000000",          // session_id
                     "02",                // responses: 1
                     "04 666f6f",         //   topic
                     "02",                //   partitions: 1
                     "00000000",          //     partition_index
                     "0000",              //     error_code
                     "0000000000000001",  //     high_watermark
                     "0000000000000001",  //     last_stable_offset
                     "0000000000000000",  //     log_start_offset
                     "01",                //     aborted_transactions: []
                     "ffffffff",          //     preferred_read_replica
                     "4a",                //     records: 73 bytes
                     batch_hex,
                     "01",                    //     one tagged field
                     "01 09",                 //       tag 1 current_leader, 9 bytes
                     "00000001 00000005 00",  //     leader_id 1, leader_epoch 5, tags
                     "00",                    //   tags
                     "00"}),                  // tags
                12, r);
}

TEST(golden, fetch_response_records_can_be_file_slices) {
  fetch_response r;
  r.responses.push_back({});
  r.responses[0].topic = "foo";
  r.responses[0].partitions.push_back({});
  auto& p = r.responses[0].partitions[0];
  p.records.slices.push_back({.fd = 5, .position = 4096, .length = 1000, .keep_alive = nullptr});
  frame out;
  {
    writer w(out);
    r.encode(w, 12);
  }
  ASSERT_EQ(out.slices.size(), 1u);
  EXPECT_EQ(out.total_size(), r.size(12));
  EXPECT_EQ(static_cast<int64_t>(out.bytes.size()) + 1000, r.size(12));
}

// ---- ListOffsets -----------------------------------------------------------------------------

TEST(golden, list_offsets_request_v1) {
  list_offsets_request r;
  r.replica_id = -1;
  r.topics.push_back({});
  r.topics[0].name = "foo";
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[0].timestamp = -1;  // latest
  expect_golden(hex({"ffffffff",             // replica_id
                     "00000001",             // topics: 1
                     "0003 666f6f",          //   name
                     "00000001",             //   partitions: 1
                     "00000000",             //     partition_index
                     "ffffffffffffffff"}),   //     timestamp -1
                1, r);
}

TEST(golden, list_offsets_request_v7) {
  list_offsets_request r;
  r.replica_id = -1;
  r.topics.push_back({});
  r.topics[0].name = "foo";
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[0].current_leader_epoch = 3;
  r.topics[0].partitions[0].timestamp = -2;  // earliest
  expect_golden(hex({"ffffffff",             // replica_id
                     "00",                   // isolation_level
                     "02",                   // topics: 1
                     "04 666f6f",            //   name
                     "02",                   //   partitions: 1
                     "00000000",             //     partition_index
                     "00000003",             //     current_leader_epoch
                     "fffffffffffffffe",     //     timestamp -2
                     "00",                   //     tags
                     "00",                   //   tags
                     "00"}),                 // tags
                7, r);
}

TEST(golden, list_offsets_response_v1) {
  list_offsets_response r;
  r.topics.push_back({});
  r.topics[0].name = "foo";
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[0].timestamp = -1;
  r.topics[0].partitions[0].offset = 42;
  expect_golden(hex({"00000001",            // topics: 1
                     "0003 666f6f",         //   name
                     "00000001",            //   partitions: 1
                     "00000000",            //     partition_index
                     "0000",                //     error_code
                     "ffffffffffffffff",    //     timestamp
                     "000000000000002a"}),  //     offset 42
                1, r);
}

TEST(golden, list_offsets_response_v7) {
  list_offsets_response r;
  r.topics.push_back({});
  r.topics[0].name = "foo";
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[0].timestamp = -1;
  r.topics[0].partitions[0].offset = 42;
  r.topics[0].partitions[0].leader_epoch = 0;
  expect_golden(hex({"00000000",          // throttle_time_ms
                     "02",                // topics: 1
                     "04 666f6f",         //   name
                     "02",                //   partitions: 1
                     "00000000",          //     partition_index
                     "0000",              //     error_code
                     "ffffffffffffffff",  //     timestamp
                     "000000000000002a",  //     offset
                     "00000000",          //     leader_epoch
                     "00",                //     tags
                     "00",                //   tags
                     "00"}),              // tags
                7, r);
}

TEST(golden, alter_partition_reassignments_request_v0_with_a_cancel) {
  alter_partition_reassignments_request r;
  r.timeout_ms = 30000;
  r.topics.push_back({});
  r.topics[0].name = "foo";
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[0].partition_index = 0;
  r.topics[0].partitions[0].replicas = std::vector<int32_t>{2, 3};
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[1].partition_index = 1;  // replicas null: cancel
  expect_golden(hex({"00007530",                  // timeout_ms 30000
                     "02",                        // topics: 1
                     "04 666f6f",                 //   name
                     "03",                        //   partitions: 2
                     "00000000",                  //     partition_index
                     "03 00000002 00000003",      //   replicas [2,3]
                     "00",                        //     tags
                     "00000001",                  //     partition_index
                     "00",                        //     replicas null
                     "00",                        //     tags
                     "00",                        //   tags
                     "00"}),                      // tags
                0, r);
}

TEST(golden, list_partition_reassignments_response_v0) {
  list_partition_reassignments_response r;
  r.error_message = std::nullopt;  // the spec's default is "", Kafka's controller sends null
  r.topics.push_back({});
  r.topics[0].name = "foo";
  r.topics[0].partitions.push_back({});
  r.topics[0].partitions[0].partition_index = 0;
  r.topics[0].partitions[0].replicas = {2, 3, 1};
  r.topics[0].partitions[0].adding_replicas = {3};
  r.topics[0].partitions[0].removing_replicas = {1};
  expect_golden(hex({"00000000",                       // throttle_time_ms
                     "0000",                           // error_code
                     "00",                             // error_message null
                     "02",                             // topics: 1
                     "04 666f6f",                      //   name
                     "02",                             //   partitions: 1
                     "00000000",                       //     partition_index
                     "04 00000002 00000003 00000001",  // replicas
                     "02 00000003",                    //     adding_replicas
                     "02 00000001",                    //     removing_replicas
                     "00",                             //     tags
                     "00",                             //   tags
                     "00"}),                           // tags
                0, r);
}

TEST(golden, struct_types_hidden_by_a_field_are_reachable) {
  // fetch_request has a field and a struct type both called replica_state (see wire/README.md).
  struct fetch_request::replica_state state;
  state.replica_id = 3;
  state.replica_epoch = 7;
  fetch_request r;
  r.replica_state = state;
  std::vector<uint8_t> b = encode_bytes(r, 15);
  reader rd(b);
  fetch_request back;
  ASSERT_TRUE(back.decode(rd, 15));
  EXPECT_EQ(back.replica_state.replica_id, 3);
  EXPECT_EQ(back.replica_state.replica_epoch, 7);
  EXPECT_EQ(back.replica_id, -1);  // the v0-14 field is absent at v15
}

// ---- defaults and version rules ----------------------------------------------------------------

TEST(golden, absent_fields_decode_as_spec_defaults) {
  // Fetch v0 has no max_bytes, isolation_level or session fields.
  std::vector<uint8_t> b = from_hex("ffffffff 000001f4 00000001 00000000");
  reader rd(b);
  fetch_request r;
  ASSERT_TRUE(r.decode(rd, 0));
  EXPECT_EQ(r.max_bytes, 0x7fffffff);  // "default": "0x7fffffff"
  EXPECT_EQ(r.session_epoch, -1);
  EXPECT_EQ(r.cluster_id, std::nullopt);  // "default": "null"
  metadata_request m;
  EXPECT_TRUE(m.allow_auto_topic_creation);  // "default": "true"
}

TEST(golden, versions_outside_the_spec_range_fail) {
  std::vector<uint8_t> b = from_hex("00000000");
  reader r1(b);
  metadata_request m;
  EXPECT_FALSE(m.decode(r1, 14));
  reader r2(b);
  EXPECT_FALSE(m.decode(r2, -1));
}

TEST(golden, trailing_tagged_field_body_must_match_its_length) {
  // ApiVersions v3 response whose tag 1 (an int64) claims 9 bytes.
  std::vector<uint8_t> b = from_hex("0000 01 00000000 01 01 09 000000000000000500");
  reader r(b);
  api_versions_response m;
  EXPECT_FALSE(m.decode(r, 3));
}

// ---- (b) every message, every version --------------------------------------------------------

template <class... M, class F>
void for_each_message(message_list<M...>, F&& f) {
  (f.template operator()<M>(), ...);
}

template <class M>
void check_roundtrip(const M& m, int16_t v, const std::string& what) {
  SCOPED_TRACE(std::string(typeid(M).name()) + " v" + std::to_string(v) + " " + what);
  std::vector<uint8_t> bytes = encode_bytes(m, v);
  EXPECT_EQ(m.size(v), static_cast<int64_t>(bytes.size()));
  std::vector<uint8_t> copy = bytes;
  reader r(copy);
  M back;
  ASSERT_TRUE(back.decode(r, v));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_TRUE(back == m);
  EXPECT_EQ(encode_bytes(back, v), bytes);
}

template <class M>
void check_all_versions() {
  for (int16_t v = M::min_version; v <= M::max_version; ++v) {
    check_roundtrip(M{}, v, "default");
    for (int seed = 0; seed < 3; ++seed) {
      M m;
      testing::fill_sample(m, v, seed);
      check_roundtrip(m, v, "seed " + std::to_string(seed));
    }
  }
}

TEST(roundtrip, every_message_every_version) {
  for_each_message(all_messages{}, []<class M>() { check_all_versions<M>(); });
  for_each_message(all_headers{}, []<class M>() { check_all_versions<M>(); });
}

TEST(roundtrip, samples_cover_every_api_in_the_spec_table) {
  size_t messages = 0;
  for_each_message(all_messages{}, [&]<class M>() { ++messages; });
  EXPECT_EQ(messages, 2 * all_api_specs().size());
}

// ---- (c) truncation and garbage --------------------------------------------------------------

// Deterministic across platforms, unlike the distributions of <random>.
struct xorshift {
  uint64_t state;
  uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

// Whatever decodes from garbage must encode to exactly size() bytes.
template <class M>
void decode_garbage(std::vector<uint8_t>& buf, int16_t v) {
  reader r(buf);
  M m;
  if (!m.decode(r, v)) return;
  std::vector<uint8_t> again = encode_bytes(m, v);
  EXPECT_EQ(static_cast<int64_t>(again.size()), m.size(v));
}

TEST(garbage, truncated_samples_fail) {
  // Every proper prefix of one filled sample per message and version.
  for_each_message(all_messages{}, []<class M>() {
    for (int16_t v = M::min_version; v <= M::max_version; ++v) {
      M m;
      testing::fill_sample(m, v, 1);
      std::vector<uint8_t> bytes = encode_bytes(m, v);
      for (size_t n = 0; n < bytes.size(); ++n) {
        std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
        reader r(prefix);
        M back;
        ASSERT_FALSE(back.decode(r, v)) << typeid(M).name() << " v" << v << " prefix " << n;
      }
    }
  });
}

TEST(garbage, random_buffers_never_crash) {
  xorshift rng{0x9e3779b97f4a7c15ull};
  std::vector<uint8_t> buf;
  for_each_message(all_messages{}, [&]<class M>() {
    for (int16_t v = M::min_version; v <= M::max_version; ++v) {
      for (int i = 0; i < 8; ++i) {
        buf.resize(rng.below(64));
        // Small bytes make plausible lengths and counts, so decoding gets past the first field.
        for (uint8_t& b : buf)
          b = static_cast<uint8_t>(rng.below(4) == 0 ? rng.next() : rng.below(3));
        decode_garbage<M>(buf, v);
      }
    }
  });
}

TEST(garbage, mutated_samples_never_crash) {
  xorshift rng{12345};
  for_each_message(all_messages{}, [&]<class M>() {
    for (int16_t v = M::min_version; v <= M::max_version; ++v) {
      M m;
      testing::fill_sample(m, v, 0);
      std::vector<uint8_t> bytes = encode_bytes(m, v);
      for (int i = 0; i < 8 && !bytes.empty(); ++i) {
        std::vector<uint8_t> buf = bytes;
        for (int flips = 0; flips < 3; ++flips) {
          buf[rng.below(buf.size())] = static_cast<uint8_t>(rng.next());
        }
        decode_garbage<M>(buf, v);
      }
    }
  });
}

}  // namespace
}  // namespace sluice::wire
