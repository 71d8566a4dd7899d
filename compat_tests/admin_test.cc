// The admin API as librdkafka 2.0.2's admin client uses it, plus raw requests for the APIs it
// lacks (IncrementalAlterConfigs and DescribeCluster arrive in librdkafka 2.2/2.3).
//
// Client behaviour relied on: rd_kafka_CreateTopics/DeleteTopics/CreatePartitions go to the
// controller named in Metadata (README 6.10, table (v)); per-topic and per-resource errors come
// back as the broker's error codes (RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, _INVALID_PARTITIONS,
// _INVALID_CONFIG, _UNKNOWN_TOPIC_OR_PART, ...); DescribeConfigs (v1 in 2.0.2) reports each
// entry's source and synonyms as the broker sent them.

#include <gtest/gtest.h>

#include <fstream>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

// An rd_kafka_t used only for admin calls, with one reply queue.
class admin {
 public:
  explicit admin(const std::string& bootstrap) {
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, make_conf({{"bootstrap.servers", bootstrap}}), errstr_,
                       sizeof errstr_);
    if (rk_ == nullptr) throw std::runtime_error(errstr_);
    queue_ = rd_kafka_queue_new(rk_);
  }
  ~admin() {
    for (rd_kafka_event_t* e : events_)
      rd_kafka_event_destroy(e);
    rd_kafka_queue_destroy(queue_);
    rd_kafka_destroy(rk_);
  }
  admin(const admin&) = delete;
  admin& operator=(const admin&) = delete;

  rd_kafka_AdminOptions_t* options(rd_kafka_admin_op_t op, bool validate_only = false) {
    rd_kafka_AdminOptions_t* o = rd_kafka_AdminOptions_new(rk_, op);
    rd_kafka_AdminOptions_set_request_timeout(o, 5000, errstr_, sizeof errstr_);
    if (validate_only) rd_kafka_AdminOptions_set_validate_only(o, 1, errstr_, sizeof errstr_);
    return o;
  }
  // Waits for the next admin result; kept alive until the admin object goes.
  rd_kafka_event_t* wait() {
    rd_kafka_event_t* e = rd_kafka_queue_poll(queue_, 10000);
    if (e == nullptr) throw std::runtime_error("admin call timed out");
    events_.push_back(e);
    EXPECT_EQ(rd_kafka_event_error(e), RD_KAFKA_RESP_ERR_NO_ERROR)
        << rd_kafka_event_error_string(e);
    return e;
  }

  // Creates one topic; returns the topic's error.
  rd_kafka_resp_err_t create(const std::string& name, int partitions,
                             const std::map<std::string, std::string>& configs = {},
                             int replication_factor = 1, bool validate_only = false,
                             std::string* message = nullptr) {
    rd_kafka_NewTopic_t* t = rd_kafka_NewTopic_new(name.c_str(), partitions, replication_factor,
                                                   errstr_, sizeof errstr_);
    if (t == nullptr) throw std::runtime_error(errstr_);
    for (const auto& [k, v] : configs)
      rd_kafka_NewTopic_set_config(t, k.c_str(), v.c_str());
    rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_CREATETOPICS, validate_only);
    rd_kafka_CreateTopics(rk_, &t, 1, o, queue_);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy(t);
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(wait()), &n);
    EXPECT_EQ(n, 1u);
    if (message && rd_kafka_topic_result_error_string(results[0])) {
      *message = rd_kafka_topic_result_error_string(results[0]);
    }
    return rd_kafka_topic_result_error(results[0]);
  }

  rd_kafka_resp_err_t remove(const std::string& name) {
    rd_kafka_DeleteTopic_t* t = rd_kafka_DeleteTopic_new(name.c_str());
    rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_DeleteTopics(rk_, &t, 1, o, queue_);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_DeleteTopic_destroy(t);
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(wait()), &n);
    EXPECT_EQ(n, 1u);
    return rd_kafka_topic_result_error(results[0]);
  }

  rd_kafka_resp_err_t grow(const std::string& name, int total, bool validate_only = false) {
    rd_kafka_NewPartitions_t* p =
        rd_kafka_NewPartitions_new(name.c_str(), total, errstr_, sizeof errstr_);
    rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, validate_only);
    rd_kafka_CreatePartitions(rk_, &p, 1, o, queue_);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewPartitions_destroy(p);
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(wait()), &n);
    EXPECT_EQ(n, 1u);
    return rd_kafka_topic_result_error(results[0]);
  }

  struct entry {
    std::string value;
    bool null = false;
    rd_kafka_ConfigSource_t source;
    bool read_only;
    std::vector<std::pair<std::string, rd_kafka_ConfigSource_t>> synonyms;
  };
  struct described {
    rd_kafka_resp_err_t error;
    std::map<std::string, entry> configs;
  };
  described describe(rd_kafka_ResourceType_t type, const std::string& name) {
    rd_kafka_ConfigResource_t* r = rd_kafka_ConfigResource_new(type, name.c_str());
    rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(rk_, &r, 1, o, queue_);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ConfigResource_destroy(r);
    size_t n = 0;
    const rd_kafka_ConfigResource_t** res = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(wait()), &n);
    EXPECT_EQ(n, 1u);
    described out{rd_kafka_ConfigResource_error(res[0]), {}};
    size_t cnt = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(res[0], &cnt);
    for (size_t i = 0; i < cnt; ++i) {
      entry e;
      const char* v = rd_kafka_ConfigEntry_value(entries[i]);
      e.null = v == nullptr;
      e.value = v ? v : "";
      e.source = rd_kafka_ConfigEntry_source(entries[i]);
      e.read_only = rd_kafka_ConfigEntry_is_read_only(entries[i]);
      size_t sc = 0;
      const rd_kafka_ConfigEntry_t** syn = rd_kafka_ConfigEntry_synonyms(entries[i], &sc);
      for (size_t j = 0; j < sc; ++j)
        e.synonyms.emplace_back(rd_kafka_ConfigEntry_name(syn[j]),
                                rd_kafka_ConfigEntry_source(syn[j]));
      out.configs[rd_kafka_ConfigEntry_name(entries[i])] = std::move(e);
    }
    return out;
  }

  rd_kafka_resp_err_t alter(rd_kafka_ResourceType_t type, const std::string& name,
                            const std::map<std::string, std::string>& configs,
                            std::string* message = nullptr) {
    rd_kafka_ConfigResource_t* r = rd_kafka_ConfigResource_new(type, name.c_str());
    for (const auto& [k, v] : configs)
      rd_kafka_ConfigResource_set_config(r, k.c_str(), v.c_str());
    rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AlterConfigs(rk_, &r, 1, o, queue_);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ConfigResource_destroy(r);
    size_t n = 0;
    const rd_kafka_ConfigResource_t** res =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(wait()), &n);
    EXPECT_EQ(n, 1u);
    if (message && rd_kafka_ConfigResource_error_string(res[0])) {
      *message = rd_kafka_ConfigResource_error_string(res[0]);
    }
    return rd_kafka_ConfigResource_error(res[0]);
  }

  rd_kafka_t* get() const { return rk_; }

 private:
  char errstr_[512] = {};
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  std::vector<rd_kafka_event_t*> events_;
};

std::string topic_id_on_disk(const broker& b, const std::string& topic) {
  std::ifstream in(b.partition_dir(topic, 0) / "partition.metadata");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("topic_id:")) return line.substr(9);
  }
  return {};
}

TEST(Admin, CreateWithConfigsDescribeAndAlter) {
  broker b;
  admin a(b.bootstrap());
  ASSERT_EQ(a.create("orders", 3, {{"retention.ms", "86400000"}, {"segment.bytes", "1048576"}}),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_TRUE(std::filesystem::exists(b.partition_dir("orders", 2)));

  auto d = a.describe(RD_KAFKA_RESOURCE_TOPIC, "orders");
  ASSERT_EQ(d.error, RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(d.configs.count("retention.ms"));
  EXPECT_EQ(d.configs["retention.ms"].value, "86400000");
  EXPECT_EQ(d.configs["retention.ms"].source, RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
  EXPECT_EQ(d.configs["segment.bytes"].source, RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
  EXPECT_EQ(d.configs["retention.bytes"].value, "-1");
  EXPECT_EQ(d.configs["retention.bytes"].source, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG);
  EXPECT_EQ(d.configs["cleanup.policy"].value, "delete");
  EXPECT_EQ(d.configs["message.timestamp.type"].value, "CreateTime");
  // librdkafka asks for synonyms: the override, then Kafka's default for log.segment.bytes.
  const auto& syn = d.configs["segment.bytes"].synonyms;
  ASSERT_EQ(syn.size(), 2u);
  EXPECT_EQ(syn[0].first, "segment.bytes");
  EXPECT_EQ(syn[1].first, "log.segment.bytes");
  EXPECT_EQ(syn[1].second, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG);

  // Legacy AlterConfigs replaces the whole set.
  ASSERT_EQ(a.alter(RD_KAFKA_RESOURCE_TOPIC, "orders", {{"retention.bytes", "1000000"}}),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  d = a.describe(RD_KAFKA_RESOURCE_TOPIC, "orders");
  EXPECT_EQ(d.configs["retention.bytes"].value, "1000000");
  EXPECT_EQ(d.configs["retention.bytes"].source, RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
  EXPECT_EQ(d.configs["retention.ms"].value, "604800000");
  EXPECT_EQ(d.configs["retention.ms"].source, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG);

  std::string message;
  EXPECT_EQ(a.alter(RD_KAFKA_RESOURCE_TOPIC, "orders", {{"cleanup.policy", "compact"}}, &message),
            RD_KAFKA_RESP_ERR_INVALID_CONFIG);
  EXPECT_NE(message.find("compaction is not supported"), std::string::npos) << message;
  EXPECT_EQ(a.alter(RD_KAFKA_RESOURCE_TOPIC, "missing", {{"retention.ms", "1"}}),
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  // Broker configs are not dynamic: Kafka's INVALID_REQUEST.
  EXPECT_EQ(a.alter(RD_KAFKA_RESOURCE_BROKER, "1", {{"log.retention.hours", "1"}}),
            RD_KAFKA_RESP_ERR_INVALID_REQUEST);

  auto broker_cfg = a.describe(RD_KAFKA_RESOURCE_BROKER, "1");
  ASSERT_EQ(broker_cfg.error, RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(broker_cfg.configs.count("log.retention.hours"));
  EXPECT_EQ(broker_cfg.configs["log.retention.hours"].value, "168");
  EXPECT_TRUE(broker_cfg.configs["log.retention.hours"].read_only);
  EXPECT_EQ(broker_cfg.configs["num.partitions"].source,
            RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG);  // set in the fixture's properties
  EXPECT_TRUE(broker_cfg.configs["log.retention.ms"].null);
}

TEST(Admin, ErrorsComeBackAsTheAdminApiDocumentsThem) {
  broker b;
  admin a(b.bootstrap());
  ASSERT_EQ(a.create("exists", 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(a.create("exists", 1), RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS);
  EXPECT_EQ(a.create("rf3", 1, {}, 3), RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR);
  std::string message;
  EXPECT_EQ(a.create("badcfg", 1, {{"no.such.config", "x"}}, 1, false, &message),
            RD_KAFKA_RESP_ERR_INVALID_CONFIG);
  EXPECT_EQ(message, "Unknown topic config name: no.such.config");
  EXPECT_EQ(a.create("compacted", 1, {{"cleanup.policy", "compact"}}),
            RD_KAFKA_RESP_ERR_INVALID_CONFIG);
  EXPECT_EQ(a.create("bad!name", 1), RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION);
  EXPECT_EQ(a.create("dry", 2, {}, 1, true), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_FALSE(std::filesystem::exists(b.partition_dir("dry", 0)));
  EXPECT_FALSE(std::filesystem::exists(b.partition_dir("badcfg", 0)));

  EXPECT_EQ(a.grow("exists", 1), RD_KAFKA_RESP_ERR_INVALID_PARTITIONS);
  EXPECT_EQ(a.grow("missing", 4), RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  EXPECT_EQ(a.grow("exists", 3, true), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_FALSE(std::filesystem::exists(b.partition_dir("exists", 1)));
  EXPECT_EQ(a.grow("exists", 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_TRUE(std::filesystem::exists(b.partition_dir("exists", 2)));

  EXPECT_EQ(a.remove("missing"), RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  EXPECT_EQ(a.describe(RD_KAFKA_RESOURCE_TOPIC, "missing").error,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
}

TEST(Admin, DeleteThenRecreateGetsANewIdAndAnEmptyLog) {
  broker b;
  admin a(b.bootstrap());
  ASSERT_EQ(a.create("cycle", 1, {{"retention.ms", "123456"}}), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::string first_id = topic_id_on_disk(b, "cycle");
  ASSERT_FALSE(first_id.empty());
  {
    producer p(b.bootstrap());
    for (int i = 0; i < 10; ++i)
      p.produce("cycle", 0, std::nullopt, "v" + std::to_string(i));
    ASSERT_TRUE(p.flush(10s));
    EXPECT_EQ(watermarks(p.get(), "cycle", 0), (std::pair<int64_t, int64_t>(0, 10)));
  }
  ASSERT_EQ(a.remove("cycle"), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_FALSE(std::filesystem::exists(b.partition_dir("cycle", 0)));
  ASSERT_EQ(a.create("cycle", 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::string second_id = topic_id_on_disk(b, "cycle");
  EXPECT_FALSE(second_id.empty());
  EXPECT_NE(first_id, second_id);
  EXPECT_EQ(watermarks(a.get(), "cycle", 0), (std::pair<int64_t, int64_t>(0, 0)));
  // The old topic's configs did not come back with the name.
  auto d = a.describe(RD_KAFKA_RESOURCE_TOPIC, "cycle");
  EXPECT_EQ(d.configs["retention.ms"].source, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG);
  // The internal topic cannot be deleted.
  EXPECT_EQ(a.remove("__consumer_offsets"), RD_KAFKA_RESP_ERR_INVALID_REQUEST);
}

TEST(Admin, TopicConfigsSurviveARestart) {
  broker b;
  {
    admin a(b.bootstrap());
    ASSERT_EQ(a.create("kept", 2,
                       {{"retention.ms", "3600000"}, {"message.timestamp.type", "LogAppendTime"}}),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(a.create("dropped", 1, {{"retention.bytes", "4096"}}), RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(a.remove("dropped"), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(b.stop(), 0);
  b.restart();
  admin a(b.bootstrap());
  auto d = a.describe(RD_KAFKA_RESOURCE_TOPIC, "kept");
  ASSERT_EQ(d.error, RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(d.configs["retention.ms"].value, "3600000");
  EXPECT_EQ(d.configs["retention.ms"].source, RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
  EXPECT_EQ(d.configs["message.timestamp.type"].value, "LogAppendTime");
  EXPECT_EQ(a.describe(RD_KAFKA_RESOURCE_TOPIC, "dropped").error,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  // And after kill -9 too: the file is replaced atomically before each answer.
  ASSERT_EQ(a.alter(RD_KAFKA_RESOURCE_TOPIC, "kept", {{"retention.ms", "7200000"}}),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  b.kill9();
  b.restart();
  admin again(b.bootstrap());
  d = again.describe(RD_KAFKA_RESOURCE_TOPIC, "kept");
  EXPECT_EQ(d.configs["retention.ms"].value, "7200000");
  EXPECT_EQ(d.configs["message.timestamp.type"].value, "CreateTime");  // replaced by AlterConfigs
}

// ---- Raw requests for the APIs librdkafka 2.0.2 lacks ----------------------------------------

// IncrementalAlterConfigs v0 (non-flexible) for one topic.
bytes incremental_alter_v0(int32_t correlation_id, const std::string& topic,
                           const std::vector<std::tuple<std::string, int8_t, std::string>>& ops) {
  byte_writer w;
  w.array_length(1, false);
  w.i8(2);
  w.string(topic, false);
  w.array_length(static_cast<int32_t>(ops.size()), false);
  for (const auto& [name, op, value] : ops) {
    w.string(name, false);
    w.i8(op);
    w.string(value, false);
  }
  w.i8(0);  // validate_only
  return frame_request(44, 0, correlation_id, false, w.data());
}

std::pair<int16_t, std::string> parse_incremental_alter_v0(std::span<const uint8_t> body) {
  byte_reader r(body);
  r.i32();  // throttle
  EXPECT_EQ(r.array_length(false), 1);
  int16_t error = r.i16();
  std::string message = r.string(false).value_or("");
  r.i8();
  r.string(false);
  EXPECT_EQ(r.remaining(), 0u);
  return {error, message};
}

TEST(Admin, IncrementalAlterConfigsRaw) {
  broker b;
  admin a(b.bootstrap());
  ASSERT_EQ(a.create("inc", 1, {{"retention.ms", "1000"}}), RD_KAFKA_RESP_ERR_NO_ERROR);
  raw_connection conn(b.host(), b.port());
  auto send = [&](const std::vector<std::tuple<std::string, int8_t, std::string>>& ops) {
    bytes payload = round_trip(conn, incremental_alter_v0(1, "inc", ops));
    return parse_incremental_alter_v0(split_response(payload, false).body);
  };
  // SET one, DELETE another.
  EXPECT_EQ(send({{"retention.bytes", 0, "2048"}, {"retention.ms", 1, ""}}).first, 0);
  auto d = a.describe(RD_KAFKA_RESOURCE_TOPIC, "inc");
  EXPECT_EQ(d.configs["retention.bytes"].value, "2048");
  EXPECT_EQ(d.configs["retention.ms"].source, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG);
  // APPEND to a non-list config; APPEND compact to cleanup.policy.
  auto bad = send({{"retention.ms", 2, "5"}});
  EXPECT_EQ(bad.first, RD_KAFKA_RESP_ERR_INVALID_CONFIG);
  EXPECT_EQ(bad.second, "Config value append is not allowed for config key: retention.ms");
  EXPECT_EQ(send({{"cleanup.policy", 2, "compact"}}).first, RD_KAFKA_RESP_ERR_INVALID_CONFIG);
  EXPECT_EQ(send({{"cleanup.policy", 2, "delete"}}).first, 0);
  EXPECT_EQ(a.describe(RD_KAFKA_RESOURCE_TOPIC, "inc").configs["cleanup.policy"].source,
            RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
}

TEST(Admin, DescribeClusterRaw) {
  broker b(config_map{{"node.id", "4"}});
  raw_connection conn(b.host(), b.port());
  byte_writer w;
  w.i8(0);  // include_cluster_authorized_operations
  w.empty_tags();
  bytes payload = round_trip(conn, frame_request(60, 0, 9, true, w.data()));
  response resp = split_response(payload, true);
  EXPECT_EQ(resp.correlation_id, 9);
  byte_reader r(resp.body);
  r.i32();                // throttle
  EXPECT_EQ(r.i16(), 0);  // error
  r.string(true);         // error message
  std::string cluster_id = r.string(true).value_or("");
  EXPECT_EQ(cluster_id.size(), 22u);
  EXPECT_EQ(r.i32(), 4);  // controller
  ASSERT_EQ(r.array_length(true), 1);
  EXPECT_EQ(r.i32(), 4);
  EXPECT_EQ(r.string(true), b.host());
  EXPECT_EQ(r.i32(), b.port());
  r.string(true);  // rack
  r.skip_tags();
  r.i32();  // authorized operations
  r.skip_tags();
  EXPECT_EQ(r.remaining(), 0u);
}

}  // namespace
}  // namespace sluice::compat
