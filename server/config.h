#pragma once
// Broker configuration with Kafka's key names: `sluice [server.properties] [--override k=v ...]`.
// Every key is declared once in config.cc (name, alias, default, doc, parser); the loader, the
// unknown-key warning and `--help` all derive from that table.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace sluice::server {

struct listener {
  std::string name;   // security protocol / listener name: only PLAINTEXT is served
  std::string host;   // empty: all interfaces
  uint16_t port = 0;  // 0: an ephemeral port, reported in the start-up log line
};

struct broker_config {
  int32_t node_id = 1;
  std::vector<listener> listeners{{"PLAINTEXT", "", 9092}};
  // Empty: derived from `listeners`, with "localhost" for a wildcard host (see config.cc).
  std::vector<listener> advertised_listeners;
  std::filesystem::path log_dir = "./data";
  int32_t num_partitions = 1;
  bool auto_create_topics_enable = true;
  int64_t log_segment_bytes = 1073741824;
  int32_t log_index_interval_bytes = 4096;
  int32_t message_max_bytes = 1048588;
  int32_t socket_request_max_bytes = 104857600;
  int32_t queued_max_requests_per_connection = 64;
  int32_t group_min_session_timeout_ms = 6000;
  int32_t group_max_session_timeout_ms = 1800000;
  int32_t group_initial_rebalance_delay_ms = 3000;
  int32_t offset_metadata_max_bytes = 4096;
  int64_t shutdown_grace_ms = 5000;
};

struct config_result {
  broker_config config;
  std::vector<std::string> warnings;  // unknown keys: logged, not fatal (Kafka does the same)
  std::string error;                  // non-empty: the one message to print before exit 2
};

// Parses a properties file (may be empty: embedded defaults) and `key=value` overrides, applied
// in that order.
config_result load_config(const std::filesystem::path& properties_file,
                          const std::vector<std::string>& overrides);

// The `--help` text: usage and every key with its default.
std::string config_help();

}  // namespace sluice::server
