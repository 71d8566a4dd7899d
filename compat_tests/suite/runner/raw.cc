// Hand-made requests over TCP: ApiVersions at its edges, long polls, a corrupt batch, and
// malformed frames. The encoder is compat_tests/raw_kafka.h, written from the protocol guide and
// independent of any broker's codec.

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/suite/runner/suite.h"

namespace sluice::compat::suite {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

int64_t ms_since(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t).count();
}

raw_connection connect_first(context& ctx) {
  auto [host, port] = first_broker(ctx.bootstrap());
  return raw_connection(host, port);
}

// One request, one answer; the answer's correlation id must match.
response ask(context& ctx, raw_connection& conn, const bytes& request, int32_t correlation_id,
             bool flexible_header, bytes& payload) {
  check(conn.send(request), "the broker closed the connection instead of reading the request");
  raw_connection::status s = conn.read_frame(payload, ctx.timeout());
  check(s == raw_connection::status::ok,
        s == raw_connection::status::closed ? "the broker closed the connection" : "no answer");
  response r = split_response(payload, flexible_header);
  check(r.correlation_id == correlation_id, "the answer carries correlation id " +
                                                std::to_string(r.correlation_id) + ", sent " +
                                                std::to_string(correlation_id));
  return r;
}

// After a malformed request the broker must go on serving everyone else: a new connection gets
// an ApiVersions answer.
void still_serving(context& ctx) {
  raw_connection conn = connect_first(ctx);
  bytes payload;
  response r = ask(ctx, conn, api_versions_request(0, 7), 7, false, payload);
  check(parse_api_versions_v0(r.body).error_code == 0,
        "after the malformed request, ApiVersions on a new connection failed");
}

bool has_key(const api_versions_v0_body& body, int16_t key) {
  for (const api_range& r : body.api_keys) {
    if (r.api_key == key) return true;
  }
  return false;
}

// ApiVersions v0 (KIP-35): error 0 and a range for every API the broker serves, ApiVersions
// itself among them from v0.
void api_versions_v0(context& ctx) {
  raw_connection conn = connect_first(ctx);
  bytes payload;
  response r = ask(ctx, conn, api_versions_request(0, 1), 1, false, payload);
  api_versions_v0_body body = parse_api_versions_v0(r.body);
  check(body.error_code == 0, "ApiVersions v0 error code " + std::to_string(body.error_code));
  check(has_key(body, api::api_versions), "ApiVersions v0 does not list ApiVersions");
  check(has_key(body, api::metadata), "ApiVersions v0 does not list Metadata");
}

// ApiVersions v3 (KIP-511): a flexible request body, answered with a flexible body after a v0
// response header (the one exception to header versions, so that any client can read it).
void api_versions_v3(context& ctx) {
  ctx.require(api::api_versions, 3);
  raw_connection conn = connect_first(ctx);
  bytes payload;
  response r = ask(ctx, conn, api_versions_request(3, 2), 2, false, payload);
  api_versions_v0_body body = parse_api_versions_v3(r.body);
  check(body.error_code == 0, "ApiVersions v3 error code " + std::to_string(body.error_code));
  check(has_key(body, api::api_versions), "ApiVersions v3 does not list ApiVersions");
}

// A version newer than the broker knows (KIP-511): UNSUPPORTED_VERSION (35) in a v0 body that
// names the ApiVersions range, so the client can retry with a version both support.
void api_versions_unsupported(context& ctx) {
  raw_connection conn = connect_first(ctx);
  bytes payload;
  response r = ask(ctx, conn, api_versions_request(127, 3), 3, false, payload);
  api_versions_v0_body body = parse_api_versions_v0(r.body);
  check(body.error_code == 35,
        "ApiVersions v127 answered error code " + std::to_string(body.error_code) + ", not 35");
  check(has_key(body, api::api_versions),
        "the UNSUPPORTED_VERSION answer does not name the ApiVersions range");
}

// A batch whose CRC-32C does not match its contents is refused with CORRUPT_MESSAGE (2) and not
// appended (Kafka's DefaultRecordBatch.ensureValid in LogValidator); the connection stays open.
void produce_bad_crc(context& ctx) {
  ctx.require(api::produce, 3);
  std::string topic = ctx.create_topic({}, 1);
  auto [host, port] = ctx.leader_address(topic, 0);
  bytes batch = build_record_batch({{"k", "v", 0}}, 1700000000000);
  batch.back() ^= 0x5a;  // the last byte of the last record: covered by the CRC
  raw_connection conn(host, port);
  bytes payload;
  response r = ask(ctx, conn, produce_request(3, 11, topic, 0, batch), 11, false, payload);
  std::vector<partition_result> results = parse_produce_response(3, r.body);
  check(results.size() == 1, "Produce answered " + std::to_string(results.size()) + " partitions");
  check(results[0].error_code == 2,
        "a corrupt batch answered error code " + std::to_string(results[0].error_code) + ", not 2");
  auto [low, high] = watermarks(ctx.admin_client().get(), topic, 0);
  check(high == 0, "the corrupt batch was appended: high watermark " + std::to_string(high));
  // The connection is still usable.
  bytes good = build_record_batch({{"k", "v", 0}}, 1700000000000);
  response ok = ask(ctx, conn, produce_request(3, 12, topic, 0, good), 12, false, payload);
  std::vector<partition_result> after = parse_produce_response(3, ok.body);
  check(after.size() == 1 && after[0].error_code == 0,
        "a good batch after the corrupt one was refused on the same connection");
}

// A Fetch that finds fewer than min_bytes waits up to max_wait_ms before answering (Kafka's
// DelayedFetch): a long poll, not a busy loop.
void long_poll_waits(context& ctx) {
  ctx.require(api::fetch, 4);
  std::string topic = ctx.create_topic({}, 1);
  auto [host, port] = ctx.leader_address(topic, 0);
  raw_connection conn(host, port);
  bytes payload;
  auto started = clock::now();
  response r = ask(ctx, conn, fetch_request(4, 21, topic, 0, 0, 1000, 1), 21, false, payload);
  int64_t waited = ms_since(started);
  std::vector<fetch_partition> parts = parse_fetch_v4(r.body);
  check(parts.size() == 1 && parts[0].error_code == 0, "the empty Fetch failed");
  check(parts[0].records.empty(), "an empty partition answered records");
  check(waited >= 500, "a Fetch with max_wait_ms=1000 and nothing to read was answered after " +
                           std::to_string(waited) + " ms: the broker does not hold long polls");
}

// A held Fetch is answered as soon as a Produce brings enough bytes, not at max_wait_ms (Kafka's
// DelayedFetch.tryComplete, woken by the append).
void long_poll_wakes(context& ctx) {
  ctx.require(api::fetch, 4);
  ctx.require(api::produce, 3);
  std::string topic = ctx.create_topic({}, 1);
  auto [host, port] = ctx.leader_address(topic, 0);
  raw_connection fetcher(host, port);
  constexpr int32_t max_wait = 30000;
  check(fetcher.send(fetch_request(4, 31, topic, 0, 0, max_wait, 1)), "the broker closed");
  bytes payload;
  // The broker holds the Fetch: no answer yet.
  check(fetcher.read_frame(payload, 300ms) == raw_connection::status::timeout,
        "a Fetch of an empty partition with max_wait_ms=30000 was answered at once");
  auto produced = clock::now();
  raw_connection producer_conn(host, port);
  bytes ack;
  response pr = ask(ctx, producer_conn,
                    produce_request(3, 32, topic, 0, build_record_batch({{"k", "wake", 0}}, 1)), 32,
                    false, ack);
  check(parse_produce_response(3, pr.body).at(0).error_code == 0, "the Produce failed");
  check(fetcher.read_frame(payload, std::chrono::milliseconds(max_wait)) ==
            raw_connection::status::ok,
        "the held Fetch was never answered");
  int64_t latency = ms_since(produced);
  std::vector<fetch_partition> parts = parse_fetch_v4(split_response(payload, false).body);
  check(parts.size() == 1 && !parts[0].records.empty(),
        "the held Fetch was answered without the new record");
  check(latency < max_wait / 2, "the held Fetch was answered " + std::to_string(latency) +
                                    " ms after the Produce, not when it arrived");
}

// Broken framing: the broker closes the connection (Kafka's NetworkReceive throws
// InvalidReceiveException for a size above socket.request.max.bytes or below 0, and the
// Selector closes the channel) and keeps serving everyone else.
void frame_closed(context& ctx, const bytes& frame, const std::string& what) {
  {
    raw_connection conn = connect_first(ctx);
    conn.send(frame);
    size_t received = 0;
    check(conn.wait_closed(ctx.timeout(), &received),
          "the broker kept the connection open after " + what);
  }
  still_serving(ctx);
}

// A well-framed request the broker cannot parse: Kafka closes the connection (an unknown API key
// or a body that ends early fails in RequestContext.parseRequest, and SocketServer closes the
// channel). Another broker may answer instead; then the answer must be a frame for the same
// correlation id. Either way the broker keeps serving everyone else.
void answered_or_closed(context& ctx, const bytes& frame, int32_t correlation_id,
                        const std::string& what) {
  {
    raw_connection conn = connect_first(ctx);
    conn.send(frame);
    bytes payload;
    raw_connection::status s = conn.read_frame(payload, ctx.timeout());
    check(s != raw_connection::status::timeout,
          "the broker neither answered nor closed the connection after " + what);
    if (s == raw_connection::status::ok) {
      check(payload.size() >= 4, "a truncated answer to " + what);
      check(split_response(payload, false).correlation_id == correlation_id,
            "the answer to " + what + " carries another correlation id");
    }
  }
  still_serving(ctx);
}

bytes size_prefix(int32_t size, size_t body_bytes) {
  byte_writer w;
  w.i32(size);
  for (size_t i = 0; i < body_bytes; ++i)
    w.i8(0x11);
  return w.take();
}

void oversized_frame(context& ctx) {
  frame_closed(ctx, size_prefix(0x7fffffff, 64), "a frame claiming 2 GiB");
}

void negative_size(context& ctx) {
  frame_closed(ctx, size_prefix(-1, 16), "a frame with a negative size");
}

void unknown_api_key(context& ctx) {
  bytes frame = frame_request(32000, 0, 41, false, bytes{});
  answered_or_closed(ctx, frame, 41, "a request with API key 32000");
}

void truncated_body(context& ctx) {
  // Metadata v4 whose topics array claims 1000 names and carries none.
  byte_writer body;
  body.i32(1000);
  bytes frame = frame_request(api::metadata, 4, 42, false, body.take());
  answered_or_closed(ctx, frame, 42, "a Metadata request whose body ends early");
}

void garbage_header(context& ctx) {
  byte_writer w;
  w.i32(40);
  uint32_t x = 12345;
  for (int i = 0; i < 40; ++i) {
    x = x * 1103515245u + 12345u;
    w.i8(static_cast<int8_t>(x >> 24));
  }
  bytes frame = w.take();
  // Whatever the bytes decode to, the correlation id sits at bytes 8..11 of the frame.
  int32_t correlation_id =
      static_cast<int32_t>(uint32_t(frame[8]) << 24 | uint32_t(frame[9]) << 16 |
                           uint32_t(frame[10]) << 8 | uint32_t(frame[11]));
  answered_or_closed(ctx, frame, correlation_id, "a frame of random bytes");
}

// ElectLeaders v1 (KIP-460), preferred: a new topic's partitions are led by their preferred
// replicas already, so each answers NONE (an election was made) or ELECTION_NOT_NEEDED; a topic
// the broker does not have is UNKNOWN_TOPIC_OR_PARTITION. Any broker takes the request (it
// forwards it to its controller).
void elect_leaders_preferred(context& ctx) {
  ctx.require(api::elect_leaders, 1);
  const std::string topic = ctx.create_topic({}, 2);
  const std::string missing = ctx.name("missing");
  raw_connection conn = connect_first(ctx);
  bytes payload;
  std::map<std::string, std::vector<int32_t>> wanted{{topic, {0, 1}}, {missing, {0}}};
  response r = ask(ctx, conn, elect_leaders_v1_request(11, 0, wanted, 30000), 11, false, payload);
  elect_leaders_v1 answer = parse_elect_leaders_v1(r.body);
  check(answer.error_code == 0, "ElectLeaders answered error " + std::to_string(answer.error_code));
  check(answer.results.size() == 3,
        "ElectLeaders answered " + std::to_string(answer.results.size()) + " partitions, not 3");
  for (const election_answer& a : answer.results) {
    const std::string where = a.topic + "-" + std::to_string(a.partition);
    if (a.topic == missing) {
      check(a.error_code == 3, where + " answered " + std::to_string(a.error_code) +
                                   ", not UNKNOWN_TOPIC_OR_PARTITION (3)");
    } else {
      check(a.error_code == 0 || a.error_code == 84, where + " answered " +
                                                         std::to_string(a.error_code) +
                                                         ", not NONE or ELECTION_NOT_NEEDED (84)");
    }
  }
}

// The topic's partition 0 and the brokers, as the first bootstrap broker's Metadata v12 says.
std::pair<metadata_v12::partition, std::vector<int32_t>> partition_zero(context& ctx,
                                                                        const std::string& topic) {
  raw_connection conn = connect_first(ctx);
  bytes payload;
  response r = ask(ctx, conn, metadata_v12_request(21, {topic}, false), 21, true, payload);
  metadata_v12 md = parse_metadata_v12(r.body);
  std::vector<int32_t> brokers;
  for (const metadata_broker& b : md.brokers)
    brokers.push_back(b.node_id);
  for (const metadata_v12::topic& t : md.topics) {
    for (const metadata_v12::partition& p : t.partitions) {
      if (t.name == topic && p.index == 0) return {p, brokers};
    }
  }
  throw failure("Metadata does not list " + topic + "-0");
}

// AlterPartitionReassignments and ListPartitionReassignments v0 (KIP-455): partition 0 of a new
// topic moves to a broker it is not on (or, when it is on every broker, its replicas are
// reordered: on a single broker, a move onto itself, which completes at once), and Metadata ends
// up listing the target with no reassignment left in progress. Kafka's errors: a cancel with none
// in progress is NO_REASSIGNMENT_IN_PROGRESS (85), an unregistered broker
// INVALID_REPLICA_ASSIGNMENT (39), an unknown topic UNKNOWN_TOPIC_OR_PARTITION (3).
void reassignment_moves_a_partition(context& ctx) {
  ctx.require(api::alter_partition_reassignments);
  ctx.require(api::list_partition_reassignments);
  const std::string topic = ctx.create_topic({}, 1);
  auto [before, brokers] = partition_zero(ctx, topic);
  std::vector<int32_t> target(before.replicas.rbegin(), before.replicas.rend());
  for (int32_t id : brokers) {
    if (std::find(before.replicas.begin(), before.replicas.end(), id) == before.replicas.end()) {
      target = before.replicas;
      target.front() = id;
      break;
    }
  }
  const std::string missing = ctx.name("missing");
  const int32_t unregistered = *std::max_element(brokers.begin(), brokers.end()) + 1000;
  raw_connection conn = connect_first(ctx);
  bytes payload;
  response r = ask(ctx, conn,
                   alter_partition_reassignments_v0_request(
                       22, {{topic, 0, target}, {missing, 0, target}}, 30000),
                   22, true, payload);
  alter_partition_reassignments_v0 started = parse_alter_partition_reassignments_v0(r.body);
  check(started.error_code == 0,
        "AlterPartitionReassignments answered error " + std::to_string(started.error_code));
  check(started.results.size() == 2, "AlterPartitionReassignments answered " +
                                         std::to_string(started.results.size()) +
                                         " partitions, not 2");
  for (const reassignment_answer& a : started.results) {
    const int16_t expected = a.topic == topic ? 0 : 3;
    check(a.error_code == expected, a.topic + "-0 answered " + std::to_string(a.error_code) +
                                        ", not " + std::to_string(expected) + ": " +
                                        a.message.value_or(""));
  }
  const bool done = ctx.wait_for([&] {
    if (partition_zero(ctx, topic).first.replicas != target) return false;
    bytes listed_payload;
    response listed = ask(ctx, conn,
                          list_partition_reassignments_v0_request(
                              23, std::map<std::string, std::vector<int32_t>>{{topic, {0}}}, 30000),
                          23, true, listed_payload);
    list_partition_reassignments_v0 ongoing = parse_list_partition_reassignments_v0(listed.body);
    return ongoing.error_code == 0 && ongoing.partitions.empty();
  });
  check(done, topic + "-0 did not reach the replicas " + ids(target) + " with none in progress");

  r = ask(
      ctx, conn,
      alter_partition_reassignments_v0_request(
          24, {{topic, 0, std::nullopt}, {topic, 0, std::vector<int32_t>{unregistered}}}, 30000),
      24, true, payload);
  alter_partition_reassignments_v0 refused = parse_alter_partition_reassignments_v0(r.body);
  check(refused.results.size() == 2 && refused.results[0].error_code == 85 &&
            refused.results[1].error_code == 39,
        "a cancel with none in progress and an unregistered broker were not answered 85 and 39");
}

}  // namespace

void add_raw_scenarios(std::vector<scenario>& out) {
  out.push_back({"raw", "elect_leaders.preferred", elect_leaders_preferred});
  out.push_back({"raw", "reassignment.move", reassignment_moves_a_partition});
  out.push_back({"raw", "api_versions.v0", api_versions_v0});
  out.push_back({"raw", "api_versions.v3", api_versions_v3});
  out.push_back({"raw", "api_versions.unsupported_version", api_versions_unsupported});
  out.push_back({"raw", "produce.bad_crc", produce_bad_crc});
  out.push_back({"raw", "long_poll.waits", long_poll_waits});
  out.push_back({"raw", "long_poll.wakes_on_produce", long_poll_wakes});
  out.push_back({"raw", "malformed.oversized_frame", oversized_frame});
  out.push_back({"raw", "malformed.negative_size", negative_size});
  out.push_back({"raw", "malformed.unknown_api_key", unknown_api_key});
  out.push_back({"raw", "malformed.truncated_body", truncated_body});
  out.push_back({"raw", "malformed.garbage_header", garbage_header});
}

}  // namespace sluice::compat::suite
