#include "server/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

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
  // A listener with an empty host is advertised as localhost.
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

// Loads `overrides` and returns the one error, which must be a single line.
std::string error_of(const std::vector<std::string>& overrides) {
  config_result r = load_config({}, overrides);
  EXPECT_EQ(r.error.find('\n'), std::string::npos) << r.error;
  return r.error;
}

bool mentions(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(config, listener_defaults_are_kafkas) {
  config_result r = load_config({}, {});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.config.inter_broker_listener_name, "PLAINTEXT");
  EXPECT_EQ(r.config.listener_security_protocol_map.size(), 4u);
  for (const char* protocol : {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}) {
    EXPECT_EQ(r.config.listener_security_protocol_map.at(protocol), protocol);
  }
  // DescribeConfigs shows Kafka's defaults: the map's string as Kafka renders it, none for the
  // keys whose default Kafka derives.
  EXPECT_EQ(broker_value(r.config, "listener.security.protocol.map"),
            "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT");
  EXPECT_EQ(broker_value(r.config, "security.inter.broker.protocol"), "PLAINTEXT");
  EXPECT_EQ(broker_value(r.config, "inter.broker.listener.name"), std::nullopt);
  EXPECT_EQ(broker_value(r.config, "advertised.listeners"), std::nullopt);
}

TEST(config, named_listeners_advertise_per_listener) {
  // The map comes after the listeners on purpose: keys are checked together, in any order.
  auto path = write_properties(
      "listeners=internal://127.0.0.1:9093,EXTERNAL://0.0.0.0:9092,PLAIN://:0\n"
      "advertised.listeners=EXTERNAL://broker.example:19092\n"
      "listener.security.protocol.map=INTERNAL:PLAINTEXT,external:plaintext,PLAIN:PLAINTEXT\n"
      "inter.broker.listener.name=internal\n");
  config_result r = load_config(path, {});
  std::filesystem::remove(path);
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.config.listeners.size(), 3u);
  // Names are upper-cased, as Kafka's ListenerName.normalised does.
  EXPECT_EQ(r.config.listeners[0].name, "INTERNAL");
  EXPECT_EQ(r.config.listeners[1].name, "EXTERNAL");
  EXPECT_EQ(r.config.inter_broker_listener_name, "INTERNAL");
  // One advertised address per listener, in the listeners' order.
  ASSERT_EQ(r.config.advertised_listeners.size(), 3u);
  EXPECT_EQ(r.config.advertised_listeners[0].name, "INTERNAL");
  EXPECT_EQ(r.config.advertised_listeners[0].host, "127.0.0.1");
  EXPECT_EQ(r.config.advertised_listeners[0].port, 9093);
  EXPECT_EQ(r.config.advertised_listeners[1].name, "EXTERNAL");
  EXPECT_EQ(r.config.advertised_listeners[1].host, "broker.example");
  EXPECT_EQ(r.config.advertised_listeners[1].port, 19092);
  // No entry, an empty host, port 0: localhost and the port bound at start.
  EXPECT_EQ(r.config.advertised_listeners[2].host, "localhost");
  EXPECT_EQ(r.config.advertised_listeners[2].port, 0);
}

TEST(config, ipv6_listener_hosts_lose_their_brackets) {
  config_result r = load_config({}, {"listeners=PLAINTEXT://[::1]:9092",
                                     "advertised.listeners=PLAINTEXT://[fe80::1%eth0]:1"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.config.listeners[0].host, "::1");
  EXPECT_EQ(r.config.advertised_listeners[0].host, "fe80::1%eth0");
}

TEST(config, malformed_listeners_are_refused) {
  for (const char* bad :
       {"listeners=PLAINTEXT//127.0.0.1:9092", "listeners=://127.0.0.1:9092",
        "listeners=PLAINTEXT://127.0.0.1", "listeners=PLAINTEXT://127.0.0.1:x",
        "listeners=PLAINTEXT://bad host:9092", "listeners=PLAINTEXT://127.0.0.1:65536",
        "listeners=", "advertised.listeners=", "advertised.listeners=PLAINTEXT://h"}) {
    EXPECT_FALSE(error_of({bad}).empty()) << bad;
  }
}

TEST(config, listener_names_must_be_distinct) {
  for (const char* key : {"listeners", "advertised.listeners"}) {
    std::string err =
        error_of({std::string(key) + "=PLAINTEXT://127.0.0.1:9092,plaintext://127.0.0.1:9093"});
    EXPECT_TRUE(mentions(err, "Each listener must have a different name")) << err;
    EXPECT_TRUE(mentions(err, key)) << err;
  }
}

TEST(config, listener_ports_must_be_distinct_as_in_kafka) {
  const std::string map = "listener.security.protocol.map=A:PLAINTEXT,B:PLAINTEXT,C:PLAINTEXT";
  const std::string inter = "inter.broker.listener.name=A";
  std::string err = error_of({"listeners=A://localhost:9092,B://:9092", map, inter});
  EXPECT_TRUE(mentions(err, "Each listener must have a different port, port: 9092")) << err;
  err = error_of({"listeners=A://127.0.0.1:9092,B://127.0.0.2:9092", map, inter});
  EXPECT_TRUE(mentions(err, "one needs to be IPv4 and the other IPv6")) << err;
  err = error_of({"listeners=A://127.0.0.1:9092,B://[::1]:9092,C://localhost:9092", map, inter});
  EXPECT_TRUE(mentions(err, "one needs to be IPv4 and the other IPv6")) << err;
  err = error_of({"listeners=A://127.0.0.1:9092,B://127.0.0.2:9092,C://[::1]:9092", map, inter});
  EXPECT_TRUE(mentions(err, "unless exactly one listener has an IPv4 address")) << err;
  // Allowed: one IPv4 and one IPv6 address on a port, several ephemeral ports, and advertised
  // addresses sharing a port (one listener may advertise another's address).
  EXPECT_EQ(error_of({"listeners=A://127.0.0.1:9092,B://[::1]:9092", map, inter}), "");
  EXPECT_EQ(error_of({"listeners=A://127.0.0.1:0,B://127.0.0.2:0", map, inter}), "");
  EXPECT_EQ(error_of({"listeners=A://127.0.0.1:0,B://127.0.0.2:0", map, inter,
                      "advertised.listeners=A://proxy:9092,B://proxy:9092"}),
            "");
}

TEST(config, every_listener_name_needs_a_security_protocol) {
  std::string err = error_of({"listeners=INTERNAL://127.0.0.1:0"});
  EXPECT_TRUE(mentions(err, "No security protocol defined for listener INTERNAL")) << err;
  EXPECT_TRUE(mentions(err, "listener.security.protocol.map")) << err;
  // The map replaces Kafka's default one: PLAINTEXT is no longer mapped.
  err = error_of({"listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
                  "listener.security.protocol.map=INTERNAL:PLAINTEXT"});
  EXPECT_TRUE(mentions(err, "No security protocol defined for listener PLAINTEXT")) << err;
  err = error_of({"listeners=PLAINTEXT://127.0.0.1:0", "advertised.listeners=OTHER://h:1"});
  EXPECT_TRUE(mentions(err, "No security protocol defined for listener OTHER")) << err;
  EXPECT_TRUE(mentions(err, "advertised.listeners")) << err;
}

TEST(config, only_plaintext_listeners_are_served) {
  for (const std::vector<std::string>& overrides :
       {std::vector<std::string>{"listeners=SSL://127.0.0.1:9093"},
        std::vector<std::string>{"listeners=PLAINTEXT://127.0.0.1:0,SECURE://127.0.0.1:9094",
                                 "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
                                 "SECURE:sasl_ssl"}}) {
    std::string err = error_of(overrides);
    EXPECT_TRUE(mentions(err, "only PLAINTEXT")) << err;
  }
}

TEST(config, security_protocol_map_is_parsed_as_kafka_does) {
  for (const char* bad :
       {"listener.security.protocol.map=PLAINTEXT", "listener.security.protocol.map=PLAINTEXT:TLS",
        "listener.security.protocol.map=:PLAINTEXT"}) {
    EXPECT_FALSE(error_of({bad}).empty()) << bad;
  }
  EXPECT_TRUE(mentions(error_of({"listener.security.protocol.map=PLAINTEXT:TLS"}),
                       "Invalid security protocol `TLS`"));
  config_result r = load_config(
      {}, {"listener.security.protocol.map= plaintext : plaintext , CLIENT:SSL,CLIENT:PLAINTEXT"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  // A repeated name keeps its last protocol, as Kafka's map does.
  EXPECT_EQ(r.config.listener_security_protocol_map.at("CLIENT"), "PLAINTEXT");
  EXPECT_EQ(r.config.listener_security_protocol_map.at("PLAINTEXT"), "PLAINTEXT");
  EXPECT_EQ(r.config.listener_security_protocol_map.size(), 2u);
}

TEST(config, inter_broker_listener_follows_kafkas_rules) {
  const std::string two = "listeners=INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.2:0";
  const std::string map = "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT";
  // By default the inter-broker listener is the one named PLAINTEXT (security.inter.broker.protocol
  // names it); without one the start is refused, as Kafka refuses it.
  std::string err = error_of({two, map});
  EXPECT_TRUE(mentions(err, "inter.broker.listener.name")) << err;
  EXPECT_TRUE(mentions(err, "INTERNAL,EXTERNAL")) << err;
  err = error_of({two, map, "inter.broker.listener.name=OTHER"});
  EXPECT_TRUE(mentions(err,
                       "Listener with name OTHER defined in inter.broker.listener.name not "
                       "found in listener.security.protocol.map"))
      << err;
  err = error_of({two, map + ",OTHER:PLAINTEXT", "inter.broker.listener.name=OTHER"});
  EXPECT_TRUE(mentions(err, "inter.broker.listener.name must be a listener name")) << err;
  err = error_of({two, map, "inter.broker.listener.name=INTERNAL",
                  "security.inter.broker.protocol=PLAINTEXT"});
  EXPECT_TRUE(mentions(err,
                       "Only one of inter.broker.listener.name and "
                       "security.inter.broker.protocol should be set"))
      << err;
  EXPECT_TRUE(mentions(error_of({"security.inter.broker.protocol=SSL"}), "SSL"))
      << "no SSL listener";
  EXPECT_FALSE(error_of({"security.inter.broker.protocol=TLS"}).empty());
  EXPECT_FALSE(error_of({"inter.broker.listener.name="}).empty());
  config_result r = load_config({}, {two, map, "inter.broker.listener.name=external"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.config.inter_broker_listener_name, "EXTERNAL");
  r = load_config({}, {"listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
                       "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
                       "security.inter.broker.protocol=plaintext"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.config.inter_broker_listener_name, "PLAINTEXT");
}

TEST(config, advertised_names_must_be_listeners) {
  std::string err =
      error_of({"listeners=PLAINTEXT://127.0.0.1:0", "advertised.listeners=SSL://h:9093"});
  EXPECT_TRUE(mentions(err,
                       "advertised.listeners listener names must be equal to or a subset of "
                       "the ones defined in listeners"))
      << err;
}

TEST(config, a_wildcard_host_is_not_advertised) {
  // Kafka's check: an address that names every interface names none a client can reach.
  for (const char* listeners :
       {"listeners=PLAINTEXT://0.0.0.0:9092", "listeners=PLAINTEXT://[::]:9092"}) {
    std::string err = error_of({listeners});
    EXPECT_TRUE(mentions(err, "cannot use the nonroutable meta-address")) << err;
    EXPECT_TRUE(mentions(err, "PLAINTEXT")) << err;
  }
  EXPECT_FALSE(error_of({"listeners=PLAINTEXT://127.0.0.1:0",
                         "advertised.listeners=PLAINTEXT://0.0.0.0:9092"})
                   .empty());
  // With an advertised entry a wildcard listener is fine.
  config_result r = load_config(
      {}, {"listeners=PLAINTEXT://0.0.0.0:9092", "advertised.listeners=PLAINTEXT://10.0.0.5:9092"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.config.advertised_listeners[0].host, "10.0.0.5");
}

TEST(config, help_lists_every_key) {
  std::string help = config_help();
  for (const char* key :
       {"node.id", "listeners", "advertised.listeners", "log.dirs", "num.partitions",
        "auto.create.topics.enable", "log.segment.bytes", "log.index.interval.bytes",
        "message.max.bytes", "socket.request.max.bytes", "offsets.retention.minutes",
        "offsets.retention.check.interval.ms", "listener.security.protocol.map",
        "inter.broker.listener.name", "security.inter.broker.protocol"}) {
    EXPECT_NE(help.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace sluice::server
