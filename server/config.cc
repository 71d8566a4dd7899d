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
      {"queued.max.requests", "", "64",
       "requests read ahead per connection before reading pauses (Kafka: per broker)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.queued_max_requests_per_connection);
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
    os << "\n      " << k.doc << "; default " << k.default_text << "\n";
  }
  return os.str();
}

}  // namespace sluice::server
