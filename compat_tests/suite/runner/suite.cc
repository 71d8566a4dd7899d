#include "compat_tests/suite/runner/suite.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat::suite {

using namespace std::chrono_literals;

std::string_view api::name(int16_t key) {
  switch (key) {
    case produce:
      return "Produce";
    case fetch:
      return "Fetch";
    case list_offsets:
      return "ListOffsets";
    case metadata:
      return "Metadata";
    case offset_commit:
      return "OffsetCommit";
    case offset_fetch:
      return "OffsetFetch";
    case find_coordinator:
      return "FindCoordinator";
    case join_group:
      return "JoinGroup";
    case heartbeat:
      return "Heartbeat";
    case leave_group:
      return "LeaveGroup";
    case sync_group:
      return "SyncGroup";
    case describe_groups:
      return "DescribeGroups";
    case list_groups:
      return "ListGroups";
    case api_versions:
      return "ApiVersions";
    case create_topics:
      return "CreateTopics";
    case delete_topics:
      return "DeleteTopics";
    case delete_records:
      return "DeleteRecords";
    case init_producer_id:
      return "InitProducerId";
    case describe_configs:
      return "DescribeConfigs";
    case alter_configs:
      return "AlterConfigs";
    case create_partitions:
      return "CreatePartitions";
    case delete_groups:
      return "DeleteGroups";
    case elect_leaders:
      return "ElectLeaders";
    case alter_partition_reassignments:
      return "AlterPartitionReassignments";
    case list_partition_reassignments:
      return "ListPartitionReassignments";
    default:
      return "?";
  }
}

std::string err_name(rd_kafka_resp_err_t err) {
  return std::string(rd_kafka_err2name(err)) + " (" + rd_kafka_err2str(err) + ")";
}

std::pair<std::string, uint16_t> first_broker(const std::string& bootstrap) {
  std::string first = bootstrap.substr(0, bootstrap.find(','));
  size_t colon = first.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("bootstrap without a port: " + first);
  std::string host = first.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return {host, static_cast<uint16_t>(std::stoi(first.substr(colon + 1)))};
}

// ---- api_versions ------------------------------------------------------------------------------

bool api_versions::has(int16_t key, int16_t min_version) const {
  auto it = ranges_.find(key);
  return it != ranges_.end() && it->second.second >= min_version &&
         it->second.first <= it->second.second;
}

std::optional<int16_t> api_versions::max_version(int16_t key) const {
  auto it = ranges_.find(key);
  if (it == ranges_.end()) return std::nullopt;
  return it->second.second;
}

api_versions api_versions::probe(const std::string& bootstrap, std::chrono::milliseconds timeout) {
  auto [host, port] = first_broker(bootstrap);
  raw_connection conn(host, port);
  bytes payload;
  auto ask = [&](int16_t version) -> api_versions_v0_body {
    if (!conn.send(api_versions_request(version, 1)))
      throw std::runtime_error("connection closed while sending ApiVersions");
    if (conn.read_frame(payload, timeout) != raw_connection::status::ok)
      throw std::runtime_error("no ApiVersions v" + std::to_string(version) + " answer");
    // The response header is always v0 for ApiVersions (KIP-511), whatever the version.
    response r = split_response(payload, /*flexible=*/false);
    return version >= 3 ? parse_api_versions_v3(r.body) : parse_api_versions_v0(r.body);
  };
  api_versions_v0_body body;
  try {
    body = ask(3);
  } catch (const decode_error&) {
    // A broker that does not know v3 answers UNSUPPORTED_VERSION with a v0 body; parsing that as
    // v3 fails, so ask again at v0 (what librdkafka does after its v3 attempt).
    body = ask(0);
  }
  if (body.error_code == 35) body = ask(0);
  if (body.error_code != 0)
    throw std::runtime_error("ApiVersions error code " + std::to_string(body.error_code));
  api_versions out;
  for (const api_range& r : body.api_keys)
    out.add(r.api_key, r.min_version, r.max_version);
  return out;
}

api_versions api_versions::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  api_versions out;
  int key, min, max;
  while (in >> key >> min >> max)
    out.add(static_cast<int16_t>(key), static_cast<int16_t>(min), static_cast<int16_t>(max));
  return out;
}

std::string api_versions::to_lines() const {
  std::ostringstream out;
  for (const auto& [key, range] : ranges_)
    out << key << ' ' << range.first << ' ' << range.second << '\n';
  return out.str();
}

// ---- admin -------------------------------------------------------------------------------------

admin::admin(const std::string& bootstrap) {
  rd_kafka_conf_t* conf =
      make_conf({{"bootstrap.servers", bootstrap}, {"client.id", "sluice-compat-suite-admin"}});
  char err[512];
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk_ == nullptr) throw std::runtime_error(std::string("rd_kafka_new: ") + err);
  queue_ = rd_kafka_queue_new(rk_);
}

admin::~admin() {
  rd_kafka_queue_destroy(queue_);
  rd_kafka_destroy(rk_);
}

rd_kafka_AdminOptions_t* admin::options(rd_kafka_admin_op_t op) {
  rd_kafka_AdminOptions_t* o = rd_kafka_AdminOptions_new(rk_, op);
  char err[256];
  rd_kafka_AdminOptions_set_request_timeout(o, 20000, err, sizeof err);
  // CreateTopics/DeleteTopics/CreatePartitions: the broker answers once the change is done (or
  // this passes), as Kafka's controller does with a positive timeout.
  rd_kafka_AdminOptions_set_operation_timeout(o, 15000, err, sizeof err);
  return o;
}

event_ptr admin::run(rd_kafka_event_type_t type,
                     const std::function<void(rd_kafka_queue_t*)>& send) {
  send(queue_);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    event_ptr ev(rd_kafka_queue_poll(queue_, 200));
    if (!ev) continue;
    if (rd_kafka_event_type(ev.get()) != type) continue;
    if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw failure(std::string("admin request failed: ") + rd_kafka_event_error_string(ev.get()));
    return ev;
  }
  throw failure("no admin result within 30 s");
}

namespace {
admin::topic_error topic_result_error(const rd_kafka_topic_result_t* r) {
  admin::topic_error e;
  e.err = rd_kafka_topic_result_error(r);
  if (const char* s = rd_kafka_topic_result_error_string(r)) e.message = s;
  return e;
}
admin::topic_error from_error(const rd_kafka_error_t* error) {
  admin::topic_error e;
  if (error != nullptr) {
    e.err = rd_kafka_error_code(error);
    e.message = rd_kafka_error_string(error);
  }
  return e;
}
}  // namespace

admin::topic_error admin::create_topic(const std::string& name, int partitions,
                                       int replication_factor,
                                       const std::map<std::string, std::string>& configs) {
  char err[512];
  rd_kafka_NewTopic_t* topic =
      rd_kafka_NewTopic_new(name.c_str(), partitions, replication_factor, err, sizeof err);
  if (topic == nullptr) throw failure(std::string("NewTopic: ") + err);
  for (const auto& [k, v] : configs)
    rd_kafka_NewTopic_set_config(topic, k.c_str(), v.c_str());
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_CREATETOPICS);
  event_ptr ev = run(RD_KAFKA_EVENT_CREATETOPICS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_CreateTopics(rk_, &topic, 1, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_NewTopic_destroy(topic);
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
  check(n == 1, "CreateTopics answered " + std::to_string(n) + " topics for 1");
  return topic_result_error(results[0]);
}

admin::topic_error admin::delete_topic(const std::string& name) {
  rd_kafka_DeleteTopic_t* topic = rd_kafka_DeleteTopic_new(name.c_str());
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_DELETETOPICS);
  event_ptr ev = run(RD_KAFKA_EVENT_DELETETOPICS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_DeleteTopics(rk_, &topic, 1, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_DeleteTopic_destroy(topic);
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev.get()), &n);
  check(n == 1, "DeleteTopics answered " + std::to_string(n) + " topics for 1");
  return topic_result_error(results[0]);
}

admin::topic_error admin::create_partitions(const std::string& topic, int new_total) {
  char err[512];
  rd_kafka_NewPartitions_t* np =
      rd_kafka_NewPartitions_new(topic.c_str(), static_cast<size_t>(new_total), err, sizeof err);
  if (np == nullptr) throw failure(std::string("NewPartitions: ") + err);
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
  event_ptr ev = run(RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_CreatePartitions(rk_, &np, 1, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_NewPartitions_destroy(np);
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev.get()), &n);
  check(n == 1, "CreatePartitions answered " + std::to_string(n) + " topics for 1");
  return topic_result_error(results[0]);
}

std::map<std::string, std::optional<std::string>> admin::describe_topic_configs(
    const std::string& topic) {
  rd_kafka_ConfigResource_t* res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  event_ptr ev = run(RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_DescribeConfigs(rk_, &res, 1, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_ConfigResource_destroy(res);
  size_t n = 0;
  const rd_kafka_ConfigResource_t** resources = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(ev.get()), &n);
  check(n == 1, "DescribeConfigs answered " + std::to_string(n) + " resources for 1");
  if (rd_kafka_resp_err_t e = rd_kafka_ConfigResource_error(resources[0]))
    throw failure("DescribeConfigs of " + topic + ": " + err_name(e));
  size_t count = 0;
  const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[0], &count);
  std::map<std::string, std::optional<std::string>> out;
  for (size_t i = 0; i < count; ++i) {
    const char* value = rd_kafka_ConfigEntry_value(entries[i]);
    out[rd_kafka_ConfigEntry_name(entries[i])] =
        value == nullptr ? std::nullopt : std::optional<std::string>(value);
  }
  return out;
}

admin::topic_error admin::alter_topic_configs(const std::string& topic,
                                              const std::map<std::string, std::string>& configs) {
  rd_kafka_ConfigResource_t* res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  for (const auto& [k, v] : configs)
    rd_kafka_ConfigResource_set_config(res, k.c_str(), v.c_str());
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
  event_ptr ev = run(RD_KAFKA_EVENT_ALTERCONFIGS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_AlterConfigs(rk_, &res, 1, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_ConfigResource_destroy(res);
  size_t n = 0;
  const rd_kafka_ConfigResource_t** resources =
      rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev.get()), &n);
  check(n == 1, "AlterConfigs answered " + std::to_string(n) + " resources for 1");
  topic_error e;
  e.err = rd_kafka_ConfigResource_error(resources[0]);
  if (const char* s = rd_kafka_ConfigResource_error_string(resources[0])) e.message = s;
  return e;
}

std::pair<admin::topic_error, int64_t> admin::delete_records(const std::string& topic,
                                                             int32_t partition, int64_t offset) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
  rd_kafka_DeleteRecords_t* del = rd_kafka_DeleteRecords_new(list);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_DELETERECORDS);
  event_ptr ev = run(RD_KAFKA_EVENT_DELETERECORDS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_DeleteRecords(rk_, &del, 1, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_DeleteRecords_destroy(del);
  const rd_kafka_topic_partition_list_t* offsets =
      rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev.get()));
  check(offsets != nullptr && offsets->cnt == 1, "DeleteRecords answered no partition");
  topic_error e;
  e.err = offsets->elems[0].err;
  return {e, offsets->elems[0].offset};
}

std::vector<std::string> admin::list_groups() {
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
  event_ptr ev = run(RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_ListConsumerGroups(rk_, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  const rd_kafka_ListConsumerGroups_result_t* result =
      rd_kafka_event_ListConsumerGroups_result(ev.get());
  size_t errors = 0;
  const rd_kafka_error_t** errs = rd_kafka_ListConsumerGroups_result_errors(result, &errors);
  if (errors > 0) throw failure(std::string("ListGroups: ") + rd_kafka_error_string(errs[0]));
  size_t n = 0;
  const rd_kafka_ConsumerGroupListing_t** groups =
      rd_kafka_ListConsumerGroups_result_valid(result, &n);
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i)
    out.emplace_back(rd_kafka_ConsumerGroupListing_group_id(groups[i]));
  return out;
}

admin::group_description admin::describe_group(const std::string& group) {
  const char* name = group.c_str();
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
  event_ptr ev = run(RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, [&](rd_kafka_queue_t* q) {
    rd_kafka_DescribeConsumerGroups(rk_, &name, 1, o, q);
  });
  rd_kafka_AdminOptions_destroy(o);
  size_t n = 0;
  const rd_kafka_ConsumerGroupDescription_t** groups =
      rd_kafka_DescribeConsumerGroups_result_groups(
          rd_kafka_event_DescribeConsumerGroups_result(ev.get()), &n);
  check(n == 1, "DescribeGroups answered " + std::to_string(n) + " groups for 1");
  group_description d;
  d.error = from_error(rd_kafka_ConsumerGroupDescription_error(groups[0]));
  d.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(groups[0]));
  for (size_t i = 0; i < rd_kafka_ConsumerGroupDescription_member_count(groups[0]); ++i) {
    const rd_kafka_MemberDescription_t* m = rd_kafka_ConsumerGroupDescription_member(groups[0], i);
    d.member_ids.emplace_back(rd_kafka_MemberDescription_consumer_id(m));
    const char* instance = rd_kafka_MemberDescription_group_instance_id(m);
    d.instance_ids.emplace_back(instance == nullptr ? "" : instance);
  }
  return d;
}

admin::topic_error admin::delete_group(const std::string& group) {
  rd_kafka_DeleteGroup_t* del = rd_kafka_DeleteGroup_new(group.c_str());
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_DELETEGROUPS);
  event_ptr ev = run(RD_KAFKA_EVENT_DELETEGROUPS_RESULT,
                     [&](rd_kafka_queue_t* q) { rd_kafka_DeleteGroups(rk_, &del, 1, o, q); });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_DeleteGroup_destroy(del);
  size_t n = 0;
  const rd_kafka_group_result_t** results =
      rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev.get()), &n);
  check(n == 1, "DeleteGroups answered " + std::to_string(n) + " groups for 1");
  return from_error(rd_kafka_group_result_error(results[0]));
}

std::map<int32_t, int64_t> admin::committed(const std::string& group, const std::string& topic,
                                            const std::vector<int32_t>& partitions) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (int32_t p : partitions)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  rd_kafka_ListConsumerGroupOffsets_t* req =
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), list);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_AdminOptions_t* o = options(RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
  event_ptr ev = run(RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, [&](rd_kafka_queue_t* q) {
    rd_kafka_ListConsumerGroupOffsets(rk_, &req, 1, o, q);
  });
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_ListConsumerGroupOffsets_destroy(req);
  size_t n = 0;
  const rd_kafka_group_result_t** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(ev.get()), &n);
  check(n == 1, "OffsetFetch answered " + std::to_string(n) + " groups for 1");
  if (const rd_kafka_error_t* e = rd_kafka_group_result_error(groups[0]))
    throw failure(std::string("OffsetFetch: ") + rd_kafka_error_string(e));
  std::map<int32_t, int64_t> out;
  const rd_kafka_topic_partition_list_t* parts = rd_kafka_group_result_partitions(groups[0]);
  for (int i = 0; parts != nullptr && i < parts->cnt; ++i) {
    if (parts->elems[i].err)
      throw failure("OffsetFetch partition " + std::to_string(parts->elems[i].partition) + ": " +
                    err_name(parts->elems[i].err));
    // librdkafka reports Kafka's "no committed offset" (-1) as RD_KAFKA_OFFSET_INVALID.
    int64_t offset = parts->elems[i].offset;
    out[parts->elems[i].partition] = offset == RD_KAFKA_OFFSET_INVALID ? -1 : offset;
  }
  return out;
}

std::map<std::string, std::vector<int32_t>> admin::topics() {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 1, nullptr, &md, 10000))
    throw failure("Metadata: " + err_name(e));
  std::map<std::string, std::vector<int32_t>> out;
  for (int t = 0; t < md->topic_cnt; ++t) {
    const rd_kafka_metadata_topic_t& topic = md->topics[t];
    std::vector<int32_t>& leaders = out[topic.topic];
    if (topic.err) continue;
    leaders.resize(static_cast<size_t>(topic.partition_cnt), -1);
    for (int p = 0; p < topic.partition_cnt; ++p) {
      const rd_kafka_metadata_partition_t& part = topic.partitions[p];
      if (part.id >= 0 && part.id < topic.partition_cnt && part.err == 0)
        leaders[static_cast<size_t>(part.id)] = part.leader;
    }
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

// ---- context -----------------------------------------------------------------------------------

context::context(std::string client, std::string bootstrap, std::string prefix, api_versions apis,
                 std::chrono::milliseconds timeout)
    : client_(std::move(client)),
      bootstrap_(std::move(bootstrap)),
      prefix_(std::move(prefix)),
      apis_(std::move(apis)),
      timeout_(timeout) {}

std::string context::name(std::string_view suffix) const {
  std::string out = prefix_ + client_ + "-" + scenario_;
  std::replace(out.begin() + static_cast<std::ptrdiff_t>(prefix_.size()), out.end(), '.', '-');
  std::replace(out.begin() + static_cast<std::ptrdiff_t>(prefix_.size()), out.end(), '_', '-');
  if (!suffix.empty()) out += "-" + std::string(suffix);
  return out;
}

void context::require(int16_t key, int16_t min_version) const {
  if (apis_.has(key, min_version)) return;
  std::string what = std::string(api::name(key)) + " (key " + std::to_string(key) + ")";
  if (min_version > 0 && apis_.max_version(key))
    throw skipped("the broker advertises " + what + " only up to v" +
                  std::to_string(*apis_.max_version(key)) + ", this needs v" +
                  std::to_string(min_version));
  throw skipped("the broker does not advertise " + what);
}

int context::default_replication_factor() const {
  return apis_.has(api::create_topics, 4) ? -1 : 1;
}

admin& context::admin_client() {
  if (!admin_) admin_ = std::make_unique<admin>(bootstrap_);
  return *admin_;
}

std::string context::create_topic(std::string_view suffix, int partitions,
                                  const std::map<std::string, std::string>& configs) {
  std::string topic = name(suffix);
  create_topic_named(topic, partitions, configs);
  return topic;
}

int context::create_topic_named(const std::string& topic, int partitions,
                                const std::map<std::string, std::string>& configs) {
  const bool created = apis_.has(api::create_topics);
  if (created) {
    admin::topic_error e =
        admin_client().create_topic(topic, partitions, default_replication_factor(), configs);
    check(e.err == RD_KAFKA_RESP_ERR_NO_ERROR,
          "CreateTopics " + topic + ": " + err_name(e.err) + " " + e.message);
  } else {
    if (!configs.empty()) require(api::create_topics);  // auto-creation cannot set configs
    // Metadata v4+ carries allow_auto_topic_creation (KIP-204); before v4 every Metadata request
    // naming a topic may create it, and v1-v3 requests share one body (a topic array).
    require(api::metadata, 1);
    auto [host, port] = first_broker(bootstrap_);
    raw_connection conn(host, port);
    int16_t version = std::min<int16_t>(4, *apis_.max_version(api::metadata));
    if (version == 4) {
      conn.send(metadata_v4_request(1, {topic}, /*allow_auto_topic_creation=*/true));
    } else {
      byte_writer body;
      body.array_length(1, /*compact=*/false);
      body.string(topic, /*compact=*/false);
      conn.send(frame_request(api::metadata, version, 1, /*flexible=*/false, body.data()));
    }
    bytes payload;
    conn.read_frame(payload, timeout_);
  }
  std::vector<int32_t> leaders;
  bool ready = wait_for([&] {
    auto all = admin_client().topics();
    auto it = all.find(topic);
    if (it == all.end() || it->second.empty()) return false;
    leaders = it->second;
    return std::all_of(leaders.begin(), leaders.end(), [](int32_t l) { return l >= 0; });
  });
  if (!created && leaders.empty())
    throw skipped("the broker does not advertise CreateTopics (key 19) and did not auto-create " +
                  topic);
  check(ready, "topic " + topic + " has no leader for every partition in Metadata");
  int count = static_cast<int>(leaders.size());
  if (created) {
    check(count == partitions, "topic " + topic + " was created with " +
                                   std::to_string(partitions) + " partitions and has " +
                                   std::to_string(count));
  } else if (count < partitions) {
    throw skipped(
        "the broker does not advertise CreateTopics (key 19) and auto-creates topics "
        "with " +
        std::to_string(count) + " partitions, this needs " + std::to_string(partitions));
  }
  // Metadata may name a leader a moment before that broker serves the partition: in a cluster
  // each broker applies a new topic after the controller committed it, as Kafka's brokers do.
  // Ready means every partition's leader answers ListOffsets for it.
  if (apis_.has(api::list_offsets)) {
    rd_kafka_t* rk = admin_client().get();
    ready = wait_for([&] {
      for (int p = 0; p < count; ++p) {
        int64_t low = 0, high = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 2000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
          return false;
        }
      }
      return true;
    });
    check(ready, "the leaders of topic " + topic + " do not serve it (ListOffsets)");
  }
  partitions_[topic] = count;
  return count;
}

std::pair<std::string, uint16_t> context::leader_address(const std::string& topic,
                                                         int32_t partition) {
  rd_kafka_t* rk = admin_client().get();
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (err) throw failure("Metadata: " + err_name(err));
  int32_t leader = -1;
  if (md->topic_cnt == 1) {
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      if (md->topics[0].partitions[p].id == partition) leader = md->topics[0].partitions[p].leader;
    }
  }
  std::optional<std::pair<std::string, uint16_t>> out;
  for (int b = 0; b < md->broker_cnt; ++b) {
    if (md->brokers[b].id == leader)
      out.emplace(md->brokers[b].host, static_cast<uint16_t>(md->brokers[b].port));
  }
  rd_kafka_metadata_destroy(md);
  if (!out)
    throw failure("Metadata names no leader for " + topic + "/" + std::to_string(partition));
  return *out;
}

bool context::wait_for(const std::function<bool()>& condition) const {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  auto pause = 10ms;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::milliseconds>(pause * 2, 250ms);
  }
}

}  // namespace sluice::compat::suite
