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

#include "server/broker.h"
#include "server/completion_latch.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "server/topic_config.h"

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
}  // namespace

boost::asio::awaitable<wire::delete_topics_response> handle_delete_topics(
    request_context& ctx, wire::delete_topics_request& request) {
  broker& b = ctx.broker;
  wire::delete_topics_response response;

  // (name or id) in request order; names v0-5 come from topic_names.
  struct target {
    std::optional<std::string> name;
    wire::uuid id{};
  };
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

  bool changed = false;
  completion_latch removed(ctx.executor);
  // Reserved: each result stays where it is while its topic's deletion completes.
  response.responses.reserve(response.responses.size() + targets.size());
  for (const target& t : targets) {
    if (t.name ? names[*t.name] > 1 : ids[t.id] > 1) {
      response.responses.push_back(
          failed(t.name, t.id, error_code::invalid_request,
                 t.name ? "Duplicate topic name." : "Duplicate topic id."));
      continue;
    }
    topic* found = t.name ? b.topics().find(*t.name) : b.topics().find_by_id(t.id);
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
    b.topics().remove_async(*found, [&out, name, ticket = removed.add()](error_code ec) {
      if (ec != error_code::none) {
        // The topic is gone from the registry; storage logged the detail, and the next start
        // deletes whatever directory was renamed aside.
        log_error("deleting topic ", name, ": ", wire::error_name(ec));
        out.error_code = static_cast<int16_t>(ec);
      }
      ticket.done();
    });
    b.groups().on_topic_deleted(name);
  }
  if (changed) {
    b.persist_topic_configs(std::nullopt, [ticket = removed.add()](std::error_code ec) {
      // Harmless at the next start: the stale entry's topic id matches no topic, so it is ignored.
      if (ec) log_error("cannot persist topic configs after deleting topics: ", ec.message());
      ticket.done();
    });
  }
  co_await removed.wait();
  co_return response;
}

}  // namespace sluice::server
