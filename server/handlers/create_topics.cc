// CreateTopics (key 19), versions 0-7.
//
// Each topic is checked in Kafka's order (ReplicationControlManager.createTopic) and gets its own
// error: a bad name is INVALID_TOPIC_EXCEPTION (also one that collides with an existing topic
// once '.' and '_' are treated alike); an existing one TOPIC_ALREADY_EXISTS; num_partitions and
// replication_factor of -1 take the broker's num.partitions and 1; num_partitions 0 or below -1 is
// INVALID_PARTITIONS; a replication factor other than 1 is INVALID_REPLICATION_FACTOR (one
// broker). Manual assignments need both counts at -1 (else INVALID_REQUEST), partitions 0..n-1
// each once, and exactly this broker as the replica (else INVALID_REPLICA_ASSIGNMENT). Configs go
// through the topic config table (server/topic_config.h): an unknown name, a value out of range,
// or a value Sluice cannot honour (cleanup.policy=compact, compression.type other than producer)
// is INVALID_CONFIG with the reason. A name given twice in one request is INVALID_REQUEST for both.
// validate_only runs every check and creates nothing. v5+ answers with the partition count,
// replication factor and every config of the topic (as DescribeConfigs reports them); v7 with the
// topic id. Configs are persisted before the partitions are created, and the partitions' files
// (made by disk jobs, in parallel) exist before the answer; meanwhile the topic answers other
// requests with LEADER_NOT_AVAILABLE, as Kafka does during creation.
//
// Internal topics (`__consumer_offsets`, `__transaction_state`) are the broker's to create:
// INVALID_TOPIC_EXCEPTION. The request's timeout is not used (creation is immediate).

#include "server/completion_latch.h"
#include "server/controller_channel.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "server/metadata_view.h"
#include "server/topic_config.h"
#include "server/topic_config_store.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

using wire::error_code;
using result_t = wire::create_topics_response::creatable_topic_result;

struct failure {
  error_code code = error_code::none;
  std::string message;
};

// Kafka's Topic.hasCollision: '.' and '_' map to the same metric names.
std::string collision_key(std::string_view name) {
  std::string key(name);
  for (char& c : key) {
    if (c == '.') c = '_';
  }
  return key;
}

failure check(const broker_config& config, topic_registry& topics,
              const wire::create_topics_request::creatable_topic& t, int32_t& partitions) {
  const int32_t node = config.node_id;
  if (!is_valid_topic_name(t.name)) {
    return {error_code::invalid_topic_exception, "Topic name '" + t.name +
                                                     "' is illegal: it must be 1-249 characters of "
                                                     "[a-zA-Z0-9._-] and not '.' or '..'"};
  }
  if (is_internal_topic(t.name)) {
    return {error_code::invalid_topic_exception,
            "Topic '" + t.name + "' is an internal topic; only the broker creates it"};
  }
  if (topics.find(t.name) != nullptr || topics.creating(t.name)) {
    return {error_code::topic_already_exists, "Topic '" + t.name + "' already exists."};
  }
  for (const auto& [name, existing] : topics.all()) {
    if (collision_key(name) == collision_key(t.name)) {
      return {error_code::invalid_topic_exception,
              "Topic '" + t.name + "' collides with existing topic: " + name};
    }
  }
  if (!t.assignments.empty()) {
    if (t.num_partitions != -1 || t.replication_factor != -1) {
      return {error_code::invalid_request,
              "A manual partition assignment was specified, but numPartitions or "
              "replicationFactor was not set to -1."};
    }
    std::vector<bool> seen(t.assignments.size(), false);
    for (const auto& a : t.assignments) {
      if (a.partition_index < 0 || static_cast<size_t>(a.partition_index) >= seen.size() ||
          seen[static_cast<size_t>(a.partition_index)]) {
        return {error_code::invalid_replica_assignment,
                "Partitions must be numbered 0 to " + std::to_string(seen.size() - 1) +
                    ", each once; got partition " + std::to_string(a.partition_index)};
      }
      seen[static_cast<size_t>(a.partition_index)] = true;
      if (a.broker_ids.empty()) {
        return {error_code::invalid_replica_assignment,
                "The manual partition assignment includes an empty replica list."};
      }
      for (int32_t id : a.broker_ids) {
        if (id != node) {
          return {error_code::invalid_replica_assignment,
                  "The manual partition assignment includes broker " + std::to_string(id) +
                      ", but no broker with that id is registered."};
        }
      }
      if (a.broker_ids.size() > 1) {
        return {error_code::invalid_replica_assignment,
                "The manual partition assignment includes the partition with duplicate replicas."};
      }
    }
    partitions = static_cast<int32_t>(t.assignments.size());
  } else {
    partitions = t.num_partitions == -1 ? config.num_partitions : t.num_partitions;
    if (partitions <= 0) {
      return {error_code::invalid_partitions,
              "Number of partitions was set to an invalid non-positive value."};
    }
    int16_t rf = t.replication_factor == -1 ? 1 : t.replication_factor;
    if (rf <= 0) {
      return {error_code::invalid_replication_factor,
              "Replication factor must be larger than 0, or -1 to use the default value."};
    }
    if (rf > 1) {
      return {error_code::invalid_replication_factor,
              "Unable to replicate the partition " + std::to_string(rf) +
                  " time(s): The target replication factor of " + std::to_string(rf) +
                  " cannot be reached because only 1 broker(s) are registered."};
    }
  }
  return {};
}

failure collect_configs(const wire::create_topics_request::creatable_topic& t,
                        topic_overrides& out) {
  for (const auto& c : t.configs) {
    if (!c.value) {
      return {error_code::invalid_config, "Null value not supported for topic configs: " + c.name};
    }
    if (std::string err = validate_topic_config(c.name, *c.value); !err.empty()) {
      return {error_code::invalid_config, err};
    }
    out[c.name] = *c.value;
  }
  return {};
}

// A topic's failed result: no counts, no configs.
void fail_result(result_t& out, const failure& f) {
  out.error_code = static_cast<int16_t>(f.code);
  out.error_message = f.message;
  out.num_partitions = -1;
  out.replication_factor = -1;
  out.configs.reset();
}

void describe_configs(const broker_config& config, const topic_overrides& configs, result_t& out) {
  out.configs.emplace();
  for (const described_config& d : describe_topic_configs(config, configs)) {
    auto& c = out.configs->emplace_back();
    c.name = d.name;
    c.value = d.value;
    c.read_only = d.read_only;
    c.config_source = static_cast<int8_t>(d.source);
    c.is_sensitive = d.is_sensitive;
  }
}

// How long a broker waits for its own cluster state to show the topics the controller created,
// so that the client's next request here finds them.
constexpr std::chrono::milliseconds visible_timeout{5000};

// In a cluster: the controller decides and writes to etcd; any other broker forwards the request
// to it (KIP-590) and relays the answer. Either way the answer waits until this broker's own
// state shows the topics created.
boost::asio::awaitable<wire::create_topics_response> create_in_cluster(
    const broker_config& config, const metadata_view& metadata, controller_channel& channel,
    request_context& ctx, wire::create_topics_request& request) {
  wire::create_topics_response response;
  if (!channel.local_is_controller()) {
    auto answer = co_await channel.forward(request, ctx.api_version);
    if (answer.error) {
      for (const auto& t : request.topics) {
        result_t& out = response.topics.emplace_back();
        out.name = t.name;
        fail_result(out, {error_code::not_controller,
                          "No controller could be reached: " + answer.error.message()});
      }
      co_return response;
    }
    response = std::move(answer.body);
  } else {
    std::map<std::string, int> name_count;
    for (const auto& t : request.topics)
      ++name_count[t.name];
    std::vector<cluster::create_topic_request> asks;
    std::vector<size_t> asked_for;  // index into response.topics
    std::vector<topic_overrides> topic_configs;
    for (const auto& t : request.topics) {
      result_t& out = response.topics.emplace_back();
      out.name = t.name;
      out.error_message.reset();
      auto fail = [&out](const failure& f) { fail_result(out, f); };
      if (name_count[t.name] > 1) {
        fail({error_code::invalid_request, "Duplicate topic name."});
        continue;
      }
      if (is_internal_topic(t.name)) {
        fail({error_code::invalid_topic_exception,
              "Topic '" + t.name + "' is an internal topic; only the broker creates it"});
        continue;
      }
      topic_overrides configs;
      if (failure f = collect_configs(t, configs); f.code != error_code::none) {
        fail(f);
        continue;
      }
      cluster::create_topic_request ask;
      ask.name = t.name;
      ask.num_partitions = t.num_partitions;
      ask.replication_factor = t.replication_factor;
      for (const auto& a : t.assignments)
        ask.assignments[a.partition_index] = a.broker_ids;
      ask.configs.insert(configs.begin(), configs.end());
      ask.validate_only = request.validate_only;
      asks.push_back(std::move(ask));
      asked_for.push_back(response.topics.size() - 1);
      topic_configs.push_back(std::move(configs));
    }
    std::vector<cluster::create_topic_result> results;
    if (!asks.empty()) results = co_await channel.local().create_topics(std::move(asks));
    for (size_t i = 0; i < results.size() && i < asked_for.size(); ++i) {
      result_t& out = response.topics[asked_for[i]];
      const cluster::create_topic_result& r = results[i];
      if (r.error != error_code::none) {
        fail_result(out, {r.error, r.message});
        continue;
      }
      out.error_code = 0;
      out.topic_id = r.topic_id;
      out.num_partitions = r.num_partitions;
      out.replication_factor = r.replication_factor;
      describe_configs(config, topic_configs[i], out);
    }
  }
  if (request.validate_only) co_return response;
  std::vector<std::string> created;
  for (const result_t& out : response.topics) {
    if (out.error_code == 0) created.push_back(out.name);
  }
  // Named: GCC 12 destroys a std::function made from a lambda inside a co_await twice.
  std::function<bool()> shown = [&] {
    for (const std::string& name : created) {
      if (!metadata.image()->topic_id(name)) return false;
    }
    return true;
  };
  const bool seen = co_await channel.wait_until(std::move(shown), visible_timeout);
  if (!seen) {
    log_warn("CreateTopics from ", ctx.peer, ": the controller created ", created.size(),
             " topic(s) that this broker's cluster state does not show after ",
             visible_timeout.count(), " ms");
  }
  co_return response;
}

}  // namespace

boost::asio::awaitable<wire::create_topics_response> handle_create_topics(
    const broker_config& config, const metadata_view& metadata, controller_channel* controller,
    topic_registry& topics, topic_config_store& topic_configs, request_context& ctx,
    wire::create_topics_request& request) {
  if (controller != nullptr) {
    co_return co_await create_in_cluster(config, metadata, *controller, ctx, request);
  }
  wire::create_topics_response response;
  std::map<std::string, int> name_count;
  int64_t requested_partitions = 0;
  for (const auto& t : request.topics) {
    ++name_count[t.name];
    requested_partitions += !t.assignments.empty()   ? static_cast<int64_t>(t.assignments.size())
                            : t.num_partitions == -1 ? config.num_partitions
                                                     : std::max<int64_t>(t.num_partitions, 0);
  }
  // Every partition is created (and its directory fsynced) before the answer: Kafka's cap on one
  // request (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH) bounds that.
  const bool too_many = requested_partitions > max_partitions_per_request;
  completion_latch created(ctx.executor);
  // Reserved: each result stays where it is while its topic is created.
  response.topics.reserve(request.topics.size());
  for (const auto& t : request.topics) {
    result_t& out = response.topics.emplace_back();
    out.name = t.name;
    out.error_message.reset();
    auto fail = [&out](const failure& f) { fail_result(out, f); };
    if (name_count[t.name] > 1) {
      fail({error_code::invalid_request, "Duplicate topic name."});
      continue;
    }
    if (too_many) {
      fail({error_code::policy_violation, "Excessively large number of partitions per request."});
      continue;
    }
    int32_t partitions = 0;
    topic_overrides configs;
    failure f = check(config, topics, t, partitions);
    if (f.code == error_code::none) f = collect_configs(t, configs);
    if (f.code != error_code::none) {
      fail(f);
      continue;
    }
    out.num_partitions = partitions;
    out.replication_factor = 1;
    describe_configs(config, configs, out);
    if (request.validate_only) continue;
    pending_topic pending{t.name, random_topic_id(), configs};
    auto create = [&topics, &out, fail, pending, partitions](completion_latch::ticket ticket) {
      topics.create_async(
          pending.name, partitions, pending.configs, pending.id,
          [&out, fail, name = pending.name, ticket](error_code ec, topic* made) {
            if (ec != error_code::none) {
              fail({ec, "Cannot create topic " + name + ": " + std::string(wire::error_name(ec))});
            } else {
              out.topic_id = made->id;
            }
            ticket.done();
          });
    };
    if (configs.empty()) {
      create(created.add());
      continue;
    }
    // Configs first: a topic must never exist on disk without the configs it was created with (a
    // crash in between leaves an entry for a topic id that does not exist, which the next start
    // ignores).
    topic_configs.persist(
        pending, [fail, name = t.name, create, ticket = created.add()](std::error_code ec) {
          if (ec) {
            log_error("cannot persist the configs of topic ", name, ": ", ec.message());
            fail({error_code::kafka_storage_error, "Cannot persist topic configs"});
            ticket.done();
            return;
          }
          create(ticket);
        });
  }
  co_await created.wait();
  co_return response;
}

}  // namespace sluice::server
