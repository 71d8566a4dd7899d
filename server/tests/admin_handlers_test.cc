// The admin handlers driven with bytes alone, as in handlers_test.cc: requests encoded with the
// generated codec, routed through dispatch_request, responses decoded again.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>

#include <boost/asio/io_context.hpp>

#include "server/api_registry.h"
#include "server/broker.h"
#include "server/handlers/handlers.h"
#include "server/tests/manual_clock.h"
#include "server/topic_config.h"
#include "wire/codec.h"
#include "wire/error_code.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/request_header.h"
#include "wire/generated/response_header.h"
#include "wire/record_batch.h"

namespace sluice::server {
namespace {

using wire::error_code;

constexpr int16_t code(error_code e) {
  return static_cast<int16_t>(e);
}

struct counting_sink : response_sink {
  void response_ready() override {}
};

class admin_handlers_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-admin-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    start();
  }
  void start() {
    config_result r =
        load_config({}, {"listeners=PLAINTEXT://127.0.0.1:0", "log.dirs=" + dir_.string(),
                         "num.partitions=2", "log.segment.bytes=65536"});
    ASSERT_TRUE(r.error.empty()) << r.error;
    broker_ = std::make_unique<broker>(io_, r.config, &clock_);
    ASSERT_EQ(broker_->start(), "");
  }
  void stop() {
    broker_->stop();
    // Until nothing is left to do (stop() cancels timers and answers parked requests).
    io_.restart();
    io_.run();
    broker_->close_storage();
    broker_.reset();
    io_.restart();
  }
  void TearDown() override {
    if (broker_) stop();
    std::filesystem::remove_all(dir_);
  }

  template <class Req>
  std::shared_ptr<response_slot> send(int16_t version, const Req& request) {
    wire::frame f;
    {
      wire::writer w(f);
      wire::request_header header;
      header.request_api_key = Req::api_key;
      header.request_api_version = version;
      header.correlation_id = 7;
      header.client_id = "admin-test";
      header.encode(w, wire::request_header_version(Req::api_key, version));
      request.encode(w, version);
    }
    inbound_request in;
    in.size = f.bytes.size();
    in.data = std::make_unique<uint8_t[]>(in.size);
    std::copy(f.bytes.begin(), f.bytes.end(), in.data.get());
    auto slot = std::make_shared<response_slot>();
    std::string reason;
    EXPECT_TRUE(dispatch_request(broker_->services(), request_context{io_.get_executor()},
                                 std::move(in), slot, std::make_shared<counting_sink>(), reason))
        << reason;
    return slot;
  }
  void run_until_ready(const response_slot& slot,
                       std::chrono::milliseconds wait = std::chrono::seconds(2)) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (!slot.ready && std::chrono::steady_clock::now() < deadline)
      io_.run_one_for(std::chrono::milliseconds(10));
  }

  template <class Resp, class Req>
  Resp call(int16_t version, const Req& request) {
    auto slot = send(version, request);
    run_until_ready(*slot);
    EXPECT_TRUE(slot->ready);
    return decode<Resp>(*slot, Req::api_key, version);
  }

  template <class Resp>
  Resp decode(const response_slot& slot, int16_t api_key, int16_t version) {
    EXPECT_TRUE(slot.frame.slices.empty());
    std::vector<uint8_t> bytes = slot.frame.bytes;
    wire::reader r(bytes);
    EXPECT_EQ(r.i32(), static_cast<int32_t>(bytes.size() - 4));
    wire::response_header header;
    EXPECT_TRUE(header.decode(r, wire::response_header_version(api_key, version)));
    Resp response;
    EXPECT_TRUE(response.decode(r, version));
    EXPECT_EQ(r.remaining(), 0u);
    return response;
  }

  wire::create_topics_response create(
      const std::string& name, int32_t partitions,
      const std::vector<std::pair<std::string, std::string>>& configs = {}, int16_t version = 7,
      int16_t replication_factor = -1, bool validate_only = false) {
    wire::create_topics_request request;
    request.validate_only = validate_only;
    auto& t = request.topics.emplace_back();
    t.name = name;
    t.num_partitions = partitions;
    t.replication_factor = replication_factor;
    for (const auto& [k, v] : configs) {
      auto& c = t.configs.emplace_back();
      c.name = k;
      c.value = v;
    }
    return call<wire::create_topics_response>(version, request);
  }

  wire::describe_configs_response describe_topic(const std::string& name, int16_t version = 4) {
    wire::describe_configs_request request;
    request.include_synonyms = true;
    request.include_documentation = true;
    auto& r = request.resources.emplace_back();
    r.resource_type = 2;
    r.resource_name = name;
    r.configuration_keys.reset();
    return call<wire::describe_configs_response>(version, request);
  }

  static const wire::describe_configs_response::describe_configs_resource_result* entry(
      const wire::describe_configs_response& response, std::string_view name) {
    for (const auto& c : response.results.at(0).configs) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }

  boost::asio::io_context io_;
  testing::manual_clock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<broker> broker_;
};

TEST_F(admin_handlers_test, advertised_ranges) {
  const std::map<int16_t, std::pair<int16_t, int16_t>> expected = {
      {19, {0, 7}}, {20, {0, 6}}, {37, {0, 3}}, {32, {0, 4}},
      {33, {0, 2}}, {44, {0, 1}}, {60, {0, 2}}, {35, {0, 5}}};
  for (const auto& [key, range] : expected) {
    const api_handler* h = find_api_handler(key);
    ASSERT_NE(h, nullptr) << key;
    EXPECT_EQ(h->min_version, range.first) << key;
    EXPECT_EQ(h->max_version, range.second) << key;
  }
}

TEST_F(admin_handlers_test, create_topics_with_configs_and_describe_them) {
  auto r = create("orders", 3, {{"retention.ms", "60000"}, {"cleanup.policy", "delete"}});
  ASSERT_EQ(r.topics.size(), 1u);
  const auto& t = r.topics[0];
  EXPECT_EQ(t.error_code, 0);
  EXPECT_FALSE(t.error_message.has_value());
  EXPECT_EQ(t.num_partitions, 3);
  EXPECT_EQ(t.replication_factor, 1);
  EXPECT_NE(t.topic_id, wire::uuid{});
  EXPECT_EQ(t.topic_id, broker_->topics().find("orders")->id);
  ASSERT_TRUE(t.configs.has_value());
  bool saw_retention = false;
  for (const auto& c : *t.configs) {
    if (c.name == "retention.ms") {
      saw_retention = true;
      EXPECT_EQ(c.value, "60000");
      EXPECT_EQ(c.config_source, 1);
    }
  }
  EXPECT_TRUE(saw_retention);
  EXPECT_EQ(broker_->topics().find("orders")->partitions[2]->log().config().retention_ms, 60000);

  auto d = describe_topic("orders");
  ASSERT_EQ(d.results.size(), 1u);
  EXPECT_EQ(d.results[0].error_code, 0);
  const auto* retention = entry(d, "retention.ms");
  ASSERT_NE(retention, nullptr);
  EXPECT_EQ(retention->value, "60000");
  EXPECT_EQ(retention->config_source, 1);
  ASSERT_FALSE(retention->synonyms.empty());
  EXPECT_EQ(retention->synonyms[0].source, 1);
  EXPECT_EQ(retention->config_type, static_cast<int8_t>(config_type::int64));
  EXPECT_FALSE(retention->documentation.value_or("").empty());
  const auto* segment = entry(d, "segment.bytes");
  ASSERT_NE(segment, nullptr);
  EXPECT_EQ(segment->value, "65536");
  EXPECT_EQ(segment->config_source, 4);  // log.segment.bytes set by the broker's configuration
  const auto* segment_ms = entry(d, "segment.ms");
  ASSERT_NE(segment_ms, nullptr);
  EXPECT_EQ(segment_ms->config_source, 5);

  // v0: is_default instead of a source.
  auto d0 = describe_topic("orders", 0);
  EXPECT_FALSE(entry(d0, "retention.ms")->is_default);
  EXPECT_TRUE(entry(d0, "segment.ms")->is_default);

  // Only the keys asked for; unknown ones are left out.
  wire::describe_configs_request some;
  auto& res = some.resources.emplace_back();
  res.resource_type = 2;
  res.resource_name = "orders";
  res.configuration_keys = std::vector<std::string>{"retention.ms", "no.such.key"};
  auto ds = call<wire::describe_configs_response>(4, some);
  ASSERT_EQ(ds.results[0].configs.size(), 1u);
  EXPECT_TRUE(ds.results[0].configs[0].synonyms.empty());  // include_synonyms false

  EXPECT_EQ(describe_topic("nope").results[0].error_code,
            code(error_code::unknown_topic_or_partition));
  EXPECT_EQ(describe_topic("bad/name").results[0].error_code,
            code(error_code::invalid_topic_exception));
}

TEST_F(admin_handlers_test, create_topics_errors) {
  ASSERT_EQ(create("t", 1).topics[0].error_code, 0);
  EXPECT_EQ(create("t", 1).topics[0].error_code, code(error_code::topic_already_exists));
  EXPECT_EQ(create("zero", 0).topics[0].error_code, code(error_code::invalid_partitions));
  EXPECT_EQ(create("neg", -5).topics[0].error_code, code(error_code::invalid_partitions));
  EXPECT_EQ(create("rf", 1, {}, 7, 3).topics[0].error_code,
            code(error_code::invalid_replication_factor));
  EXPECT_EQ(create("rf0", 1, {}, 7, 0).topics[0].error_code,
            code(error_code::invalid_replication_factor));
  EXPECT_EQ(create("bad name", 1).topics[0].error_code, code(error_code::invalid_topic_exception));
  EXPECT_EQ(create("__transaction_state", 1).topics[0].error_code,
            code(error_code::invalid_topic_exception));
  // Only Kafka's internal topics are reserved; other "__" names are ordinary (Cruise Control's).
  EXPECT_EQ(create("__CruiseControlMetrics", 1).topics[0].error_code, 0);
  auto unknown = create("u", 1, {{"no.such.config", "1"}});
  EXPECT_EQ(unknown.topics[0].error_code, code(error_code::invalid_config));
  EXPECT_EQ(unknown.topics[0].error_message, "Unknown topic config name: no.such.config");
  auto compact = create("c", 1, {{"cleanup.policy", "compact"}});
  EXPECT_EQ(compact.topics[0].error_code, code(error_code::invalid_config));
  EXPECT_NE(compact.topics[0].error_message->find("compaction is not supported"),
            std::string::npos);
  EXPECT_EQ(create("v", 1, {{"retention.ms", "x"}}).topics[0].error_code,
            code(error_code::invalid_config));
  for (const char* n : {"u", "c", "v", "zero", "rf"})
    EXPECT_EQ(broker_->topics().find(n), nullptr) << n;

  // validate_only: full answer, nothing created.
  auto vo = create("dry", 4, {{"retention.bytes", "100"}}, 7, -1, true);
  EXPECT_EQ(vo.topics[0].error_code, 0);
  EXPECT_EQ(vo.topics[0].num_partitions, 4);
  EXPECT_EQ(broker_->topics().find("dry"), nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "dry-0"));

  // -1 partitions: num.partitions; v0 works.
  auto d = create("dflt", -1, {}, 0, 1);
  EXPECT_EQ(d.topics[0].error_code, 0);
  EXPECT_EQ(broker_->topics().find("dflt")->partitions.size(), 2u);

  // Collision of '.' and '_'; duplicate in one request.
  ASSERT_EQ(create("a.b", 1).topics[0].error_code, 0);
  EXPECT_EQ(create("a_b", 1).topics[0].error_code, code(error_code::invalid_topic_exception));
  wire::create_topics_request dup;
  for (int i = 0; i < 2; ++i) {
    auto& t = dup.topics.emplace_back();
    t.name = "twice";
    t.num_partitions = 1;
    t.replication_factor = 1;
  }
  auto dr = call<wire::create_topics_response>(5, dup);
  ASSERT_EQ(dr.topics.size(), 2u);
  EXPECT_EQ(dr.topics[0].error_code, code(error_code::invalid_request));
  EXPECT_EQ(broker_->topics().find("twice"), nullptr);

  // Manual assignment: this broker only, partitions 0..n-1.
  wire::create_topics_request manual;
  auto& m = manual.topics.emplace_back();
  m.name = "manual";
  m.num_partitions = -1;
  m.replication_factor = -1;
  for (int32_t i = 0; i < 2; ++i) {
    auto& a = m.assignments.emplace_back();
    a.partition_index = i;
    a.broker_ids = {1};
  }
  EXPECT_EQ(call<wire::create_topics_response>(7, manual).topics[0].error_code, 0);
  EXPECT_EQ(broker_->topics().find("manual")->partitions.size(), 2u);
  m.name = "manual2";
  m.assignments[1].broker_ids = {2};
  EXPECT_EQ(call<wire::create_topics_response>(7, manual).topics[0].error_code,
            code(error_code::invalid_replica_assignment));
  m.assignments[1].broker_ids = {1};
  m.num_partitions = 2;
  EXPECT_EQ(call<wire::create_topics_response>(7, manual).topics[0].error_code,
            code(error_code::invalid_request));
}

TEST_F(admin_handlers_test, delete_topics_by_name_and_id_then_recreate) {
  ASSERT_EQ(create("gone", 2, {{"retention.ms", "5000"}}).topics[0].error_code, 0);
  ASSERT_EQ(create("byid", 1).topics[0].error_code, 0);
  wire::uuid old_id = broker_->topics().find("gone")->id;
  wire::uuid byid = broker_->topics().find("byid")->id;

  wire::delete_topics_request v1;
  v1.topic_names = {"gone", "never"};
  auto r1 = call<wire::delete_topics_response>(1, v1);
  ASSERT_EQ(r1.responses.size(), 2u);
  EXPECT_EQ(r1.responses[0].error_code, 0);
  EXPECT_EQ(r1.responses[1].error_code, code(error_code::unknown_topic_or_partition));
  EXPECT_EQ(broker_->topics().find("gone"), nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "gone-0"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "gone-1"));

  wire::delete_topics_request v6;
  v6.topics.emplace_back().topic_id = byid;
  v6.topics.emplace_back().topic_id = old_id;  // already deleted
  auto& both = v6.topics.emplace_back();
  both.name = "x";
  both.topic_id = byid;
  auto& internal = v6.topics.emplace_back();
  internal.name = "__consumer_offsets";
  auto r6 = call<wire::delete_topics_response>(6, v6);
  ASSERT_EQ(r6.responses.size(), 4u);
  std::map<int16_t, int> codes;
  for (const auto& r : r6.responses) {
    ++codes[r.error_code];
    if (r.error_code == 0) {
      EXPECT_EQ(r.name, "byid");
      EXPECT_EQ(r.topic_id, byid);
    }
  }
  EXPECT_EQ(codes[0], 1);
  EXPECT_EQ(codes[code(error_code::unknown_topic_id)], 1);
  EXPECT_EQ(codes[code(error_code::invalid_request)], 2);
  EXPECT_NE(broker_->topics().find("__consumer_offsets"), nullptr);

  // Same name again: new id, empty log, broker-default configs.
  auto again = create("gone", 1);
  ASSERT_EQ(again.topics[0].error_code, 0);
  EXPECT_NE(again.topics[0].topic_id, old_id);
  topic* t = broker_->topics().find("gone");
  EXPECT_TRUE(t->configs.empty());
  EXPECT_EQ(t->partitions[0]->log_end_offset(), 0);
  EXPECT_EQ(entry(describe_topic("gone"), "retention.ms")->config_source, 5);
}

TEST_F(admin_handlers_test, delete_wakes_a_parked_fetch_with_unknown_topic) {
  ASSERT_EQ(create("parked", 1).topics[0].error_code, 0);
  wire::fetch_request fetch;
  fetch.replica_id = -1;
  fetch.max_wait_ms = 10000;
  fetch.min_bytes = 1;
  fetch.max_bytes = 1 << 20;
  auto& ft = fetch.topics.emplace_back();
  ft.topic = "parked";
  auto& fp = ft.partitions.emplace_back();
  fp.partition = 0;
  fp.partition_max_bytes = 1 << 20;
  auto fetch_slot = send(12, fetch);
  io_.poll();
  ASSERT_FALSE(fetch_slot->ready);

  wire::delete_topics_request del;
  del.topic_names = {"parked"};
  EXPECT_EQ(call<wire::delete_topics_response>(5, del).responses[0].error_code, 0);
  run_until_ready(*fetch_slot);
  ASSERT_TRUE(fetch_slot->ready);
  // Woken by the deletion: no time passed on the fetch's clock.
  EXPECT_EQ(clock_.elapsed(), std::chrono::milliseconds(0));
  auto response = decode<wire::fetch_response>(*fetch_slot, 1, 12);
  ASSERT_EQ(response.responses.size(), 1u);
  EXPECT_EQ(response.responses[0].partitions[0].error_code,
            code(error_code::unknown_topic_or_partition));
}

TEST_F(admin_handlers_test, create_partitions_grows_only) {
  ASSERT_EQ(create("grow", 2, {{"segment.bytes", "16384"}}).topics[0].error_code, 0);
  auto request = [](std::string name, int32_t count, bool validate_only = false) {
    wire::create_partitions_request r;
    r.validate_only = validate_only;
    auto& t = r.topics.emplace_back();
    t.name = std::move(name);
    t.count = count;
    t.assignments.reset();
    return r;
  };
  auto same = call<wire::create_partitions_response>(3, request("grow", 2));
  EXPECT_EQ(same.results[0].error_code, code(error_code::invalid_partitions));
  EXPECT_EQ(call<wire::create_partitions_response>(0, request("grow", 1)).results[0].error_code,
            code(error_code::invalid_partitions));
  EXPECT_EQ(call<wire::create_partitions_response>(0, request("nope", 3)).results[0].error_code,
            code(error_code::unknown_topic_or_partition));
  EXPECT_EQ(
      call<wire::create_partitions_response>(3, request("grow", 5, true)).results[0].error_code, 0);
  EXPECT_EQ(broker_->topics().find("grow")->partitions.size(), 2u);
  auto grown = call<wire::create_partitions_response>(3, request("grow", 5));
  EXPECT_EQ(grown.results[0].error_code, 0);
  topic* t = broker_->topics().find("grow");
  ASSERT_EQ(t->partitions.size(), 5u);
  EXPECT_EQ(t->partitions[4]->index(), 4);
  EXPECT_EQ(t->partitions[4]->log().config().segment_bytes, 16384);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "grow-4"));

  auto bad = request("grow", 7);
  bad.topics[0].assignments.emplace();
  bad.topics[0].assignments->emplace_back().broker_ids = {1};
  EXPECT_EQ(call<wire::create_partitions_response>(2, bad).results[0].error_code,
            code(error_code::invalid_replica_assignment));
}

TEST_F(admin_handlers_test, alter_configs_replaces_and_incremental_edits) {
  ASSERT_EQ(
      create("cfg", 1, {{"retention.ms", "1000"}, {"retention.bytes", "500"}}).topics[0].error_code,
      0);
  topic* t = broker_->topics().find("cfg");

  wire::alter_configs_request alter;
  auto& res = alter.resources.emplace_back();
  res.resource_type = 2;
  res.resource_name = "cfg";
  auto& c = res.configs.emplace_back();
  c.name = "segment.ms";
  c.value = "3000";
  auto ar = call<wire::alter_configs_response>(2, alter);
  ASSERT_EQ(ar.responses.size(), 1u);
  EXPECT_EQ(ar.responses[0].error_code, 0);
  EXPECT_EQ(t->configs, (topic_overrides{{"segment.ms", "3000"}}));  // replaced, not merged
  EXPECT_EQ(t->partitions[0]->log().config().segment_ms, 3000);
  EXPECT_EQ(t->partitions[0]->log().config().retention_ms, broker_->config().log_retention_ms);

  c.value = "-5";
  EXPECT_EQ(call<wire::alter_configs_response>(0, alter).responses[0].error_code,
            code(error_code::invalid_config));
  EXPECT_EQ(t->configs.at("segment.ms"), "3000");

  auto inc = [&](std::vector<std::tuple<std::string, int8_t, std::optional<std::string>>> ops,
                 int8_t type = 2, std::string name = "cfg") {
    wire::incremental_alter_configs_request r;
    auto& rr = r.resources.emplace_back();
    rr.resource_type = type;
    rr.resource_name = name;
    for (auto& [k, op, v] : ops) {
      auto& e = rr.configs.emplace_back();
      e.name = k;
      e.config_operation = op;
      e.value = v;
    }
    return call<wire::incremental_alter_configs_response>(1, r).responses.at(0);
  };
  EXPECT_EQ(inc({{"retention.ms", 0, "777"}, {"segment.ms", 1, std::nullopt}}).error_code, 0);
  EXPECT_EQ(t->configs, (topic_overrides{{"retention.ms", "777"}}));
  EXPECT_EQ(t->partitions[0]->log().config().retention_ms, 777);
  EXPECT_EQ(t->partitions[0]->log().config().segment_ms, broker_->config().log_roll_ms);
  // APPEND/SUBTRACT: list configs only; compact cannot be appended.
  auto append_ms = inc({{"retention.ms", 2, "5"}});
  EXPECT_EQ(append_ms.error_code, code(error_code::invalid_config));
  EXPECT_EQ(append_ms.error_message,
            "Config value append is not allowed for config key: retention.ms");
  EXPECT_EQ(inc({{"cleanup.policy", 2, "compact"}}).error_code, code(error_code::invalid_config));
  EXPECT_EQ(inc({{"cleanup.policy", 2, "delete"}}).error_code, 0);
  EXPECT_EQ(t->configs.at("cleanup.policy"), "delete");
  EXPECT_EQ(inc({{"cleanup.policy", 3, "delete"}}).error_code, code(error_code::invalid_config));
  EXPECT_EQ(inc({{"retention.ms", 9, "1"}}).error_code, code(error_code::invalid_request));
  EXPECT_EQ(inc({{"retention.ms", 0, std::nullopt}}).error_code, code(error_code::invalid_request));
  EXPECT_EQ(inc({{"retention.ms", 0, "1"}, {"retention.ms", 0, "2"}}).error_code,
            code(error_code::invalid_request));
  EXPECT_EQ(inc({{"retention.ms", 0, "1"}}, 2, "nope").error_code,
            code(error_code::unknown_topic_or_partition));

  // Broker resource: nothing is dynamic.
  auto broker_set = inc({{"log.retention.hours", 0, "1"}}, 4, "1");
  EXPECT_EQ(broker_set.error_code, code(error_code::invalid_request));
  EXPECT_NE(broker_set.error_message->find("Cannot update these configs dynamically"),
            std::string::npos);
  EXPECT_EQ(inc({{"log.retention.hours", 1, std::nullopt}}, 4, "1").error_code, 0);
  EXPECT_EQ(inc({{"log.retention.hours", 0, "1"}}, 4, "2").error_code,
            code(error_code::invalid_request));

  // The overrides survive a restart.
  stop();
  start();
  t = broker_->topics().find("cfg");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->configs, (topic_overrides{{"cleanup.policy", "delete"}, {"retention.ms", "777"}}));
  EXPECT_EQ(t->partitions[0]->log().config().retention_ms, 777);
}

TEST_F(admin_handlers_test, describe_broker_cluster_and_log_dirs) {
  wire::describe_configs_request request;
  request.include_synonyms = true;
  auto& r = request.resources.emplace_back();
  r.resource_type = 4;
  r.resource_name = "1";
  r.configuration_keys.reset();
  auto& other = request.resources.emplace_back();
  other.resource_type = 4;
  other.resource_name = "9";
  auto d = call<wire::describe_configs_response>(4, request);
  ASSERT_EQ(d.results.size(), 2u);
  EXPECT_EQ(d.results[0].error_code, 0);
  EXPECT_EQ(d.results[1].error_code, code(error_code::invalid_request));
  bool saw = false;
  for (const auto& c : d.results[0].configs) {
    EXPECT_TRUE(c.read_only) << c.name;
    if (c.name == "log.segment.bytes") {
      saw = true;
      EXPECT_EQ(c.value, "65536");
      EXPECT_EQ(c.config_source, 4);
      ASSERT_EQ(c.synonyms.size(), 2u);
      EXPECT_EQ(c.synonyms[1].source, 5);
    }
  }
  EXPECT_TRUE(saw);

  auto cluster = call<wire::describe_cluster_response>(1, wire::describe_cluster_request{});
  EXPECT_EQ(cluster.error_code, 0);
  EXPECT_EQ(cluster.cluster_id, broker_->cluster_id());
  EXPECT_EQ(cluster.controller_id, 1);
  ASSERT_EQ(cluster.brokers.size(), 1u);
  EXPECT_EQ(cluster.brokers[0].broker_id, 1);
  EXPECT_EQ(cluster.brokers[0].port, broker_->metadata().advertised().port);
  wire::describe_cluster_request controllers;
  controllers.endpoint_type = 2;
  auto mismatched = call<wire::describe_cluster_response>(1, controllers);
  EXPECT_EQ(mismatched.error_code, code(error_code::mismatched_endpoint_type));
  EXPECT_EQ(mismatched.endpoint_type, 1);  // Kafka leaves the default in an error answer
  wire::describe_cluster_request unknown_type;
  unknown_type.endpoint_type = 7;
  EXPECT_EQ(call<wire::describe_cluster_response>(1, unknown_type).error_code,
            code(error_code::unsupported_endpoint_type));

  ASSERT_EQ(create("sized", 2).topics[0].error_code, 0);
  wire::describe_log_dirs_request all;
  all.topics.reset();
  auto dirs = call<wire::describe_log_dirs_response>(4, all);
  ASSERT_EQ(dirs.results.size(), 1u);
  EXPECT_EQ(dirs.results[0].error_code, 0);
  EXPECT_EQ(std::filesystem::path(dirs.results[0].log_dir),
            std::filesystem::absolute(dir_).lexically_normal());
  EXPECT_GT(dirs.results[0].total_bytes, 0);
  EXPECT_GE(dirs.results[0].usable_bytes, 0);
  bool found = false;
  for (const auto& t : dirs.results[0].topics) {
    if (t.name == "sized") {
      found = true;
      EXPECT_EQ(t.partitions.size(), 2u);
    }
  }
  EXPECT_TRUE(found);
  wire::describe_log_dirs_request some;
  auto& st = some.topics->emplace_back();
  st.topic = "sized";
  st.partitions = {1, 5};
  auto one = call<wire::describe_log_dirs_response>(0, some);
  ASSERT_EQ(one.results[0].topics.size(), 1u);
  ASSERT_EQ(one.results[0].topics[0].partitions.size(), 1u);
  EXPECT_EQ(one.results[0].topics[0].partitions[0].partition_index, 1);
  EXPECT_EQ(one.results[0].topics[0].partitions[0].offset_lag, 0);
}

// min.insync.replicas above the ISR (one replica here) refuses acks=all, and only acks=all.
TEST_F(admin_handlers_test, acks_all_needs_min_insync_replicas) {
  ASSERT_EQ(create("strict", 1, {{"min.insync.replicas", "2"}}).topics.at(0).error_code, 0);
  std::vector<wire::record_to_build> input{{1000, std::nullopt, std::nullopt}};
  auto produce = [&](int16_t acks) {
    std::vector<uint8_t> batch = wire::build_record_batch({}, input);
    wire::produce_request request;
    request.acks = acks;
    request.timeout_ms = 1000;
    auto& t = request.topic_data.emplace_back();
    t.name = "strict";
    auto& p = t.partition_data.emplace_back();
    p.index = 0;
    p.records.bytes = batch;
    return call<wire::produce_response>(int16_t{9}, request)
        .responses.at(0)
        .partition_responses.at(0);
  };
  EXPECT_EQ(produce(-1).error_code, code(error_code::not_enough_replicas));
  EXPECT_EQ(broker_->topics().find("strict")->partitions[0]->log_end_offset(), 0);
  auto ok = produce(1);
  EXPECT_EQ(ok.error_code, 0);
  EXPECT_EQ(ok.base_offset, 0);
}

// __consumer_offsets is Kafka's compacted topic: whatever its configs say, retention never
// deletes group state (Sluice has no compaction, so it keeps everything).
TEST_F(admin_handlers_test, internal_topic_is_never_subject_to_retention) {
  topic* offsets = broker_->topics().find("__consumer_offsets");
  ASSERT_NE(offsets, nullptr);
  EXPECT_EQ(offsets->partitions[0]->log().config().retention_ms, -1);
  broker_->topics().set_configs(*offsets, {{"retention.ms", "1000"}, {"retention.bytes", "10"}});
  EXPECT_EQ(offsets->partitions[0]->log().config().retention_ms, -1);
  EXPECT_EQ(offsets->partitions[0]->log().config().retention_bytes, -1);
  stop();
  start();
  EXPECT_EQ(
      broker_->topics().find("__consumer_offsets")->partitions[0]->log().config().retention_ms, -1);
}

}  // namespace
}  // namespace sluice::server
