#include "server/topic_config.h"

#include <algorithm>
#include <charconv>
#include <limits>

// Boost.JSON is compiled into the broker by this translation unit (header-only mode; Debian ships
// no libboost_json). No other file may include boost/json/src.hpp.
#include <boost/json/src.hpp>

#include "server/topics.h"
#include "storage/checkpoint.h"
#include "storage/file_io.h"

namespace sluice::server {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Kafka's ConfigDef messages, so that clients show what Kafka would.
template <class Int>
std::string check_int(std::string_view text, Int min, std::string_view type_name,
                      Int* out = nullptr) {
  text = trim(text);
  Int v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return "Not a number of type " + std::string(type_name);
  }
  if (v < min) return "Value must be at least " + std::to_string(min);
  if (out) *out = v;
  return {};
}

std::string validate_cleanup_policy(std::string_view v) {
  std::vector<std::string> items = split_list(v);
  if (items.empty()) return "cleanup.policy must name at least one policy (delete)";
  for (const std::string& item : items) {
    if (item == "compact") {
      return "log compaction is not supported by Sluice: cleanup.policy must be delete";
    }
    if (item != "delete") return "String must be one of: delete";
  }
  return {};
}

// Kafka's BOOLEAN config type, with its message.
std::string validate_boolean(std::string_view v) {
  v = trim(v);
  if (v == "true" || v == "false") return {};
  return "Expected value to be either true or false";
}

// Kafka's MetadataVersion names: "0.10.2", "2.8", "3.0-IV1", "3.7-IV4" and the like. Kafka
// validates against its own list; the shape is checked here, since the value is ignored.
std::string validate_message_format_version(std::string_view v) {
  v = trim(v);
  auto digits = [](std::string_view part) {
    return !part.empty() &&
           std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::string_view version = v.substr(0, v.find('-'));
  if (v.size() > version.size()) {
    std::string_view iv = v.substr(version.size() + 1);
    if (!iv.starts_with("IV") || !digits(iv.substr(2))) version = {};
  }
  int parts = 0;
  bool ok = !version.empty();
  for (std::string_view rest = version; ok && !rest.empty(); ++parts) {
    size_t dot = rest.find('.');
    ok = digits(rest.substr(0, dot));
    rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
    if (dot != std::string_view::npos && rest.empty()) ok = false;
  }
  if (ok && parts >= 2 && parts <= 3) return {};
  return "Invalid value " + std::string(v) + " for configuration message.format.version: Version " +
         std::string(v) + " is not a valid version";
}

// Sorted by name. Types, minimums and broker synonyms are Kafka's (LogConfig,
// ServerTopicConfigSynonyms); values Kafka accepts but Sluice cannot honour are refused by the
// validators, with the reason.
const std::vector<topic_config_spec>& table() {
  static const std::vector<topic_config_spec> specs = {
      {"cleanup.policy",
       config_type::list,
       {"log.cleanup.policy"},
       "What happens to segments past retention: delete (compaction is not supported).",
       validate_cleanup_policy,
       [](const broker_config& c) { return c.log_cleanup_policy; }},
      {"compression.type",
       config_type::string,
       {"compression.type"},
       "Compression of stored batches: producer, i.e. as the producer sent them (the only value).",
       [](std::string_view v) -> std::string {
         v = trim(v);
         if (v == "producer") return {};
         if (v == "uncompressed" || v == "gzip" || v == "snappy" || v == "lz4" || v == "zstd") {
           return "Sluice stores batches as the producer compressed them; compression.type must "
                  "be producer";
         }
         return "String must be one of: producer";
       },
       [](const broker_config& c) { return c.compression_type; }},
      {"flush.messages",
       config_type::int64,
       {"log.flush.interval.messages"},
       "Messages appended to a partition before it is fsynced; every append waits for that "
       "fsync, whatever its acks.",
       [](std::string_view v) { return check_int<int64_t>(v, 1, "LONG"); },
       [](const broker_config& c) { return std::to_string(c.log_flush_interval_messages); }},
      {"flush.ms",
       config_type::int64,
       {"log.flush.interval.ms", "log.flush.scheduler.interval.ms"},
       "Age of a partition's unsynced data at which it is fsynced (checked every "
       "log.flush.scheduler.interval.ms).",
       [](std::string_view v) { return check_int<int64_t>(v, 0, "LONG"); },
       [](const broker_config& c) { return std::to_string(c.log_flush_interval_ms); }},
      {"index.interval.bytes",
       config_type::int32,
       {"log.index.interval.bytes"},
       "Bytes of log between two entries of the offset index.",
       [](std::string_view v) { return check_int<int32_t>(v, 0, "INT"); },
       [](const broker_config& c) { return std::to_string(c.log_index_interval_bytes); }},
      {"max.message.bytes",
       config_type::int32,
       {"message.max.bytes"},
       "Largest record batch the topic accepts.",
       [](std::string_view v) { return check_int<int32_t>(v, 0, "INT"); },
       [](const broker_config& c) { return std::to_string(c.message_max_bytes); }},
      // Accepted and ignored, as Kafka 4 ignores it: down-conversion serves fetches older than
      // v4, which Sluice does not serve.
      {"message.downconversion.enable",
       config_type::boolean,
       {},  // log.message.downconversion.enable is not a Sluice broker key
       "Ignored: Sluice serves Fetch v4 and later only, so nothing is ever down-converted.",
       validate_boolean,
       [](const broker_config&) { return std::string("true"); }},
      // Accepted and ignored, as Kafka 3.x ignores it once the inter-broker protocol is 3.0 or
      // later: every batch is stored as record format v2.
      {"message.format.version",
       config_type::string,
       {},  // nor is log.message.format.version
       "Ignored: batches are always stored in record format v2, as in Kafka 3.0 and later.",
       validate_message_format_version,
       [](const broker_config&) { return std::string("3.0-IV1"); }},
      {"message.timestamp.type",
       config_type::string,
       {"log.message.timestamp.type"},
       "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's time.",
       [](std::string_view v) -> std::string {
         v = trim(v);
         if (v == "CreateTime" || v == "LogAppendTime") return {};
         return "String must be one of: CreateTime, LogAppendTime";
       },
       [](const broker_config& c) { return c.log_message_timestamp_type; }},
      {"min.insync.replicas",
       config_type::int32,
       {"min.insync.replicas"},
       "In-sync replicas a write with acks=all needs (a single broker has one).",
       [](std::string_view v) { return check_int<int32_t>(v, 1, "INT"); },
       [](const broker_config& c) { return std::to_string(c.min_insync_replicas); }},
      // Accepted and ignored: preallocating segment files changes neither what is stored nor
      // what is served (Kafka uses it mainly on Windows).
      {"preallocate",
       config_type::boolean,
       {},  // nor log.preallocate
       "Ignored: segment files are never preallocated.",
       validate_boolean,
       [](const broker_config&) { return std::string("false"); }},
      {"retention.bytes",
       config_type::int64,
       {"log.retention.bytes"},
       "Largest size of a partition's log before its oldest segments are deleted; -1: no limit.",
       [](std::string_view v) {
         return check_int<int64_t>(v, std::numeric_limits<int64_t>::min(), "LONG");
       },
       [](const broker_config& c) { return std::to_string(c.log_retention_bytes); }},
      {"retention.ms",
       config_type::int64,
       {"log.retention.ms", "log.retention.minutes", "log.retention.hours"},
       "Age after which a segment is deleted; -1: no time limit.",
       [](std::string_view v) { return check_int<int64_t>(v, -1, "LONG"); },
       [](const broker_config& c) { return std::to_string(c.log_retention_ms); }},
      {"segment.bytes",
       config_type::int32,
       {"log.segment.bytes"},
       "Size at which a segment is rolled.",
       [](std::string_view v) { return check_int<int32_t>(v, 14, "INT"); },
       [](const broker_config& c) {
         return std::to_string(
             std::min<int64_t>(c.log_segment_bytes, std::numeric_limits<int32_t>::max()));
       }},
      {"segment.ms",
       config_type::int64,
       {"log.roll.ms", "log.roll.hours"},
       "Age at which a segment is rolled even if not full.",
       [](std::string_view v) { return check_int<int64_t>(v, 1, "LONG"); },
       [](const broker_config& c) { return std::to_string(c.log_roll_ms); }},
      {"unclean.leader.election.enable",
       config_type::boolean,
       {"unclean.leader.election.enable"},
       "Whether an out-of-sync replica may become leader (a single broker has no other replica).",
       validate_boolean,
       [](const broker_config& c) {
         return std::string(c.unclean_leader_election_enable ? "true" : "false");
       }},
  };
  return specs;
}

// Kafka topic configs that Sluice knows but does not implement: refused with that reason rather
// than "unknown", so that an operator knows the name was right.
constexpr std::string_view unsupported_topic_configs[] = {
    "delete.retention.ms",
    "file.delete.delay.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
};

}  // namespace

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text = text.substr(comma + 1);
  }
  return items;
}

std::span<const topic_config_spec> topic_config_specs() {
  return table();
}

const topic_config_spec* find_topic_config(std::string_view name) {
  for (const topic_config_spec& s : table()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string validate_topic_config(std::string_view name, std::string_view value) {
  const topic_config_spec* spec = find_topic_config(name);
  if (spec == nullptr) {
    for (std::string_view u : unsupported_topic_configs) {
      if (u == name) return "Topic config " + std::string(name) + " is not supported by Sluice";
    }
    return "Unknown topic config name: " + std::string(name);
  }
  std::string why = spec->validate(value);
  if (why.empty()) return {};
  return "Invalid value " + std::string(value) + " for configuration " + std::string(name) + ": " +
         why;
}

std::string validate_topic_overrides(const topic_overrides& overrides) {
  for (const auto& [name, value] : overrides) {
    if (std::string err = validate_topic_config(name, value); !err.empty()) return err;
  }
  return {};
}

std::string effective_value(const broker_config& config, const topic_overrides& overrides,
                            const topic_config_spec& spec) {
  if (auto it = overrides.find(spec.name); it != overrides.end()) {
    return std::string(trim(it->second));
  }
  return spec.broker_default(config);
}

namespace {

// ConfigHelper.configSynonyms: per synonym, its static value, then its Kafka default; then the
// entries before the first one named `name` are dropped.
std::vector<config_synonym> configured_synonyms(const broker_config& config, std::string_view name,
                                                std::span<const std::string_view> synonyms) {
  std::vector<config_synonym> all;
  for (std::string_view s : synonyms) {
    if (auto it = config.static_values.find(s); it != config.static_values.end()) {
      all.push_back({std::string(s), it->second, config_source::static_broker});
    }
  }
  for (std::string_view s : synonyms) {
    const broker_key_info* key = find_broker_key(s);
    if (key != nullptr && key->kafka_default) {
      all.push_back(
          {std::string(s), std::string(*key->kafka_default), config_source::default_config});
    }
  }
  auto first =
      std::find_if(all.begin(), all.end(), [&](const config_synonym& c) { return c.name == name; });
  return {first, all.end()};
}

// DynamicBrokerConfig.brokerConfigSynonyms for the keys Sluice has.
std::vector<std::string_view> broker_synonyms_of(std::string_view name) {
  for (const topic_config_spec& s : table()) {
    if (std::find(s.broker_synonyms.begin(), s.broker_synonyms.end(), name) !=
        s.broker_synonyms.end()) {
      return s.broker_synonyms;
    }
  }
  return {name};
}

}  // namespace

std::vector<config_synonym> topic_config_synonyms(const broker_config& config,
                                                  const topic_overrides& overrides,
                                                  const topic_config_spec& spec) {
  std::vector<config_synonym> out;
  if (auto it = overrides.find(spec.name); it != overrides.end()) {
    out.push_back(
        {std::string(spec.name), std::string(trim(it->second)), config_source::dynamic_topic});
  }
  if (!spec.broker_synonyms.empty()) {
    std::vector<config_synonym> broker =
        configured_synonyms(config, spec.broker_synonyms.front(), spec.broker_synonyms);
    out.insert(out.end(), broker.begin(), broker.end());
  }
  return out;
}

std::vector<config_synonym> broker_config_synonyms(const broker_config& config,
                                                   std::string_view name) {
  std::vector<std::string_view> synonyms = broker_synonyms_of(name);
  return configured_synonyms(config, name, synonyms);
}

std::vector<described_config> describe_topic_configs(const broker_config& config,
                                                     const topic_overrides& overrides) {
  std::vector<described_config> out;
  for (const topic_config_spec& spec : table()) {
    described_config d;
    d.name = std::string(spec.name);
    d.value = effective_value(config, overrides, spec);
    d.synonyms = topic_config_synonyms(config, overrides, spec);
    d.source = d.synonyms.empty() ? config_source::default_config : d.synonyms.front().source;
    d.type = spec.type;
    d.doc = spec.doc;
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<described_config> describe_broker_configs(const broker_config& config) {
  std::vector<described_config> out;
  for (const broker_key_info& key : broker_keys()) {
    described_config d;
    d.name = std::string(key.name);
    d.value = broker_value(config, key.name);
    d.read_only = true;
    d.synonyms = broker_config_synonyms(config, key.name);
    d.source = d.synonyms.empty() ? config_source::default_config : d.synonyms.front().source;
    const topic_config_spec* topic_spec = nullptr;
    for (const topic_config_spec& s : table()) {
      if (!s.broker_synonyms.empty() &&
          std::find(s.broker_synonyms.begin(), s.broker_synonyms.end(), key.name) !=
              s.broker_synonyms.end()) {
        topic_spec = &s;
      }
    }
    // Types of the keys that mirror a topic config; the rest are reported without a type.
    if (topic_spec != nullptr) {
      d.type = topic_spec->type;
      if (key.name.ends_with(".hours") || key.name.ends_with(".minutes"))
        d.type = config_type::int32;
    }
    d.doc = key.doc;
    out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(),
            [](const described_config& a, const described_config& b) { return a.name < b.name; });
  return out;
}

storage::log_config effective_log_config(const broker_config& config,
                                         const topic_overrides& overrides) {
  auto value = [&](std::string_view name) {
    return effective_value(config, overrides, *find_topic_config(name));
  };
  auto as_int = [&](std::string_view name) {
    std::string text = value(name);
    int64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
  };
  storage::log_config c;
  c.segment_bytes = as_int("segment.bytes");
  c.index_interval_bytes = static_cast<int32_t>(as_int("index.interval.bytes"));
  c.segment_ms = as_int("segment.ms");
  c.retention_ms = as_int("retention.ms");
  c.retention_bytes = as_int("retention.bytes");
  c.max_message_bytes = static_cast<int32_t>(as_int("max.message.bytes"));
  c.flush_messages = as_int("flush.messages");
  c.flush_ms = as_int("flush.ms");
  c.message_timestamp_type = value("message.timestamp.type") == "LogAppendTime"
                                 ? storage::timestamp_type::log_append_time
                                 : storage::timestamp_type::create_time;
  return c;
}

std::map<std::string, stored_topic_configs, std::less<>> load_topic_configs(
    const std::filesystem::path& data_dir, std::string& error) {
  std::map<std::string, stored_topic_configs, std::less<>> out;
  std::filesystem::path path = data_dir / topic_configs_file;
  std::string text;
  bool missing = false;
  if (std::error_code ec =
          storage::read_small_file(storage::default_file_system(), path, text, missing)) {
    error = "cannot read " + path.string() + ": " + ec.message();
    return out;
  }
  if (missing) return out;
  boost::system::error_code jec;
  boost::json::value doc = boost::json::parse(text, jec);
  auto bad = [&](std::string_view what) {
    error = path.string() + ": " + std::string(what);
    out.clear();
    return out;
  };
  if (jec) return bad(jec.message());
  const boost::json::object* root = doc.if_object();
  if (root == nullptr) return bad("not a JSON object");
  const boost::json::value* version = root->if_contains("version");
  if (version == nullptr || !version->is_int64() || version->as_int64() != 1) {
    return bad("unknown version");
  }
  const boost::json::value* topics = root->if_contains("topics");
  if (topics == nullptr || !topics->is_object()) return bad("no topics object");
  for (const auto& [name, entry] : topics->as_object()) {
    const boost::json::object* e = entry.if_object();
    if (e == nullptr) return bad("topic entry is not an object");
    const boost::json::value* id = e->if_contains("topic_id");
    const boost::json::value* configs = e->if_contains("configs");
    if (id == nullptr || !id->is_string() || configs == nullptr || !configs->is_object()) {
      return bad("topic entry lacks topic_id or configs");
    }
    std::optional<wire::uuid> uuid = storage::uuid_from_base64(id->as_string());
    if (!uuid) return bad("bad topic_id");
    stored_topic_configs stored;
    stored.topic_id = *uuid;
    for (const auto& [key, v] : configs->as_object()) {
      if (!v.is_string()) return bad("config value is not a string");
      stored.configs.emplace(std::string(key), std::string(v.as_string()));
    }
    out.emplace(std::string(name), std::move(stored));
  }
  return out;
}

std::string format_topic_configs(const topic_registry& topics, const pending_topic* pending) {
  boost::json::object by_topic;
  auto add = [&](const std::string& name, const wire::uuid& id, const topic_overrides& overrides) {
    if (overrides.empty()) return;
    boost::json::object configs;
    for (const auto& [key, value] : overrides)
      configs[key] = value;
    boost::json::object entry;
    entry["topic_id"] = storage::uuid_to_base64(id);
    entry["configs"] = std::move(configs);
    by_topic[name] = std::move(entry);
  };
  for (const auto& [name, t] : topics.all())
    add(name, t.id, t.configs);
  if (pending != nullptr) add(pending->name, pending->id, pending->configs);
  boost::json::object root;
  root["version"] = 1;
  root["topics"] = std::move(by_topic);
  return boost::json::serialize(root) + "\n";
}

std::error_code save_topic_configs(const std::filesystem::path& data_dir,
                                   const topic_registry& topics, const pending_topic* pending) {
  return storage::replace_file(storage::default_file_system(), data_dir / topic_configs_file,
                               format_topic_configs(topics, pending));
}

}  // namespace sluice::server
