#pragma once
// Broker configuration with Kafka's key names: `sluice [server.properties] [--override k=v ...]`.
// Every key is declared once in config.cc (name, alias, default, doc, parser); the loader, the
// unknown-key warning and `--help` all derive from that table.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/replica_selector.h"

namespace sluice::server {

// log.flush.on.ack: when an acks=all produce waits for fdatasync before it is answered.
enum class ack_sync_policy {
  sole_replica,  // when this broker is the partition's only in-sync replica (the default)
  always,        // always
  never,         // never: Kafka's page-cache semantics
};

// One endpoint of `listeners` or `advertised.listeners` (Kafka's Endpoint).
struct listener {
  std::string name;   // upper case, as Kafka's ListenerName.normalised makes it
  std::string host;   // empty: all interfaces; an IPv6 address without its brackets
  uint16_t port = 0;  // 0: an ephemeral port, reported in the start-up log line
};

struct broker_config {
  int32_t node_id = 1;
  std::vector<listener> listeners{{"PLAINTEXT", "", 9092}};
  // advertised.listeners as given; nullopt when unset.
  std::optional<std::vector<listener>> advertised_listeners_config;
  // Resolved by load_config, one per entry of `listeners` and in its order: what a client
  // connected to that listener is told (Metadata, DescribeCluster, FindCoordinator). The
  // listener's advertised.listeners entry, else the listener itself, with "localhost" for an
  // empty host. Port 0 becomes the bound port when the broker starts.
  std::vector<listener> advertised_listeners;
  // listener.security.protocol.map (listener name -> security protocol), Kafka's default.
  std::map<std::string, std::string, std::less<>> listener_security_protocol_map{
      {"PLAINTEXT", "PLAINTEXT"},
      {"SSL", "SSL"},
      {"SASL_PLAINTEXT", "SASL_PLAINTEXT"},
      {"SASL_SSL", "SASL_SSL"}};
  // inter.broker.listener.name and security.inter.broker.protocol as given; Kafka allows one.
  std::optional<std::string> inter_broker_listener_name_config;
  std::optional<std::string> security_inter_broker_protocol;
  // Resolved by load_config: inter.broker.listener.name, else the listener named after
  // security.inter.broker.protocol (PLAINTEXT), as in Kafka. Always names one of `listeners`.
  std::string inter_broker_listener_name = "PLAINTEXT";
  // A cluster: metadata.etcd.endpoints (empty: this broker runs alone) and metadata.etcd.prefix.
  std::string metadata_etcd_endpoints;
  std::string metadata_etcd_prefix = "/sluice";
  int64_t broker_session_timeout_ms = 9000;
  std::optional<std::string> broker_rack;
  // replica.selector.class (KIP-392): which replica a consumer with a rack reads from.
  replica_selector read_replica_selector = replica_selector::leader_only;
  // Replication, in a cluster (Kafka's keys and defaults).
  int16_t default_replication_factor = 1;
  int64_t replica_lag_time_max_ms = 30000;
  int32_t replica_fetch_wait_max_ms = 500;
  int32_t replica_fetch_max_bytes = 1048576;
  int32_t replica_fetch_response_max_bytes = 10485760;
  int64_t replica_fetch_backoff_ms = 1000;
  // Controlled shutdown and leader balance, in a cluster (Kafka's keys and defaults).
  bool controlled_shutdown_enable = true;
  int32_t controlled_shutdown_max_retries = 3;
  int64_t controlled_shutdown_retry_backoff_ms = 5000;
  bool auto_leader_rebalance_enable = true;
  int64_t leader_imbalance_check_interval_seconds = 300;
  int32_t leader_imbalance_per_broker_percentage = 10;
  std::filesystem::path log_dir = "./data";
  int32_t num_partitions = 1;
  bool auto_create_topics_enable = true;
  int64_t log_segment_bytes = 1073741824;
  int32_t log_index_interval_bytes = 4096;
  int32_t message_max_bytes = 1048588;
  int32_t socket_request_max_bytes = 104857600;
  // queued.max.requests (Kafka's key and default, broker-wide): requests read but not yet handled
  // (parked long polls excluded) across all connections; above it, no connection reads more.
  int32_t queued_max_requests = 500;
  // queued.max.requests.per.connection (Sluice's): how far one connection reads ahead of its
  // answers.
  int32_t queued_max_requests_per_connection = 64;
  // queued.max.request.bytes (Kafka's key; Kafka's default is -1, no limit): bytes of requests
  // read and not yet answered, plus responses not yet sent, across all connections; above it, no
  // connection reads more. Sluice's default is finite so that memory is bounded out of the box.
  int64_t queued_max_request_bytes = 268435456;
  // num.io.threads: the disk executor's threads (fsync, file creation and deletion, checkpoints).
  int32_t num_io_threads = 8;
  // Incremental fetch sessions (KIP-227) the broker keeps; 0 turns them off.
  int32_t max_incremental_fetch_session_cache_slots = 1000;
  // connections.max.idle.ms: a connection with no bytes read or written for this long is closed;
  // negative: never.
  int64_t connections_max_idle_ms = 600000;
  int32_t group_min_session_timeout_ms = 6000;
  int32_t group_max_session_timeout_ms = 1800000;
  int32_t group_initial_rebalance_delay_ms = 3000;
  int32_t offset_metadata_max_bytes = 4096;
  int32_t offsets_retention_minutes = 10080;
  int64_t offsets_retention_check_interval_ms = 600000;
  // __consumer_offsets in a cluster, as Kafka creates it (a broker that runs alone keeps one
  // partition of its own).
  int32_t offsets_topic_num_partitions = 50;
  int16_t offsets_topic_replication_factor = 3;
  int32_t offsets_topic_segment_bytes = 104857600;
  int64_t offsets_commit_timeout_ms = 5000;
  int64_t shutdown_grace_ms = 5000;

  // Log defaults for every topic (a topic's own configs override them; server/topic_config.h).
  // Retention time: log.retention.ms, else log.retention.minutes, else log.retention.hours, as in
  // Kafka; -1 (any negative) keeps data forever. Resolved by load_config into log_retention_ms.
  std::optional<int64_t> log_retention_ms_config;
  std::optional<int32_t> log_retention_minutes;
  int32_t log_retention_hours = 168;
  int64_t log_retention_ms = 604800000;
  int64_t log_retention_bytes = -1;
  int64_t log_retention_check_interval_ms = 300000;
  // How long a deleted partition's directory stays (renamed aside) before it is removed.
  int64_t log_segment_delete_delay_ms = 60000;
  // Segment age at which it is rolled: log.roll.ms, else log.roll.hours. Resolved into log_roll_ms.
  std::optional<int64_t> log_roll_ms_config;
  int32_t log_roll_hours = 168;
  int64_t log_roll_ms = 604800000;
  std::string log_message_timestamp_type = "CreateTime";
  // Kafka's forced flushes: log.flush.interval.messages, log.flush.interval.ms (else
  // log.flush.scheduler.interval.ms, resolved into log_flush_interval_ms) and how often the flush
  // scheduler looks (log.flush.scheduler.interval.ms). Long.MAX_VALUE: never, Kafka's default.
  int64_t log_flush_interval_messages = INT64_MAX;
  std::optional<int64_t> log_flush_interval_ms_config;
  int64_t log_flush_scheduler_interval_ms = INT64_MAX;
  int64_t log_flush_interval_ms = INT64_MAX;
  // log.flush.offset.checkpoint.interval.ms: how often every log's unsynced data and index entries
  // are flushed and the recovery points checkpointed, which bounds what recovery after a crash
  // reads. replica.high.watermark.checkpoint.interval.ms: how often the checkpoint files are
  // written (recovery points as they stand, log start offsets, high watermarks).
  int64_t log_flush_offset_checkpoint_interval_ms = 60000;
  int64_t replica_high_watermark_checkpoint_interval_ms = 5000;
  ack_sync_policy log_flush_on_ack = ack_sync_policy::sole_replica;
  std::string log_cleanup_policy = "delete";
  std::string compression_type = "producer";
  int32_t min_insync_replicas = 1;
  bool unclean_leader_election_enable = false;

  // Keys set by the properties file or --override (canonical name -> value as given): Kafka's
  // STATIC_BROKER_CONFIG source in DescribeConfigs. Keys absent here have their default.
  std::map<std::string, std::string, std::less<>> static_values;
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

// One broker key as DescribeConfigs shows it: Kafka's default (nullopt: Kafka has none, e.g.
// log.retention.ms) and the documentation line.
struct broker_key_info {
  std::string_view name;
  std::optional<std::string_view> kafka_default;
  std::string_view doc;
};
// Every key of the table, in table order (aliases not listed).
std::vector<broker_key_info> broker_keys();
const broker_key_info* find_broker_key(std::string_view name);
// The value in effect for `name`: as set, else the default (nullopt for a key without one).
std::optional<std::string> broker_value(const broker_config& config, std::string_view name);

}  // namespace sluice::server
