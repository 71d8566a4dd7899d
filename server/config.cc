#include "server/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>

#include "server/coordination/etcd_store.h"

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

constexpr std::string_view security_protocols[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT",
                                                   "SASL_SSL"};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Kafka's SecurityProtocol.forName: a protocol name in any case.
std::string parse_security_protocol(std::string_view text, std::string_view key, std::string& out) {
  std::string name = upper(trim(text));
  if (std::find(std::begin(security_protocols), std::end(security_protocols), name) ==
      std::end(security_protocols)) {
    return "Invalid security protocol `" + std::string(trim(text)) + "` defined in " +
           std::string(key) + " (expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)";
  }
  out = std::move(name);
  return {};
}

bool is_ipv4(const std::string& host) {
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& host) {
  in6_addr a{};
  return ::inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

// Kafka's rule (AbstractKafkaConfig.validate): ports other than 0 are distinct, except that one
// IPv4 and one IPv6 address may share a port.
std::string check_distinct_ports(const std::vector<listener>& listeners) {
  std::map<uint16_t, std::vector<const listener*>> by_port;
  for (const listener& l : listeners) {
    if (l.port != 0) by_port[l.port].push_back(&l);
  }
  for (const auto& [port, same] : by_port) {
    if (same.size() < 2) continue;
    std::vector<const listener*> with_ip;
    size_t without_ip = 0;
    for (const listener* l : same) {
      if (is_ipv4(l->host) || is_ipv6(l->host)) {
        with_ip.push_back(l);
      } else {
        ++without_ip;
      }
    }
    const std::string where = ", port: " + std::to_string(port);
    if (without_ip > 1) return "Each listener must have a different port" + where;
    if (with_ip.empty()) continue;
    if (with_ip.size() != 2) {
      return "Each listener must have a different port unless exactly one listener has an IPv4 "
             "address and the other IPv6 address" +
             where;
    }
    bool one_of_each = (is_ipv4(with_ip[0]->host) && is_ipv6(with_ip[1]->host)) ||
                       (is_ipv6(with_ip[0]->host) && is_ipv4(with_ip[1]->host));
    if (!one_of_each || without_ip > 0) {
      return "If you have two listeners on the same port then one needs to be IPv4 and the other "
             "IPv6" +
             where;
    }
  }
  return {};
}

// `NAME://host:port[,NAME://host:port]`, each entry as Kafka's SocketServerConfigs parses it
// (`^(.*)://\[?([0-9a-zA-Z\-%._:]*)\]?:(-?[0-9]+)`): the name upper-cased, an IPv6 host in
// brackets, an empty host for all interfaces. Names must be distinct.
std::string parse_listeners(std::string_view text, std::vector<listener>& out) {
  std::vector<listener> result;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) continue;
    const std::string bad = "cannot parse '" + std::string(item) + "' as NAME://host:port";
    size_t sep = item.find("://");
    if (sep == std::string_view::npos || sep == 0) return bad;
    listener l;
    l.name = upper(item.substr(0, sep));
    std::string_view hostport = item.substr(sep + 3);
    size_t colon = hostport.rfind(':');
    if (colon == std::string_view::npos) return bad;
    std::string_view host = hostport.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    for (char c : host) {
      if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '%' && c != '.' &&
          c != '_' && c != ':') {
        return bad;
      }
    }
    l.host = std::string(host);
    int32_t port = 0;
    if (!parse_int<int32_t>(hostport.substr(colon + 1), 0, port).empty() || port > 65535) {
      return "bad port in '" + std::string(item) + "'";
    }
    l.port = static_cast<uint16_t>(port);
    for (const listener& seen : result) {
      if (seen.name == l.name) {
        return "Each listener must have a different name: " + l.name + " appears twice";
      }
    }
    result.push_back(std::move(l));
  }
  if (result.empty()) return "expected at least one listener";
  out = std::move(result);
  return {};
}

// Kafka's Csv.parseCsvMap: `NAME:PROTOCOL[,NAME:PROTOCOL]`, split at each entry's last colon;
// names upper-cased, a repeated name keeps its last protocol.
std::string parse_protocol_map(std::string_view text,
                               std::map<std::string, std::string, std::less<>>& out) {
  std::map<std::string, std::string, std::less<>> result;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t colon = item.rfind(':');
    if (colon == std::string_view::npos || trim(item.substr(0, colon)).empty()) {
      return "cannot parse '" + std::string(item) + "' as NAME:PROTOCOL";
    }
    std::string protocol;
    if (std::string err = parse_security_protocol(item.substr(colon + 1),
                                                  "listener.security.protocol.map", protocol);
        !err.empty()) {
      return err;
    }
    result[upper(trim(item.substr(0, colon)))] = std::move(protocol);
  }
  out = std::move(result);
  return {};
}

std::string joined_names(const std::vector<listener>& listeners) {
  std::string out;
  for (const listener& l : listeners)
    out += (out.empty() ? "" : ",") + l.name;
  return out;
}

bool has_listener(const std::vector<listener>& listeners, std::string_view name) {
  return std::any_of(listeners.begin(), listeners.end(),
                     [&](const listener& l) { return l.name == name; });
}

// Kafka's checks across listeners, advertised.listeners, listener.security.protocol.map and the
// inter-broker listener (KafkaConfig.validateValues), then the address each listener advertises.
std::string resolve_listeners(broker_config& c) {
  const auto& map = c.listener_security_protocol_map;
  auto no_protocol = [&](const listener& l, std::string_view key) {
    std::string mapped;
    for (const auto& [name, protocol] : map)
      mapped += (mapped.empty() ? "" : ",") + name;
    return std::string(key) + ": No security protocol defined for listener " + l.name + "; add " +
           l.name + ":PLAINTEXT to listener.security.protocol.map (it maps " +
           (mapped.empty() ? std::string("no name") : mapped) + ")";
  };
  for (const listener& l : c.listeners) {
    auto it = map.find(l.name);
    if (it == map.end()) return no_protocol(l, "listeners");
    if (it->second != "PLAINTEXT") {
      return "listener " + l.name + " uses security protocol " + it->second +
             ", which Sluice does not serve yet: only PLAINTEXT listeners are supported";
    }
  }
  if (c.advertised_listeners_config) {
    for (const listener& a : *c.advertised_listeners_config) {
      if (!map.contains(a.name)) return no_protocol(a, "advertised.listeners");
    }
  }
  if (c.inter_broker_listener_name_config && c.security_inter_broker_protocol) {
    return "Only one of inter.broker.listener.name and security.inter.broker.protocol should be "
           "set.";
  }
  if (c.inter_broker_listener_name_config) {
    c.inter_broker_listener_name = *c.inter_broker_listener_name_config;
    if (!map.contains(c.inter_broker_listener_name)) {
      return "Listener with name " + c.inter_broker_listener_name +
             " defined in inter.broker.listener.name not found in "
             "listener.security.protocol.map.";
    }
    if (!has_listener(c.listeners, c.inter_broker_listener_name)) {
      return "inter.broker.listener.name must be a listener name defined in listeners. The valid "
             "options based on currently configured listeners are " +
             joined_names(c.listeners);
    }
  } else {
    // Kafka names the inter-broker listener after the protocol, ListenerName.forSecurityProtocol.
    c.inter_broker_listener_name = c.security_inter_broker_protocol.value_or("PLAINTEXT");
    if (!has_listener(c.listeners, c.inter_broker_listener_name)) {
      return "no listener is named " + c.inter_broker_listener_name +
             ", the inter-broker listener by default (Kafka's rule): set "
             "inter.broker.listener.name to one of " +
             joined_names(c.listeners);
    }
  }
  if (c.advertised_listeners_config) {
    for (const listener& a : *c.advertised_listeners_config) {
      if (!has_listener(c.listeners, a.name)) {
        return "advertised.listeners listener names must be equal to or a subset of the ones "
               "defined in listeners. Found " +
               joined_names(*c.advertised_listeners_config) +
               ". The valid options based on the current configuration are " +
               joined_names(c.listeners);
      }
    }
  }
  c.advertised_listeners.clear();
  for (const listener& l : c.listeners) {
    listener a = l;
    if (c.advertised_listeners_config) {
      for (const listener& given : *c.advertised_listeners_config) {
        if (given.name == l.name) a = given;
      }
    }
    // Kafka refuses to advertise 0.0.0.0; "::" is the same wildcard in IPv6.
    if (a.host == "0.0.0.0" || a.host == "::") {
      return "advertised.listeners cannot use the nonroutable meta-address " + a.host +
             " (listener " + l.name + "). Use a routable IP address: give " + l.name +
             " an entry in advertised.listeners";
    }
    // Kafka advertises the canonical host name for an empty host. Sluice advertises localhost
    // instead: it is meant for laptops, CI and `docker run -p`, where the container's or
    // machine's host name is often not resolvable by the client. Clusters set
    // advertised.listeners explicitly.
    if (a.host.empty()) a.host = "localhost";
    c.advertised_listeners.push_back(std::move(a));
  }
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
      {"listeners", "", "PLAINTEXT://:9092",
       "NAME://host:port addresses to accept Kafka connections on; names and ports distinct",
       [](broker_config& c, std::string_view v) -> std::string {
         if (std::string err = parse_listeners(v, c.listeners); !err.empty()) return err;
         return check_distinct_ports(c.listeners);
       }},
      {"advertised.listeners", "", "(listeners)",
       "NAME://host:port addresses clients of each listener are told to connect to; a listener "
       "without an entry advertises its own, an empty host as localhost",
       [](broker_config& c, std::string_view v) -> std::string {
         std::vector<listener> given;
         if (std::string err = parse_listeners(v, given); !err.empty()) return err;
         c.advertised_listeners_config = std::move(given);
         return {};
       }},
      {"listener.security.protocol.map", "",
       "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
       "NAME:PROTOCOL for every listener name; only PLAINTEXT listeners are served",
       [](broker_config& c, std::string_view v) {
         return parse_protocol_map(v, c.listener_security_protocol_map);
       }},
      {"inter.broker.listener.name", "", "(security.inter.broker.protocol)",
       "the listener brokers reach each other on; must name one of listeners",
       [](broker_config& c, std::string_view v) -> std::string {
         if (trim(v).empty()) return "expected a listener name";
         c.inter_broker_listener_name_config = upper(trim(v));
         return {};
       }},
      {"security.inter.broker.protocol", "", "PLAINTEXT",
       "names the inter-broker listener when inter.broker.listener.name is not set (only one of "
       "the two may be)",
       [](broker_config& c, std::string_view v) -> std::string {
         std::string protocol;
         if (std::string err =
                 parse_security_protocol(v, "security.inter.broker.protocol", protocol);
             !err.empty()) {
           return err;
         }
         c.security_inter_broker_protocol = std::move(protocol);
         return {};
       }},
      {"metadata.etcd.endpoints", "", "",
       "http://host:port,... of the etcd cluster that coordinates a Sluice cluster; empty: this "
       "broker runs alone, with no etcd",
       [](broker_config& c, std::string_view v) -> std::string {
         c.metadata_etcd_endpoints = std::string(trim(v));
         if (c.metadata_etcd_endpoints.empty()) return {};
         std::vector<coordination::etcd_endpoint> parsed;
         std::string problem;
         if (!coordination::parse_etcd_endpoints(c.metadata_etcd_endpoints, parsed, problem)) {
           return problem;
         }
         return {};
       }},
      {"metadata.etcd.prefix", "", "/sluice",
       "the key prefix of this cluster's state in etcd, so that several clusters can share one",
       [](broker_config& c, std::string_view v) -> std::string {
         std::string prefix(trim(v));
         while (prefix.size() > 1 && prefix.back() == '/')
           prefix.pop_back();
         if (prefix.empty() || prefix == "/") return "expected a non-empty key prefix";
         c.metadata_etcd_prefix = std::move(prefix);
         return {};
       }},
      {"broker.session.timeout.ms", "", "9000",
       "a broker whose registration is not renewed for this long is gone for the cluster (its "
       "etcd lease TTL, rounded up to seconds; etcd grants no less than 2 s)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.broker_session_timeout_ms);
       }},
      {"replica.selector.class", "", "",
       "fetch from follower (KIP-392): org.apache.kafka.common.replica.RackAwareReplicaSelector "
       "sends a consumer with client.rack to the in-sync replica in its rack; empty: the leader",
       [](broker_config& c, std::string_view v) -> std::string {
         if (!parse_replica_selector(trim(v), c.read_replica_selector)) {
           return "expected org.apache.kafka.common.replica.RackAwareReplicaSelector or nothing";
         }
         return {};
       }},
      {"broker.rack", "", "", "the rack of this broker, which replica placement spreads over",
       [](broker_config& c, std::string_view v) -> std::string {
         if (trim(v).empty()) {
           c.broker_rack.reset();
         } else {
           c.broker_rack = std::string(trim(v));
         }
         return {};
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
      {"offsets.topic.num.partitions", "", "50",
       "partitions of __consumer_offsets when a cluster creates it (never changed afterwards; a "
       "broker running alone keeps one)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.offsets_topic_num_partitions);
       }},
      {"offsets.topic.replication.factor", "", "3",
       "replicas of each __consumer_offsets partition; a cluster creates the topic once this many "
       "brokers are registered, and groups wait (COORDINATOR_NOT_AVAILABLE) until then",
       [](broker_config& c, std::string_view v) {
         return parse_int<int16_t>(v, 1, c.offsets_topic_replication_factor);
       }},
      {"offsets.topic.segment.bytes", "", "104857600",
       "segment.bytes of __consumer_offsets when a cluster creates it",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 14, c.offsets_topic_segment_bytes);
       }},
      {"offsets.commit.timeout.ms", "", "5000",
       "how long a commit or group change waits for every in-sync replica of its "
       "__consumer_offsets partition (then COORDINATOR_NOT_AVAILABLE, and the client retries)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.offsets_commit_timeout_ms);
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
       [](broker_config& c,
          std::string_view
              v) { return parse_int<int64_t>(v, 1, c.log_flush_scheduler_interval_ms); }},
      {"log.flush.offset.checkpoint.interval.ms", "", "60000",
       "how often unsynced data and index entries are fsynced and the recovery points "
       "checkpointed: the most a crash recovery reads",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.log_flush_offset_checkpoint_interval_ms);
       }},
      {"default.replication.factor", "", "1",
       "replicas of an auto-created topic, and of CreateTopics asking for -1 (in a cluster)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int16_t>(v, 1, c.default_replication_factor);
       }},
      {"replica.lag.time.max.ms", "", "30000",
       "a follower not caught up with its leader for this long leaves the ISR (in a cluster)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.replica_lag_time_max_ms);
       }},
      {"replica.fetch.wait.max.ms", "", "500",
       "how long a follower's fetch waits at the leader for data",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.replica_fetch_wait_max_ms);
       }},
      {"replica.fetch.max.bytes", "", "1048576",
       "bytes a follower fetches per partition per request (a larger batch still comes whole)",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.replica_fetch_max_bytes);
       }},
      {"replica.fetch.response.max.bytes", "", "10485760",
       "bytes a follower fetches per request, across its partitions",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 1, c.replica_fetch_response_max_bytes);
       }},
      {"replica.fetch.backoff.ms", "", "1000",
       "how long a follower waits after a failed fetch before it tries again",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 0, c.replica_fetch_backoff_ms);
       }},
      {"controlled.shutdown.enable", "", "true",
       "on SIGTERM, ask the controller to move this broker's leaderships away before stopping "
       "(in a cluster)",
       [](broker_config& c, std::string_view v) {
         return parse_bool(v, c.controlled_shutdown_enable);
       }},
      {"controlled.shutdown.max.retries", "", "3",
       "how many times a stopping broker asks again while it still leads partitions; it then "
       "stops anyway",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.controlled_shutdown_max_retries);
       }},
      {"controlled.shutdown.retry.backoff.ms", "", "5000",
       "the wait between a stopping broker's requests to move its leaderships",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 0, c.controlled_shutdown_retry_backoff_ms);
       }},
      {"auto.leader.rebalance.enable", "", "true",
       "the controller gives leaderships back to their preferred replicas (in a cluster)",
       [](broker_config& c, std::string_view v) {
         return parse_bool(v, c.auto_leader_rebalance_enable);
       }},
      {"leader.imbalance.check.interval.seconds", "", "300",
       "how often the controller checks whether leaderships should go back to preferred replicas",
       [](broker_config& c, std::string_view v) {
         return parse_int<int64_t>(v, 1, c.leader_imbalance_check_interval_seconds);
       }},
      {"leader.imbalance.per.broker.percentage", "", "10",
       "the share of a broker's preferred partitions led elsewhere above which they go back",
       [](broker_config& c, std::string_view v) {
         return parse_int<int32_t>(v, 0, c.leader_imbalance_per_broker_percentage);
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
  result.error = resolve_listeners(c);
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
