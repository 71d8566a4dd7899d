#include "server/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace sluice::server {
namespace {

std::filesystem::path write_properties(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() /
              ("sluice-config-test-" + std::to_string(::getpid()) + ".properties");
  std::ofstream(path) << text;
  return path;
}

TEST(config, defaults_without_file) {
  config_result r = load_config({}, {});
  ASSERT_TRUE(r.error.empty());
  EXPECT_EQ(r.config.node_id, 1);
  ASSERT_EQ(r.config.listeners.size(), 1u);
  EXPECT_EQ(r.config.listeners[0].port, 9092);
  EXPECT_EQ(r.config.log_dir, "./data");
  EXPECT_TRUE(r.config.auto_create_topics_enable);
  // A wildcard listener is advertised as localhost.
  ASSERT_EQ(r.config.advertised_listeners.size(), 1u);
  EXPECT_EQ(r.config.advertised_listeners[0].host, "localhost");
  EXPECT_EQ(r.config.advertised_listeners[0].port, 9092);
}

TEST(config, file_then_overrides_with_aliases) {
  auto path = write_properties(
      "# comment\n! also a comment\nbroker.id=7\nlog.dir = /tmp/x\nnum.partitions: 3\n"
      "listeners=PLAINTEXT://127.0.0.1:19092\nlog.segment.bytes=\\\n  1048576\n");
  config_result r = load_config(path, {"num.partitions=5", "auto.create.topics.enable=false"});
  std::filesystem::remove(path);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.config.node_id, 7);
  EXPECT_EQ(r.config.log_dir, "/tmp/x");
  EXPECT_EQ(r.config.num_partitions, 5);
  EXPECT_FALSE(r.config.auto_create_topics_enable);
  EXPECT_EQ(r.config.log_segment_bytes, 1048576);
  EXPECT_EQ(r.config.listeners[0].host, "127.0.0.1");
  EXPECT_EQ(r.config.advertised_listeners[0].host, "127.0.0.1");
}

TEST(config, unknown_key_is_a_warning) {
  config_result r = load_config({}, {"log.cleaner.threads=5"});
  EXPECT_TRUE(r.error.empty());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("log.cleaner.threads"), std::string::npos);
}

TEST(config, bad_values_are_errors) {
  for (const char* bad : {"num.partitions=0", "num.partitions=abc", "node.id=-1",
                          "listeners=SSL://:9093", "listeners=PLAINTEXT://:99999",
                          "auto.create.topics.enable=yes", "log.dirs=/a,/b", "nokey"}) {
    config_result r = load_config({}, {bad});
    EXPECT_FALSE(r.error.empty()) << bad;
  }
}

TEST(config, log_segment_delete_delay_ms_is_kafkas_key_and_default) {
  EXPECT_EQ(load_config({}, {}).config.log_segment_delete_delay_ms, 60000);
  config_result r = load_config({}, {"log.segment.delete.delay.ms=0"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.config.log_segment_delete_delay_ms, 0);
  EXPECT_FALSE(load_config({}, {"log.segment.delete.delay.ms=-1"}).error.empty());
}

TEST(config, offsets_retention_keys_have_kafkas_names_types_and_defaults) {
  config_result defaults = load_config({}, {});
  EXPECT_EQ(defaults.config.offsets_retention_minutes, 10080);
  EXPECT_EQ(defaults.config.offsets_retention_check_interval_ms, 600000);
  config_result r =
      load_config({}, {"offsets.retention.minutes=1", "offsets.retention.check.interval.ms=250"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.warnings.empty());
  EXPECT_EQ(r.config.offsets_retention_minutes, 1);
  EXPECT_EQ(r.config.offsets_retention_check_interval_ms, 250);
  // Whole minutes, at least one, as Kafka's int with atLeast(1).
  for (const char* bad : {"offsets.retention.minutes=0", "offsets.retention.minutes=0.5",
                          "offsets.retention.check.interval.ms=0"}) {
    EXPECT_FALSE(load_config({}, {bad}).error.empty()) << bad;
  }
}

TEST(config, missing_file_is_an_error) {
  config_result r = load_config("/nonexistent/server.properties", {});
  EXPECT_FALSE(r.error.empty());
}

TEST(config, explicit_advertised_listener_wins) {
  config_result r = load_config(
      {}, {"listeners=PLAINTEXT://:0", "advertised.listeners=PLAINTEXT://broker.example:9092"});
  ASSERT_TRUE(r.error.empty());
  EXPECT_EQ(r.config.advertised_listeners[0].host, "broker.example");
  EXPECT_EQ(r.config.listeners[0].port, 0);
}

TEST(config, help_lists_every_key) {
  std::string help = config_help();
  for (const char* key :
       {"node.id", "listeners", "advertised.listeners", "log.dirs", "num.partitions",
        "auto.create.topics.enable", "log.segment.bytes", "log.index.interval.bytes",
        "message.max.bytes", "socket.request.max.bytes", "offsets.retention.minutes",
        "offsets.retention.check.interval.ms"}) {
    EXPECT_NE(help.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace sluice::server
