#pragma once
// Topic configs: the one table of the per-topic configs Sluice supports (name, type, broker
// synonyms, validator, documentation), what a topic's overrides resolve to, Kafka's synonym lists
// for DescribeConfigs, and the file that keeps overrides across restarts.
//
// CreateTopics, DescribeConfigs, AlterConfigs and IncrementalAlterConfigs all go through this
// table; a config missing from it is refused (INVALID_CONFIG), never stored and ignored.
//
// Threading: io thread only (like all of server/).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "server/config.h"
#include "storage/log.h"
#include "wire/codec.h"

namespace sluice::server {

class topic_registry;

// DescribeConfigs' config_type (DescribeConfigsResponse.ConfigType).
enum class config_type : int8_t {
  unknown = 0,
  boolean = 1,
  string = 2,
  int32 = 3,
  int16 = 4,
  int64 = 5,
  float64 = 6,
  list = 7,
  class_name = 8,
  password = 9,
};

// DescribeConfigs' config_source (DescribeConfigsResponse.ConfigSource).
enum class config_source : int8_t {
  unknown = 0,
  dynamic_topic = 1,           // TOPIC_CONFIG: the topic's own override
  dynamic_broker = 2,          // DYNAMIC_BROKER_CONFIG (none in Sluice)
  dynamic_default_broker = 3,  // DYNAMIC_DEFAULT_BROKER_CONFIG (none in Sluice)
  static_broker = 4,           // STATIC_BROKER_CONFIG: server.properties or --override
  default_config = 5,          // DEFAULT_CONFIG: Kafka's default
};

// A topic's overrides: config name -> value, validated. Absent names follow the broker.
using topic_overrides = std::map<std::string, std::string, std::less<>>;

struct topic_config_spec {
  std::string_view name;
  config_type type;
  // Kafka's broker synonyms, in Kafka's order (DynamicBrokerConfig.brokerConfigSynonyms); the
  // first is the one the topic config maps to (ServerTopicConfigSynonyms).
  std::vector<std::string_view> broker_synonyms;
  std::string_view doc;
  // "" if `value` is acceptable, else the reason (sent back with INVALID_CONFIG).
  std::string (*validate)(std::string_view value);
  // The value a topic without an override has, from the broker's configuration.
  std::string (*broker_default)(const broker_config& config);
};

// Every supported topic config, sorted by name (the order DescribeConfigs lists them in).
// Kafka's ConfigResource.Type codes in DescribeConfigs and the Alter*Configs requests.
inline constexpr int8_t config_resource_topic = 2;
inline constexpr int8_t config_resource_broker = 4;

// The items of a list config ("delete,compact"): split at commas, blanks trimmed, empty items
// dropped. One definition, so that validation and APPEND/SUBTRACT agree on what an item is.
std::vector<std::string> split_list(std::string_view text);

std::span<const topic_config_spec> topic_config_specs();
const topic_config_spec* find_topic_config(std::string_view name);

// Validates one name and value: "" if acceptable, else Kafka's message for INVALID_CONFIG
// ("Unknown topic config name: x", or why the value is refused).
std::string validate_topic_config(std::string_view name, std::string_view value);
// Validates every entry; the first failure's message, or "".
std::string validate_topic_overrides(const topic_overrides& overrides);

// The value `spec` has for a topic with `overrides`.
std::string effective_value(const broker_config& config, const topic_overrides& overrides,
                            const topic_config_spec& spec);

struct config_synonym {
  std::string name;
  std::optional<std::string> value;
  config_source source;
};
// Kafka's synonym list for a topic config (ConfigHelper.createTopicConfigEntry): the topic's
// override first, then the broker synonyms that are set (STATIC_BROKER_CONFIG) and those with a
// Kafka default (DEFAULT_CONFIG), starting at the synonym the topic config maps to. The first
// entry's source is the config's source; an empty list means DEFAULT_CONFIG.
std::vector<config_synonym> topic_config_synonyms(const broker_config& config,
                                                  const topic_overrides& overrides,
                                                  const topic_config_spec& spec);
// The same for a broker key (ConfigHelper.createBrokerConfigEntry on this broker's id).
std::vector<config_synonym> broker_config_synonyms(const broker_config& config,
                                                   std::string_view name);

// One config as DescribeConfigs (and CreateTopics v5+) reports it.
struct described_config {
  std::string name;
  std::optional<std::string> value;
  bool read_only = false;
  config_source source = config_source::default_config;
  bool is_sensitive = false;
  std::vector<config_synonym> synonyms;  // always filled; the handler drops them if not asked
  config_type type = config_type::unknown;
  std::string_view doc;
};
// Every supported topic config of a topic with `overrides`, by name.
std::vector<described_config> describe_topic_configs(const broker_config& config,
                                                     const topic_overrides& overrides);
// Every broker key (config.cc's table) as this broker has it. None can be changed at run time,
// so all are read-only, as Kafka reports its non-dynamic keys.
std::vector<described_config> describe_broker_configs(const broker_config& config);

// The per-log configuration of a topic with `overrides` on this broker.
storage::log_config effective_log_config(const broker_config& config,
                                         const topic_overrides& overrides);

// Overrides persist in `<log.dirs>/topic-configs.json`, keyed by topic name with the topic id, so
// that a topic deleted and created again under the same name does not inherit them:
//
//   {"version":1,"topics":{"orders":{"topic_id":"<base64 id>","configs":{"retention.ms":"1000"}}}}
//
// Written whole and atomically (temporary file, fsync, rename, fsync of the directory) after
// every change; topics without overrides are left out.
inline constexpr const char* topic_configs_file = "topic-configs.json";

struct stored_topic_configs {
  wire::uuid topic_id{};
  topic_overrides configs;
};
// Reads the file; a missing file is an empty map. `error` says what is wrong with a bad file.
std::map<std::string, stored_topic_configs, std::less<>> load_topic_configs(
    const std::filesystem::path& data_dir, std::string& error);
// Writes the overrides of every topic in `topics`.
// A topic about to be created, whose configs are written before its partitions: a crash in
// between then leaves an entry whose topic id matches no topic (ignored at load), never a topic
// without its configs.
struct pending_topic {
  std::string name;
  wire::uuid id{};
  topic_overrides configs;
};
// The file's content for every topic in `topics` (and `pending`).
std::string format_topic_configs(const topic_registry& topics,
                                 const pending_topic* pending = nullptr);
// Writes it (blocking: tests; the broker writes it in a disk job, topic_config_store).
std::error_code save_topic_configs(const std::filesystem::path& data_dir,
                                   const topic_registry& topics,
                                   const pending_topic* pending = nullptr);

}  // namespace sluice::server
