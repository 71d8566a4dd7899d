#include "server/cluster/records.h"

#include <boost/json.hpp>
#include <charconv>
#include <limits>

#include "storage/checkpoint.h"

namespace sluice::server::cluster {

namespace json = boost::json;

// ---- keys --------------------------------------------------------------------------------------

namespace keys {

std::string cluster_id(std::string_view prefix) {
  return std::string(prefix) + "/cluster_id";
}
std::string brokers(std::string_view prefix) {
  return std::string(prefix) + "/brokers/";
}
std::string broker(std::string_view prefix, int32_t node_id) {
  return brokers(prefix) + std::to_string(node_id);
}
std::string controller(std::string_view prefix) {
  return std::string(prefix) + "/controller";
}
std::string topic_name(std::string_view prefix, std::string_view name) {
  return std::string(prefix) + "/topic_names/" + std::string(name);
}
std::string topics(std::string_view prefix) {
  return std::string(prefix) + "/topics/";
}
std::string topic(std::string_view prefix, const wire::uuid& topic_id) {
  return topics(prefix) + storage::uuid_to_base64(topic_id);
}
std::string partitions(std::string_view prefix, const wire::uuid& topic_id) {
  return std::string(prefix) + "/partitions/" + storage::uuid_to_base64(topic_id) + "/";
}
std::string partition(std::string_view prefix, const wire::uuid& topic_id, int32_t p) {
  return partitions(prefix, topic_id) + std::to_string(p);
}
std::string producer_id_block(std::string_view prefix) {
  return std::string(prefix) + "/producer_id_block";
}

namespace {
// A non-negative int32 written in decimal without sign or leading zeros, as keys are built.
std::optional<int32_t> parse_index(std::string_view text) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

bool consume(std::string_view& s, std::string_view head) {
  if (s.substr(0, head.size()) != head) return false;
  s.remove_prefix(head.size());
  return true;
}
}  // namespace

std::optional<int32_t> broker_id(std::string_view prefix, std::string_view key) {
  if (!consume(key, prefix) || !consume(key, "/brokers/")) return std::nullopt;
  return parse_index(key);
}

std::optional<std::pair<wire::uuid, int32_t>> partition_of(std::string_view prefix,
                                                           std::string_view key) {
  if (!consume(key, prefix) || !consume(key, "/partitions/")) return std::nullopt;
  size_t slash = key.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::optional<wire::uuid> id = storage::uuid_from_base64(key.substr(0, slash));
  std::optional<int32_t> p = parse_index(key.substr(slash + 1));
  if (!id || !p) return std::nullopt;
  return std::pair{*id, *p};
}

}  // namespace keys

// ---- decoding helpers --------------------------------------------------------------------------

namespace {

struct bad_record {
  std::string what;
};

const json::object& as_object(const json::value& v, const char* what) {
  if (!v.is_object()) throw bad_record{std::string(what) + " is not an object"};
  return v.get_object();
}

const json::value& field(const json::object& o, const char* name) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr) throw bad_record{std::string("no field \"") + name + "\""};
  return *v;
}

int32_t as_int32(const json::value& v, const char* what) {
  if (!v.is_int64() && !v.is_uint64()) throw bad_record{std::string(what) + " is not an integer"};
  int64_t x = v.is_int64() ? v.get_int64() : static_cast<int64_t>(v.get_uint64());
  if (v.is_uint64() && v.get_uint64() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
    throw bad_record{std::string(what) + " is out of range"};
  if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max())
    throw bad_record{std::string(what) + " is out of range"};
  return static_cast<int32_t>(x);
}

int64_t as_int64(const json::value& v, const char* what) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() &&
      v.get_uint64() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(v.get_uint64());
  }
  throw bad_record{std::string(what) + (v.is_uint64() ? " is out of range" : " is not an integer")};
}

std::string as_string(const json::value& v, const char* what) {
  if (!v.is_string()) throw bad_record{std::string(what) + " is not a string"};
  return std::string(v.get_string());
}

std::vector<int32_t> as_ids(const json::value& v, const char* what) {
  if (!v.is_array()) throw bad_record{std::string(what) + " is not an array"};
  std::vector<int32_t> out;
  for (const json::value& e : v.get_array())
    out.push_back(as_int32(e, what));
  return out;
}

// Parses `text` and runs `read` on the top-level object; any failure becomes nullopt plus reason.
template <typename Record, typename Read>
std::optional<Record> decode(std::string_view text, std::string* error, Read read) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) {
    if (error) *error = "not JSON: " + ec.message();
    return std::nullopt;
  }
  try {
    return read(as_object(v, "the record"));
  } catch (const bad_record& e) {
    if (error) *error = e.what;
    return std::nullopt;
  }
}

json::array ids_json(const std::vector<int32_t>& ids) {
  json::array a;
  for (int32_t id : ids)
    a.emplace_back(id);
  return a;
}

}  // namespace

// ---- records -----------------------------------------------------------------------------------

std::string encode(const broker_record& r) {
  json::object listeners;
  for (const auto& [name, ep] : r.listeners)
    listeners[name] = json::object{{"host", ep.host}, {"port", ep.port}};
  json::object o{
      {"node_id", r.node_id}, {"listeners", std::move(listeners)}, {"incarnation", r.incarnation}};
  o["rack"] = r.rack ? json::value(*r.rack) : json::value(nullptr);
  if (r.controlled_shutdown) o["controlled_shutdown"] = true;
  return json::serialize(o);
}

std::optional<broker_record> decode_broker(std::string_view text, std::string* error) {
  return decode<broker_record>(text, error, [](const json::object& o) {
    broker_record r;
    r.node_id = as_int32(field(o, "node_id"), "node_id");
    const json::value& rack = field(o, "rack");
    if (!rack.is_null()) r.rack = as_string(rack, "rack");
    r.incarnation = as_string(field(o, "incarnation"), "incarnation");
    // Absent in records of brokers that never began a controlled shutdown.
    if (const json::value* flag = o.if_contains("controlled_shutdown")) {
      if (!flag->is_bool()) throw bad_record{"controlled_shutdown is not a boolean"};
      r.controlled_shutdown = flag->as_bool();
    }
    for (const auto& [name, ep] : as_object(field(o, "listeners"), "listeners")) {
      const json::object& e = as_object(ep, "a listener");
      int32_t port = as_int32(field(e, "port"), "port");
      if (port < 0 || port > 65535) throw bad_record{"port is out of range"};
      r.listeners[std::string(name)] = {as_string(field(e, "host"), "host"), port};
    }
    return r;
  });
}

std::string encode(const controller_record& r) {
  return json::serialize(json::object{{"node_id", r.node_id}});
}

std::optional<controller_record> decode_controller(std::string_view text, std::string* error) {
  return decode<controller_record>(text, error, [](const json::object& o) {
    return controller_record{as_int32(field(o, "node_id"), "node_id")};
  });
}

std::string encode(const topic_record& r) {
  json::array replicas;
  for (const auto& partition : r.replicas)
    replicas.emplace_back(ids_json(partition));
  json::object configs;
  for (const auto& [k, v] : r.configs)
    configs[k] = v;
  return json::serialize(json::object{
      {"name", r.name}, {"replicas", std::move(replicas)}, {"configs", std::move(configs)}});
}

std::optional<topic_record> decode_topic(std::string_view text, std::string* error) {
  return decode<topic_record>(text, error, [](const json::object& o) {
    topic_record r;
    r.name = as_string(field(o, "name"), "name");
    const json::value& replicas = field(o, "replicas");
    if (!replicas.is_array() || replicas.get_array().empty())
      throw bad_record{"replicas is not a non-empty array"};
    for (const json::value& p : replicas.get_array()) {
      r.replicas.push_back(as_ids(p, "a replica list"));
      if (r.replicas.back().empty()) throw bad_record{"a partition has no replicas"};
    }
    for (const auto& [k, v] : as_object(field(o, "configs"), "configs"))
      r.configs[std::string(k)] = as_string(v, "a config value");
    return r;
  });
}

std::string encode(const partition_record& r) {
  json::object o{{"leader", r.leader}, {"leader_epoch", r.leader_epoch}, {"isr", ids_json(r.isr)}};
  if (!r.adding_replicas.empty()) o["adding_replicas"] = ids_json(r.adding_replicas);
  if (!r.removing_replicas.empty()) o["removing_replicas"] = ids_json(r.removing_replicas);
  return json::serialize(o);
}

std::optional<partition_record> decode_partition(std::string_view text, std::string* error) {
  return decode<partition_record>(text, error, [](const json::object& o) {
    partition_record r;
    r.leader = as_int32(field(o, "leader"), "leader");
    r.leader_epoch = as_int32(field(o, "leader_epoch"), "leader_epoch");
    if (r.leader_epoch < 0) throw bad_record{"leader_epoch is negative"};
    r.isr = as_ids(field(o, "isr"), "isr");
    // Absent while no reassignment is in progress, and in records older than reassignment.
    if (const json::value* adding = o.if_contains("adding_replicas"))
      r.adding_replicas = as_ids(*adding, "adding_replicas");
    if (const json::value* removing = o.if_contains("removing_replicas"))
      r.removing_replicas = as_ids(*removing, "removing_replicas");
    return r;
  });
}

std::string encode(const producer_id_block_record& r) {
  return json::serialize(
      json::object{{"node_id", r.node_id}, {"first_id", r.first_id}, {"last_id", r.last_id}});
}

std::optional<producer_id_block_record> decode_producer_id_block(std::string_view text,
                                                                 std::string* error) {
  return decode<producer_id_block_record>(text, error, [](const json::object& o) {
    producer_id_block_record r;
    r.node_id = as_int32(field(o, "node_id"), "node_id");
    r.first_id = as_int64(field(o, "first_id"), "first_id");
    r.last_id = as_int64(field(o, "last_id"), "last_id");
    // An empty or negative block would let the next one start at or below ids already out.
    if (r.first_id < 0 || r.last_id < r.first_id) throw bad_record{"not a block of producer ids"};
    return r;
  });
}

}  // namespace sluice::server::cluster
