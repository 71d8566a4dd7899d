#pragma once
// A deliberately small, independent Kafka wire encoder/decoder for the compat tests.
//
// The compat tests check the broker against clients, so they must not share code (and bugs) with
// the broker's own codec in wire/. This file knows only the handful of request/response shapes the
// raw-socket tests need, written from the Kafka JSON specs in shared/kafka-protocol/messages.
// Decoding throws `decode_error` on truncated input: in a test that is a failure, not a crash.
//
// Threading: everything here is stateless except `raw_connection`, which one thread owns.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::compat {

using bytes = std::vector<uint8_t>;

struct decode_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Big-endian writer with the classic and compact (flexible-version) encodings.
class byte_writer {
 public:
  void i8(int8_t v) { out_.push_back(static_cast<uint8_t>(v)); }
  void i16(int16_t v) { fixed(static_cast<uint16_t>(v), 2); }
  void i32(int32_t v) { fixed(static_cast<uint32_t>(v), 4); }
  void i64(int64_t v) { fixed(static_cast<uint64_t>(v), 8); }
  void u32(uint32_t v) { fixed(v, 4); }
  void uvarint(uint64_t v);
  // Zigzag varint/varlong as used inside record batches (same bytes for both widths).
  void varint(int64_t v) {
    uvarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void string(std::string_view s, bool compact);
  void null_string(bool compact);
  void bytes_field(std::span<const uint8_t> b, bool compact);
  void array_length(int32_t n, bool compact);
  // An empty tagged-field section (flexible versions only).
  void empty_tags() { uvarint(0); }
  void raw(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void raw(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void patch_i32(size_t at, int32_t v);
  void patch_u32(size_t at, uint32_t v);

  size_t size() const { return out_.size(); }
  bytes& data() { return out_; }
  bytes take() { return std::move(out_); }

 private:
  void fixed(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  bytes out_;
};

class byte_reader {
 public:
  explicit byte_reader(std::span<const uint8_t> data) : data_(data) {}

  int8_t i8() { return static_cast<int8_t>(fixed(1)); }
  int16_t i16() { return static_cast<int16_t>(fixed(2)); }
  int32_t i32() { return static_cast<int32_t>(fixed(4)); }
  int64_t i64() { return static_cast<int64_t>(fixed(8)); }
  uint32_t u32() { return static_cast<uint32_t>(fixed(4)); }
  uint64_t uvarint();
  int64_t varint();  // zigzag
  std::optional<std::string> string(bool compact);
  // A bytes/records field; nullopt for null. The span points into the reader's input.
  std::optional<std::span<const uint8_t>> bytes_field(bool compact);
  // -1 for a null array.
  int32_t array_length(bool compact);
  void skip_tags();
  std::span<const uint8_t> take(size_t n);
  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  uint64_t fixed(int n);
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

// ---- Framing -------------------------------------------------------------------------------

// `size` + request header (v1, or v2 when `flexible`) + body.
bytes frame_request(int16_t api_key, int16_t api_version, int32_t correlation_id, bool flexible,
                    std::span<const uint8_t> body, std::string_view client_id = "sluice-compat");

// A response payload (the bytes after the size prefix) split into header and body.
struct response {
  int32_t correlation_id = 0;
  std::span<const uint8_t> body;
};
// Response header v0, or v1 (with a tag section) when `flexible`.
response split_response(std::span<const uint8_t> payload, bool flexible);

// ---- Requests ------------------------------------------------------------------------------

// ApiVersions at any version; v3+ (and unknown future versions) carry the flexible body with
// client_software_name/version, as a current client would send.
bytes api_versions_request(int16_t version, int32_t correlation_id);

// Metadata v4 (non-flexible): the first version with allow_auto_topic_creation.
bytes metadata_v4_request(int32_t correlation_id, const std::vector<std::string>& topics,
                          bool allow_auto_topic_creation);

// Produce v3-v8 (non-flexible) of one record-batch blob to one partition.
bytes produce_request(int16_t version, int32_t correlation_id, const std::string& topic,
                      int32_t partition, std::span<const uint8_t> records, int16_t acks = -1,
                      int32_t timeout_ms = 5000, std::string_view client_id = "sluice-compat");

// Produce v1 carrying a legacy (magic 1) message set.
bytes produce_v1_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                         std::span<const uint8_t> message_set);

// Fetch v0 or v4 (both non-flexible) for one partition.
bytes fetch_request(int16_t version, int32_t correlation_id, const std::string& topic,
                    int32_t partition, int64_t fetch_offset, int32_t max_wait_ms, int32_t min_bytes,
                    int32_t max_bytes = 1 << 20);

// ListOffsets v7 (flexible) for one partition. timestamp: -1 latest, -2 earliest, -3 max timestamp.
bytes list_offsets_v7_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                              int64_t timestamp);

// Flexible versions (compact encodings, tag sections; request header v2). librdkafka 2.0.2 never
// sends these (its maxima are Produce 7, Fetch 11, Metadata 4), but every current client does.
bytes produce_v9_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                         std::span<const uint8_t> records, int16_t acks = -1);
bytes fetch_v12_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                        int64_t fetch_offset, int32_t max_wait_ms, int32_t min_bytes);
// Fetch v12 with the per-partition epochs a follower (KIP-595) or a KIP-320 consumer sets;
// the overload above sends -1 for both.
struct fetch_v12_options {
  int32_t current_leader_epoch = -1;  // -1: no fencing check
  int32_t last_fetched_epoch = -1;    // >= 0: the leader checks for divergence (DivergingEpoch)
  std::string rack_id;                // a consumer's client.rack (KIP-392)
};
bytes fetch_v12_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                        int64_t fetch_offset, int32_t max_wait_ms, int32_t min_bytes,
                        const fetch_v12_options& options);
// OffsetForLeaderEpoch (key 23) v0-v4; v4 is flexible (request header v2). CurrentLeaderEpoch
// exists from v2 (a query with another value than -1 at v0/v1 throws std::invalid_argument),
// ReplicaId from v3.
struct leader_epoch_query {
  int32_t partition = 0;
  int32_t leader_epoch = -1;
  int32_t current_leader_epoch = -1;  // v2+; -1 skips the fencing check
};
struct leader_epoch_topic_query {
  std::string topic;
  std::vector<leader_epoch_query> partitions;
};
bytes offset_for_leader_epoch_request(int16_t version, int32_t correlation_id,
                                      const std::vector<leader_epoch_topic_query>& topics,
                                      int32_t replica_id = -1);
// Metadata v12 for the given topics (by name), or for all topics when `all`.
bytes metadata_v12_request(int32_t correlation_id, const std::vector<std::string>& topics,
                           bool allow_auto_topic_creation, bool all = false);
// Metadata v0, the first version; an empty list asks for all topics.
bytes metadata_v0_request(int32_t correlation_id, const std::vector<std::string>& topics);
// FindCoordinator for one group: v0 (non-flexible, one key) or v4 (flexible, a list of keys).
bytes find_coordinator_request(int16_t version, int32_t correlation_id, const std::string& group);
// OffsetFetch v8 (flexible) for every committed offset of one group (topics null).
bytes offset_fetch_v8_request(int32_t correlation_id, const std::string& group);
// DescribeCluster v0 (flexible from its first version).
bytes describe_cluster_v0_request(int32_t correlation_id);
// InitProducerId (key 22) v0-v5 as an idempotent producer sends it: no transactional id, and from
// v3 producer id and epoch -1 (no id to bump). Flexible from v2.
bytes init_producer_id_request(int16_t version, int32_t correlation_id);

// ---- Responses -----------------------------------------------------------------------------

struct api_range {
  int16_t api_key;
  int16_t min_version;
  int16_t max_version;
};
struct api_versions_v0_body {
  int16_t error_code = 0;
  std::vector<api_range> api_keys;
};
// Parses a v0 body and requires that it is consumed exactly.
api_versions_v0_body parse_api_versions_v0(std::span<const uint8_t> body);

// ApiVersions v3 body (flexible, but after a v0 response header).
api_versions_v0_body parse_api_versions_v3(std::span<const uint8_t> body);

struct partition_result {
  std::string topic;
  int32_t partition = -1;
  int16_t error_code = 0;
  int64_t offset = -1;     // produce: base offset; list offsets: offset
  int64_t timestamp = -1;  // list offsets only
};
// Produce response v3-v8.
std::vector<partition_result> parse_produce_response(int16_t version,
                                                     std::span<const uint8_t> body);
// ListOffsets response v7.
std::vector<partition_result> parse_list_offsets_v7(std::span<const uint8_t> body);

struct metadata_topic {
  int16_t error_code;
  std::string name;
  int32_t partition_count;
};
std::vector<metadata_topic> parse_metadata_v4_topics(std::span<const uint8_t> body);

struct fetch_partition {
  int32_t partition = -1;
  int16_t error_code = 0;
  int64_t high_watermark = -1;
  bytes records;
};
// Fetch response v4.
std::vector<fetch_partition> parse_fetch_v4(std::span<const uint8_t> body);
// Fetch response v12 (flexible); top-level error code in *error when given.
std::vector<fetch_partition> parse_fetch_v12(std::span<const uint8_t> body,
                                             int16_t* error = nullptr);
// Fetch response v12 with everything a partition carries, including its tag section.
struct epoch_end_offset {
  int32_t epoch = -1;
  int64_t end_offset = -1;
};
struct fetch_v12_partition : fetch_partition {
  std::string topic;
  int64_t last_stable_offset = -1;
  int64_t log_start_offset = -1;
  bool records_null = false;
  int32_t preferred_read_replica = -1;              // KIP-392
  std::optional<epoch_end_offset> diverging_epoch;  // tag 0, when present
  std::vector<uint64_t> tags;                       // every tag of the partition, in order
};
struct fetch_v12_body {
  int32_t throttle_time_ms = -1;
  int16_t error_code = 0;
  int32_t session_id = 0;
  std::vector<fetch_v12_partition> partitions;
};
// Requires that the body is consumed exactly (and a DivergingEpoch tag exactly by its struct).
fetch_v12_body parse_fetch_v12_full(std::span<const uint8_t> body);

// OffsetForLeaderEpoch response v0-v4 (header v1 at v4: split it with flexible = true). Requires
// that the body is consumed exactly.
struct leader_epoch_result {
  std::string topic;
  int16_t error_code = 0;
  int32_t partition = -1;
  std::optional<int32_t> leader_epoch;  // v1+
  int64_t end_offset = -1;
};
struct offset_for_leader_epoch_body {
  std::optional<int32_t> throttle_time_ms;  // v2+
  std::vector<leader_epoch_result> partitions;
};
offset_for_leader_epoch_body parse_offset_for_leader_epoch(int16_t version,
                                                           std::span<const uint8_t> body);
// Produce response v9 (flexible).
std::vector<partition_result> parse_produce_v9(std::span<const uint8_t> body);

struct metadata_broker {
  int32_t node_id = -1;
  std::string host;
  int32_t port = -1;
  bool operator==(const metadata_broker&) const = default;
};
struct metadata_v12 {
  std::vector<metadata_broker> brokers;
  std::optional<std::string> cluster_id;
  int32_t controller_id = -1;
  struct partition {
    int16_t error_code = 0;
    int32_t index = -1;
    int32_t leader = -1;
    int32_t leader_epoch = -1;
    std::vector<int32_t> replicas;
    std::vector<int32_t> isr;
    std::vector<int32_t> offline;
  };
  struct topic {
    int16_t error_code;
    std::string name;
    bool is_internal = false;
    std::vector<partition> partitions;
  };
  std::vector<topic> topics;
};
metadata_v12 parse_metadata_v12(std::span<const uint8_t> body);
// The brokers of a non-flexible Metadata response (v0-v8); the rest of the body is not read.
std::vector<metadata_broker> parse_metadata_brokers(int16_t version, std::span<const uint8_t> body);

struct coordinator_result {
  std::string key;  // v4+ only
  int16_t error_code = 0;
  int32_t node_id = -1;
  std::string host;
  int32_t port = -1;
};
// FindCoordinator response v0 (one flat answer) or v4 (one per key); requires that the body is
// consumed exactly.
std::vector<coordinator_result> parse_find_coordinator(int16_t version,
                                                       std::span<const uint8_t> body);

struct offset_fetch_group {
  std::string group_id;
  int16_t error_code = 0;
  std::map<std::pair<std::string, int32_t>, int64_t> offsets;  // (topic, partition) -> offset
};
// OffsetFetch response v8 for one group; requires that the body is consumed exactly.
offset_fetch_group parse_offset_fetch_v8(std::span<const uint8_t> body);

struct describe_cluster_v0 {
  int16_t error_code = 0;
  std::string cluster_id;
  int32_t controller_id = -1;
  std::vector<metadata_broker> brokers;
};
// DescribeCluster response v0; requires that the body is consumed exactly.
describe_cluster_v0 parse_describe_cluster_v0(std::span<const uint8_t> body);

struct init_producer_id_result {
  int32_t throttle_time_ms = -1;
  int16_t error_code = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
};
// InitProducerId response v0-v5 (header v1 from v2: split it with flexible = version >= 2);
// requires that the body is consumed exactly.
init_producer_id_result parse_init_producer_id(int16_t version, std::span<const uint8_t> body);

// ElectLeaders v1 (key 43, not flexible): election_type 0 preferred, 1 unclean; `partitions`
// topic -> partition ids, nullopt for every partition.
bytes elect_leaders_v1_request(
    int32_t correlation_id, int8_t election_type,
    const std::optional<std::map<std::string, std::vector<int32_t>>>& partitions,
    int32_t timeout_ms);
struct election_answer {
  std::string topic;
  int32_t partition = -1;
  int16_t error_code = 0;
  std::optional<std::string> message;
};
struct elect_leaders_v1 {
  int16_t error_code = 0;
  std::vector<election_answer> results;
};
// ElectLeaders response v1; requires that the body is consumed exactly.
elect_leaders_v1 parse_elect_leaders_v1(std::span<const uint8_t> body);

// AlterPartitionReassignments v0 (key 45, flexible, KIP-455): per partition the target replicas,
// or nullopt to cancel the reassignment in progress. Topics are sent in first-seen order.
struct reassignment_target {
  std::string topic;
  int32_t partition = -1;
  std::optional<std::vector<int32_t>> replicas;
};
bytes alter_partition_reassignments_v0_request(int32_t correlation_id,
                                               const std::vector<reassignment_target>& targets,
                                               int32_t timeout_ms);
// A partition's answer, as ElectLeaders gives it.
using reassignment_answer = election_answer;
struct alter_partition_reassignments_v0 {
  int16_t error_code = 0;
  std::optional<std::string> error_message;
  std::vector<reassignment_answer> results;
};
// Requires that the body is consumed exactly.
alter_partition_reassignments_v0 parse_alter_partition_reassignments_v0(
    std::span<const uint8_t> body);

// ListPartitionReassignments v0 (key 46, flexible): topic -> partitions, nullopt for all.
bytes list_partition_reassignments_v0_request(
    int32_t correlation_id,
    const std::optional<std::map<std::string, std::vector<int32_t>>>& partitions,
    int32_t timeout_ms);
struct ongoing_partition_reassignment {
  std::string topic;
  int32_t partition = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> adding;
  std::vector<int32_t> removing;
};
struct list_partition_reassignments_v0 {
  int16_t error_code = 0;
  std::optional<std::string> error_message;
  std::vector<ongoing_partition_reassignment> partitions;
};
// Requires that the body is consumed exactly.
list_partition_reassignments_v0 parse_list_partition_reassignments_v0(
    std::span<const uint8_t> body);

// ---- Record batches ------------------------------------------------------------------------

uint32_t crc32c(std::span<const uint8_t> data);
uint32_t crc32_ieee(std::span<const uint8_t> data);

struct test_record {
  std::optional<std::string> key;
  std::optional<std::string> value;
  int64_t timestamp_delta = 0;
};
// An uncompressed magic-2 batch as a producer sends it: baseOffset 0, epoch -1, no producer id,
// CRC-32C filled in.
bytes build_record_batch(const std::vector<test_record>& records, int64_t base_timestamp);
// A legacy magic-1 message set with one uncompressed message (CRC-32 IEEE filled in).
bytes build_legacy_message_set_v1(std::string_view key, std::string_view value, int64_t timestamp);

// Splits concatenated magic-2 batches (a .log file, a records field) using batchLength; a torn
// tail shorter than its declared length is dropped.
std::vector<std::span<const uint8_t>> split_batches(std::span<const uint8_t> data);

// Record batches found in the Produce requests of a captured client->broker byte stream, in the
// order they were sent.
struct captured_batch {
  int16_t api_version;
  std::string topic;
  int32_t partition;
  bytes batch;
};
std::vector<captured_batch> extract_produce_batches(std::span<const uint8_t> client_stream);

// Api keys of every request frame in a captured client->broker stream.
std::vector<int16_t> request_api_keys(std::span<const uint8_t> client_stream);

// Broker ids as "[1,2,3]", for messages and output.
std::string ids(const std::vector<int32_t>& v);

// ---- Raw socket ----------------------------------------------------------------------------

// One TCP connection to the broker, used to send hand-made (and malformed) frames.
class raw_connection {
 public:
  raw_connection(const std::string& host, uint16_t port);  // throws on failure to connect
  ~raw_connection();
  raw_connection(raw_connection&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  raw_connection& operator=(raw_connection&&) = delete;
  raw_connection(const raw_connection&) = delete;

  // Sends everything; false if the peer has already closed (EPIPE/ECONNRESET).
  bool send(std::span<const uint8_t> data);
  void shutdown_write();

  enum class status { ok, closed, timeout };
  // Reads one size-prefixed frame into `payload` (without the size).
  status read_frame(bytes& payload, std::chrono::milliseconds timeout);
  // Waits for the peer to close. Returns true on EOF or reset within the timeout. Any bytes that
  // arrive first are counted in `*received` (a well-behaved broker sends none before closing).
  bool wait_closed(std::chrono::milliseconds timeout, size_t* received = nullptr);

 private:
  // Reads exactly n bytes; ok, closed or timeout against the absolute deadline.
  status read_exact(uint8_t* out, size_t n, std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
};

// Convenience: sends `request` and reads the response frame on `conn`, throwing on close/timeout.
bytes round_trip(raw_connection& conn, std::span<const uint8_t> request,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace sluice::compat
