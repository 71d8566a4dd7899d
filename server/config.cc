#include "server/config.h"

#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>

namespace sluice::server {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

template <class Int>
std::string parse_int(std::string_view text, Int min, Int& out) {
  Int v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return "expected an integer";
  }
  if (v < min) return "expected an integer >= " + std::to_string(min);
  out = v;
  return {};
}

std::string parse_bool(std::string_view text, bool& out) {
  if (text == "true") {
    out = true;
  } else if (text == "false") {
    out = false;
  } else {
    return "expected true or false";
  }
  return {};
}

// `PLAINTEXT://host:port[,NAME://host:port]`; an IPv6 host is written in brackets.
std::string parse_listeners(std::string_view text, std::vector<listener>& out) {
  std::vector<listener> result;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t sep = item.find("://");
    if (sep == std::string_view::npos) return "expected NAME://host:port";
    listener l;
    l.name = std::string(item.substr(0, sep));
    std::string_view hostport = item.substr(sep + 3);
    size_t colon = hostport.rfind(':');
    if (colon == std::string_view::npos) return "expected NAME://host:port";
    std::string_view host = hostport.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    l.host = std::string(host);
    int32_t port = 0;
    if (!parse_int<int32_t>(hostport.substr(colon + 1), 0, port).empty() || port > 65535) {
      return "bad port in '" + std::string(item) + "'";
    }
    l.port = static_cast<uint16_t>(port);
    if (l.name != "PLAINTEXT") {
      return "listener '" + l.name + "' is not supported: only PLAINTEXT";
    }
    result.push_back(std::move(l));
  }
  if (result.empty()) return "expected at least one listener";
  out = std::move(result);
  return {};
}

struct key_spec {
  std::string_view name;
  std::string_view alias;
  std::string_view default_text;
  std::string_view doc;
  std::function<std::string(broker_config&, std::string_view)> set;
};

const std::vector<key_spec>& key_table() {
  static const std::vector<key_spec> keys = {
      {"node.id", "broker.id", "1", "id of this broker in Metadata",
       [](broker_config& c, std::string_view v) { return parse_int<int32_t>(v, 0, c.node_id); }},
      {"listeners", "", "PLAINTEXT://:9092", "addresses to accept Kafka connections on",
       [](broker_config& c, std::string_view v) { return parse_listeners(v, c.listeners); }},
      {"advertised.listeners", "", "(listeners)",
       "addresses clients are told to connect to; a wildcard host is advertised as localhost",
       [](broker_config& c, std::string_view v) {
         return parse_listeners(v, c.advertised_listeners);
       }},
      {"log.dirs", "log.dir", "./data", "directory holding the partition logs (one directory)",
       [](broker_config& c, std::string_view v) -> std::string {
         if (v.empty()) return "expected a directory";
         if (v.find(',') != std::string_view::npos) return "only one log directory is supported";
         c.log_dir = std::string(v);
         return {};
       }},
      {"num.partitions", "", "1", "partitions of an auto-created topic",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.num_partitions);
       }},
      {"auto.create.topics.enable", "", "true",
       "create unknown topics on Metadata and Produce requests",
       [](broker_config& c, std::string_view v) {
         return parse_bool(v, c.auto_create_topics_enable);
       }},
      {"log.segment.bytes", "", "1073741824", "size at which a segment is rolled",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 14, c.log_segment_bytes);
       }},
      {"log.index.interval.bytes", "", "4096", "bytes of log between two offset index entries",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.log_index_interval_bytes);
       }},
      {"message.max.bytes", "", "1048588", "largest record batch accepted",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.message_max_bytes);
       }},
      {"socket.request.max.bytes", "", "104857600",
       "largest request frame; a larger one closes the connection",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.socket_request_max_bytes);
       }},
      {"connections.max.idle.ms", "", "600000",
       "close a connection after this long without a byte read or written (-1: never)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, -1, c.connections_max_idle_ms);
       }},
      {"queued.max.requests", "", "500",
       "requests read and not yet handled (parked long polls excluded) across all connections "
       "before every connection stops reading",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.queued_max_requests);
       }},
      {"queued.max.requests.per.connection", "", "64",
       "requests one connection reads ahead of its answers before it stops reading (Sluice)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.queued_max_requests_per_connection);
       }},
      {"queued.max.request.bytes", "", "268435456",
       "bytes of requests read and not yet answered, plus responses not yet sent, across all "
       "connections before every connection stops reading; -1: no limit (Kafka's default)",
       [](broker_config& c, std::string_view v) -> std::string {
         int64_t n = 0;
         if (std::string err = parse_int<int64_t>(v, -1, n); !err.empty()) return err;
         if (n == 0) return "expected -1 or a positive number of bytes";
         c.queued_max_request_bytes = n;
         return {};
       }},
      {"num.io.threads", "", "8",
       "threads that make the calls that may block on the disk (fsync, file creation and "
       "deletion, checkpoints), so the network thread never does",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.num_io_threads);
       }},
      {"max.incremental.fetch.session.cache.slots", "", "1000",
       "incremental fetch sessions (KIP-227) kept at most; 0 turns them off",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.max_incremental_fetch_session_cache_slots);
       }},
      {"group.min.session.timeout.ms", "", "6000", "smallest session timeout a member may ask for",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.group_min_session_timeout_ms);
       }},
      {"group.max.session.timeout.ms", "", "1800000",
       "largest session timeout a member may ask for",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.group_max_session_timeout_ms);
       }},
      {"group.initial.rebalance.delay.ms", "", "3000",
       "how long a new group waits for more members before its first rebalance",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.group_initial_rebalance_delay_ms);
       }},
      {"offset.metadata.max.bytes", "", "4096", "largest metadata string of a committed offset",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.offset_metadata_max_bytes);
       }},
      {"offsets.retention.minutes", "", "10080",
       "committed offsets of a group expire this long after it became empty",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.offsets_retention_minutes);
       }},
      {"offsets.retention.check.interval.ms", "", "600000",
       "how often committed offsets are checked for expiry",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.offsets_retention_check_interval_ms);
       }},
      // Topic defaults: each is the broker synonym of a topic config (server/topic_config.cc).
      {"log.retention.hours", "", "168",
       "hours to keep a log segment before deleting it (below log.retention.minutes and .ms)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, std::numeric_limits<int32_t>::min(), c.log_retention_hours);
       }},
      {"log.retention.minutes", "", "", "minutes to keep a log segment; wins over the hours",
       [](broker_config& c, std::string_view v) {
         int32_t m = 0;
         std::string err = parse_int<int32_t>(v, std::numeric_limits<int32_t>::min(), m);
         if (err.empty()) c.log_retention_minutes = m;
         return err;
       }},
      {"log.retention.ms", "", "",
       "milliseconds to keep a log segment; wins over the minutes and hours; -1: forever",
       [](broker_config& c, std::string_view v) {
         int64_t ms = 0;
         std::string err = parse_int<int64_t>(v, std::numeric_limits<int64_t>::min(), ms);
         if (err.empty()) c.log_retention_ms_config = ms;
         return err;
       }},
      {"log.retention.bytes", "", "-1",
       "largest size of a partition's log before old segments are deleted; -1: no limit",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, std::numeric_limits<int64_t>::min(), c.log_retention_bytes);
       }},
      {"log.retention.check.interval.ms", "", "300000",
       "how often logs are checked for segments to delete under retention",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.log_retention_check_interval_ms);
       }},
      {"log.segment.delete.delay.ms", "", "60000",
       "how long a deleted partition's directory stays, renamed aside, before it is removed",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 0, c.log_segment_delete_delay_ms);
       }},
      {"log.roll.hours", "", "168", "roll a segment older than this, even if not full",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.log_roll_hours);
       }},
      {"log.roll.ms", "", "", "roll a segment older than this; wins over log.roll.hours",
       [](broker_config& c, std::string_view v) {
         int64_t ms = 0;
         std::string err = parse_int<int64_t>(v, 1, ms);
         if (err.empty()) c.log_roll_ms_config = ms;
         return err;
       }},
      {"log.message.timestamp.type", "", "CreateTime",
       "record timestamps: CreateTime (the producer's) or LogAppendTime (the broker's)",
       [](broker_config& c, std::string_view v) -> std::string {
         if (v != "CreateTime" && v != "LogAppendTime") {
           return "expected CreateTime or LogAppendTime";
         }
         c.log_message_timestamp_type = std::string(v);
         return {};
       }},
      {"log.flush.interval.messages", "", "9223372036854775807",
       "fsync a log once this many messages are unsynced; every append waits for it, whatever "
       "its acks",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.log_flush_interval_messages);
       }},
      {"log.flush.interval.ms", "", "",
       "fsync a log once its unsynced data is this old (checked every "
       "log.flush.scheduler.interval.ms); default: log.flush.scheduler.interval.ms",
       [](broker_config& c, std::string_view v) {
         int64_t ms = 0;
         std::string err = parse_int<int64_t>(v, 0, ms);
         if (err.empty()) c.log_flush_interval_ms_config = ms;
         return err;
       }},
      {"log.flush.scheduler.interval.ms", "", "9223372036854775807",
       "how often logs are checked against flush.ms",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.log_flush_scheduler_interval_ms);
       }},
      {"log.flush.offset.checkpoint.interval.ms", "", "60000",
       "how often unsynced data and index entries are fsynced and the recovery points "
       "checkpointed: the most a crash recovery reads",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.log_flush_offset_checkpoint_interval_ms);
       }},
      {"replica.high.watermark.checkpoint.interval.ms", "", "5000",
       "how often the checkpoint files (recovery points, log start offsets, high watermarks) are "
       "written",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.replica_high_watermark_checkpoint_interval_ms);
       }},
      {"log.flush.on.ack", "", "sole-replica",
       "when an acks=all produce is answered only after fdatasync: sole-replica (when this "
       "broker is the only in-sync replica), always, or never (Kafka's page-cache semantics)",
       [](broker_config& c, std::string_view v) -> std::string {
         if (v == "sole-replica") {
           c.log_flush_on_ack = ack_sync_policy::sole_replica;
         } else if (v == "always") {
           c.log_flush_on_ack = ack_sync_policy::always;
         } else if (v == "never") {
           c.log_flush_on_ack = ack_sync_policy::never;
         } else {
           return "expected sole-replica, always or never";
         }
         return {};
       }},
      {"log.cleanup.policy", "", "delete", "what happens to old segments: delete (only)",
       [](broker_config& c, std::string_view v) -> std::string {
         if (v == "compact" || v == "compact,delete" || v == "delete,compact") {
           return "log compaction is not supported by Sluice; only delete";
         }
         if (v != "delete") return "expected delete";
         c.log_cleanup_policy = std::string(v);
         return {};
       }},
      {"compression.type", "", "producer",
       "batches are stored as the producer compressed them (producer, the only value)",
       [](broker_config& c, std::string_view v) -> std::string {
         if (v != "producer") {
           return "only producer is supported: Sluice stores batches as received, never "
                  "recompressing";
         }
         c.compression_type = std::string(v);
         return {};
       }},
      {"min.insync.replicas", "", "1",
       "replicas that must have a write for acks=all to succeed (one broker: 1)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.min_insync_replicas);
       }},
      {"unclean.leader.election.enable", "", "false",
       "allow an out-of-sync replica to lead (no effect on a single broker)",
       [](broker_config& c, std::string_view v) {
         return parse_bool(v, c.unclean_leader_election_enable);
       }},
  };
  return keys;
}

const key_spec* find_key(std::string_view name) {
  for (const key_spec& k : key_table()) {
    if (k.name == name || (!k.alias.empty() && k.alias == name)) return &k;
  }
  return nullptr;
}

// Applies one key; returns an error message for a bad value, "" otherwise.
std::string apply(config_result& result, std::string_view key, std::string_view value,
                  std::string_view where) {
  const key_spec* spec = find_key(key);
  if (spec == nullptr) {
    result.warnings.push_back(std::string(where) + ": unknown configuration key '" +
                              std::string(key) + "' ignored");
    return {};
  }
  std::string err = spec->set(result.config, value);
  if (!err.empty()) {
    return std::string(where) + ": invalid value '" + std::string(value) + "' for " +
           std::string(key) + ": " + err;
  }
  result.config.static_values[std::string(spec->name)] = std::string(value);
  return {};
}

}  // namespace

config_result load_config(const std::filesystem::path& properties_file,
                          const std::vector<std::string>& overrides) {
  config_result result;
  if (!properties_file.empty()) {
    std::ifstream in(properties_file);
    if (!in) {
      result.error = "cannot read configuration file " + properties_file.string();
      return result;
    }
    std::string line;
    std::string logical;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      std::string_view t = trim(line);
      if (logical.empty() && (t.empty() || t.front() == '#' || t.front() == '!')) continue;
      // Java properties: a trailing backslash continues the value on the next line.
      if (!t.empty() && t.back() == '\\') {
        logical.append(t.substr(0, t.size() - 1));
        continue;
      }
      logical.append(t);
      std::string_view entry = logical;
      size_t sep = entry.find_first_of("=:");
      std::string_view key = trim(entry.substr(0, sep));
      std::string_view value =
          sep == std::string_view::npos ? std::string_view{} : trim(entry.substr(sep + 1));
      std::string where = properties_file.string() + ":" + std::to_string(line_no);
      if (std::string err = apply(result, key, value, where); !err.empty()) {
        result.error = err;
        return result;
      }
      logical.clear();
    }
  }
  for (const std::string& o : overrides) {
    size_t eq = o.find('=');
    if (eq == std::string::npos) {
      result.error = "--override expects key=value, got '" + o + "'";
      return result;
    }
    std::string_view ov = o;
    if (std::string err =
            apply(result, trim(ov.substr(0, eq)), trim(ov.substr(eq + 1)), "--override");
        !err.empty()) {
      result.error = err;
      return result;
    }
  }
  broker_config& c = result.config;
  // Kafka's KafkaConfig.logRetentionTimeMillis and logRollTimeMillis.
  constexpr int64_t minute_ms = 60 * 1000;
  constexpr int64_t hour_ms = 60 * minute_ms;
  c.log_retention_ms = c.log_retention_ms_config ? *c.log_retention_ms_config
                       : c.log_retention_minutes ? *c.log_retention_minutes * minute_ms
                                                 : c.log_retention_hours * hour_ms;
  if (c.log_retention_ms < 0) c.log_retention_ms = -1;
  c.log_roll_ms = c.log_roll_ms_config ? *c.log_roll_ms_config : c.log_roll_hours * hour_ms;
  // KafkaConfig.logFlushIntervalMs.
  c.log_flush_interval_ms = c.log_flush_interval_ms_config ? *c.log_flush_interval_ms_config
                                                           : c.log_flush_scheduler_interval_ms;
  if (c.advertised_listeners.empty()) {
    // Kafka advertises the canonical host name for a wildcard listener. Sluice advertises
    // localhost instead: it is meant for laptops, CI and `docker run -p`, where the container's or
    // machine's host name is often not resolvable by the client. Clusters set
    // advertised.listeners explicitly.
    for (listener l : c.listeners) {
      if (l.host.empty() || l.host == "0.0.0.0" || l.host == "::") l.host = "localhost";
      c.advertised_listeners.push_back(std::move(l));
    }
  }
  return result;
}

std::string config_help() {
  std::ostringstream os;
  os << "usage: sluice [server.properties] [--override key=value ...]\n"
        "       sluice --help | --version\n\n"
        "A Kafka-compatible broker. Configuration keys (Kafka's names):\n";
  for (const key_spec& k : key_table()) {
    os << "  " << k.name;
    if (!k.alias.empty()) os << " (alias " << k.alias << ")";
    os << "\n      " << k.doc << "; default "
       << (k.default_text.empty() ? std::string_view("none") : k.default_text) << "\n";
  }
  return os.str();
}

std::vector<broker_key_info> broker_keys() {
  std::vector<broker_key_info> out;
  for (const key_spec& k : key_table()) {
    // "(listeners)" and the like describe a derived default: Kafka shows those as null.
    std::optional<std::string_view> def;
    if (!k.default_text.empty() && k.default_text.front() != '(') def = k.default_text;
    out.push_back({k.name, def, k.doc});
  }
  return out;
}

const broker_key_info* find_broker_key(std::string_view name) {
  static const std::vector<broker_key_info> keys = broker_keys();
  for (const broker_key_info& k : keys) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

std::optional<std::string> broker_value(const broker_config& config, std::string_view name) {
  if (auto it = config.static_values.find(name); it != config.static_values.end()) {
    return it->second;
  }
  const broker_key_info* k = find_broker_key(name);
  if (k == nullptr || !k->kafka_default) return std::nullopt;
  return std::string(*k->kafka_default);
}

}  // namespace sluice::server
