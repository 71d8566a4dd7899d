// __consumer_offsets persistence: Kafka's record encodings against bytes worked out by hand from
// the Kafka message specs, and the group_store written through a real log, closed, reopened
// (cleanly or after a torn write) and replayed. A temp dir and a storage::log_manager; no network.

#include <gtest/gtest.h>

#include <algorithm>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/groups/group_coordinator.h"
#include "server/groups/offsets_log.h"
#include "server/partition.h"
#include "server/tests/manual_clock.h"
#include "storage/errc.h"
#include "storage/log.h"
#include "storage/tests/test_util.h"
#include "wire/record_batch.h"

namespace sluice::server {
namespace {

using wire::error_code;
namespace rec = offsets_record;

constexpr int64_t t0 = 1'700'000'000'000;  // 0x0000018BCFE56800

// Appends `s` as raw bytes to `out`.
void put(std::vector<uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}
void put(std::vector<uint8_t>& out, std::initializer_list<int> b) {
  for (int x : b)
    out.push_back(static_cast<uint8_t>(x));
}

group_metadata_record sample_group(int32_t generation = 2) {
  group_metadata_record g;
  g.protocol_type = "consumer";
  g.generation = generation;
  g.protocol_name = "range";
  g.leader = "m1";
  group_metadata_record::member m;
  m.member_id = "m1";
  m.client_id = "c";
  m.client_host = "/h";
  m.rebalance_timeout_ms = 300'000;
  m.session_timeout_ms = 45'000;
  m.subscription = {0x01, 0x02};
  g.members.push_back(m);
  return g;
}

// ---- golden bytes, from OffsetCommitKey/Value.json and GroupMetadataKey/Value.json -----------

TEST(offsets_record_test, offset_commit_key_v1) {
  std::vector<uint8_t> want;
  put(want, {0x00, 0x01});  // version 1
  put(want, {0x00, 0x03});
  put(want, "grp");
  put(want, {0x00, 0x06});
  put(want, "orders");
  put(want, {0x00, 0x00, 0x00, 0x07});
  EXPECT_EQ(rec::offset_commit_key("grp", {"orders", 7}), want);

  rec::key k;
  ASSERT_TRUE(rec::decode_key(want, k));
  EXPECT_EQ(k.type, rec::key::kind::offset_commit);
  EXPECT_EQ(k.version, 1);
  EXPECT_EQ(k.group_id, "grp");
  EXPECT_EQ(k.partition, (topic_partition{"orders", 7}));
}

TEST(offsets_record_test, offset_commit_value_v3) {
  std::vector<uint8_t> want;
  put(want, {0x00, 0x03});                                      // version 3
  put(want, {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xD2});  // offset 1234
  put(want, {0x00, 0x00, 0x00, 0x05});                          // leaderEpoch 5
  put(want, {0x00, 0x01});
  put(want, "m");                                               // metadata
  put(want, {0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00});  // commitTimestamp
  EXPECT_EQ(rec::offset_commit_value({1234, 5, "m", t0}), want);

  committed_offset v;
  ASSERT_TRUE(rec::decode_offset_commit_value(want, v));
  EXPECT_EQ(v.offset, 1234);
  EXPECT_EQ(v.leader_epoch, 5);
  EXPECT_EQ(v.metadata, "m");
  EXPECT_EQ(v.commit_timestamp_ms, t0);
}

TEST(offsets_record_test, group_metadata_key_v2) {
  std::vector<uint8_t> want;
  put(want, {0x00, 0x02, 0x00, 0x03});
  put(want, "grp");
  EXPECT_EQ(rec::group_metadata_key("grp"), want);

  rec::key k;
  ASSERT_TRUE(rec::decode_key(want, k));
  EXPECT_EQ(k.type, rec::key::kind::group_metadata);
  EXPECT_EQ(k.group_id, "grp");
}

TEST(offsets_record_test, group_metadata_value_v3) {
  std::vector<uint8_t> want;
  put(want, {0x00, 0x03});  // version 3
  put(want, {0x00, 0x08});
  put(want, "consumer");                // protocolType
  put(want, {0x00, 0x00, 0x00, 0x02});  // generation
  put(want, {0x00, 0x05});
  put(want, "range");  // protocol
  put(want, {0x00, 0x02});
  put(want, "m1");                                              // leader
  put(want, {0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00});  // currentStateTimestamp
  put(want, {0x00, 0x00, 0x00, 0x01});                          // one member
  put(want, {0x00, 0x02});
  put(want, "m1");          // memberId
  put(want, {0xFF, 0xFF});  // groupInstanceId null
  put(want, {0x00, 0x01});
  put(want, "c");  // clientId
  put(want, {0x00, 0x02});
  put(want, "/h");                                  // clientHost
  put(want, {0x00, 0x04, 0x93, 0xE0});              // rebalanceTimeout 300000
  put(want, {0x00, 0x00, 0xAF, 0xC8});              // sessionTimeout 45000
  put(want, {0x00, 0x00, 0x00, 0x02, 0x01, 0x02});  // subscription
  put(want, {0x00, 0x00, 0x00, 0x00});              // assignment, empty
  EXPECT_EQ(rec::group_metadata_value(sample_group(), t0), want);

  group_metadata_record g;
  int64_t ts = 0;
  ASSERT_TRUE(rec::decode_group_metadata_value(want, g, ts));
  EXPECT_EQ(ts, t0);
  EXPECT_EQ(rec::group_metadata_value(g, ts), want);
}

TEST(offsets_record_test, older_and_flexible_versions_decode) {
  // OffsetCommitValue v1: offset, metadata, commitTimestamp, expireTimestamp.
  std::vector<uint8_t> v1;
  put(v1, {0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 9, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 7});
  put(v1, {0, 0, 0, 0, 0, 0, 0, 8});
  committed_offset o;
  ASSERT_TRUE(rec::decode_offset_commit_value(v1, o));
  EXPECT_EQ(o.offset, 9);
  EXPECT_EQ(o.leader_epoch, -1);
  EXPECT_EQ(o.metadata, "");
  EXPECT_EQ(o.commit_timestamp_ms, 7);

  // OffsetCommitValue v4 (flexible): compact metadata, empty tag section.
  std::vector<uint8_t> v4;
  put(v4, {0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3, 0x03});
  put(v4, "md");
  put(v4, {0, 0, 0, 0, 0, 0, 0, 7, 0x00});
  ASSERT_TRUE(rec::decode_offset_commit_value(v4, o));
  EXPECT_EQ(o.leader_epoch, 3);
  EXPECT_EQ(o.metadata, "md");

  // GroupMetadataValue v0: no rebalanceTimeout (the session timeout served both), no timestamp.
  std::vector<uint8_t> g0;
  put(g0, {0x00, 0x00, 0x00, 0x01});
  put(g0, "c");
  put(g0, {0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0x00, 0x01});
  put(g0, "m");
  put(g0, {0x00, 0x00, 0x00, 0x00, 0, 0, 0x27, 0x10, 0, 0, 0, 0, 0, 0, 0, 0});
  group_metadata_record g;
  int64_t ts = 0;
  ASSERT_TRUE(rec::decode_group_metadata_value(g0, g, ts));
  EXPECT_EQ(ts, -1);
  EXPECT_FALSE(g.protocol_name);
  ASSERT_EQ(g.members.size(), 1u);
  EXPECT_EQ(g.members[0].session_timeout_ms, 10'000);
  EXPECT_EQ(g.members[0].rebalance_timeout_ms, 10'000);

  // Trailing bytes and unknown value versions are errors; unknown key versions are not.
  v1.push_back(0);
  EXPECT_FALSE(rec::decode_offset_commit_value(v1, o));
  EXPECT_FALSE(rec::decode_offset_commit_value(std::vector<uint8_t>{0x00, 0x05}, o));
  rec::key k;
  ASSERT_TRUE(rec::decode_key(std::vector<uint8_t>{0x00, 0x03, 0xAB}, k));
  EXPECT_EQ(k.type, rec::key::kind::unknown);
}

// ---- the store over a real log ---------------------------------------------------------------

using group_map = std::map<std::string, persisted_group, std::less<>>;

struct recording_loader : group_loader {
  std::vector<std::string> calls;
  void load_group(std::string_view group_id, const group_metadata_record& record,
                  int64_t ts) override {
    calls.push_back("group " + std::string(group_id) + " gen " + std::to_string(record.generation) +
                    " ts " + std::to_string(ts));
  }
  void load_offset(std::string_view group_id, const offset_record& r) override {
    calls.push_back("offset " + std::string(group_id) + " " + r.partition.topic + "-" +
                    std::to_string(r.partition.partition) + " @" + std::to_string(r.value.offset));
  }
};

class offsets_log_test : public storage::testing::temp_dir_test {
 protected:
  void SetUp() override {
    temp_dir_test::SetUp();
    open();
  }
  void TearDown() override {
    close_store();
    if (logs_) logs_->shutdown();
    logs_.reset();
    temp_dir_test::TearDown();
  }

  void open() {
    logs_ = std::make_unique<storage::log_manager>(dir_, storage::log_config{}, env());
    ASSERT_FALSE(logs_->load());
    std::error_code ec;
    log_ = logs_->create({std::string(consumer_offsets_topic), 0}, wire::uuid{1}, ec);
    ASSERT_FALSE(ec) << ec.message();
    partition_ = std::make_shared<partition>(
        logs_->find_shared({std::string(consumer_offsets_topic), 0}), 0, 0, ack_sync_policy::never);
    store_ =
        std::make_unique<offsets_log>(*partition_, io_.get_executor(), [this] { return clock_++; });
  }
  void close_store() {
    store_.reset();
    partition_.reset();
  }
  void restart_cleanly() {
    close_store();
    ASSERT_FALSE(logs_->shutdown());
    logs_.reset();
    open();
  }
  // The manager goes without shutdown(): no clean-shutdown marker, no checkpoints.
  void crash() {
    close_store();
    logs_.reset();
  }

  group_map replay() {
    group_map out;
    std::error_code ec = read_consumer_offsets(*log_, out, &stats_);
    EXPECT_FALSE(ec) << ec.message();
    return out;
  }

  // Runs one store call to its completion, which must come after the call returned.
  error_code wait_for(const std::function<void(group_store::completion)>& call) {
    std::optional<error_code> result;
    call([&](error_code e) { result = e; });
    EXPECT_FALSE(result) << "completed before the call returned";
    io_.restart();
    io_.poll();
    EXPECT_TRUE(result) << "never completed";
    return result.value_or(error_code::unknown_server_error);
  }
  error_code store_group(std::string_view group, const group_metadata_record& record) {
    return wait_for([&](auto done) { store_->store_group(group, record, std::move(done)); });
  }
  error_code store_offsets(std::string_view group, std::span<const offset_record> offsets) {
    return wait_for([&](auto done) { store_->store_offsets(group, offsets, std::move(done)); });
  }
  error_code remove_offsets(std::string_view group, topic_partition tp) {
    return wait_for([&](auto done) {
      store_->remove_offsets(group, std::span<const topic_partition>(&tp, 1), std::move(done));
    });
  }
  error_code remove_group(std::string_view group, std::vector<topic_partition> partitions = {}) {
    return wait_for([&](auto done) { store_->remove_group(group, partitions, std::move(done)); });
  }
  error_code commit(std::string_view group, std::string topic, int32_t p, int64_t offset,
                    std::string metadata = "", int32_t epoch = -1) {
    offset_record r{{std::move(topic), p}, {offset, epoch, std::move(metadata), clock_}};
    return store_offsets(group, std::span<const offset_record>(&r, 1));
  }

  std::filesystem::path segment_file() const {
    return dir_ / "__consumer_offsets-0" / storage::testing::seg_name(0, ".log");
  }

  boost::asio::io_context io_;
  std::unique_ptr<storage::log_manager> logs_;
  storage::log* log_ = nullptr;
  std::shared_ptr<partition> partition_;
  std::unique_ptr<offsets_log> store_;
  int64_t clock_ = t0;
  replay_stats stats_;
};

TEST_F(offsets_log_test, one_batch_per_call_through_the_partition) {
  std::vector<offset_record> offsets = {{{"a", 0}, {10, 1, "x", 5}}, {{"a", 1}, {20, 1, "", 5}}};
  EXPECT_EQ(store_offsets("g", offsets), error_code::none);
  EXPECT_EQ(store_group("g", sample_group()), error_code::none);
  EXPECT_EQ(log_->log_end_offset(), 3);
  EXPECT_EQ(partition_->high_watermark(), 3);

  storage::read_info info;
  ASSERT_FALSE(log_->read(0, INT32_MAX, 3, true, info));
  std::vector<uint8_t> data = storage::testing::slurp(info);
  wire::batch_reader batches(data);
  std::optional<wire::record_batch> b = batches.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->validate(), wire::batch_error::ok);
  EXPECT_EQ(b->records_count(), 2);
  EXPECT_EQ(b->attributes(), 0);
  EXPECT_EQ(b->partition_leader_epoch(), 0);
  EXPECT_EQ(b->producer_id(), -1);
  EXPECT_EQ(b->base_timestamp(), t0);
  wire::record_reader records(*b);
  std::optional<wire::record_view> r = records.next();
  ASSERT_TRUE(r && r->key && r->value);
  EXPECT_EQ(std::vector<uint8_t>(r->key->begin(), r->key->end()),
            rec::offset_commit_key("g", {"a", 0}));
  EXPECT_EQ(std::vector<uint8_t>(r->value->begin(), r->value->end()),
            rec::offset_commit_value({10, 1, "x", 5}));
  b = batches.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->records_count(), 1);
  EXPECT_FALSE(batches.next());
}

TEST_F(offsets_log_test, state_survives_a_clean_restart_byte_for_byte) {
  group_metadata_record g = sample_group(3);
  g.members[0].group_instance_id = "static-1";
  g.members[0].assignment = {0x00, 0x01, 0xFF, 0x00};
  group_metadata_record::member m2;
  m2.member_id = "m2";
  m2.client_host = "/10.0.0.2";
  m2.subscription = {};
  g.members.push_back(m2);
  ASSERT_EQ(store_group("g1", g), error_code::none);
  ASSERT_EQ(commit("g1", "orders", 0, 42, "meta\x01\xff", 7), error_code::none);
  ASSERT_EQ(commit("g1", "orders", 1, 17), error_code::none);
  ASSERT_EQ(commit("g2", "events", 5, 1000, std::string(4096, 'z')), error_code::none);
  group_metadata_record empty;  // an Empty group: no protocol, no leader, no members
  empty.protocol_type = "consumer";
  empty.generation = 4;
  empty.protocol_name = std::nullopt;
  empty.leader = std::nullopt;
  ASSERT_EQ(store_group("g2", empty), error_code::none);
  topic_partition gone{"orders", 1};
  ASSERT_EQ(remove_offsets("g1", gone), error_code::none);

  group_map before = replay();
  restart_cleanly();
  group_map after = replay();

  ASSERT_EQ(after.size(), 2u);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [id, want] : before) {
    auto it = after.find(id);
    ASSERT_NE(it, after.end()) << id;
    ASSERT_TRUE(want.metadata && it->second.metadata);
    EXPECT_EQ(rec::group_metadata_value(*it->second.metadata, 0),
              rec::group_metadata_value(*want.metadata, 0));
    EXPECT_EQ(it->second.current_state_timestamp_ms, want.current_state_timestamp_ms);
    ASSERT_EQ(it->second.offsets.size(), want.offsets.size());
    for (const auto& [tp, o] : want.offsets) {
      ASSERT_TRUE(it->second.offsets.contains(tp));
      EXPECT_EQ(rec::offset_commit_value(it->second.offsets.at(tp)), rec::offset_commit_value(o));
    }
  }
  EXPECT_EQ(rec::group_metadata_value(*after["g1"].metadata, 0), rec::group_metadata_value(g, 0));
  EXPECT_EQ(after["g1"].offsets.size(), 1u);
  const committed_offset& o = after["g1"].offsets.at({"orders", 0});
  EXPECT_EQ(o.offset, 42);
  EXPECT_EQ(o.leader_epoch, 7);
  EXPECT_EQ(o.metadata, "meta\x01\xff");
  EXPECT_EQ(after["g2"].offsets.at({"events", 5}).metadata, std::string(4096, 'z'));
  EXPECT_FALSE(after["g2"].metadata->leader);

  recording_loader loader;
  ASSERT_FALSE(replay_consumer_offsets(*log_, loader));
  std::vector<std::string> want_calls = {
      "group g1 gen 3 ts " + std::to_string(t0), "offset g1 orders-0 @42",
      "group g2 gen 4 ts " + std::to_string(t0 + 4), "offset g2 events-5 @1000"};
  EXPECT_EQ(loader.calls, want_calls);
}

TEST_F(offsets_log_test, last_record_wins_and_tombstones_delete) {
  ASSERT_EQ(commit("g", "t", 0, 1), error_code::none);
  ASSERT_EQ(commit("g", "t", 0, 2), error_code::none);
  ASSERT_EQ(commit("g", "t", 0, 3), error_code::none);
  ASSERT_EQ(store_group("g", sample_group(1)), error_code::none);
  ASSERT_EQ(store_group("g", sample_group(2)), error_code::none);
  // Deleted, then committed again: the later commit stands.
  topic_partition t1{"t", 1};
  ASSERT_EQ(commit("g", "t", 1, 10), error_code::none);
  ASSERT_EQ(remove_offsets("g", t1), error_code::none);
  ASSERT_EQ(commit("g", "t", 1, 11), error_code::none);
  // A group deleted as DeleteGroups does it: its offsets' tombstones and its own, one batch.
  ASSERT_EQ(commit("dead", "t", 0, 5), error_code::none);
  ASSERT_EQ(store_group("dead", sample_group()), error_code::none);
  ASSERT_EQ(remove_group("dead", {{"t", 0}}), error_code::none);
  // Tombstones for what was never written are harmless.
  ASSERT_EQ(remove_group("never"), error_code::none);

  restart_cleanly();
  group_map state = replay();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state["g"].metadata->generation, 2);
  EXPECT_EQ(state["g"].offsets.at({"t", 0}).offset, 3);
  EXPECT_EQ(state["g"].offsets.at({"t", 1}).offset, 11);

  // The group's metadata tombstoned but its offsets kept: offsets only.
  ASSERT_EQ(remove_group("g"), error_code::none);
  state = replay();
  EXPECT_FALSE(state["g"].metadata);
  EXPECT_EQ(state["g"].offsets.size(), 2u);
}

TEST_F(offsets_log_test, torn_tail_loses_only_the_unacknowledged_batch) {
  ASSERT_EQ(commit("g", "t", 0, 100), error_code::none);
  ASSERT_EQ(commit("g", "t", 1, 200), error_code::none);
  int64_t acknowledged = log_->size_bytes();
  ASSERT_EQ(commit("g", "t", 0, 300), error_code::none);
  crash();
  // The last pwrite reached the disk only in part.
  std::filesystem::resize_file(segment_file(), static_cast<uintmax_t>(acknowledged + 20));

  open();
  EXPECT_EQ(log_->log_end_offset(), 2);
  // Storage recovery reported the truncation.
  EXPECT_EQ(std::count_if(events_.begin(), events_.end(),
                          [](const std::string& e) { return e.find("truncated") != e.npos; }),
            1);
  group_map state = replay();
  EXPECT_EQ(state["g"].offsets.at({"t", 0}).offset, 100);
  EXPECT_EQ(state["g"].offsets.at({"t", 1}).offset, 200);
  // And the store appends after the recovered end.
  ASSERT_EQ(commit("g", "t", 0, 400), error_code::none);
  EXPECT_EQ(replay()["g"].offsets.at({"t", 0}).offset, 400);
}

TEST_F(offsets_log_test, unknown_key_versions_are_skipped) {
  std::vector<uint8_t> key = {0x00, 0x03, 0x00, 0x01, 'g'};  // a KIP-848 record key
  std::vector<uint8_t> value = {0x00, 0x00};
  std::vector<wire::record_to_build> records = {
      {t0, std::span<const uint8_t>(key), std::span<const uint8_t>(value)}};
  std::vector<uint8_t> batch = wire::build_record_batch({}, records);
  storage::append_info info;
  ASSERT_FALSE(log_->append(batch, 0, info));
  ASSERT_EQ(commit("g", "t", 0, 1), error_code::none);

  group_map state = replay();
  EXPECT_EQ(stats_.skipped_records, 1);
  EXPECT_EQ(stats_.records, 2);
  EXPECT_EQ(state["g"].offsets.at({"t", 0}).offset, 1);
}

TEST_F(offsets_log_test, undecodable_value_fails_replay) {
  std::vector<uint8_t> key = rec::offset_commit_key("g", {"t", 0});
  std::vector<uint8_t> value = {0x00, 0x03, 0x00};  // truncated
  std::vector<wire::record_to_build> records = {
      {t0, std::span<const uint8_t>(key), std::span<const uint8_t>(value)}};
  std::vector<uint8_t> batch = wire::build_record_batch({}, records);
  storage::append_info info;
  ASSERT_FALSE(log_->append(batch, 0, info));

  group_map state;
  EXPECT_EQ(read_consumer_offsets(*log_, state), storage::errc::invalid_record);
}

TEST_F(offsets_log_test, append_failure_maps_to_kafka_errors) {
  log_->close();  // as during shutdown
  EXPECT_EQ(commit("g", "t", 0, 1), error_code::not_coordinator);
  EXPECT_EQ(store_group("g", sample_group()), error_code::not_coordinator);
  EXPECT_EQ(remove_offsets("g", {"t", 0}), error_code::not_coordinator);
  EXPECT_EQ(remove_group("g", {{"t", 0}}), error_code::not_coordinator);
  EXPECT_EQ(store_offsets("g", {}), error_code::none);  // nothing to write
}

TEST_F(offsets_log_test, completions_come_after_the_call_in_the_order_of_the_calls) {
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    return [&order, what](error_code e) { order.push_back(what + " " + std::to_string(int(e))); };
  };
  offset_record r{{"t", 0}, {1, -1, "", t0}};
  topic_partition tp{"t", 0};
  store_->store_offsets("g", std::span<const offset_record>(&r, 1), note("offsets"));
  store_->store_group("g", sample_group(), note("group"));
  store_->remove_offsets("g", std::span<const topic_partition>(&tp, 1), note("tombstone"));
  store_->remove_group("g", {}, note("group tombstone"));
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(log_->log_end_offset(), 4);  // appended at once; only the answers are posted
  io_.poll();
  EXPECT_EQ(order,
            (std::vector<std::string>{"offsets 0", "group 0", "tombstone 0", "group tombstone 0"}));
}

// Kafka appends group records with acks=all: with the broker's default contract (a single broker
// is the only in-sync replica), a write completes only once the fdatasync covering it did, in the
// order of the writes.
TEST_F(offsets_log_test, writes_complete_once_durable_in_write_order) {
  close_store();
  partition_ =
      std::make_shared<partition>(logs_->find_shared({std::string(consumer_offsets_topic), 0}), 0,
                                  0, ack_sync_policy::sole_replica);
  disk_.drain();  // the leader epoch's checkpoint
  store_ =
      std::make_unique<offsets_log>(*partition_, io_.get_executor(), [this] { return clock_++; });
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    return [&order, what](error_code e) { order.push_back(what + " " + std::to_string(int(e))); };
  };
  offset_record r{{"t", 0}, {1, -1, "", t0}};
  store_->store_offsets("g", std::span<const offset_record>(&r, 1), note("offsets"));
  store_->store_group("g", sample_group(), note("group"));
  io_.restart();
  io_.poll();
  EXPECT_TRUE(order.empty()) << "a write completed before it was durable";
  EXPECT_EQ(log_->log_end_offset(), 2);
  EXPECT_EQ(log_->recovery_point(), 0);
  EXPECT_EQ(disk_.drain(), 2u);  // a sync for the first, then one for the second
  io_.restart();
  io_.poll();
  EXPECT_EQ(order, (std::vector<std::string>{"offsets 0", "group 0"}));
  EXPECT_EQ(log_->recovery_point(), 2);
}

TEST_F(offsets_log_test, a_write_whose_log_goes_away_before_its_sync_fails) {
  close_store();
  auto l = logs_->find_shared({std::string(consumer_offsets_topic), 0});
  partition_ = std::make_shared<partition>(l, 0, 0, ack_sync_policy::sole_replica);
  store_ =
      std::make_unique<offsets_log>(*partition_, io_.get_executor(), [this] { return clock_++; });
  std::optional<error_code> result;
  offset_record r{{"t", 0}, {1, -1, "", t0}};
  store_->store_offsets("g", std::span<const offset_record>(&r, 1),
                        [&](error_code e) { result = e; });
  // The log goes before its sync completed: the write is not acknowledged.
  l->mark_removed();
  disk_.drain();
  io_.restart();
  io_.poll();
  ASSERT_TRUE(result);
  EXPECT_NE(*result, error_code::none);
}

TEST_F(offsets_log_test, empty_log_replays_to_nothing) {
  recording_loader loader;
  EXPECT_FALSE(replay_consumer_offsets(*log_, loader));
  EXPECT_TRUE(loader.calls.empty());
}

// Offset expiry goes through the store as tombstones, so a restart does not bring expired
// offsets, or the group they kept alive, back.
TEST_F(offsets_log_test, expired_offsets_and_their_dead_group_stay_gone_after_a_restart) {
  group_metadata_record emptied = sample_group(5);
  emptied.members.clear();
  emptied.protocol_name.reset();
  emptied.leader.reset();
  ASSERT_EQ(store_group("gone", emptied), error_code::none);  // empty since ~t0
  ASSERT_EQ(commit("gone", "t", 0, 10), error_code::none);
  clock_ += 50'000;
  ASSERT_EQ(commit("kept", "t", 0, 20), error_code::none);  // standalone, committed at ~t0+50s

  group_coordinator_config config;
  config.offsets_retention = std::chrono::seconds(60);
  testing::manual_clock clock(t0 + 61'000);
  group_coordinator coordinator(io_.get_executor(), config, store_.get(), &clock);
  struct forward : group_loader {
    group_coordinator& c;
    explicit forward(group_coordinator& to) : c(to) {}
    void load_group(std::string_view id, const group_metadata_record& r, int64_t ts) override {
      c.load_group(id, r, ts);
    }
    void load_offset(std::string_view id, const offset_record& r) override { c.load_offset(id, r); }
  } loader(coordinator);
  ASSERT_FALSE(replay_consumer_offsets(*log_, loader));
  ASSERT_EQ(coordinator.state_of("gone"), group_state::empty);

  EXPECT_EQ(coordinator.expire_offsets(), 1u);
  EXPECT_EQ(coordinator.state_of("gone"), group_state::dead);  // until its tombstones are written
  io_.restart();
  io_.poll();
  EXPECT_FALSE(coordinator.state_of("gone"));
  EXPECT_EQ(coordinator.state_of("kept"), group_state::empty);

  restart_cleanly();
  group_map after = replay();
  EXPECT_FALSE(after.contains("gone"));  // neither its offsets nor its metadata
  ASSERT_TRUE(after.contains("kept"));
  EXPECT_EQ(after.at("kept").offsets.at({"t", 0}).offset, 20);
}

}  // namespace
}  // namespace sluice::server

// ---- In a cluster ----------------------------------------------------------------------------

namespace sluice::server {
namespace {

class offsets_log_cluster_test : public offsets_log_test {
 protected:
  // This broker (0) leads with broker 1 in the ISR; writes wait for both.
  void lead_with_a_follower() {
    partition_->become_leader(0, 1, {0, 1}, {0, 1}, 100, 30000);
    store_->replicate_with(
        offsets_replication{&clock_service_, std::chrono::milliseconds(5000), [] { return 1; }});
  }
  void poll() {
    io_.restart();
    io_.poll();
  }
  testing::manual_clock clock_service_;
};

// Kafka's acks=all append of group records: a commit is answered only once every in-sync
// replica has it.
TEST_F(offsets_log_cluster_test, a_write_completes_once_every_in_sync_replica_has_it) {
  lead_with_a_follower();
  std::optional<error_code> result;
  offset_record r{{"t", 0}, {7, -1, "", t0}};
  store_->store_offsets("g", std::span<const offset_record>(&r, 1),
                        [&](error_code e) { result = e; });
  poll();
  EXPECT_FALSE(result) << "answered before the follower had it";
  partition_->record_follower_fetch(1, log_->log_end_offset());
  poll();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, error_code::none);
}

// Kafka's storeOffsets and storeGroup mappings of a replication timeout.
TEST_F(offsets_log_cluster_test, a_write_the_follower_never_fetches_times_out_with_kafkas_errors) {
  lead_with_a_follower();
  std::optional<error_code> commit_result;
  std::optional<error_code> group_result;
  offset_record r{{"t", 0}, {7, -1, "", t0}};
  store_->store_offsets("g", std::span<const offset_record>(&r, 1),
                        [&](error_code e) { commit_result = e; });
  store_->store_group("g", sample_group(), [&](error_code e) { group_result = e; });
  poll();
  EXPECT_FALSE(commit_result);
  clock_service_.advance(std::chrono::milliseconds(5000), [this] { poll(); });
  poll();
  ASSERT_TRUE(commit_result && group_result);
  EXPECT_EQ(*commit_result, error_code::request_timed_out);
  EXPECT_EQ(*group_result, error_code::rebalance_in_progress);
}

// Leadership moves while a write waits: NOT_COORDINATOR, and the follower's log takes no write.
TEST_F(offsets_log_cluster_test, a_write_when_leadership_moves_is_not_coordinator) {
  lead_with_a_follower();
  std::optional<error_code> pending;
  offset_record r{{"t", 0}, {7, -1, "", t0}};
  store_->store_offsets("g", std::span<const offset_record>(&r, 1),
                        [&](error_code e) { pending = e; });
  poll();
  EXPECT_FALSE(pending);
  partition_->become_follower(1, 2, {0, 1}, {0, 1}, 101);
  poll();
  ASSERT_TRUE(pending);
  EXPECT_EQ(*pending, error_code::not_coordinator);
  const int64_t end = log_->log_end_offset();
  EXPECT_EQ(commit("g", "t", 0, 8), error_code::not_coordinator);
  EXPECT_EQ(log_->log_end_offset(), end);
}

// The load a new leader runs reads what the start-up replay reads, in disk jobs.
TEST_F(offsets_log_test, the_asynchronous_load_finds_what_the_replay_finds) {
  ASSERT_EQ(store_group("g", sample_group()), error_code::none);
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(commit("g", "t", i % 3, i), error_code::none);
  ASSERT_EQ(commit("h", "t", 0, 5), error_code::none);
  ASSERT_EQ(remove_offsets("h", {"t", 0}), error_code::none);
  const group_map expected = replay();
  std::optional<std::error_code> result;
  loaded_consumer_offsets loaded;
  const size_t jobs_before = disk_.ran();
  load_consumer_offsets_async(partition_, disk_,
                              [&](std::error_code ec, loaded_consumer_offsets l) {
                                result = ec;
                                loaded = std::move(l);
                              });
  for (int i = 0; i < 100 && !result; ++i) {
    disk_.drain();
    io_.restart();
    io_.poll();
  }
  ASSERT_TRUE(result);
  EXPECT_FALSE(*result) << result->message();
  EXPECT_GT(disk_.ran(), jobs_before) << "the batches were not read in disk jobs";
  ASSERT_EQ(loaded.groups.size(), expected.size());
  for (const auto& [id, g] : expected) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(loaded.groups.contains(id));
    EXPECT_EQ(loaded.groups.at(id).offsets.size(), g.offsets.size());
    for (const auto& [tp, value] : g.offsets)
      EXPECT_EQ(loaded.groups.at(id).offsets.at(tp).offset, value.offset);
    EXPECT_EQ(loaded.groups.at(id).metadata.has_value(), g.metadata.has_value());
  }
  EXPECT_EQ(loaded.stats.records, stats_.records);
}

}  // namespace
}  // namespace sluice::server
