// Handlers driven with bytes alone: requests are encoded with the generated codec, routed through
// dispatch_request exactly as a connection does, and the response frames decoded again. No
// sockets are involved; the broker's listener is bound to an ephemeral port but never used.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <limits>
#include <map>

#include <functional>

#include <boost/asio/io_context.hpp>

#include "server/api_registry.h"
#include "server/broker.h"
#include "server/handlers/handlers.h"
#include "server/tests/manual_clock.h"
#include "wire/codec.h"
#include "wire/error_code.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/request_header.h"
#include "wire/generated/response_header.h"
#include "wire/record_batch.h"

namespace sluice::server {
namespace {

using wire::error_code;

struct counting_sink : response_sink {
  int ready = 0;
  void response_ready() override { ++ready; }
};

class handlers_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-handlers-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    config_result r = load_config(
        {}, {"listeners=PLAINTEXT://127.0.0.1:0", "log.dirs=" + dir_.string(), "num.partitions=2"});
    ASSERT_TRUE(r.error.empty()) << r.error;
    broker_ = std::make_unique<broker>(io_, r.config, &clock_);
    ASSERT_EQ(broker_->start(), "");
  }
  void TearDown() override {
    broker_->stop();
    // Until nothing is left to do: stop() cancelled every timer and answered every parked
    // request, and disk jobs in flight keep the io_context running until they completed.
    io_.restart();
    io_.run();
    broker_->close_storage();
    broker_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Sends one request; returns the response slot once the handler finished.
  template <class Req>
  std::shared_ptr<response_slot> call(int16_t version, const Req& request, bool* accepted = nullptr,
                                      std::chrono::milliseconds wait = std::chrono::seconds(2)) {
    wire::frame f;
    {
      wire::writer w(f);
      wire::request_header header;
      header.request_api_key = Req::api_key;
      header.request_api_version = version;
      header.correlation_id = ++correlation_id_;
      header.client_id = "handlers-test";
      header.encode(w, wire::request_header_version(Req::api_key, version));
      request.encode(w, version);
    }
    inbound_request in;
    in.size = f.bytes.size();
    in.data = std::make_unique<uint8_t[]>(in.size);
    std::copy(f.bytes.begin(), f.bytes.end(), in.data.get());
    auto slot = std::make_shared<response_slot>();
    correlation_of_[slot.get()] = correlation_id_;
    auto sink = std::make_shared<counting_sink>();
    std::string reason;
    bool ok = dispatch_request(broker_->services(), request_context{io_.get_executor()},
                               std::move(in), slot, sink, reason);
    if (accepted) *accepted = ok;
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (!slot->ready && ok && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(std::chrono::milliseconds(10));
    }
    return slot;
  }

  // Decodes a response frame (size, header, body). File slices are read back from their files so
  // that the decoder sees the bytes a client would.
  template <class Resp>
  Resp decode(const response_slot& slot, int16_t api_key, int16_t version) {
    std::vector<uint8_t> bytes;
    for (const auto& part : slot.frame.parts) {
      if (!part.is_slice) {
        bytes.insert(bytes.end(), slot.frame.bytes.begin() + part.index,
                     slot.frame.bytes.begin() + part.index + part.length);
      } else {
        const wire::file_slice& s = slot.frame.slices[part.index];
        std::vector<uint8_t> chunk(s.length);
        EXPECT_EQ(::pread(s.fd, chunk.data(), chunk.size(), s.position), s.length);
        bytes.insert(bytes.end(), chunk.begin(), chunk.end());
      }
    }
    held_.push_back(std::move(bytes));
    auto& held = held_.back();
    wire::reader r(held);
    EXPECT_EQ(r.i32(), static_cast<int32_t>(held.size() - 4));
    wire::response_header header;
    EXPECT_TRUE(header.decode(r, wire::response_header_version(api_key, version)));
    EXPECT_EQ(header.correlation_id, correlation_of_[&slot]);
    Resp response;
    EXPECT_TRUE(response.decode(r, version));
    EXPECT_EQ(r.remaining(), 0u);
    return response;
  }

  static std::vector<uint8_t> batch(int records, int64_t timestamp = 1000) {
    std::vector<std::vector<uint8_t>> values;
    std::vector<wire::record_to_build> input;
    for (int i = 0; i < records; ++i) {
      values.push_back({static_cast<uint8_t>('a' + i % 26)});
    }
    for (int i = 0; i < records; ++i) {
      input.push_back({timestamp + i, std::nullopt, std::span<const uint8_t>(values[i])});
    }
    return wire::build_record_batch({}, input);
  }

  // Runs the io_context (disk job completions included) until `done` holds. The deadline only
  // bounds a test that fails; nothing waits for it to pass.
  bool run_until(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  // Creates `name` through an auto-creating Metadata request and waits until its files exist.
  void create_topic(const std::string& name) {
    wire::metadata_request request;
    request.topics.emplace().emplace_back().name = name;
    call(9, request);
    ASSERT_TRUE(run_until([&] { return broker_->topics().find(name) != nullptr; }));
  }

  // Produces, and once more when the first attempt auto-created the topic (LEADER_NOT_AVAILABLE
  // until its files exist), as a client retries.
  wire::produce_response produce(const std::string& topic, int32_t partition,
                                 std::vector<uint8_t>& bytes, int16_t acks = 1,
                                 int16_t version = 9) {
    wire::produce_response r = produce_once(topic, partition, bytes, acks, version);
    if (r.responses.size() == 1 && r.responses[0].partition_responses.size() == 1 &&
        r.responses[0].partition_responses[0].error_code ==
            static_cast<int16_t>(error_code::leader_not_available)) {
      EXPECT_TRUE(run_until([&] { return broker_->topics().find(topic) != nullptr; }));
      r = produce_once(topic, partition, bytes, acks, version);
    }
    return r;
  }

  wire::produce_response produce_once(const std::string& topic, int32_t partition,
                                      std::vector<uint8_t>& bytes, int16_t acks = 1,
                                      int16_t version = 9) {
    wire::produce_request request;
    request.acks = acks;
    request.timeout_ms = 1000;
    auto& t = request.topic_data.emplace_back();
    t.name = topic;
    auto& p = t.partition_data.emplace_back();
    p.index = partition;
    p.records.bytes = bytes;
    auto slot = call(version, request);
    return decode<wire::produce_response>(*slot, 0, version);
  }

  boost::asio::io_context io_;
  // Long polls and group deadlines run on it: time moves only when a test advances it.
  testing::manual_clock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<broker> broker_;
  int32_t correlation_id_ = 0;
  std::map<const response_slot*, int32_t> correlation_of_;
  std::vector<std::vector<uint8_t>> held_;
};

TEST_F(handlers_test, api_versions_lists_the_registry) {
  for (int16_t version : {0, 1, 2, 3, 4}) {
    auto slot = call(version, wire::api_versions_request{});
    auto response = decode<wire::api_versions_response>(*slot, 18, version);
    EXPECT_EQ(response.error_code, 0);
    ASSERT_EQ(response.api_keys.size(), api_handlers().size());
    for (const auto& k : response.api_keys) {
      const api_handler* h = find_api_handler(k.api_key);
      ASSERT_NE(h, nullptr);
      EXPECT_EQ(k.min_version, h->min_version);
      EXPECT_EQ(k.max_version, h->max_version);
    }
  }
}

TEST_F(handlers_test, a_broker_alone_reassigns_only_onto_itself_and_lists_nothing_in_progress) {
  create_topic("moved");
  wire::alter_partition_reassignments_request request;
  auto& t = request.topics.emplace_back();
  t.name = "moved";
  t.partitions.emplace_back().replicas = std::vector<int32_t>{1};  // itself: done at once
  t.partitions.emplace_back().replicas = std::vector<int32_t>{1, 2};
  t.partitions.emplace_back().replicas = std::vector<int32_t>{1, 1};
  t.partitions.emplace_back();  // null: cancel
  t.partitions.emplace_back().replicas = std::vector<int32_t>{};
  t.partitions.emplace_back().partition_index = 3;
  t.partitions.back().replicas = std::vector<int32_t>{1};
  auto& missing = request.topics.emplace_back();
  missing.name = "missing";
  missing.partitions.emplace_back().replicas = std::vector<int32_t>{1};
  auto response = decode<wire::alter_partition_reassignments_response>(*call(0, request), 45, 0);
  EXPECT_EQ(response.error_code, 0);
  ASSERT_EQ(response.responses.size(), 2u);
  const std::vector<error_code> expected = {
      error_code::none,
      error_code::invalid_replica_assignment,   // broker 2 is not registered
      error_code::invalid_replica_assignment,   // broker 1 twice
      error_code::no_reassignment_in_progress,  //
      error_code::invalid_replica_assignment,   // empty
      error_code::unknown_topic_or_partition};  // partition 3
  ASSERT_EQ(response.responses[0].partitions.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(response.responses[0].partitions[i].error_code, static_cast<int16_t>(expected[i]))
        << i;
  }
  EXPECT_EQ(response.error_message, std::nullopt);
  EXPECT_EQ(response.responses[0].partitions[0].error_message, std::nullopt);
  ASSERT_EQ(response.responses[1].partitions.size(), 1u);
  EXPECT_EQ(response.responses[1].partitions[0].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));

  wire::list_partition_reassignments_request list;
  auto listed = decode<wire::list_partition_reassignments_response>(*call(0, list), 46, 0);
  EXPECT_EQ(listed.error_code, 0);
  EXPECT_EQ(listed.error_message, std::nullopt);
  EXPECT_TRUE(listed.topics.empty());
}

TEST_F(handlers_test, unsupported_api_versions_gets_error_35_in_a_v0_body) {
  auto slot = call(int16_t{7}, wire::api_versions_request{});
  ASSERT_TRUE(slot->ready);
  auto response = decode<wire::api_versions_response>(*slot, 18, 0);
  EXPECT_EQ(response.error_code, static_cast<int16_t>(error_code::unsupported_version));
  ASSERT_EQ(response.api_keys.size(), 1u);
  EXPECT_EQ(response.api_keys[0].api_key, 18);
  EXPECT_EQ(response.api_keys[0].max_version, 4);
}

TEST_F(handlers_test, unsupported_version_of_other_apis_closes) {
  bool accepted = true;
  call(int16_t{0}, wire::fetch_request{}, &accepted);
  EXPECT_FALSE(accepted);
  call(int16_t{14}, wire::metadata_request{}, &accepted);
  EXPECT_FALSE(accepted);
  // Produce v0-2 are advertised (for librdkafka < 2.11.1) but refused, as Kafka 4 does.
  call(int16_t{2}, wire::produce_request{}, &accepted);
  EXPECT_FALSE(accepted);
  call(int16_t{3}, wire::produce_request{}, &accepted);
  EXPECT_TRUE(accepted);
}

TEST_F(handlers_test, metadata_creates_and_lists_topics) {
  wire::metadata_request request;
  request.topics.emplace();
  auto& t = request.topics->emplace_back();
  t.name = "orders";
  // The first answer starts the creation; the topic has no leader until its files exist.
  auto first = decode<wire::metadata_response>(*call(12, request), 3, 12);
  ASSERT_EQ(first.topics.size(), 1u);
  EXPECT_EQ(first.topics[0].error_code, static_cast<int16_t>(error_code::leader_not_available));
  EXPECT_EQ(first.topics[0].partitions.size(), 0u);
  ASSERT_TRUE(run_until([&] { return broker_->topics().find("orders") != nullptr; }));
  auto response = decode<wire::metadata_response>(*call(12, request), 3, 12);
  ASSERT_EQ(response.brokers.size(), 1u);
  EXPECT_EQ(response.brokers[0].node_id, 1);
  EXPECT_EQ(response.controller_id, 1);
  ASSERT_EQ(response.topics.size(), 1u);
  EXPECT_EQ(response.topics[0].error_code, 0);
  EXPECT_NE(response.topics[0].topic_id, wire::uuid{});
  ASSERT_EQ(response.topics[0].partitions.size(), 2u);
  EXPECT_EQ(response.topics[0].partitions[1].leader_id, 1);
  EXPECT_EQ(response.topics[0].partitions[1].isr_nodes, std::vector<int32_t>{1});

  // v1+: null lists every topic (orders and the internal __consumer_offsets); empty lists none.
  wire::metadata_request all;
  all.topics.reset();
  EXPECT_EQ(decode<wire::metadata_response>(*call(1, all), 3, 1).topics.size(), 2u);
  wire::metadata_request none;
  none.topics.emplace();
  EXPECT_EQ(decode<wire::metadata_response>(*call(1, none), 3, 1).topics.size(), 0u);
  // v0: empty lists every topic.
  EXPECT_EQ(decode<wire::metadata_response>(*call(0, none), 3, 0).topics.size(), 2u);
}

TEST_F(handlers_test, metadata_respects_allow_auto_topic_creation_and_internal_names) {
  wire::metadata_request request;
  request.topics.emplace();
  request.topics->emplace_back().name = "not-created";
  request.topics->emplace_back().name = "__transaction_state";
  request.topics->emplace_back().name = "bad name!";
  request.topics->emplace_back().name = "__consumer_offsets";
  request.allow_auto_topic_creation = false;
  auto response = decode<wire::metadata_response>(*call(9, request), 3, 9);
  ASSERT_EQ(response.topics.size(), 4u);
  EXPECT_EQ(response.topics[0].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));
  EXPECT_EQ(response.topics[1].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));
  EXPECT_EQ(response.topics[2].error_code,
            static_cast<int16_t>(error_code::invalid_topic_exception));
  // The broker's own __consumer_offsets exists and is internal.
  EXPECT_EQ(response.topics[3].error_code, 0);
  EXPECT_TRUE(response.topics[3].is_internal);

  // Even with auto-creation allowed, a client never creates an internal topic.
  request.allow_auto_topic_creation = true;
  response = decode<wire::metadata_response>(*call(9, request), 3, 9);
  EXPECT_EQ(response.topics[1].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));

  // An all-topics answer lists it too, marked internal, as Kafka does.
  wire::metadata_request all;
  all.topics.reset();
  int internal = 0;
  for (const auto& t : decode<wire::metadata_response>(*call(9, all), 3, 9).topics) {
    EXPECT_EQ(t.is_internal, t.name == "__consumer_offsets") << t.name.value_or("");
    internal += t.is_internal;
  }
  EXPECT_EQ(internal, 1);
}

TEST_F(handlers_test, authorized_operations_are_every_supported_one_when_asked_for) {
  // Kafka without an authorizer (AuthHelper): bit 1 << AclOperation code for each operation the
  // resource type supports. Topic: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
  // DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11. Cluster: CREATE 5, ALTER 7, DESCRIBE 8,
  // CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12. Group: READ 3,
  // DELETE 6, DESCRIBE 8.
  constexpr int32_t topic_bits = 0b110111111000;
  constexpr int32_t cluster_bits = 0b1111110100000;
  constexpr int32_t group_bits = 0b101001000;
  constexpr int32_t not_asked = std::numeric_limits<int32_t>::min();
  auto b = batch(1);
  produce("ops", 0, b);

  wire::metadata_request request;
  request.topics.emplace();
  request.topics->emplace_back().name = "ops";
  auto plain = decode<wire::metadata_response>(*call(10, request), 3, 10);
  EXPECT_EQ(plain.topics[0].topic_authorized_operations, not_asked);
  EXPECT_EQ(plain.cluster_authorized_operations, not_asked);
  request.include_topic_authorized_operations = true;
  request.include_cluster_authorized_operations = true;
  auto asked = decode<wire::metadata_response>(*call(10, request), 3, 10);
  EXPECT_EQ(asked.topics[0].topic_authorized_operations, topic_bits);
  EXPECT_EQ(asked.cluster_authorized_operations, cluster_bits);
  // v11+ has no cluster field in the request: never asked there.
  EXPECT_EQ(decode<wire::metadata_response>(*call(12, request), 3, 12)
                .topics[0]
                .topic_authorized_operations,
            topic_bits);

  wire::describe_cluster_request cluster;
  cluster.include_cluster_authorized_operations = true;
  EXPECT_EQ(decode<wire::describe_cluster_response>(*call(1, cluster), 60, 1)
                .cluster_authorized_operations,
            cluster_bits);
  cluster.include_cluster_authorized_operations = false;
  EXPECT_EQ(decode<wire::describe_cluster_response>(*call(1, cluster), 60, 1)
                .cluster_authorized_operations,
            not_asked);

  wire::describe_groups_request groups;
  groups.groups = {"some-group"};
  groups.include_authorized_operations = true;
  EXPECT_EQ(decode<wire::describe_groups_response>(*call(5, groups), 15, 5)
                .groups[0]
                .authorized_operations,
            group_bits);
  groups.include_authorized_operations = false;
  EXPECT_EQ(decode<wire::describe_groups_response>(*call(5, groups), 15, 5)
                .groups[0]
                .authorized_operations,
            not_asked);
}

TEST_F(handlers_test, produce_to_an_internal_topic_is_refused) {
  auto b = batch(1);
  EXPECT_EQ(produce("__consumer_offsets", 0, b).responses[0].partition_responses[0].error_code,
            static_cast<int16_t>(error_code::invalid_topic_exception));
}

TEST_F(handlers_test, produce_assigns_contiguous_offsets_and_stamps_in_place) {
  auto first = batch(3);
  auto second = batch(2);
  auto r1 = produce("events", 0, first);
  ASSERT_EQ(r1.responses[0].partition_responses[0].error_code, 0);
  EXPECT_EQ(r1.responses[0].partition_responses[0].base_offset, 0);
  auto r2 = produce("events", 0, second);
  EXPECT_EQ(r2.responses[0].partition_responses[0].base_offset, 3);

  // The stored batch carries the broker-owned fields; its CRC still holds because both lie
  // outside it, and every other byte is the producer's.
  storage::read_info read;
  partition* p = broker_->topics().find_partition("events", 0);
  ASSERT_FALSE(p->log().read(3, 1 << 20, p->high_watermark(), true, read));
  ASSERT_EQ(read.bytes, static_cast<int64_t>(second.size()));
  std::vector<uint8_t> stored(second.size());
  ASSERT_EQ(::pread(read.slices[0].fd, stored.data(), stored.size(), read.slices[0].position),
            static_cast<ssize_t>(stored.size()));
  wire::record_batch view(stored);
  EXPECT_EQ(view.base_offset(), 3);
  EXPECT_EQ(view.partition_leader_epoch(), p->leader_epoch());
  EXPECT_EQ(view.validate(), wire::batch_error::ok);
  EXPECT_TRUE(std::equal(stored.begin() + 16, stored.end(), second.begin() + 16));
}

TEST_F(handlers_test, produce_rejects_bad_batches_whole) {
  auto good = batch(1);
  auto corrupt = batch(2);
  corrupt.back() ^= 0xff;  // a record byte: covered by the CRC
  EXPECT_EQ(produce("t", 0, corrupt).responses[0].partition_responses[0].error_code,
            static_cast<int16_t>(error_code::corrupt_message));
  auto two = batch(1);
  two.insert(two.end(), good.begin(), good.end());
  EXPECT_EQ(produce("t", 0, two).responses[0].partition_responses[0].error_code,
            static_cast<int16_t>(error_code::invalid_record));
  auto unknown_partition = batch(1);
  EXPECT_EQ(produce("t", 9, unknown_partition).responses[0].partition_responses[0].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));
  auto bad_acks = batch(1);
  EXPECT_EQ(produce("t", 0, bad_acks, 2).responses[0].partition_responses[0].error_code,
            static_cast<int16_t>(error_code::invalid_required_acks));
  // Nothing of the rejected batches reached the log.
  EXPECT_EQ(broker_->topics().find_partition("t", 0)->log_end_offset(), 0);
}

TEST_F(handlers_test, acks_zero_sends_nothing_and_closes_on_error) {
  create_topic("quiet");
  wire::produce_request request;
  request.acks = 0;
  auto& t = request.topic_data.emplace_back();
  t.name = "quiet";
  auto& p = t.partition_data.emplace_back();
  auto bytes = batch(1);
  p.records.bytes = bytes;
  auto ok = call(9, request);
  ASSERT_TRUE(ok->ready);
  EXPECT_FALSE(ok->send);
  EXPECT_FALSE(ok->close_after);
  p.index = 42;
  auto failed = call(9, request);
  EXPECT_FALSE(failed->send);
  EXPECT_TRUE(failed->close_after);
}

TEST_F(handlers_test, fetch_serves_file_slices_verbatim) {
  auto b = batch(4);
  produce("logs", 1, b);
  wire::fetch_request request;
  request.replica_id = -1;
  request.max_wait_ms = 0;
  request.min_bytes = 1;
  request.max_bytes = 1 << 20;
  auto& t = request.topics.emplace_back();
  t.topic = "logs";
  for (int32_t i : {0, 1, 7}) {
    auto& p = t.partitions.emplace_back();
    p.partition = i;
    p.fetch_offset = 0;
    p.partition_max_bytes = 1 << 20;
  }
  auto slot = call(12, request);
  ASSERT_FALSE(slot->frame.slices.empty());
  auto response = decode<wire::fetch_response>(*slot, 1, 12);
  ASSERT_EQ(response.responses.size(), 1u);
  const auto& parts = response.responses[0].partitions;
  ASSERT_EQ(parts.size(), 3u);  // every requested partition appears
  EXPECT_EQ(parts[0].error_code, 0);
  EXPECT_EQ(parts[0].records.bytes.size(), 0u);
  EXPECT_EQ(parts[1].high_watermark, 4);
  // Verbatim but for the partition leader epoch (bytes 12-15), stamped by the broker.
  ASSERT_EQ(parts[1].records.bytes.size(), b.size());
  EXPECT_TRUE(std::equal(b.begin(), b.begin() + 12, parts[1].records.bytes.begin()));
  EXPECT_TRUE(std::equal(b.begin() + 16, b.end(), parts[1].records.bytes.begin() + 16));
  EXPECT_EQ(parts[2].error_code, static_cast<int16_t>(error_code::unknown_topic_or_partition));
}

TEST_F(handlers_test, fetch_v13_and_later_name_topics_by_id) {
  auto b = batch(3);
  produce("ids", 0, b);
  const topic* t = broker_->topics().find("ids");
  ASSERT_NE(t, nullptr);
  wire::fetch_request request;
  request.max_wait_ms = 0;
  request.max_bytes = 1 << 20;
  request.replica_state.replica_id = -1;
  wire::fetch_request::fetch_partition p;
  p.partition_max_bytes = 1 << 20;
  wire::fetch_request::fetch_partition missing = p;
  missing.partition = 9;  // no such partition
  wire::fetch_request::fetch_topic known;
  known.topic_id = t->id;
  known.partitions = {p, missing};
  wire::fetch_request::fetch_topic unknown;
  unknown.topic_id = wire::uuid{1, 2, 3};
  unknown.partitions = {p};
  request.topics = {known, unknown};
  for (int16_t version : {13, 15, 16, 17}) {
    auto response = decode<wire::fetch_response>(*call(version, request), 1, version);
    ASSERT_EQ(response.responses.size(), 2u) << version;
    EXPECT_EQ(response.responses[0].topic_id, t->id);
    ASSERT_EQ(response.responses[0].partitions.size(), 2u);
    EXPECT_EQ(response.responses[0].partitions[0].error_code, 0);
    EXPECT_EQ(response.responses[0].partitions[0].high_watermark, 3);
    EXPECT_EQ(response.responses[0].partitions[0].records.bytes.size(), b.size());
    EXPECT_EQ(response.responses[0].partitions[1].error_code,
              static_cast<int16_t>(error_code::unknown_topic_or_partition));
    EXPECT_EQ(response.responses[1].topic_id, unknown.topic_id);
    EXPECT_EQ(response.responses[1].partitions[0].error_code,
              static_cast<int16_t>(error_code::unknown_topic_id));
  }
  // v15+: the replica id is in ReplicaState; a broker id that is not a replica is refused.
  request.replica_state.replica_id = 7;
  auto response = decode<wire::fetch_response>(*call(15, request), 1, 15);
  EXPECT_EQ(response.responses[0].partitions[0].error_code,
            static_cast<int16_t>(error_code::not_leader_or_follower));
}

TEST_F(handlers_test, offset_commit_for_a_missing_partition_answers_unknown_and_stores_nothing) {
  auto b = batch(2);
  produce("oc", 0, b);  // "oc" exists; its partition 5 does not, nor does topic "nope"
  wire::offset_commit_request commit;
  commit.group_id = "g";
  commit.generation_id_or_member_epoch = -1;  // a standalone commit
  for (auto [name, partition] :
       {std::pair<std::string, int32_t>{"oc", 0}, {"oc", 5}, {"nope", 0}}) {
    auto* t = commit.topics.empty() || commit.topics.back().name != name
                  ? &commit.topics.emplace_back()
                  : &commit.topics.back();
    t->name = name;
    auto& p = t->partitions.emplace_back();
    p.partition_index = partition;
    p.committed_offset = 1;
  }
  auto committed = decode<wire::offset_commit_response>(*call(8, commit), 8, 8);
  ASSERT_EQ(committed.topics.size(), 2u);
  ASSERT_EQ(committed.topics[0].partitions.size(), 2u);
  EXPECT_EQ(committed.topics[0].partitions[0].partition_index, 0);
  EXPECT_EQ(committed.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(committed.topics[0].partitions[1].partition_index, 5);
  EXPECT_EQ(committed.topics[0].partitions[1].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));
  EXPECT_EQ(committed.topics[1].name, "nope");
  EXPECT_EQ(committed.topics[1].partitions[0].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));

  wire::offset_fetch_request fetch;
  fetch.group_id = "g";
  fetch.topics.emplace();
  fetch.topics->push_back({"oc", {0, 5}, {}});
  fetch.topics->push_back({"nope", {0}, {}});
  auto fetched = decode<wire::offset_fetch_response>(*call(7, fetch), 9, 7);
  ASSERT_EQ(fetched.topics.size(), 2u);
  EXPECT_EQ(fetched.topics[0].partitions[0].committed_offset, 1);
  EXPECT_EQ(fetched.topics[0].partitions[1].committed_offset, -1);
  EXPECT_EQ(fetched.topics[1].partitions[0].committed_offset, -1);

  // Nothing left to commit: no group is created for it.
  commit.group_id = "ghost";
  commit.topics.erase(commit.topics.begin());
  committed = decode<wire::offset_commit_response>(*call(8, commit), 8, 8);
  EXPECT_EQ(committed.topics[0].partitions[0].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));
  auto groups = decode<wire::list_groups_response>(*call(4, wire::list_groups_request{}), 16, 4);
  for (const auto& g : groups.groups)
    EXPECT_NE(g.group_id, "ghost");
}

TEST_F(handlers_test, offset_for_leader_epoch_answers_from_the_epoch_cache) {
  auto b = batch(3);
  produce("ep", 0, b);
  wire::offset_for_leader_epoch_request request;
  auto& t = request.topics.emplace_back();
  t.topic = "ep";
  for (int32_t epoch : {0, 1, -1}) {
    auto& p = t.partitions.emplace_back();
    p.leader_epoch = epoch;
  }
  t.partitions.emplace_back().current_leader_epoch = 1;
  t.partitions.emplace_back().partition = 4;
  for (int16_t version : {0, 2, 3, 4}) {
    auto response =
        decode<wire::offset_for_leader_epoch_response>(*call(version, request), 23, version);
    ASSERT_EQ(response.topics.size(), 1u);
    const auto& parts = response.topics[0].partitions;
    ASSERT_EQ(parts.size(), 5u);
    // The current epoch ends at the log end.
    EXPECT_EQ(parts[0].error_code, 0);
    EXPECT_EQ(parts[0].end_offset, 3);
    EXPECT_EQ(parts[0].leader_epoch, version >= 1 ? 0 : -1);  // absent from v0 responses
    // Newer than any epoch, or undefined: NONE with -1 / -1.
    for (size_t i : {1u, 2u}) {
      EXPECT_EQ(parts[i].error_code, 0);
      EXPECT_EQ(parts[i].end_offset, -1);
      EXPECT_EQ(parts[i].leader_epoch, -1);
    }
    EXPECT_EQ(parts[3].error_code,
              version >= 2 ? static_cast<int16_t>(error_code::unknown_leader_epoch) : 0);
    EXPECT_EQ(parts[4].error_code, static_cast<int16_t>(error_code::unknown_topic_or_partition));
  }
}

TEST_F(handlers_test, fetch_with_last_fetched_epoch_reports_a_diverging_log) {
  auto b = batch(3);
  produce("div", 0, b);
  wire::fetch_request request;
  request.max_wait_ms = 60'000;  // a diverging answer must not wait
  request.min_bytes = 1;
  auto& t = request.topics.emplace_back();
  t.topic = "div";
  auto& p = t.partitions.emplace_back();
  p.partition_max_bytes = 1 << 20;
  p.last_fetched_epoch = 0;
  p.fetch_offset = 5;  // the follower holds offsets 3-4 of epoch 0 that the leader never had
  auto diverged = decode<wire::fetch_response>(*call(12, request), 1, 12);
  const auto& part = diverged.responses[0].partitions[0];
  EXPECT_EQ(part.error_code, 0);
  EXPECT_EQ(part.diverging_epoch.epoch, 0);
  EXPECT_EQ(part.diverging_epoch.end_offset, 3);
  EXPECT_TRUE(part.records.bytes.empty());
  EXPECT_EQ(part.high_watermark, 3);

  // An epoch the leader's log does not have: OFFSET_OUT_OF_RANGE.
  request.topics[0].partitions[0].last_fetched_epoch = 2;
  EXPECT_EQ(
      decode<wire::fetch_response>(*call(12, request), 1, 12).responses[0].partitions[0].error_code,
      static_cast<int16_t>(error_code::offset_out_of_range));

  // In step with the leader: an ordinary fetch.
  request.max_wait_ms = 0;
  request.topics[0].partitions[0].last_fetched_epoch = 0;
  request.topics[0].partitions[0].fetch_offset = 0;
  auto normal = decode<wire::fetch_response>(*call(12, request), 1, 12);
  EXPECT_EQ(normal.responses[0].partitions[0].diverging_epoch.end_offset, -1);
  EXPECT_EQ(normal.responses[0].partitions[0].records.bytes.size(), b.size());
}

TEST_F(handlers_test, fetch_sessions_send_only_what_changed) {
  auto b = batch(2);
  produce("sess", 0, b);
  produce("sess", 1, b);
  const topic* t = broker_->topics().find("sess");
  ASSERT_NE(t, nullptr);
  for (int16_t version : {12, 13}) {
    // A full fetch asking for a session (epoch 0), positioned at each partition's end.
    wire::fetch_request full;
    full.max_wait_ms = 0;
    full.session_id = 0;
    full.session_epoch = 0;
    auto& ft = full.topics.emplace_back();
    ft.topic = "sess";
    ft.topic_id = t->id;
    for (int32_t i : {0, 1}) {
      auto& p = ft.partitions.emplace_back();
      p.partition = i;
      p.fetch_offset = broker_->topics().find_partition("sess", i)->log_end_offset();
      p.partition_max_bytes = 1 << 20;
    }
    auto first = decode<wire::fetch_response>(*call(version, full), 1, version);
    ASSERT_NE(first.session_id, 0) << version;
    ASSERT_EQ(first.responses.size(), 1u);
    EXPECT_EQ(first.responses[0].partitions.size(), 2u);  // a full response has every partition

    // Incremental, nothing new: nothing in the response.
    wire::fetch_request incremental;
    incremental.max_wait_ms = 0;
    incremental.session_id = first.session_id;
    incremental.session_epoch = 1;
    auto idle = decode<wire::fetch_response>(*call(version, incremental), 1, version);
    EXPECT_EQ(idle.error_code, 0);
    EXPECT_EQ(idle.session_id, first.session_id);
    EXPECT_TRUE(idle.responses.empty());

    // New records on partition 1 only: only partition 1, with them.
    auto more = batch(3);
    produce("sess", 1, more);
    incremental.session_epoch = 2;
    auto news = decode<wire::fetch_response>(*call(version, incremental), 1, version);
    ASSERT_EQ(news.responses.size(), 1u);
    ASSERT_EQ(news.responses[0].partitions.size(), 1u);
    EXPECT_EQ(news.responses[0].partitions[0].partition_index, 1);
    EXPECT_EQ(news.responses[0].partitions[0].records.bytes.size(), more.size());
    if (version >= 13) {
      EXPECT_EQ(news.responses[0].topic_id, t->id);
    } else {
      EXPECT_EQ(news.responses[0].topic, "sess");
    }

    // A stale or repeated epoch, an unknown session, and the other topic naming scheme.
    auto error_of = [&](int16_t v, int32_t id, int32_t epoch) {
      wire::fetch_request r;
      r.session_id = id;
      r.session_epoch = epoch;
      return decode<wire::fetch_response>(*call(v, r), 1, v).error_code;
    };
    EXPECT_EQ(error_of(version, first.session_id, 2),
              static_cast<int16_t>(error_code::invalid_fetch_session_epoch));
    EXPECT_EQ(error_of(version, 12345, 1),
              static_cast<int16_t>(error_code::fetch_session_id_not_found));
    EXPECT_EQ(error_of(version == 12 ? 13 : 12, first.session_id, 3),
              static_cast<int16_t>(error_code::fetch_session_topic_id_error));

    // Forgetting partition 1 takes it out of the session: its new records are not fetched.
    produce("sess", 1, more);
    incremental.session_epoch = 3;
    auto& forget = incremental.forgotten_topics_data.emplace_back();
    forget.topic = "sess";
    forget.topic_id = t->id;
    forget.partitions = {1};
    auto after = decode<wire::fetch_response>(*call(version, incremental), 1, version);
    EXPECT_EQ(after.error_code, 0);
    EXPECT_TRUE(after.responses.empty());
    incremental.forgotten_topics_data.clear();

    // A full fetch with epoch -1 naming the session closes it.
    wire::fetch_request close;
    close.session_id = first.session_id;
    close.session_epoch = -1;
    EXPECT_EQ(decode<wire::fetch_response>(*call(version, close), 1, version).session_id, 0);
    EXPECT_EQ(error_of(version, first.session_id, 4),
              static_cast<int16_t>(error_code::fetch_session_id_not_found));
  }
}

TEST_F(handlers_test, describe_topic_partitions_pages_through_topics_in_name_order) {
  auto b = batch(1);
  produce("b-topic", 0, b);  // two partitions each (num.partitions=2)
  produce("a-topic", 0, b);
  wire::describe_topic_partitions_request request;
  request.response_partition_limit = 3;
  auto page = decode<wire::describe_topic_partitions_response>(*call(0, request), 75, 0);
  // Every topic, internal included, in name order: __consumer_offsets (1), a-topic (2), then
  // the limit of 3 stops before b-topic.
  ASSERT_EQ(page.topics.size(), 2u);
  EXPECT_EQ(page.topics[0].name, "__consumer_offsets");
  EXPECT_TRUE(page.topics[0].is_internal);
  EXPECT_EQ(page.topics[1].name, "a-topic");
  ASSERT_EQ(page.topics[1].partitions.size(), 2u);
  EXPECT_EQ(page.topics[1].partitions[1].partition_index, 1);
  EXPECT_EQ(page.topics[1].partitions[1].leader_id, 1);
  EXPECT_EQ(page.topics[1].partitions[1].isr_nodes, std::vector<int32_t>{1});
  EXPECT_EQ(page.topics[1].topic_authorized_operations, 0b110111111000);
  ASSERT_TRUE(page.next_topic_partition.has_value());
  EXPECT_EQ(page.next_topic_partition->topic_name, "b-topic");
  EXPECT_EQ(page.next_topic_partition->partition_index, 0);

  // Named topics, from a cursor inside one, with a limit that splits it.
  request.topics = {{"b-topic", {}}, {"missing", {}}, {"bad name!", {}}};
  request.cursor.emplace();
  request.cursor->topic_name = "b-topic";
  request.cursor->partition_index = 1;
  request.response_partition_limit = 1;
  page = decode<wire::describe_topic_partitions_response>(*call(0, request), 75, 0);
  ASSERT_EQ(page.topics.size(), 3u);
  EXPECT_EQ(page.topics[0].name, "b-topic");
  ASSERT_EQ(page.topics[0].partitions.size(), 1u);
  EXPECT_EQ(page.topics[0].partitions[0].partition_index, 1);
  EXPECT_EQ(page.topics[1].name, "bad name!");
  EXPECT_EQ(page.topics[1].error_code, static_cast<int16_t>(error_code::invalid_topic_exception));
  EXPECT_EQ(page.topics[2].name, "missing");
  EXPECT_EQ(page.topics[2].error_code,
            static_cast<int16_t>(error_code::unknown_topic_or_partition));
  EXPECT_FALSE(page.next_topic_partition.has_value());

  // A cursor on a topic that was not asked for.
  request.cursor->topic_name = "elsewhere";
  page = decode<wire::describe_topic_partitions_response>(*call(0, request), 75, 0);
  for (const auto& t : page.topics)
    EXPECT_EQ(t.error_code, static_cast<int16_t>(error_code::invalid_request));
}

TEST_F(handlers_test, the_kafka_4_versions_answer_like_the_ones_before_them) {
  // Produce v10-12 (KIP-951 leader hints, KIP-890 transaction changes), then Fetch v18 (a
  // follower's HighWatermark, ignored) reads it back.
  const size_t batch_size = batch(2).size();
  for (int16_t version : {10, 11, 12}) {
    auto b = batch(2);  // stamped in place by the append: a fresh one each time
    auto r = produce("k4", 0, b, 1, version);
    EXPECT_EQ(r.responses[0].partition_responses[0].error_code, 0) << version;
  }
  // Produce v13 names the topic by id; an unknown id is UNKNOWN_TOPIC_ID and creates nothing.
  const wire::uuid id = broker_->topics().find("k4")->id;
  auto b = batch(2);
  auto unused = batch(2);
  wire::produce_request by_id;
  by_id.acks = 1;
  by_id.timeout_ms = 1000;
  by_id.topic_data.emplace_back().topic_id = id;
  by_id.topic_data.back().partition_data.emplace_back().records.bytes = b;
  by_id.topic_data.emplace_back().topic_id = wire::uuid{9, 9, 9};
  by_id.topic_data.back().partition_data.emplace_back().records.bytes = unused;
  auto produced = decode<wire::produce_response>(*call(13, by_id), 0, 13);
  ASSERT_EQ(produced.responses.size(), 2u);
  EXPECT_EQ(produced.responses[0].topic_id, id);
  EXPECT_EQ(produced.responses[0].partition_responses[0].error_code, 0);
  EXPECT_EQ(produced.responses[0].partition_responses[0].base_offset, 6);
  EXPECT_EQ(produced.responses[1].partition_responses[0].error_code,
            static_cast<int16_t>(error_code::unknown_topic_id));

  wire::fetch_request fetch;
  fetch.max_wait_ms = 0;
  auto& ft = fetch.topics.emplace_back();
  ft.topic_id = id;
  auto& fp = ft.partitions.emplace_back();
  fp.partition_max_bytes = 1 << 20;
  fp.high_watermark = 2;
  auto fetched = decode<wire::fetch_response>(*call(18, fetch), 1, 18);
  EXPECT_EQ(fetched.responses[0].partitions[0].error_code, 0);
  EXPECT_EQ(fetched.responses[0].partitions[0].high_watermark, 8);
  EXPECT_EQ(fetched.responses[0].partitions[0].records.bytes.size(), 4 * batch_size);

  // Metadata v13: the top-level error (KIP-1102) is NONE.
  wire::metadata_request metadata;
  metadata.topics.emplace();
  metadata.topics->emplace_back().name = "k4";
  auto md = decode<wire::metadata_response>(*call(13, metadata), 3, 13);
  EXPECT_EQ(md.error_code, 0);
  EXPECT_EQ(md.topics[0].partitions.size(), 2u);

  // DescribeCluster v2 (KIP-1073): this broker, not fenced, whether or not fenced ones are asked.
  wire::describe_cluster_request cluster;
  cluster.include_fenced_brokers = true;
  auto described = decode<wire::describe_cluster_response>(*call(2, cluster), 60, 2);
  ASSERT_EQ(described.brokers.size(), 1u);
  EXPECT_FALSE(described.brokers[0].is_fenced);

  // DescribeLogDirs v5: the one log dir, not cordoned.
  auto dirs =
      decode<wire::describe_log_dirs_response>(*call(5, wire::describe_log_dirs_request{}), 35, 5);
  ASSERT_EQ(dirs.results.size(), 1u);
  EXPECT_EQ(dirs.results[0].error_code, 0);
  EXPECT_FALSE(dirs.results[0].is_cordoned);
}

TEST_F(handlers_test, list_groups_v5_filters_by_type_and_every_group_is_classic) {
  auto b = batch(1);
  produce("lg", 0, b);
  wire::offset_commit_request commit;  // a standalone commit creates the (Empty) group
  commit.group_id = "lg-group";
  auto& t = commit.topics.emplace_back();
  t.name = "lg";
  t.partitions.emplace_back().committed_offset = 1;
  ASSERT_EQ(decode<wire::offset_commit_response>(*call(8, commit), 8, 8)
                .topics[0]
                .partitions[0]
                .error_code,
            0);
  auto list = [&](std::vector<std::string> types) {
    wire::list_groups_request request;
    request.types_filter = std::move(types);
    return decode<wire::list_groups_response>(*call(5, request), 16, 5).groups;
  };
  auto all = list({});
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].group_id, "lg-group");
  EXPECT_EQ(all[0].group_type, "classic");
  EXPECT_EQ(list({"Classic"}).size(), 1u);  // type names match in any case, as in Kafka
  EXPECT_TRUE(list({"consumer", "share"}).empty());

  // DescribeGroups: an unknown group is Dead, and from v6 also GROUP_ID_NOT_FOUND (KIP-1043).
  wire::describe_groups_request describe;
  describe.groups = {"lg-group", "nobody"};
  for (int16_t version : {5, 6}) {
    auto described = decode<wire::describe_groups_response>(*call(version, describe), 15, version);
    ASSERT_EQ(described.groups.size(), 2u);
    EXPECT_EQ(described.groups[0].error_code, 0);
    EXPECT_EQ(described.groups[0].group_state, "Empty");
    EXPECT_EQ(described.groups[1].group_state, "Dead");
    EXPECT_EQ(described.groups[1].error_code,
              version >= 6 ? static_cast<int16_t>(error_code::group_id_not_found) : 0);
  }
}

TEST_F(handlers_test, fetch_out_of_range_and_fenced_epoch) {
  auto b = batch(1);
  produce("r", 0, b);
  wire::fetch_request request;
  request.max_wait_ms = 0;
  auto& t = request.topics.emplace_back();
  t.topic = "r";
  auto& p = t.partitions.emplace_back();
  p.fetch_offset = 5;
  p.partition_max_bytes = 1024;
  auto response = decode<wire::fetch_response>(*call(12, request), 1, 12);
  EXPECT_EQ(response.responses[0].partitions[0].error_code,
            static_cast<int16_t>(error_code::offset_out_of_range));
  request.topics[0].partitions[0].fetch_offset = 0;
  request.topics[0].partitions[0].current_leader_epoch = 3;
  response = decode<wire::fetch_response>(*call(12, request), 1, 12);
  EXPECT_EQ(response.responses[0].partitions[0].error_code,
            static_cast<int16_t>(error_code::unknown_leader_epoch));
}

TEST_F(handlers_test, fetch_long_poll_waits_then_wakes_on_produce) {
  auto b = batch(1);
  produce("poll", 0, b);
  wire::fetch_request request;
  request.max_wait_ms = 300;
  request.min_bytes = 1;
  auto& t = request.topics.emplace_back();
  t.topic = "poll";
  auto& p = t.partitions.emplace_back();
  p.fetch_offset = 1;
  p.partition_max_bytes = 1 << 20;

  // Nothing arrives: the answer comes once max_wait_ms has passed, empty, and not before.
  auto idle = call(12, request, nullptr, std::chrono::milliseconds(0));
  io_.poll();
  EXPECT_FALSE(idle->ready);
  clock_.advance(std::chrono::milliseconds(299));
  io_.poll();
  EXPECT_FALSE(idle->ready);
  clock_.advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(run_until([&] { return idle->ready; }));
  EXPECT_EQ(
      decode<wire::fetch_response>(*idle, 1, 12).responses[0].partitions[0].records.bytes.size(),
      0u);

  // A produce wakes a parked fetch, with no time passing.
  request.max_wait_ms = 10000;
  auto parked = call(12, request, nullptr, std::chrono::milliseconds(0));
  io_.poll();
  EXPECT_FALSE(parked->ready);
  auto more = batch(2);
  produce("poll", 0, more);
  ASSERT_TRUE(run_until([&] { return parked->ready; }));
  EXPECT_EQ(clock_.elapsed(), std::chrono::milliseconds(300));
  auto response = decode<wire::fetch_response>(*parked, 1, 12);
  EXPECT_EQ(response.responses[0].partitions[0].records.bytes.size(), more.size());
}

TEST_F(handlers_test, list_offsets_earliest_latest_and_by_timestamp) {
  auto b1 = batch(3, 1000);  // offsets 0-2, timestamps 1000-1002
  auto b2 = batch(3, 2000);  // offsets 3-5, timestamps 2000-2002
  produce("ts", 0, b1);
  produce("ts", 0, b2);
  wire::list_offsets_request request;
  request.replica_id = -1;
  auto& t = request.topics.emplace_back();
  t.name = "ts";
  for (int64_t ts : {-2, -1, 1001, 1500, 2002, 9999, -3}) {
    auto& p = t.partitions.emplace_back();
    p.timestamp = ts;
  }
  auto response = decode<wire::list_offsets_response>(*call(7, request), 2, 7);
  const auto& parts = response.topics[0].partitions;
  ASSERT_EQ(parts.size(), 7u);
  EXPECT_EQ(parts[0].offset, 0);
  EXPECT_EQ(parts[1].offset, 6);
  EXPECT_EQ(parts[2].offset, 1);
  EXPECT_EQ(parts[2].timestamp, 1001);
  EXPECT_EQ(parts[3].offset, 3);
  EXPECT_EQ(parts[4].offset, 5);
  EXPECT_EQ(parts[5].offset, -1);
  EXPECT_EQ(parts[6].offset, 5);
  EXPECT_EQ(parts[6].timestamp, 2002);

  // v0 answers in old_style_offsets.
  auto v0 = decode<wire::list_offsets_response>(*call(0, request), 2, 0);
  EXPECT_EQ(v0.topics[0].partitions[1].old_style_offsets, std::vector<int64_t>{6});
}

TEST_F(handlers_test, find_coordinator_single_and_batched) {
  wire::find_coordinator_request single;
  single.key = "my-group";
  auto v0 = decode<wire::find_coordinator_response>(*call(0, single), 10, 0);
  EXPECT_EQ(v0.error_code, 0);
  EXPECT_EQ(v0.node_id, 1);
  EXPECT_EQ(v0.host, "127.0.0.1");
  EXPECT_EQ(v0.port, broker_->metadata().advertised().port);

  wire::find_coordinator_request batched;
  batched.coordinator_keys = {"a", "", "b"};
  auto v4 = decode<wire::find_coordinator_response>(*call(4, batched), 10, 4);
  ASSERT_EQ(v4.coordinators.size(), 3u);
  EXPECT_EQ(v4.coordinators[0].key, "a");
  EXPECT_EQ(v4.coordinators[0].node_id, 1);
  EXPECT_EQ(v4.coordinators[1].error_code, static_cast<int16_t>(error_code::invalid_request));
  EXPECT_EQ(v4.coordinators[2].key, "b");

  single.key_type = 7;
  auto bad = decode<wire::find_coordinator_response>(*call(1, single), 10, 1);
  EXPECT_EQ(bad.error_code, static_cast<int16_t>(error_code::invalid_request));
}

}  // namespace
}  // namespace sluice::server
