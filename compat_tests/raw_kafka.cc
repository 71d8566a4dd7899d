#include "compat_tests/raw_kafka.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace sluice::compat {

// ---- byte_writer ---------------------------------------------------------------------------

void byte_writer::uvarint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<uint8_t>(v));
}

void byte_writer::string(std::string_view s, bool compact) {
  if (compact) {
    uvarint(s.size() + 1);
  } else {
    i16(static_cast<int16_t>(s.size()));
  }
  raw(s);
}

void byte_writer::null_string(bool compact) {
  if (compact) {
    uvarint(0);
  } else {
    i16(-1);
  }
}

void byte_writer::bytes_field(std::span<const uint8_t> b, bool compact) {
  if (compact) {
    uvarint(b.size() + 1);
  } else {
    i32(static_cast<int32_t>(b.size()));
  }
  raw(b);
}

void byte_writer::array_length(int32_t n, bool compact) {
  if (compact) {
    uvarint(static_cast<uint64_t>(n + 1));
  } else {
    i32(n);
  }
}

void byte_writer::patch_i32(size_t at, int32_t v) {
  patch_u32(at, static_cast<uint32_t>(v));
}

void byte_writer::patch_u32(size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out_.at(at + i) = static_cast<uint8_t>(v >> (8 * (3 - i)));
}

// ---- byte_reader ---------------------------------------------------------------------------

uint64_t byte_reader::fixed(int n) {
  if (remaining() < static_cast<size_t>(n)) throw decode_error("truncated fixed-width field");
  uint64_t v = 0;
  for (int i = 0; i < n; ++i)
    v = (v << 8) | data_[pos_ + i];
  pos_ += n;
  return v;
}

uint64_t byte_reader::uvarint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (remaining() == 0) throw decode_error("truncated varint");
    uint8_t b = data_[pos_++];
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  throw decode_error("varint too long");
}

int64_t byte_reader::varint() {
  uint64_t u = uvarint();
  return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
}

std::optional<std::string> byte_reader::string(bool compact) {
  int64_t n = compact ? static_cast<int64_t>(uvarint()) - 1 : i16();
  if (n < 0) return std::nullopt;
  auto s = take(static_cast<size_t>(n));
  return std::string(s.begin(), s.end());
}

std::optional<std::span<const uint8_t>> byte_reader::bytes_field(bool compact) {
  int64_t n = compact ? static_cast<int64_t>(uvarint()) - 1 : i32();
  if (n < 0) return std::nullopt;
  return take(static_cast<size_t>(n));
}

int32_t byte_reader::array_length(bool compact) {
  int64_t n = compact ? static_cast<int64_t>(uvarint()) - 1 : i32();
  if (n > static_cast<int64_t>(remaining())) throw decode_error("array count beyond input");
  return static_cast<int32_t>(n < 0 ? -1 : n);
}

void byte_reader::skip_tags() {
  uint64_t count = uvarint();
  for (uint64_t i = 0; i < count; ++i) {
    uvarint();  // tag
    take(uvarint());
  }
}

std::span<const uint8_t> byte_reader::take(size_t n) {
  if (remaining() < n) throw decode_error("truncated field");
  auto s = data_.subspan(pos_, n);
  pos_ += n;
  return s;
}

// ---- Framing -------------------------------------------------------------------------------

bytes frame_request(int16_t api_key, int16_t api_version, int32_t correlation_id, bool flexible,
                    std::span<const uint8_t> body, std::string_view client_id) {
  byte_writer w;
  w.i32(0);  // size, patched below
  w.i16(api_key);
  w.i16(api_version);
  w.i32(correlation_id);
  w.string(client_id, /*compact=*/false);  // client_id is classic even in header v2
  if (flexible) w.empty_tags();
  w.raw(body);
  w.patch_i32(0, static_cast<int32_t>(w.size() - 4));
  return w.take();
}

response split_response(std::span<const uint8_t> payload, bool flexible) {
  byte_reader r(payload);
  response out;
  out.correlation_id = r.i32();
  if (flexible) r.skip_tags();
  out.body = payload.subspan(r.position());
  return out;
}

// ---- Requests ------------------------------------------------------------------------------

bytes api_versions_request(int16_t version, int32_t correlation_id) {
  bool flexible = version >= 3;
  byte_writer body;
  if (flexible) {
    body.string("sluice-compat", true);
    body.string("0.1.0", true);
    body.empty_tags();
  }
  return frame_request(18, version, correlation_id, flexible, body.data());
}

bytes metadata_v4_request(int32_t correlation_id, const std::vector<std::string>& topics,
                          bool allow_auto_topic_creation) {
  byte_writer body;
  body.array_length(static_cast<int32_t>(topics.size()), false);
  for (const auto& t : topics)
    body.string(t, false);
  body.i8(allow_auto_topic_creation ? 1 : 0);
  return frame_request(3, 4, correlation_id, false, body.data());
}

bytes produce_request(int16_t version, int32_t correlation_id, const std::string& topic,
                      int32_t partition, std::span<const uint8_t> records, int16_t acks,
                      int32_t timeout_ms, std::string_view client_id) {
  if (version < 3 || version > 8) throw std::invalid_argument("produce_request: v3-v8 only");
  byte_writer body;
  body.null_string(false);  // transactional_id
  body.i16(acks);
  body.i32(timeout_ms);
  body.array_length(1, false);
  body.string(topic, false);
  body.array_length(1, false);
  body.i32(partition);
  body.bytes_field(records, false);
  return frame_request(0, version, correlation_id, false, body.data(), client_id);
}

bytes produce_v1_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                         std::span<const uint8_t> message_set) {
  byte_writer body;
  body.i16(1);  // acks
  body.i32(5000);
  body.array_length(1, false);
  body.string(topic, false);
  body.array_length(1, false);
  body.i32(partition);
  body.bytes_field(message_set, false);
  return frame_request(0, 1, correlation_id, false, body.data());
}

bytes fetch_request(int16_t version, int32_t correlation_id, const std::string& topic,
                    int32_t partition, int64_t fetch_offset, int32_t max_wait_ms, int32_t min_bytes,
                    int32_t max_bytes) {
  if (version != 0 && version != 4) throw std::invalid_argument("fetch_request: v0 or v4 only");
  byte_writer body;
  body.i32(-1);  // replica_id: a consumer
  body.i32(max_wait_ms);
  body.i32(min_bytes);
  if (version >= 3) body.i32(max_bytes);
  if (version >= 4) body.i8(0);  // isolation_level: read_uncommitted
  body.array_length(1, false);
  body.string(topic, false);
  body.array_length(1, false);
  body.i32(partition);
  body.i64(fetch_offset);
  body.i32(max_bytes);
  return frame_request(1, version, correlation_id, false, body.data());
}

bytes list_offsets_v7_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                              int64_t timestamp) {
  byte_writer body;
  body.i32(-1);  // replica_id
  body.i8(0);    // isolation_level
  body.array_length(1, true);
  body.string(topic, true);
  body.array_length(1, true);
  body.i32(partition);
  body.i32(-1);  // current_leader_epoch: unknown
  body.i64(timestamp);
  body.empty_tags();  // partition
  body.empty_tags();  // topic
  body.empty_tags();  // request
  return frame_request(2, 7, correlation_id, true, body.data());
}

bytes produce_v9_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                         std::span<const uint8_t> records, int16_t acks) {
  byte_writer body;
  body.null_string(true);  // transactional_id
  body.i16(acks);
  body.i32(5000);
  body.array_length(1, true);
  body.string(topic, true);
  body.array_length(1, true);
  body.i32(partition);
  body.bytes_field(records, true);
  body.empty_tags();  // partition
  body.empty_tags();  // topic
  body.empty_tags();  // request
  return frame_request(0, 9, correlation_id, true, body.data());
}

bytes fetch_v12_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                        int64_t fetch_offset, int32_t max_wait_ms, int32_t min_bytes) {
  return fetch_v12_request(correlation_id, topic, partition, fetch_offset, max_wait_ms, min_bytes,
                           fetch_v12_options{});
}

bytes fetch_v12_request(int32_t correlation_id, const std::string& topic, int32_t partition,
                        int64_t fetch_offset, int32_t max_wait_ms, int32_t min_bytes,
                        const fetch_v12_options& options) {
  byte_writer body;
  body.i32(-1);  // replica_id
  body.i32(max_wait_ms);
  body.i32(min_bytes);
  body.i32(1 << 20);  // max_bytes
  body.i8(0);         // isolation_level
  body.i32(0);        // session_id: no session
  body.i32(-1);       // session_epoch: full fetch, no session wanted
  body.array_length(1, true);
  body.string(topic, true);
  body.array_length(1, true);
  body.i32(partition);
  body.i32(options.current_leader_epoch);
  body.i64(fetch_offset);
  body.i32(options.last_fetched_epoch);
  body.i64(-1);  // log_start_offset
  body.i32(1 << 20);
  body.empty_tags();           // partition
  body.empty_tags();           // topic
  body.array_length(0, true);  // forgotten_topics_data
  body.string(options.rack_id, true);
  body.empty_tags();  // request (cluster_id would be tag 0)
  return frame_request(1, 12, correlation_id, true, body.data());
}

bytes offset_for_leader_epoch_request(int16_t version, int32_t correlation_id,
                                      const std::vector<leader_epoch_topic_query>& topics,
                                      int32_t replica_id) {
  if (version < 0 || version > 4) {
    throw std::invalid_argument("offset_for_leader_epoch_request: v0-v4 only");
  }
  const bool flexible = version >= 4;
  byte_writer body;
  if (version >= 3) body.i32(replica_id);
  body.array_length(static_cast<int32_t>(topics.size()), flexible);
  for (const auto& t : topics) {
    body.string(t.topic, flexible);
    body.array_length(static_cast<int32_t>(t.partitions.size()), flexible);
    for (const auto& p : t.partitions) {
      body.i32(p.partition);
      if (version >= 2) {
        body.i32(p.current_leader_epoch);
      } else if (p.current_leader_epoch != -1) {
        throw std::invalid_argument("CurrentLeaderEpoch needs OffsetForLeaderEpoch v2+");
      }
      body.i32(p.leader_epoch);
      if (flexible) body.empty_tags();  // partition
    }
    if (flexible) body.empty_tags();  // topic
  }
  if (flexible) body.empty_tags();  // request
  return frame_request(23, version, correlation_id, flexible, body.data());
}

bytes metadata_v12_request(int32_t correlation_id, const std::vector<std::string>& topics,
                           bool allow_auto_topic_creation, bool all) {
  byte_writer body;
  if (all) {
    body.uvarint(0);  // null array: all topics
  } else {
    body.array_length(static_cast<int32_t>(topics.size()), true);
    for (const auto& t : topics) {
      body.raw(bytes(16, 0));  // topic_id: zero, address by name
      body.string(t, true);
      body.empty_tags();
    }
  }
  body.i8(allow_auto_topic_creation ? 1 : 0);
  body.i8(0);  // include_topic_authorized_operations
  body.empty_tags();
  return frame_request(3, 12, correlation_id, true, body.data());
}

bytes metadata_v0_request(int32_t correlation_id, const std::vector<std::string>& topics) {
  byte_writer body;
  body.array_length(static_cast<int32_t>(topics.size()), false);
  for (const auto& t : topics)
    body.string(t, false);
  return frame_request(3, 0, correlation_id, false, body.data());
}

bytes find_coordinator_request(int16_t version, int32_t correlation_id, const std::string& group) {
  byte_writer body;
  if (version == 0) {
    body.string(group, false);
    return frame_request(10, 0, correlation_id, false, body.data());
  }
  if (version != 4) throw std::invalid_argument("find_coordinator_request: v0 or v4 only");
  body.i8(0);  // key_type: group
  body.array_length(1, true);
  body.string(group, true);
  body.empty_tags();
  return frame_request(10, 4, correlation_id, true, body.data());
}

bytes offset_fetch_v8_request(int32_t correlation_id, const std::string& group) {
  byte_writer body;
  body.array_length(1, true);  // groups
  body.string(group, true);
  body.array_length(-1, true);  // topics: null, every committed offset
  body.empty_tags();
  body.i8(0);  // require_stable
  body.empty_tags();
  return frame_request(9, 8, correlation_id, true, body.data());
}

bytes describe_cluster_v0_request(int32_t correlation_id) {
  byte_writer body;
  body.i8(0);  // include_cluster_authorized_operations
  body.empty_tags();
  return frame_request(60, 0, correlation_id, true, body.data());
}

bytes init_producer_id_request(int16_t version, int32_t correlation_id) {
  if (version < 0 || version > 5) {
    throw std::invalid_argument("init_producer_id_request: v0 to v5 only");
  }
  const bool flexible = version >= 2;
  byte_writer body;
  body.null_string(flexible);  // transactional_id
  body.i32(60000);             // transaction_timeout_ms
  if (version >= 3) {
    body.i64(-1);  // producer_id
    body.i16(-1);  // producer_epoch
  }
  if (flexible) body.empty_tags();
  return frame_request(22, version, correlation_id, flexible, body.data());
}

bytes elect_leaders_v1_request(
    int32_t correlation_id, int8_t election_type,
    const std::optional<std::map<std::string, std::vector<int32_t>>>& partitions,
    int32_t timeout_ms) {
  byte_writer body;
  body.i8(election_type);
  if (!partitions) {
    body.array_length(-1, false);
  } else {
    body.array_length(static_cast<int32_t>(partitions->size()), false);
    for (const auto& [topic, ids] : *partitions) {
      body.string(topic, false);
      body.array_length(static_cast<int32_t>(ids.size()), false);
      for (int32_t id : ids)
        body.i32(id);
    }
  }
  body.i32(timeout_ms);
  return frame_request(43, 1, correlation_id, false, body.data());
}

bytes alter_partition_reassignments_v0_request(int32_t correlation_id,
                                               const std::vector<reassignment_target>& targets,
                                               int32_t timeout_ms) {
  std::vector<std::pair<std::string, std::vector<const reassignment_target*>>> topics;
  for (const reassignment_target& t : targets) {
    auto it = std::find_if(topics.begin(), topics.end(),
                           [&](const auto& entry) { return entry.first == t.topic; });
    if (it == topics.end()) it = topics.insert(topics.end(), {t.topic, {}});
    it->second.push_back(&t);
  }
  byte_writer body;
  body.i32(timeout_ms);
  body.array_length(static_cast<int32_t>(topics.size()), true);
  for (const auto& [topic, partitions] : topics) {
    body.string(topic, true);
    body.array_length(static_cast<int32_t>(partitions.size()), true);
    for (const reassignment_target* p : partitions) {
      body.i32(p->partition);
      if (!p->replicas) {
        body.array_length(-1, true);
      } else {
        body.array_length(static_cast<int32_t>(p->replicas->size()), true);
        for (int32_t id : *p->replicas)
          body.i32(id);
      }
      body.empty_tags();
    }
    body.empty_tags();
  }
  body.empty_tags();
  return frame_request(45, 0, correlation_id, true, body.data());
}

bytes list_partition_reassignments_v0_request(
    int32_t correlation_id,
    const std::optional<std::map<std::string, std::vector<int32_t>>>& partitions,
    int32_t timeout_ms) {
  byte_writer body;
  body.i32(timeout_ms);
  if (!partitions) {
    body.array_length(-1, true);
  } else {
    body.array_length(static_cast<int32_t>(partitions->size()), true);
    for (const auto& [topic, ids] : *partitions) {
      body.string(topic, true);
      body.array_length(static_cast<int32_t>(ids.size()), true);
      for (int32_t id : ids)
        body.i32(id);
      body.empty_tags();
    }
  }
  body.empty_tags();
  return frame_request(46, 0, correlation_id, true, body.data());
}

// ---- Responses -----------------------------------------------------------------------------

api_versions_v0_body parse_api_versions_v0(std::span<const uint8_t> body) {
  byte_reader r(body);
  api_versions_v0_body out;
  out.error_code = r.i16();
  int32_t n = r.array_length(false);
  for (int32_t i = 0; i < n; ++i) {
    api_range a;
    a.api_key = r.i16();
    a.min_version = r.i16();
    a.max_version = r.i16();
    out.api_keys.push_back(a);
  }
  if (r.remaining() != 0) {
    throw decode_error("ApiVersions v0 body has " + std::to_string(r.remaining()) +
                       " trailing bytes");
  }
  return out;
}

api_versions_v0_body parse_api_versions_v3(std::span<const uint8_t> body) {
  byte_reader r(body);
  api_versions_v0_body out;
  out.error_code = r.i16();
  int32_t n = r.array_length(true);
  for (int32_t i = 0; i < n; ++i) {
    api_range a;
    a.api_key = r.i16();
    a.min_version = r.i16();
    a.max_version = r.i16();
    r.skip_tags();
    out.api_keys.push_back(a);
  }
  r.i32();  // throttle_time_ms
  r.skip_tags();
  if (r.remaining() != 0) throw decode_error("ApiVersions v3 body has trailing bytes");
  return out;
}

std::vector<partition_result> parse_produce_v9(std::span<const uint8_t> body) {
  byte_reader r(body);
  std::vector<partition_result> out;
  int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    std::string name = r.string(true).value_or("");
    int32_t parts = r.array_length(true);
    for (int32_t p = 0; p < parts; ++p) {
      partition_result pr;
      pr.topic = name;
      pr.partition = r.i32();
      pr.error_code = r.i16();
      pr.offset = r.i64();
      pr.timestamp = r.i64();  // log_append_time_ms
      r.i64();                 // log_start_offset
      int32_t errs = r.array_length(true);
      for (int32_t e = 0; e < errs; ++e) {
        r.i32();
        r.string(true);
        r.skip_tags();
      }
      r.string(true);  // error_message
      r.skip_tags();
      out.push_back(pr);
    }
    r.skip_tags();
  }
  r.i32();  // throttle_time_ms
  r.skip_tags();
  if (r.remaining() != 0) throw decode_error("Produce v9 body has trailing bytes");
  return out;
}

fetch_v12_body parse_fetch_v12_full(std::span<const uint8_t> body) {
  byte_reader r(body);
  fetch_v12_body out;
  out.throttle_time_ms = r.i32();
  out.error_code = r.i16();
  out.session_id = r.i32();
  int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    std::string name = r.string(true).value_or("");
    int32_t parts = r.array_length(true);
    for (int32_t p = 0; p < parts; ++p) {
      fetch_v12_partition fp;
      fp.topic = name;
      fp.partition = r.i32();
      fp.error_code = r.i16();
      fp.high_watermark = r.i64();
      fp.last_stable_offset = r.i64();
      fp.log_start_offset = r.i64();
      int32_t aborted = r.array_length(true);
      for (int32_t a = 0; a < aborted; ++a) {
        r.i64();
        r.i64();
        r.skip_tags();
      }
      fp.preferred_read_replica = r.i32();
      auto rec = r.bytes_field(true);
      if (rec) {
        fp.records.assign(rec->begin(), rec->end());
      } else {
        fp.records_null = true;
      }
      // The partition's tag section: 0 DivergingEpoch, 1 CurrentLeader, 2 SnapshotId.
      uint64_t tag_count = r.uvarint();
      for (uint64_t i = 0; i < tag_count; ++i) {
        uint64_t tag = r.uvarint();
        fp.tags.push_back(tag);
        auto value = r.take(r.uvarint());
        if (tag != 0) continue;
        byte_reader tr(value);
        epoch_end_offset d;
        d.epoch = tr.i32();
        d.end_offset = tr.i64();
        tr.skip_tags();
        if (tr.remaining() != 0) throw decode_error("DivergingEpoch tag has trailing bytes");
        fp.diverging_epoch = d;
      }
      out.partitions.push_back(std::move(fp));
    }
    r.skip_tags();
  }
  r.skip_tags();
  if (r.remaining() != 0) throw decode_error("Fetch v12 body has trailing bytes");
  return out;
}

std::vector<fetch_partition> parse_fetch_v12(std::span<const uint8_t> body, int16_t* error) {
  fetch_v12_body full = parse_fetch_v12_full(body);
  if (error) *error = full.error_code;
  std::vector<fetch_partition> out;
  for (auto& p : full.partitions)
    out.push_back(std::move(static_cast<fetch_partition&>(p)));
  return out;
}

offset_for_leader_epoch_body parse_offset_for_leader_epoch(int16_t version,
                                                           std::span<const uint8_t> body) {
  const bool flexible = version >= 4;
  byte_reader r(body);
  offset_for_leader_epoch_body out;
  if (version >= 2) out.throttle_time_ms = r.i32();
  int32_t topics = r.array_length(flexible);
  for (int32_t t = 0; t < topics; ++t) {
    std::string name = r.string(flexible).value_or("");
    int32_t parts = r.array_length(flexible);
    for (int32_t p = 0; p < parts; ++p) {
      leader_epoch_result lr;
      lr.topic = name;
      lr.error_code = r.i16();
      lr.partition = r.i32();
      if (version >= 1) lr.leader_epoch = r.i32();
      lr.end_offset = r.i64();
      if (flexible) r.skip_tags();
      out.partitions.push_back(std::move(lr));
    }
    if (flexible) r.skip_tags();
  }
  if (flexible) r.skip_tags();
  if (r.remaining() != 0) {
    throw decode_error("OffsetForLeaderEpoch v" + std::to_string(version) + " body has " +
                       std::to_string(r.remaining()) + " trailing bytes");
  }
  return out;
}

metadata_v12 parse_metadata_v12(std::span<const uint8_t> body) {
  byte_reader r(body);
  metadata_v12 out;
  r.i32();  // throttle_time_ms
  int32_t brokers = r.array_length(true);
  for (int32_t b = 0; b < brokers; ++b) {
    metadata_broker mb;
    mb.node_id = r.i32();
    mb.host = r.string(true).value_or("");
    mb.port = r.i32();
    r.string(true);  // rack
    r.skip_tags();
    out.brokers.push_back(mb);
  }
  out.cluster_id = r.string(true);
  out.controller_id = r.i32();
  int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    metadata_v12::topic mt;
    mt.error_code = r.i16();
    mt.name = r.string(true).value_or("");
    r.take(16);  // topic_id
    mt.is_internal = r.i8() != 0;
    int32_t parts = r.array_length(true);
    for (int32_t p = 0; p < parts; ++p) {
      metadata_v12::partition mp;
      mp.error_code = r.i16();
      mp.index = r.i32();
      mp.leader = r.i32();
      mp.leader_epoch = r.i32();
      for (std::vector<int32_t>* ids : {&mp.replicas, &mp.isr, &mp.offline}) {
        int32_t n = r.array_length(true);
        for (int32_t i = 0; i < n; ++i)
          ids->push_back(r.i32());
      }
      r.skip_tags();
      mt.partitions.push_back(std::move(mp));
    }
    r.i32();  // topic_authorized_operations
    r.skip_tags();
    out.topics.push_back(std::move(mt));
  }
  r.skip_tags();
  if (r.remaining() != 0) throw decode_error("Metadata v12 body has trailing bytes");
  return out;
}

std::vector<metadata_broker> parse_metadata_brokers(int16_t version,
                                                    std::span<const uint8_t> body) {
  if (version < 0 || version > 8) throw std::invalid_argument("parse_metadata_brokers: v0-v8");
  byte_reader r(body);
  if (version >= 3) r.i32();  // throttle_time_ms
  std::vector<metadata_broker> out;
  int32_t brokers = r.array_length(false);
  for (int32_t b = 0; b < brokers; ++b) {
    metadata_broker mb;
    mb.node_id = r.i32();
    mb.host = r.string(false).value_or("");
    mb.port = r.i32();
    if (version >= 1) r.string(false);  // rack
    out.push_back(mb);
  }
  return out;
}

std::vector<coordinator_result> parse_find_coordinator(int16_t version,
                                                       std::span<const uint8_t> body) {
  byte_reader r(body);
  std::vector<coordinator_result> out;
  if (version == 0) {
    coordinator_result c;
    c.error_code = r.i16();
    c.node_id = r.i32();
    c.host = r.string(false).value_or("");
    c.port = r.i32();
    out.push_back(c);
  } else if (version == 4) {
    r.i32();  // throttle_time_ms
    int32_t n = r.array_length(true);
    for (int32_t i = 0; i < n; ++i) {
      coordinator_result c;
      c.key = r.string(true).value_or("");
      c.node_id = r.i32();
      c.host = r.string(true).value_or("");
      c.port = r.i32();
      c.error_code = r.i16();
      r.string(true);  // error_message
      r.skip_tags();
      out.push_back(c);
    }
    r.skip_tags();
  } else {
    throw std::invalid_argument("parse_find_coordinator: v0 or v4 only");
  }
  if (r.remaining() != 0) throw decode_error("FindCoordinator body has trailing bytes");
  return out;
}

offset_fetch_group parse_offset_fetch_v8(std::span<const uint8_t> body) {
  byte_reader r(body);
  offset_fetch_group out;
  r.i32();  // throttle_time_ms
  if (r.array_length(true) != 1) throw decode_error("OffsetFetch v8: expected one group");
  out.group_id = r.string(true).value_or("");
  const int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    const std::string name = r.string(true).value_or("");
    const int32_t partitions = r.array_length(true);
    for (int32_t p = 0; p < partitions; ++p) {
      const int32_t index = r.i32();
      const int64_t offset = r.i64();
      r.i32();         // committed_leader_epoch
      r.string(true);  // metadata
      if (r.i16() == 0) out.offsets[{name, index}] = offset;
      r.skip_tags();
    }
    r.skip_tags();
  }
  out.error_code = r.i16();
  r.skip_tags();
  r.skip_tags();
  if (r.remaining() != 0) throw decode_error("OffsetFetch body has trailing bytes");
  return out;
}

describe_cluster_v0 parse_describe_cluster_v0(std::span<const uint8_t> body) {
  byte_reader r(body);
  describe_cluster_v0 out;
  r.i32();  // throttle_time_ms
  out.error_code = r.i16();
  r.string(true);  // error_message
  out.cluster_id = r.string(true).value_or("");
  out.controller_id = r.i32();
  int32_t brokers = r.array_length(true);
  for (int32_t b = 0; b < brokers; ++b) {
    metadata_broker mb;
    mb.node_id = r.i32();
    mb.host = r.string(true).value_or("");
    mb.port = r.i32();
    r.string(true);  // rack
    r.skip_tags();
    out.brokers.push_back(mb);
  }
  r.i32();  // cluster_authorized_operations
  r.skip_tags();
  if (r.remaining() != 0) throw decode_error("DescribeCluster v0 body has trailing bytes");
  return out;
}

elect_leaders_v1 parse_elect_leaders_v1(std::span<const uint8_t> body) {
  byte_reader r(body);
  elect_leaders_v1 out;
  r.i32();  // throttle_time_ms
  out.error_code = r.i16();
  const int32_t topics = r.array_length(false);
  for (int32_t t = 0; t < topics; ++t) {
    const std::string topic = r.string(false).value_or("");
    const int32_t partitions = r.array_length(false);
    for (int32_t p = 0; p < partitions; ++p) {
      election_answer a;
      a.topic = topic;
      a.partition = r.i32();
      a.error_code = r.i16();
      a.message = r.string(false);
      out.results.push_back(std::move(a));
    }
  }
  if (r.remaining() != 0) throw decode_error("ElectLeaders v1 body has trailing bytes");
  return out;
}

alter_partition_reassignments_v0 parse_alter_partition_reassignments_v0(
    std::span<const uint8_t> body) {
  byte_reader r(body);
  alter_partition_reassignments_v0 out;
  r.i32();  // throttle_time_ms
  out.error_code = r.i16();
  out.error_message = r.string(true);
  const int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    const std::string topic = r.string(true).value_or("");
    const int32_t partitions = r.array_length(true);
    for (int32_t p = 0; p < partitions; ++p) {
      reassignment_answer a;
      a.topic = topic;
      a.partition = r.i32();
      a.error_code = r.i16();
      a.message = r.string(true);
      r.skip_tags();
      out.results.push_back(std::move(a));
    }
    r.skip_tags();
  }
  r.skip_tags();
  if (r.remaining() != 0)
    throw decode_error("AlterPartitionReassignments v0 body has trailing bytes");
  return out;
}

list_partition_reassignments_v0 parse_list_partition_reassignments_v0(
    std::span<const uint8_t> body) {
  byte_reader r(body);
  list_partition_reassignments_v0 out;
  r.i32();  // throttle_time_ms
  out.error_code = r.i16();
  out.error_message = r.string(true);
  const auto ids = [&r] {
    std::vector<int32_t> v(static_cast<size_t>(std::max(0, r.array_length(true))));
    for (int32_t& id : v)
      id = r.i32();
    return v;
  };
  const int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    const std::string topic = r.string(true).value_or("");
    const int32_t partitions = r.array_length(true);
    for (int32_t p = 0; p < partitions; ++p) {
      ongoing_partition_reassignment o;
      o.topic = topic;
      o.partition = r.i32();
      o.replicas = ids();
      o.adding = ids();
      o.removing = ids();
      r.skip_tags();
      out.partitions.push_back(std::move(o));
    }
    r.skip_tags();
  }
  r.skip_tags();
  if (r.remaining() != 0)
    throw decode_error("ListPartitionReassignments v0 body has trailing bytes");
  return out;
}

init_producer_id_result parse_init_producer_id(int16_t version, std::span<const uint8_t> body) {
  byte_reader r(body);
  init_producer_id_result out;
  out.throttle_time_ms = r.i32();
  out.error_code = r.i16();
  out.producer_id = r.i64();
  out.producer_epoch = r.i16();
  if (version >= 2) r.skip_tags();
  if (r.remaining() != 0) throw decode_error("InitProducerId body has trailing bytes");
  return out;
}

std::vector<partition_result> parse_produce_response(int16_t version,
                                                     std::span<const uint8_t> body) {
  byte_reader r(body);
  std::vector<partition_result> out;
  int32_t topics = r.array_length(false);
  for (int32_t t = 0; t < topics; ++t) {
    std::string name = r.string(false).value_or("");
    int32_t parts = r.array_length(false);
    for (int32_t p = 0; p < parts; ++p) {
      partition_result pr;
      pr.topic = name;
      pr.partition = r.i32();
      pr.error_code = r.i16();
      pr.offset = r.i64();
      if (version >= 2) pr.timestamp = r.i64();  // log_append_time_ms
      if (version >= 5) r.i64();                 // log_start_offset
      if (version >= 8) {
        int32_t errs = r.array_length(false);
        for (int32_t e = 0; e < errs; ++e) {
          r.i32();
          r.string(false);
        }
        r.string(false);  // error_message
      }
      out.push_back(pr);
    }
  }
  r.i32();  // throttle_time_ms
  return out;
}

std::vector<partition_result> parse_list_offsets_v7(std::span<const uint8_t> body) {
  byte_reader r(body);
  std::vector<partition_result> out;
  r.i32();  // throttle_time_ms
  int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    std::string name = r.string(true).value_or("");
    int32_t parts = r.array_length(true);
    for (int32_t p = 0; p < parts; ++p) {
      partition_result pr;
      pr.topic = name;
      pr.partition = r.i32();
      pr.error_code = r.i16();
      pr.timestamp = r.i64();
      pr.offset = r.i64();
      r.i32();  // leader_epoch
      r.skip_tags();
      out.push_back(pr);
    }
    r.skip_tags();
  }
  r.skip_tags();
  return out;
}

std::vector<metadata_topic> parse_metadata_v4_topics(std::span<const uint8_t> body) {
  byte_reader r(body);
  r.i32();  // throttle_time_ms
  int32_t brokers = r.array_length(false);
  for (int32_t b = 0; b < brokers; ++b) {
    r.i32();
    r.string(false);
    r.i32();
    r.string(false);  // rack
  }
  r.string(false);  // cluster_id
  r.i32();          // controller_id
  std::vector<metadata_topic> out;
  int32_t topics = r.array_length(false);
  for (int32_t t = 0; t < topics; ++t) {
    metadata_topic mt;
    mt.error_code = r.i16();
    mt.name = r.string(false).value_or("");
    r.i8();  // is_internal
    mt.partition_count = r.array_length(false);
    for (int32_t p = 0; p < mt.partition_count; ++p) {
      r.i16();
      r.i32();
      r.i32();
      for (int k = 0; k < 2; ++k) {  // replicas, isr
        int32_t n = r.array_length(false);
        for (int32_t i = 0; i < n; ++i)
          r.i32();
      }
    }
    out.push_back(mt);
  }
  return out;
}

std::vector<fetch_partition> parse_fetch_v4(std::span<const uint8_t> body) {
  byte_reader r(body);
  std::vector<fetch_partition> out;
  r.i32();  // throttle_time_ms
  int32_t topics = r.array_length(false);
  for (int32_t t = 0; t < topics; ++t) {
    r.string(false);
    int32_t parts = r.array_length(false);
    for (int32_t p = 0; p < parts; ++p) {
      fetch_partition fp;
      fp.partition = r.i32();
      fp.error_code = r.i16();
      fp.high_watermark = r.i64();
      r.i64();  // last_stable_offset
      int32_t aborted = r.array_length(false);
      for (int32_t a = 0; a < aborted; ++a) {
        r.i64();
        r.i64();
      }
      auto rec = r.bytes_field(false);
      if (rec) fp.records.assign(rec->begin(), rec->end());
      out.push_back(std::move(fp));
    }
  }
  return out;
}

// ---- Record batches ------------------------------------------------------------------------

namespace {

template <uint32_t Poly>
std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ Poly : c >> 1;
    t[i] = c;
  }
  return t;
}

template <uint32_t Poly>
uint32_t reflected_crc(std::span<const uint8_t> data) {
  static const std::array<uint32_t, 256> table = make_crc_table<Poly>();
  uint32_t c = 0xffffffffu;
  for (uint8_t b : data)
    c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

void write_varbytes(byte_writer& w, const std::optional<std::string>& s) {
  if (!s) {
    w.varint(-1);
    return;
  }
  w.varint(static_cast<int64_t>(s->size()));
  w.raw(*s);
}

}  // namespace

uint32_t crc32c(std::span<const uint8_t> data) {
  return reflected_crc<0x82F63B78u>(data);
}
uint32_t crc32_ieee(std::span<const uint8_t> data) {
  return reflected_crc<0xEDB88320u>(data);
}

bytes build_record_batch(const std::vector<test_record>& records, int64_t base_timestamp) {
  byte_writer w;
  w.i64(0);                                         // baseOffset: the broker assigns it
  w.i32(0);                                         // batchLength, patched
  w.i32(-1);                                        // partitionLeaderEpoch
  w.i8(2);                                          // magic
  w.u32(0);                                         // crc, patched
  w.i16(0);                                         // attributes: no compression, CreateTime
  w.i32(static_cast<int32_t>(records.size()) - 1);  // lastOffsetDelta
  int64_t max_ts = base_timestamp;
  for (const auto& r : records)
    max_ts = std::max(max_ts, base_timestamp + r.timestamp_delta);
  w.i64(base_timestamp);
  w.i64(max_ts);
  w.i64(-1);  // producerId
  w.i16(-1);  // producerEpoch
  w.i32(-1);  // baseSequence
  w.i32(static_cast<int32_t>(records.size()));
  for (size_t i = 0; i < records.size(); ++i) {
    byte_writer rec;
    rec.i8(0);  // attributes
    rec.varint(records[i].timestamp_delta);
    rec.varint(static_cast<int64_t>(i));  // offsetDelta
    write_varbytes(rec, records[i].key);
    write_varbytes(rec, records[i].value);
    rec.varint(0);  // headers
    w.varint(static_cast<int64_t>(rec.size()));
    w.raw(rec.data());
  }
  w.patch_i32(8, static_cast<int32_t>(w.size() - 12));
  w.patch_u32(17, crc32c(std::span<const uint8_t>(w.data()).subspan(21)));
  return w.take();
}

bytes build_legacy_message_set_v1(std::string_view key, std::string_view value, int64_t timestamp) {
  byte_writer msg;  // from magic on: what the CRC covers
  msg.i8(1);        // magic
  msg.i8(0);        // attributes
  msg.i64(timestamp);
  msg.i32(static_cast<int32_t>(key.size()));
  msg.raw(key);
  msg.i32(static_cast<int32_t>(value.size()));
  msg.raw(value);
  byte_writer w;
  w.i64(0);  // offset
  w.i32(static_cast<int32_t>(msg.size() + 4));
  w.u32(crc32_ieee(msg.data()));
  w.raw(msg.data());
  return w.take();
}

std::vector<std::span<const uint8_t>> split_batches(std::span<const uint8_t> data) {
  std::vector<std::span<const uint8_t>> out;
  size_t pos = 0;
  while (data.size() - pos >= 12) {
    byte_reader r(data.subspan(pos + 8, 4));
    int32_t len = r.i32();
    if (len <= 0 || data.size() - pos - 12 < static_cast<size_t>(len)) break;
    out.push_back(data.subspan(pos, 12 + static_cast<size_t>(len)));
    pos += 12 + static_cast<size_t>(len);
  }
  return out;
}

namespace {

// Calls f(api_key, api_version, payload) for each complete request frame in a client stream.
template <class F>
void for_each_request(std::span<const uint8_t> stream, F&& f) {
  size_t pos = 0;
  while (stream.size() - pos >= 4) {
    byte_reader sr(stream.subspan(pos, 4));
    int32_t size = sr.i32();
    if (size < 8 || stream.size() - pos - 4 < static_cast<size_t>(size)) break;
    auto payload = stream.subspan(pos + 4, static_cast<size_t>(size));
    byte_reader hr(payload);
    int16_t key = hr.i16();
    int16_t version = hr.i16();
    f(key, version, payload);
    pos += 4 + static_cast<size_t>(size);
  }
}

}  // namespace

std::vector<captured_batch> extract_produce_batches(std::span<const uint8_t> client_stream) {
  std::vector<captured_batch> out;
  for_each_request(client_stream,
                   [&](int16_t key, int16_t version, std::span<const uint8_t> payload) {
                     if (key != 0) return;
                     bool flex = version >= 9;
                     byte_reader r(payload);
                     r.i16();
                     r.i16();
                     r.i32();          // correlation_id
                     r.string(false);  // client_id (always classic)
                     if (flex) r.skip_tags();
                     if (version >= 3) r.string(flex);  // transactional_id
                     r.i16();                           // acks
                     r.i32();                           // timeout_ms
                     int32_t topics = r.array_length(flex);
                     for (int32_t t = 0; t < topics; ++t) {
                       std::string name = r.string(flex).value_or("");
                       int32_t parts = r.array_length(flex);
                       for (int32_t p = 0; p < parts; ++p) {
                         int32_t index = r.i32();
                         auto recs = r.bytes_field(flex);
                         if (flex) r.skip_tags();
                         if (!recs) continue;
                         for (auto b : split_batches(*recs)) {
                           out.push_back({version, name, index, bytes(b.begin(), b.end())});
                         }
                       }
                       if (flex) r.skip_tags();
                     }
                   });
  return out;
}

std::vector<int16_t> request_api_keys(std::span<const uint8_t> client_stream) {
  std::vector<int16_t> out;
  for_each_request(client_stream,
                   [&](int16_t key, int16_t, std::span<const uint8_t>) { out.push_back(key); });
  return out;
}

// ---- raw_connection ------------------------------------------------------------------------

raw_connection::raw_connection(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) throw std::runtime_error("getaddrinfo " + host + ": " + gai_strerror(rc));
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      fd_ = fd;
      break;
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) {
    throw std::runtime_error("connect " + host + ":" + std::to_string(port) + ": " +
                             std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

raw_connection::~raw_connection() {
  if (fd_ >= 0) ::close(fd_);
}

bool raw_connection::send(std::span<const uint8_t> data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void raw_connection::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

raw_connection::status raw_connection::read_exact(uint8_t* out, size_t n,
                                                  std::chrono::steady_clock::time_point deadline) {
  size_t got = 0;
  while (got < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return status::timeout;
    pollfd p{fd_, POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) return status::timeout;
    ssize_t r = ::recv(fd_, out + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return status::closed;
    got += static_cast<size_t>(r);
  }
  return status::ok;
}

raw_connection::status raw_connection::read_frame(bytes& payload,
                                                  std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint8_t size_buf[4];
  status s = read_exact(size_buf, 4, deadline);
  if (s != status::ok) return s;
  int32_t size = byte_reader(size_buf).i32();
  if (size < 0 || size > (256 << 20)) throw decode_error("bad response size");
  payload.resize(static_cast<size_t>(size));
  return read_exact(payload.data(), payload.size(), deadline);
}

bool raw_connection::wait_closed(std::chrono::milliseconds timeout, size_t* received) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t total = 0;
  uint8_t buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) break;
    ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (received) *received = total;
      return true;
    }
    total += static_cast<size_t>(r);
  }
  if (received) *received = total;
  return false;
}

bytes round_trip(raw_connection& conn, std::span<const uint8_t> request,
                 std::chrono::milliseconds timeout) {
  if (!conn.send(request)) throw std::runtime_error("send failed: connection closed by broker");
  bytes payload;
  switch (conn.read_frame(payload, timeout)) {
    case raw_connection::status::ok:
      return payload;
    case raw_connection::status::closed:
      throw std::runtime_error("broker closed the connection instead of answering");
    case raw_connection::status::timeout:
      break;
  }
  throw std::runtime_error("no response within timeout");
}

std::string ids(const std::vector<int32_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(v[i]);
  }
  out += ']';
  return out;
}

}  // namespace sluice::compat
