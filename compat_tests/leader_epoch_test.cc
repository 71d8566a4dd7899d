// Leader epochs: OffsetForLeaderEpoch v0-v4, Fetch v12 LastFetchedEpoch/DivergingEpoch and the
// leader-epoch-checkpoint file, with raw frames.
//
// Client behaviours relied on:
// - KIP-320 consumers (Java >= 2.1, librdkafka >= 2.1, franz-go) send OffsetForLeaderEpoch v2+
//   with CurrentLeaderEpoch from Metadata and the epoch of the last consumed record, and treat
//   an end offset below their position as log truncation; UNKNOWN_LEADER_EPOCH (75) means "my
//   metadata is newer than the broker's, retry", FENCED_LEADER_EPOCH (74) "refresh metadata".
//   librdkafka 2.0.2 never sends this API, so only raw frames cover it.
// - Followers (and KIP-595 fetchers) send Fetch v12+ with LastFetchedEpoch and truncate to the
//   DivergingEpoch (partition tag 0) the leader answers with; they expect that answer at once,
//   not after max_wait_ms.
// - Kafka keeps a partition's epoch history in `leader-epoch-checkpoint` (version line, count
//   line, then "<epoch> <start offset>" lines); tools and operators read it as is.
//
// Kafka semantics asserted (Partition.lastOffsetForLeaderEpoch, LeaderEpochFileCache.endOffsetFor,
// Partition.readRecords): for the latest epoch the answer is (epoch, log end offset); an epoch
// newer than every epoch, or -1, is error NONE with (-1, -1); an unknown topic or partition is
// UNKNOWN_TOPIC_OR_PARTITION with (-1, -1), and the topic is not auto-created. CurrentLeaderEpoch
// -1 skips the check (RecordBatch.NO_PARTITION_LEADER_EPOCH); any other value is compared with
// the partition's epoch, so on a single broker (epoch 0) the only way to be "older" is a negative
// epoch such as -2, which Kafka answers with FENCED_LEADER_EPOCH.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int16_t kNone = 0;
constexpr int16_t kOffsetOutOfRange = 1;
constexpr int16_t kUnknownTopicOrPartition = 3;
constexpr int16_t kFencedLeaderEpoch = 74;
constexpr int16_t kUnknownLeaderEpoch = 75;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return "<missing>";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string checkpoint_of(const broker& b, const std::string& topic) {
  return read_file(b.partition_dir(topic, 0) / "leader-epoch-checkpoint");
}

// Kafka's format: version 0, one entry, epoch 0 starting at offset 0.
const std::string kOneEpochCheckpoint = "0\n1\n0 0\n";

// Creates `topic` (auto-create through Metadata v12) and checks that its one partition reports
// leader epoch 0, as every partition of a single broker does.
void create_topic(raw_connection& conn, const std::string& topic, int32_t* correlation) {
  metadata_v12 md;
  ASSERT_TRUE(wait_until([&] {
    md = parse_metadata_v12(
        split_response(round_trip(conn, metadata_v12_request((*correlation)++, {topic}, true)),
                       true)
            .body);
    return md.topics.size() == 1 && md.topics[0].error_code == 0 &&
           md.topics[0].partitions.size() == 1;
  })) << "topic "
      << topic << " not created";
  EXPECT_EQ(md.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(md.topics[0].partitions[0].leader_epoch, 0)
      << "a single broker's partitions have leader epoch 0 (Metadata v7+ reports it)";
}

// Produces `batch` with Produce v9 and returns its base offset (retrying a first retriable error
// on a just-created topic, as Kafka may give one).
int64_t produce(raw_connection& conn, const std::string& topic, const bytes& batch,
                int32_t* correlation) {
  partition_result pr;
  bool ok = wait_until([&] {
    int32_t id = (*correlation)++;
    bytes resp = round_trip(conn, produce_v9_request(id, topic, 0, batch));
    response r = split_response(resp, true);
    EXPECT_EQ(r.correlation_id, id);
    auto parts = parse_produce_v9(r.body);
    if (parts.size() != 1) return false;
    pr = parts[0];
    return pr.error_code == 0;
  });
  EXPECT_TRUE(ok) << "Produce v9 error " << pr.error_code;
  return pr.offset;
}

// Two batches, 2 + 3 records: offsets 0-4, log end offset 5.
void produce_five(raw_connection& conn, const std::string& topic, int32_t* correlation) {
  bytes first = build_record_batch({{"a", "one", 0}, {"b", "two", 1}}, 1700000000000);
  bytes second = build_record_batch(
      {{"c", "three", 0}, {std::nullopt, "four", 1}, {"e", "five", 2}}, 1700000001000);
  ASSERT_EQ(produce(conn, topic, first, correlation), 0);
  ASSERT_EQ(produce(conn, topic, second, correlation), 2);
}

offset_for_leader_epoch_body offsets_for_epochs(raw_connection& conn, int16_t version,
                                                int32_t correlation,
                                                const std::vector<leader_epoch_topic_query>& q) {
  bytes resp = round_trip(conn, offset_for_leader_epoch_request(version, correlation, q));
  response r = split_response(resp, /*flexible=*/version >= 4);
  EXPECT_EQ(r.correlation_id, correlation) << "OffsetForLeaderEpoch v" << version;
  return parse_offset_for_leader_epoch(version, r.body);
}

// One partition queried: returns its result (checking the topic and partition echo back).
leader_epoch_result one_epoch(raw_connection& conn, int16_t version, int32_t correlation,
                              const std::string& topic, int32_t partition, int32_t leader_epoch,
                              int32_t current_leader_epoch = -1) {
  auto body = offsets_for_epochs(conn, version, correlation,
                                 {{topic, {{partition, leader_epoch, current_leader_epoch}}}});
  if (version >= 2) {
    EXPECT_EQ(body.throttle_time_ms, std::optional<int32_t>(0)) << "v" << version;
  }
  EXPECT_EQ(body.partitions.size(), 1u) << "v" << version;
  if (body.partitions.size() != 1) return {};
  const auto& p = body.partitions[0];
  EXPECT_EQ(p.topic, topic) << "v" << version;
  EXPECT_EQ(p.partition, partition) << "v" << version;
  EXPECT_EQ(p.leader_epoch.has_value(), version >= 1) << "v" << version;
  return p;
}

// What a result must be: error, leader epoch (where the version has it), end offset.
void expect_result(const leader_epoch_result& r, int16_t version, int16_t error,
                   int32_t leader_epoch, int64_t end_offset, const std::string& what) {
  EXPECT_EQ(r.error_code, error) << what << " (v" << version << ")";
  if (version >= 1) {
    EXPECT_EQ(r.leader_epoch.value_or(-99), leader_epoch) << what << " (v" << version << ")";
  }
  EXPECT_EQ(r.end_offset, end_offset) << what << " (v" << version << ")";
}

TEST(LeaderEpoch, OffsetForLeaderEpochAllVersions) {
  broker b;
  raw_connection conn(b.host(), b.port());
  int32_t id = 1;

  {
    bytes resp = round_trip(conn, api_versions_request(3, id));
    response r = split_response(resp, false);  // ApiVersions: header v0 always
    ++id;
    bool found = false;
    for (const api_range& a : parse_api_versions_v3(r.body).api_keys) {
      if (a.api_key != 23) continue;
      found = true;
      EXPECT_EQ(a.min_version, 0);
      EXPECT_EQ(a.max_version, 4);
    }
    ASSERT_TRUE(found) << "OffsetForLeaderEpoch (23) not advertised";
  }

  const std::string topic = "epochs";
  create_topic(conn, topic, &id);
  produce_five(conn, topic, &id);

  // Every stored batch carries the leader's epoch (0) where the producer sent -1.
  {
    int32_t fid = id++;
    bytes resp = round_trip(conn, fetch_v12_request(fid, topic, 0, 0, 500, 1));
    response r = split_response(resp, true);
    EXPECT_EQ(r.correlation_id, fid);
    auto f = parse_fetch_v12_full(r.body);
    ASSERT_EQ(f.partitions.size(), 1u);
    EXPECT_EQ(f.partitions[0].high_watermark, 5);
    auto batches = split_batches(f.partitions[0].records);
    ASSERT_EQ(batches.size(), 2u);
    for (auto batch : batches) {
      EXPECT_EQ(byte_reader(batch.subspan(12, 4)).i32(), 0)
          << "PartitionLeaderEpoch of the batch at " << byte_reader(batch.subspan(0, 8)).i64();
    }
  }

  for (int16_t v = 0; v <= 4; ++v) {
    SCOPED_TRACE("OffsetForLeaderEpoch v" + std::to_string(v));
    // The current epoch ends at the log end offset.
    expect_result(one_epoch(conn, v, id++, topic, 0, 0), v, kNone, 0, 5, "epoch 0");
    // Newer than every epoch: NONE with the undefined pair.
    expect_result(one_epoch(conn, v, id++, topic, 0, 1), v, kNone, -1, -1, "epoch 1");
    expect_result(one_epoch(conn, v, id++, topic, 0, 7), v, kNone, -1, -1, "epoch 7");
    // The undefined epoch.
    expect_result(one_epoch(conn, v, id++, topic, 0, -1), v, kNone, -1, -1, "epoch -1");
    // Unknown topic, unknown partition.
    expect_result(one_epoch(conn, v, id++, "no-such-topic", 0, 0), v, kUnknownTopicOrPartition, -1,
                  -1, "unknown topic");
    expect_result(one_epoch(conn, v, id++, topic, 3, 0), v, kUnknownTopicOrPartition, -1, -1,
                  "unknown partition");

    // Two topics in one request: each answered on its own, in request order.
    auto both = offsets_for_epochs(conn, v, id++, {{topic, {{0, 0}}}, {"no-such-topic", {{0, 0}}}});
    ASSERT_EQ(both.partitions.size(), 2u);
    EXPECT_EQ(both.partitions[0].topic, topic);
    expect_result(both.partitions[0], v, kNone, 0, 5, "two topics: known");
    EXPECT_EQ(both.partitions[1].topic, "no-such-topic");
    expect_result(both.partitions[1], v, kUnknownTopicOrPartition, -1, -1, "two topics: unknown");

    if (v >= 2) {
      // CurrentLeaderEpoch equal to the partition's: no fencing.
      expect_result(one_epoch(conn, v, id++, topic, 0, 0, 0), v, kNone, 0, 5, "current epoch 0");
      // Newer than the broker knows.
      expect_result(one_epoch(conn, v, id++, topic, 0, 0, 1), v, kUnknownLeaderEpoch, -1, -1,
                    "current epoch 1");
      // Older than the partition's epoch 0: only a negative epoch other than -1 is older.
      expect_result(one_epoch(conn, v, id++, topic, 0, 0, -2), v, kFencedLeaderEpoch, -1, -1,
                    "current epoch -2");
    }
  }

  EXPECT_FALSE(std::filesystem::exists(b.partition_dir("no-such-topic", 0)))
      << "OffsetForLeaderEpoch must not auto-create topics";
  // Nothing above closed the connection or moved the log.
  expect_result(one_epoch(conn, 4, id++, topic, 0, 0), 4, kNone, 0, 5, "epoch 0 at the end");
}

TEST(LeaderEpoch, FetchV12WithLastFetchedEpoch) {
  broker b;
  raw_connection conn(b.host(), b.port());
  int32_t id = 1;
  const std::string topic = "diverge";
  create_topic(conn, topic, &id);
  produce_five(conn, topic, &id);

  auto fetch = [&](int64_t offset, int32_t last_fetched_epoch, int32_t max_wait_ms,
                   std::chrono::milliseconds* elapsed, int32_t current_leader_epoch = -1) {
    int32_t fid = id++;
    fetch_v12_options opts;
    opts.last_fetched_epoch = last_fetched_epoch;
    opts.current_leader_epoch = current_leader_epoch;
    auto start = clock_type::now();
    bytes resp = round_trip(conn, fetch_v12_request(fid, topic, 0, offset, max_wait_ms, 1, opts));
    *elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
    response r = split_response(resp, true);
    EXPECT_EQ(r.correlation_id, fid);
    return parse_fetch_v12_full(r.body);
  };
  std::chrono::milliseconds elapsed{};

  {
    SCOPED_TRACE("offset 2, last fetched epoch 0: a normal fetch");
    auto f = fetch(2, 0, 500, &elapsed);
    EXPECT_EQ(f.error_code, 0);
    ASSERT_EQ(f.partitions.size(), 1u);
    const auto& p = f.partitions[0];
    EXPECT_EQ(p.error_code, kNone);
    EXPECT_EQ(p.high_watermark, 5);
    EXPECT_FALSE(p.diverging_epoch.has_value());
    auto batches = split_batches(p.records);
    ASSERT_EQ(batches.size(), 1u) << "the batch at offset 2 and nothing else";
    EXPECT_EQ(byte_reader(batches[0].subspan(0, 8)).i64(), 2);
  }
  {
    SCOPED_TRACE("offset 5 (log end), last fetched epoch 0: a normal, empty fetch");
    auto f = fetch(5, 0, 200, &elapsed);
    EXPECT_EQ(f.error_code, 0);
    ASSERT_EQ(f.partitions.size(), 1u);
    const auto& p = f.partitions[0];
    EXPECT_EQ(p.error_code, kNone);
    EXPECT_EQ(p.high_watermark, 5);
    EXPECT_FALSE(p.diverging_epoch.has_value()) << "epoch 0 ends at 5, the fetch offset";
    EXPECT_TRUE(p.tags.empty()) << "unexpected partition tags, first " << p.tags.front();
    EXPECT_TRUE(p.records.empty());
    // No data at the log end: the fetch waits for max_wait_ms like any other.
    EXPECT_GE(elapsed, 180ms) << "an empty normal fetch answered before max_wait_ms";
  }
  {
    SCOPED_TRACE("offset 9, last fetched epoch 0: diverged, epoch 0 ends at 5");
    auto f = fetch(9, 0, 5000, &elapsed);
    EXPECT_LT(elapsed, 1000ms) << "a DivergingEpoch answer must not wait for max_wait_ms (5 s)";
    EXPECT_EQ(f.error_code, 0);
    ASSERT_EQ(f.partitions.size(), 1u);
    const auto& p = f.partitions[0];
    EXPECT_EQ(p.topic, topic);
    EXPECT_EQ(p.partition, 0);
    EXPECT_EQ(p.error_code, kNone);
    ASSERT_TRUE(p.diverging_epoch.has_value()) << "no DivergingEpoch tag (tag 0)";
    EXPECT_EQ(p.diverging_epoch->epoch, 0);
    EXPECT_EQ(p.diverging_epoch->end_offset, 5);
    EXPECT_TRUE(p.records.empty()) << "a diverging partition carries no records";
    EXPECT_EQ(p.high_watermark, 5);
    EXPECT_EQ(p.log_start_offset, 0);
  }
  {
    SCOPED_TRACE("offset 3, last fetched epoch 3: the leader has no such epoch");
    auto f = fetch(3, 3, 5000, &elapsed);
    EXPECT_LT(elapsed, 1000ms) << "an error answer must not wait for max_wait_ms (5 s)";
    EXPECT_EQ(f.error_code, 0);
    ASSERT_EQ(f.partitions.size(), 1u);
    const auto& p = f.partitions[0];
    EXPECT_EQ(p.error_code, kOffsetOutOfRange);
    EXPECT_FALSE(p.diverging_epoch.has_value());
    EXPECT_TRUE(p.records.empty());
  }
  {
    SCOPED_TRACE("offset 9, last fetched epoch -1: no divergence check, plain out of range");
    auto f = fetch(9, -1, 5000, &elapsed);
    EXPECT_LT(elapsed, 1000ms);
    ASSERT_EQ(f.partitions.size(), 1u);
    EXPECT_EQ(f.partitions[0].error_code, kOffsetOutOfRange);
    EXPECT_FALSE(f.partitions[0].diverging_epoch.has_value());
  }
  {
    SCOPED_TRACE("CurrentLeaderEpoch 0 (the partition's) with last fetched epoch 0: normal");
    auto f = fetch(4, 0, 500, &elapsed, 0);
    ASSERT_EQ(f.partitions.size(), 1u);
    EXPECT_EQ(f.partitions[0].error_code, kNone);
    EXPECT_FALSE(f.partitions[0].diverging_epoch.has_value());
    auto batches = split_batches(f.partitions[0].records);
    ASSERT_EQ(batches.size(), 1u) << "the batch holding offset 4 (base 2)";
    EXPECT_EQ(byte_reader(batches[0].subspan(0, 8)).i64(), 2);
  }
  {
    SCOPED_TRACE("CurrentLeaderEpoch 1, newer than the partition's: checked before divergence");
    auto f = fetch(9, 0, 5000, &elapsed, 1);
    EXPECT_LT(elapsed, 1000ms);
    ASSERT_EQ(f.partitions.size(), 1u);
    EXPECT_EQ(f.partitions[0].error_code, kUnknownLeaderEpoch);
    EXPECT_FALSE(f.partitions[0].diverging_epoch.has_value());
    EXPECT_TRUE(f.partitions[0].records.empty());
  }
}

TEST(LeaderEpoch, CheckpointFileAndRestart) {
  broker b;
  const std::string topic = "ckpt";
  int32_t id = 1;
  {
    raw_connection conn(b.host(), b.port());
    create_topic(conn, topic, &id);
    // Kafka's makeLeader assigns the new epoch its start offset (the log end, 0) before any
    // write, so an empty partition already has the entry and answers epoch 0 with (0, 0).
    EXPECT_TRUE(wait_until([&] { return checkpoint_of(b, topic) == kOneEpochCheckpoint; }, 5s))
        << "before any write the leader-epoch-checkpoint reads [" << checkpoint_of(b, topic) << "]";
    expect_result(one_epoch(conn, 4, id++, topic, 0, 0), 4, kNone, 0, 0,
                  "epoch 0 of an empty partition");
    produce_five(conn, topic, &id);
  }
  EXPECT_TRUE(wait_until([&] { return checkpoint_of(b, topic) == kOneEpochCheckpoint; }, 5s))
      << "leader-epoch-checkpoint reads [" << checkpoint_of(b, topic) << "]";

  ASSERT_EQ(b.stop(), 0) << "clean shutdown";
  EXPECT_EQ(checkpoint_of(b, topic), kOneEpochCheckpoint) << "after a clean shutdown";
  b.restart();
  {
    raw_connection conn(b.host(), b.port());
    create_topic(conn, topic, &id);  // still leader epoch 0
    for (int16_t v : {0, 2, 4}) {
      expect_result(one_epoch(conn, v, id++, topic, 0, 0), v, kNone, 0, 5,
                    "epoch 0 after a clean restart");
      expect_result(one_epoch(conn, v, id++, topic, 0, 1), v, kNone, -1, -1,
                    "epoch 1 after a clean restart");
    }
    EXPECT_EQ(checkpoint_of(b, topic), kOneEpochCheckpoint) << "after a clean restart";

    // Writing on in the same epoch moves its end, not the epoch history.
    bytes more = build_record_batch({{"f", "six", 0}, {"g", "seven", 1}}, 1700000002000);
    EXPECT_EQ(produce(conn, topic, more, &id), 5);
    expect_result(one_epoch(conn, 4, id++, topic, 0, 0), 4, kNone, 0, 7,
                  "epoch 0 after producing again");
    EXPECT_EQ(checkpoint_of(b, topic), kOneEpochCheckpoint) << "after producing in epoch 0 again";
  }

  // A crash and recovery rebuilds the same answer.
  b.kill9();
  b.restart();
  {
    raw_connection conn(b.host(), b.port());
    expect_result(one_epoch(conn, 4, id++, topic, 0, 0), 4, kNone, 0, 7,
                  "epoch 0 after kill -9 and restart");
    EXPECT_EQ(checkpoint_of(b, topic), kOneEpochCheckpoint) << "after kill -9 and restart";
  }
}

// A data directory whose leader-epoch-checkpoint names a newer epoch (as a later leader of the
// partition would have written it): the partition takes that epoch at start, keeps it, stamps it
// into new batches, and fences fetches that name an older one.
TEST(LeaderEpoch, APersistedNewerEpochIsKeptAndFencesOlderFetches) {
  broker b;
  const std::string topic = "newer";
  int32_t id = 1;
  {
    raw_connection conn(b.host(), b.port());
    create_topic(conn, topic, &id);
    produce_five(conn, topic, &id);
  }
  ASSERT_EQ(b.stop(), 0) << "clean shutdown";
  const std::string newer = "0\n2\n0 0\n3 5\n";
  {
    std::ofstream out(b.partition_dir(topic, 0) / "leader-epoch-checkpoint", std::ios::trunc);
    out << newer;
  }
  b.restart();
  raw_connection conn(b.host(), b.port());

  auto md = parse_metadata_v12(
      split_response(round_trip(conn, metadata_v12_request(id++, {topic}, false)), true).body);
  ASSERT_EQ(md.topics.size(), 1u);
  ASSERT_EQ(md.topics[0].partitions.size(), 1u);
  EXPECT_EQ(md.topics[0].partitions[0].leader_epoch, 3);

  auto fetch_error = [&](int32_t current_leader_epoch) {
    fetch_v12_options opts;
    opts.current_leader_epoch = current_leader_epoch;
    int32_t fid = id++;
    auto f = parse_fetch_v12_full(
        split_response(round_trip(conn, fetch_v12_request(fid, topic, 0, 0, 0, 1, opts)), true)
            .body);
    EXPECT_EQ(f.partitions.size(), 1u);
    return f.partitions.empty() ? int16_t{-1} : f.partitions[0].error_code;
  };
  EXPECT_EQ(fetch_error(1), 74) << "an older epoch is FENCED_LEADER_EPOCH";
  EXPECT_EQ(fetch_error(4), 75) << "a newer epoch is UNKNOWN_LEADER_EPOCH";
  EXPECT_EQ(fetch_error(3), kNone) << "the current epoch fetches";

  expect_result(one_epoch(conn, 4, id++, topic, 0, 0), 4, kNone, 0, 5, "epoch 0 ends at 5");
  expect_result(one_epoch(conn, 4, id++, topic, 0, 2), 4, kNone, 0, 5, "epoch 2 never wrote");
  expect_result(one_epoch(conn, 4, id++, topic, 0, 3), 4, kNone, 3, 5, "epoch 3 is current");
  expect_result(one_epoch(conn, 4, id++, topic, 0, 1, /*current_leader_epoch=*/0), 4, 74, -1, -1,
                "CurrentLeaderEpoch 0 is fenced now");

  // New batches carry epoch 3; the history does not change, the current epoch's end moves.
  bytes more = build_record_batch({{"x", "six", 0}, {"y", "seven", 1}}, 1700000002000);
  EXPECT_EQ(produce(conn, topic, more, &id), 5);
  fetch_v12_options at5;
  int32_t fid = id++;
  auto f = parse_fetch_v12_full(
      split_response(round_trip(conn, fetch_v12_request(fid, topic, 0, 5, 0, 1, at5)), true).body);
  ASSERT_EQ(f.partitions.size(), 1u);
  auto batches = split_batches(f.partitions[0].records);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(byte_reader(batches[0].subspan(12, 4)).i32(), 3) << "PartitionLeaderEpoch";
  expect_result(one_epoch(conn, 4, id++, topic, 0, 3), 4, kNone, 3, 7, "epoch 3 after producing");
  EXPECT_EQ(checkpoint_of(b, topic), newer);
}

}  // namespace
}  // namespace sluice::compat
