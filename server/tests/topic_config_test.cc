// The topic config table: validation, resolution against the broker's configuration, Kafka's
// synonym lists, and persistence of overrides across a restart of the registry.

#include "server/topic_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/topics.h"
#include "storage/log.h"
#include "storage/tests/test_util.h"

namespace sluice::server {
namespace {

broker_config make_config(std::vector<std::string> overrides = {}) {
  config_result r = load_config({}, overrides);
  EXPECT_TRUE(r.error.empty()) << r.error;
  return r.config;
}

TEST(topic_config, table_is_sorted_and_complete) {
  auto specs = topic_config_specs();
  for (size_t i = 1; i < specs.size(); ++i)
    EXPECT_LT(specs[i - 1].name, specs[i].name);
  for (std::string_view name : {"retention.ms", "retention.bytes", "segment.bytes", "segment.ms",
                                "max.message.bytes", "message.timestamp.type", "cleanup.policy"}) {
    EXPECT_NE(find_topic_config(name), nullptr) << name;
  }
  // Every broker synonym is a key of the broker's configuration table.
  for (const auto& spec : specs) {
    for (std::string_view key : spec.broker_synonyms)
      EXPECT_NE(find_broker_key(key), nullptr) << key;
  }
}

TEST(topic_config, validation_messages) {
  EXPECT_EQ(validate_topic_config("retention.ms", "1000"), "");
  EXPECT_EQ(validate_topic_config("retention.ms", "-1"), "");
  EXPECT_EQ(validate_topic_config("retention.ms", "-2"),
            "Invalid value -2 for configuration retention.ms: Value must be at least -1");
  EXPECT_EQ(validate_topic_config("segment.bytes", "abc"),
            "Invalid value abc for configuration segment.bytes: Not a number of type INT");
  EXPECT_NE(validate_topic_config("segment.bytes", "4294967296"), "");  // INT overflow
  EXPECT_EQ(validate_topic_config("nope.ms", "1"), "Unknown topic config name: nope.ms");
  EXPECT_EQ(validate_topic_config("segment.jitter.ms", "10"),
            "Topic config segment.jitter.ms is not supported by Sluice");
  // Accepted and ignored, where Kafka ignores them too.
  EXPECT_EQ(validate_topic_config("preallocate", "true"), "");
  EXPECT_NE(validate_topic_config("preallocate", "yes"), "");
  EXPECT_EQ(validate_topic_config("message.downconversion.enable", "false"), "");
  for (const char* ok : {"3.0-IV1", "2.8", "0.10.2", "3.7-IV4", "0.11.0"})
    EXPECT_EQ(validate_topic_config("message.format.version", ok), "") << ok;
  for (const char* bad : {"", "3", "three", "3.0-", "3.0-IV", "3.0-XY1", "3..0", "3.0."})
    EXPECT_NE(validate_topic_config("message.format.version", bad), "") << bad;
  EXPECT_EQ(validate_topic_config("flush.ms", "1"), "");
  EXPECT_EQ(validate_topic_config("flush.ms", "-1"),
            "Invalid value -1 for configuration flush.ms: Value must be at least 0");
  EXPECT_EQ(validate_topic_config("flush.messages", "1"), "");
  EXPECT_EQ(validate_topic_config("flush.messages", "0"),
            "Invalid value 0 for configuration flush.messages: Value must be at least 1");
  EXPECT_NE(validate_topic_config("cleanup.policy", "compact").find("compaction is not supported"),
            std::string::npos);
  EXPECT_NE(validate_topic_config("cleanup.policy", "delete,compact"), "");
  EXPECT_EQ(validate_topic_config("cleanup.policy", "delete"), "");
  EXPECT_NE(validate_topic_config("cleanup.policy", ""), "");
  EXPECT_EQ(validate_topic_config("compression.type", "producer"), "");
  EXPECT_NE(validate_topic_config("compression.type", "gzip"), "");
  EXPECT_EQ(validate_topic_config("message.timestamp.type", "LogAppendTime"), "");
  EXPECT_NE(validate_topic_config("message.timestamp.type", "logappendtime"), "");
  EXPECT_EQ(validate_topic_config("min.insync.replicas", "1"), "");
  EXPECT_NE(validate_topic_config("min.insync.replicas", "0"), "");
  EXPECT_EQ(validate_topic_config("unclean.leader.election.enable", "true"), "");
}

TEST(topic_config, broker_keys_resolve_like_kafka) {
  broker_config c = make_config();
  EXPECT_EQ(c.log_retention_ms, 168LL * 3600 * 1000);
  EXPECT_EQ(make_config({"log.retention.hours=1"}).log_retention_ms, 3600000);
  EXPECT_EQ(make_config({"log.retention.hours=1", "log.retention.minutes=2"}).log_retention_ms,
            120000);
  EXPECT_EQ(make_config({"log.retention.minutes=2", "log.retention.ms=5"}).log_retention_ms, 5);
  EXPECT_EQ(make_config({"log.retention.ms=-7"}).log_retention_ms, -1);
  EXPECT_EQ(make_config({"log.roll.hours=2"}).log_roll_ms, 7200000);
  EXPECT_EQ(make_config({"log.roll.hours=2", "log.roll.ms=99"}).log_roll_ms, 99);
  EXPECT_FALSE(load_config({}, {"log.cleanup.policy=compact"}).error.empty());
  EXPECT_FALSE(load_config({}, {"compression.type=gzip"}).error.empty());
  EXPECT_FALSE(load_config({}, {"log.message.timestamp.type=Now"}).error.empty());
}

TEST(topic_config, effective_log_config_layers_overrides_on_broker_defaults) {
  broker_config c =
      make_config({"log.segment.bytes=65536", "log.retention.minutes=10", "message.max.bytes=2000",
                   "log.message.timestamp.type=LogAppendTime"});
  storage::log_config d = effective_log_config(c, {});
  EXPECT_EQ(d.segment_bytes, 65536);
  EXPECT_EQ(d.retention_ms, 600000);
  EXPECT_EQ(d.retention_bytes, -1);
  EXPECT_EQ(d.segment_ms, 604800000);
  EXPECT_EQ(d.max_message_bytes, 2000);
  EXPECT_EQ(d.message_timestamp_type, storage::timestamp_type::log_append_time);
  storage::log_config o = effective_log_config(c, {{"retention.ms", "1000"},
                                                   {"segment.bytes", "4096"},
                                                   {"retention.bytes", "123"},
                                                   {"segment.ms", "50"},
                                                   {"max.message.bytes", "77"},
                                                   {"message.timestamp.type", "CreateTime"},
                                                   {"index.interval.bytes", "10"}});
  EXPECT_EQ(o.retention_ms, 1000);
  EXPECT_EQ(o.segment_bytes, 4096);
  EXPECT_EQ(o.retention_bytes, 123);
  EXPECT_EQ(o.segment_ms, 50);
  EXPECT_EQ(o.max_message_bytes, 77);
  EXPECT_EQ(o.index_interval_bytes, 10);
  EXPECT_EQ(o.message_timestamp_type, storage::timestamp_type::create_time);
}

// ConfigHelper.createTopicConfigEntry / configSynonyms.
TEST(topic_config, synonyms_and_sources_follow_kafka) {
  const auto& segment_bytes = *find_topic_config("segment.bytes");
  const auto& retention_ms = *find_topic_config("retention.ms");
  broker_config defaults = make_config();

  auto syn = topic_config_synonyms(defaults, {}, segment_bytes);
  ASSERT_EQ(syn.size(), 1u);
  EXPECT_EQ(syn[0].name, "log.segment.bytes");
  EXPECT_EQ(syn[0].value, "1073741824");
  EXPECT_EQ(syn[0].source, config_source::default_config);
  // Kafka has no default for log.retention.ms, and the list starts at that synonym: empty.
  EXPECT_TRUE(topic_config_synonyms(defaults, {}, retention_ms).empty());

  broker_config set = make_config({"log.segment.bytes=2048", "log.retention.ms=5000"});
  syn = topic_config_synonyms(set, {{"segment.bytes", "4096"}}, segment_bytes);
  ASSERT_EQ(syn.size(), 3u);
  EXPECT_EQ(syn[0].source, config_source::dynamic_topic);
  EXPECT_EQ(syn[0].value, "4096");
  EXPECT_EQ(syn[1].source, config_source::static_broker);
  EXPECT_EQ(syn[1].value, "2048");
  EXPECT_EQ(syn[2].source, config_source::default_config);
  syn = topic_config_synonyms(set, {}, retention_ms);
  ASSERT_EQ(syn.size(), 2u);
  EXPECT_EQ(syn[0].name, "log.retention.ms");
  EXPECT_EQ(syn[0].source, config_source::static_broker);
  EXPECT_EQ(syn[1].name, "log.retention.hours");
  EXPECT_EQ(syn[1].value, "168");
  EXPECT_EQ(syn[1].source, config_source::default_config);

  // DescribeConfigs entries: value in effect and the first synonym's source.
  for (const auto& d : describe_topic_configs(set, {{"retention.bytes", "10"}})) {
    if (d.name == "retention.bytes") {
      EXPECT_EQ(d.value, "10");
      EXPECT_EQ(d.source, config_source::dynamic_topic);
    } else if (d.name == "retention.ms") {
      EXPECT_EQ(d.value, "5000");
      EXPECT_EQ(d.source, config_source::static_broker);
    } else if (d.name == "segment.ms") {
      EXPECT_EQ(d.value, "604800000");
      EXPECT_EQ(d.source, config_source::default_config);
    }
  }
  // Broker keys: log.retention.hours as set vs default.
  for (const auto& d : describe_broker_configs(make_config({"log.retention.hours=5"}))) {
    EXPECT_TRUE(d.read_only) << d.name;
    if (d.name == "log.retention.hours") {
      EXPECT_EQ(d.value, "5");
      EXPECT_EQ(d.source, config_source::static_broker);
    } else if (d.name == "log.retention.ms") {
      EXPECT_FALSE(d.value.has_value());
    } else if (d.name == "num.partitions") {
      EXPECT_EQ(d.source, config_source::default_config);
    }
  }
}

class topic_config_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-topic-config-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    config_ = make_config({"log.dirs=" + dir_.string()});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void open() {
    registry_.reset();
    if (logs_) {
      ASSERT_FALSE(logs_->shutdown());
    }
    logs_ = std::make_unique<storage::log_manager>(
        dir_, effective_log_config(config_, {}),
        storage::log_env{storage::default_file_system(), disk_});
    ASSERT_FALSE(logs_->load());
    registry_ = std::make_unique<topic_registry>(*logs_, config_);
    ASSERT_FALSE(registry_->load());
    ASSERT_EQ(registry_->load_configs(), "");
  }

  std::filesystem::path dir_;
  broker_config config_;
  storage::testing::manual_disk_executor disk_;
  std::unique_ptr<storage::log_manager> logs_;
  std::unique_ptr<topic_registry> registry_;
};

TEST_F(topic_config_store_test, overrides_survive_a_restart_and_die_with_the_topic) {
  open();
  topic* t = nullptr;
  ASSERT_EQ(
      registry_->create("orders", 2, t, {{"retention.ms", "1234"}, {"segment.bytes", "8192"}}),
      wire::error_code::none);
  EXPECT_EQ(t->partitions[1]->log().config().retention_ms, 1234);
  topic* plain = nullptr;
  ASSERT_EQ(registry_->create("plain", 1, plain), wire::error_code::none);
  ASSERT_FALSE(save_topic_configs(dir_, *registry_));

  open();
  t = registry_->find("orders");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->configs.at("retention.ms"), "1234");
  EXPECT_EQ(t->partitions[0]->log().config().retention_ms, 1234);
  EXPECT_EQ(t->partitions[1]->log().config().segment_bytes, 8192);
  EXPECT_TRUE(registry_->find("plain")->configs.empty());
  EXPECT_EQ(registry_->find("plain")->partitions[0]->log().config().retention_ms,
            config_.log_retention_ms);

  // Deleted and created again under the same name without saving in between (a crash): the stored
  // entry names the old topic id and is not inherited.
  wire::uuid old_id = t->id;
  wire::error_code removed = wire::error_code::unknown_server_error;
  registry_->remove_async(*t, [&](wire::error_code ec) { removed = ec; });
  disk_.drain();
  ASSERT_EQ(removed, wire::error_code::none);
  ASSERT_EQ(registry_->create("orders", 1, t), wire::error_code::none);
  EXPECT_NE(t->id, old_id);
  open();
  EXPECT_TRUE(registry_->find("orders")->configs.empty());
  EXPECT_EQ(registry_->find("orders")->partitions[0]->log().config().retention_ms,
            config_.log_retention_ms);
}

TEST_F(topic_config_store_test, a_followed_source_gives_topics_their_configs) {
  open();
  topic* t = nullptr;
  ASSERT_EQ(registry_->create("orders", 2, t, {{"retention.ms", "1234"}}), wire::error_code::none);
  topic* plain = nullptr;
  ASSERT_EQ(registry_->create("plain", 1, plain, {{"retention.ms", "99"}}), wire::error_code::none);
  // The cluster state, by topic name.
  std::map<std::string, std::map<std::string, std::string>> cluster;
  cluster["orders"] = {{"segment.bytes", "8192"}};
  registry_->follow_configs(
      [&cluster](const topic& each) -> const std::map<std::string, std::string>* {
        auto it = cluster.find(each.name);
        return it == cluster.end() ? nullptr : &it->second;
      });
  EXPECT_EQ(t->configs, (topic_overrides{{"segment.bytes", "8192"}}));
  for (const auto& p : t->partitions) {
    EXPECT_EQ(p->log().config().segment_bytes, 8192);
    EXPECT_EQ(p->log().config().retention_ms, config_.log_retention_ms);
  }
  // A topic the source does not know keeps its own.
  EXPECT_EQ(plain->configs, (topic_overrides{{"retention.ms", "99"}}));

  // A refused set is not applied.
  cluster["orders"] = {{"segment.bytes", "not a number"}};
  registry_->sync_configs();
  EXPECT_EQ(t->configs, (topic_overrides{{"segment.bytes", "8192"}}));
  cluster["orders"] = {{"max.message.bytes", "100"}};
  registry_->sync_configs();
  EXPECT_EQ(t->configs, (topic_overrides{{"max.message.bytes", "100"}}));
  EXPECT_EQ(t->partitions[1]->log().config().segment_bytes, config_.log_segment_bytes);

  // A replica added while the configs change takes them as they are when it joins: for a new
  // topic from the source, for a new partition of a held one from the topic.
  cluster["fresh"] = {{"retention.ms", "1"}};
  bool fresh_done = false;
  registry_->add_replicas_async("fresh", random_topic_id(), {{"retention.ms", "1"}}, {0},
                                [&](wire::error_code ec) {
                                  EXPECT_EQ(ec, wire::error_code::none);
                                  fresh_done = true;
                                });
  bool grown = false;
  registry_->add_replicas_async("orders", t->id, t->configs, {2}, [&](wire::error_code ec) {
    EXPECT_EQ(ec, wire::error_code::none);
    grown = true;
  });
  cluster["fresh"] = {{"retention.ms", "777"}};
  cluster["orders"] = {{"retention.ms", "555"}};
  registry_->sync_configs();
  disk_.drain();
  ASSERT_TRUE(fresh_done);
  ASSERT_TRUE(grown);
  topic* fresh = registry_->find("fresh");
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->configs, (topic_overrides{{"retention.ms", "777"}}));
  EXPECT_EQ(fresh->partitions.at(0)->log().config().retention_ms, 777);
  t = registry_->find("orders");
  ASSERT_EQ(t->partitions.size(), 3u);
  EXPECT_EQ(t->partitions[2]->log().config().retention_ms, 555);
}

TEST_F(topic_config_store_test, a_corrupt_file_is_an_error) {
  std::filesystem::create_directories(dir_);
  {
    std::ofstream out(dir_ / topic_configs_file);
    out << "{\"version\":1,\"topics\":";
  }
  std::string error;
  load_topic_configs(dir_, error);
  EXPECT_NE(error, "");
}

}  // namespace
}  // namespace sluice::server
