// DeleteTopics (key 20), versions 0-6.
//
// By name (topic_names, v0-5; topics[].name, v6) or by topic id (topics[].topic_id, v6), as
// Kafka's ControllerApis.deleteTopics resolves them: an unknown name is
// UNKNOWN_TOPIC_OR_PARTITION, an unknown id UNKNOWN_TOPIC_ID; a v6 entry with both a name and an
// id, or with neither, and a name or id given twice are INVALID_REQUEST. A deleted topic's
// partitions are woken first (a fetch parked on them answers UNKNOWN_TOPIC_OR_PARTITION), then
// their directories are removed through storage (renamed aside first, so a crash part-way never
// leaves half a partition) and its configs dropped from topic-configs.json. Groups' committed
// offsets for the topic are removed, with tombstones, as Kafka's coordinator does. The same name
// can be created again at once and gets a new topic id, empty logs and no committed offsets.
//
// The answer waits until the deletion is durable: the directories renamed aside (storage removes
// them later, in the background) and the checkpoints and topic-configs.json rewritten without
// the topic.
//
// Deviations: internal topics (`__consumer_offsets`) are refused with INVALID_REQUEST: the group
// coordinator writes to it for as long as the broker runs. (Kafka's broker does not refuse it;
// its command-line tool does.) The timeout is not used: deletion completes before the answer.

#include <map>

#include "server/completion_latch.h"
#include "server/controller_channel.h"
#include "server/groups/group_coordinator.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "server/metadata_view.h"
#include "server/topic_config.h"
#include "server/topic_config_store.h"
#include "server/topics.h"

namespace sluice::server {

namespace {
using wire::error_code;
using result_t = wire::delete_topics_response::deletable_topic_result;

result_t failed(std::optional<std::string> name, const wire::uuid& id, error_code code,
                std::optional<std::string> message = std::nullopt) {
  result_t r;
  r.name = std::move(name);
  r.topic_id = id;
  r.error_code = static_cast<int16_t>(code);
  r.error_message = std::move(message);
  return r;
}
struct target {
  std::optional<std::string> name;
  wire::uuid id{};
};

bool is_duplicate(const target& t, std::map<std::string, int>& names,
                  std::map<wire::uuid, int>& ids) {
  return t.name ? names[*t.name] > 1 : ids[t.id] > 1;
}

result_t duplicate(const target& t) {
  return failed(t.name, t.id, error_code::invalid_request,
                t.name ? "Duplicate topic name." : "Duplicate topic id.");
}

// In a cluster: the controller deletes from etcd (any other broker forwards the request to it,
// KIP-590), and every broker removes its replicas when its cluster state shows the topic gone
// (replica_manager). The answer waits until this broker's state shows it.
boost::asio::awaitable<void> delete_in_cluster(const metadata_view& metadata,
                                               controller_channel& channel, request_context& ctx,
                                               wire::delete_topics_request& request,
                                               const std::vector<target>& targets,
                                               std::map<std::string, int>& names,
                                               std::map<wire::uuid, int>& ids,
                                               wire::delete_topics_response& response) {
  if (!channel.local_is_controller()) {
    auto answer = co_await channel.forward(request, ctx.api_version);
    if (answer.error) {
      for (const target& t : targets) {
        response.responses.push_back(
            failed(t.name, t.id, error_code::not_controller,
                   "No controller could be reached: " + answer.error.message()));
      }
      co_return;
    }
    response = std::move(answer.body);
  } else {
    std::vector<cluster::delete_topic_request> asks;
    std::vector<size_t> asked_for;
    for (const target& t : targets) {
      if (is_duplicate(t, names, ids)) {
        response.responses.push_back(duplicate(t));
        continue;
      }
      if (t.name && is_internal_topic(*t.name)) {
        response.responses.push_back(
            failed(t.name, t.id, error_code::invalid_request,
                   "Topic " + *t.name + " is an internal topic and cannot be deleted"));
        continue;
      }
      cluster::delete_topic_request ask;
      if (t.name) ask.name = *t.name;
      ask.id = t.id;
      asks.push_back(std::move(ask));
      asked_for.push_back(response.responses.size());
      response.responses.push_back(failed(t.name, t.id, error_code::none));
    }
    std::vector<cluster::delete_topic_result> results;
    if (!asks.empty()) results = co_await channel.local().delete_topics(std::move(asks));
    for (size_t i = 0; i < results.size() && i < asked_for.size(); ++i) {
      result_t& out = response.responses[asked_for[i]];
      const cluster::delete_topic_result& r = results[i];
      out.name = r.name.empty() ? out.name : std::optional<std::string>(r.name);
      out.topic_id = r.id;
      out.error_code = static_cast<int16_t>(r.error);
      if (r.error != error_code::none && !r.message.empty()) out.error_message = r.message;
    }
  }
  // Every broker's coordinator drops the deleted topics' offsets as its cluster state shows the
  // deletion (broker::follow_offsets_partitions), this one included.
  std::vector<std::string> deleted;
  for (const result_t& out : response.responses) {
    if (out.error_code == 0 && out.name) deleted.push_back(*out.name);
  }
  // Named: GCC 12 destroys a std::function made from a lambda inside a co_await twice.
  std::function<bool()> shown = [&] {
    for (const std::string& name : deleted) {
      if (metadata.image()->topic_id(name)) return false;
    }
    return true;
  };
  co_await channel.wait_until(std::move(shown), std::chrono::milliseconds(5000));
}

}  // namespace

boost::asio::awaitable<wire::delete_topics_response> handle_delete_topics(
    const metadata_view& metadata, controller_channel* controller, topic_registry& topics,
    topic_config_store& topic_configs, group_coordinator& groups, request_context& ctx,
    wire::delete_topics_request& request) {
  wire::delete_topics_response response;

  // (name or id) in request order; names v0-5 come from topic_names.
  std::vector<target> targets;
  for (const std::string& n : request.topic_names)
    targets.push_back({n, {}});
  for (const auto& t : request.topics) {
    if (t.name && t.topic_id != wire::uuid{}) {
      response.responses.push_back(failed(t.name, t.topic_id, error_code::invalid_request,
                                          "You may not specify both topic name and topic id."));
    } else if (!t.name && t.topic_id == wire::uuid{}) {
      response.responses.push_back(failed(std::nullopt, {}, error_code::invalid_request,
                                          "Neither topic name nor id were specified."));
    } else {
      targets.push_back({t.name, t.topic_id});
    }
  }
  std::map<std::string, int> names;
  std::map<wire::uuid, int> ids;
  for (const target& t : targets) {
    if (t.name) {
      ++names[*t.name];
    } else {
      ++ids[t.id];
    }
  }

  if (controller != nullptr) {
    co_await delete_in_cluster(metadata, *controller, ctx, request, targets, names, ids, response);
    co_return response;
  }

  bool changed = false;
  completion_latch removed(ctx.executor);
  // Reserved: each result stays where it is while its topic's deletion completes.
  response.responses.reserve(response.responses.size() + targets.size());
  for (const target& t : targets) {
    if (is_duplicate(t, names, ids)) {
      response.responses.push_back(duplicate(t));
      continue;
    }
    topic* found = t.name ? topics.find(*t.name) : topics.find_by_id(t.id);
    if (found == nullptr) {
      response.responses.push_back(
          failed(t.name, t.id,
                 t.name ? error_code::unknown_topic_or_partition : error_code::unknown_topic_id));
      continue;
    }
    if (found->internal) {
      response.responses.push_back(
          failed(found->name, found->id, error_code::invalid_request,
                 "Topic " + found->name + " is an internal topic and cannot be deleted"));
      continue;
    }
    result_t ok;
    ok.name = found->name;
    ok.topic_id = found->id;
    ok.error_message.reset();
    changed = changed || !found->configs.empty();
    std::string name = found->name;
    result_t& out = response.responses.emplace_back(std::move(ok));
    topics.remove_async(*found, [&out, name, ticket = removed.add()](error_code ec) {
      if (ec != error_code::none) {
        // The topic is gone from the registry; storage logged the detail, and the next start
        // deletes whatever directory was renamed aside.
        log_error("deleting topic ", name, ": ", wire::error_name(ec));
        out.error_code = static_cast<int16_t>(ec);
      }
      ticket.done();
    });
    groups.on_topic_deleted(name);
  }
  if (changed) {
    topic_configs.persist(std::nullopt, [ticket = removed.add()](std::error_code ec) {
      // Harmless at the next start: the stale entry's topic id matches no topic, so it is ignored.
      if (ec) log_error("cannot persist topic configs after deleting topics: ", ec.message());
      ticket.done();
    });
  }
  co_await removed.wait();
  co_return response;
}

}  // namespace sluice::server
