// AlterConfigs (key 33), versions 0-2: the legacy, non-incremental form.
//
// A TOPIC resource's configs REPLACE the topic's whole set of overrides (names left out return to
// the broker's value), as Kafka's legacy AlterConfigs does. Every entry goes through the topic
// config table: an unknown name or a refused value is INVALID_CONFIG and nothing changes. The new
// set takes effect on the topic's logs at once (next append, next retention pass) and is persisted
// before the answer. validate_only checks and changes nothing. An unknown topic is
// UNKNOWN_TOPIC_OR_PARTITION.
//
// As Kafka's ConfigAdminManager.preprocess: a resource named twice is INVALID_REQUEST for both, as
// are duplicate config names and null values in one resource. BROKER resources (type 4, this
// node's id or empty) accept no change: Sluice has no dynamic broker configs, so any entry is
// INVALID_REQUEST "Cannot update these configs dynamically", Kafka's answer for a key that is not
// dynamic (KAFKA-13609 explains why it is not INVALID_CONFIG). Other resource types are
// INVALID_REQUEST.
//
// In a cluster a topic's configs are its cluster record's: the controller replaces them (any
// other broker forwards the TOPIC resources to it), every broker applies them to its replicas
// as its cluster state shows the change, and the answer waits until this broker's state shows
// it (topic_config_changes.h). Internal topics stay each broker's own, changed here as above.

#include <map>
#include <set>

#include "server/completion_latch.h"
#include "server/handlers/handlers.h"
#include "server/handlers/topic_config_changes.h"
#include "server/logging.h"
#include "server/topic_config.h"
#include "server/topic_config_store.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

// The resource's entries become the topic's whole set of overrides.
topic_config_change replace_with(const wire::alter_configs_request::alter_configs_resource& r) {
  topic_overrides wanted;
  for (const auto& c : r.configs)
    wanted[c.name] = *c.value;
  return [wanted = std::move(wanted)](topic_overrides& configs) {
    configs = wanted;
    return validate_topic_overrides(configs);
  };
}

}  // namespace

boost::asio::awaitable<wire::alter_configs_response> handle_alter_configs(
    const broker_config& config, const metadata_view& metadata, controller_channel* controller,
    topic_registry& topics, topic_config_store& topic_configs, request_context& ctx,
    wire::alter_configs_request& request) {
  using wire::error_code;
  wire::alter_configs_response response;
  std::map<std::pair<int8_t, std::string>, int> seen;
  for (const auto& r : request.resources)
    ++seen[{r.resource_type, r.resource_name}];
  completion_latch persisted(ctx.executor);
  std::vector<controller_config_change> to_controller;
  // Reserved: each entry stays where it is while its change is persisted or decided.
  response.responses.reserve(request.resources.size());
  for (const auto& resource : request.resources) {
    auto& out = response.responses.emplace_back();
    out.resource_type = resource.resource_type;
    out.resource_name = resource.resource_name;
    out.error_message.reset();
    auto fail = [&out](error_code code, std::string message) {
      out.error_code = static_cast<int16_t>(code);
      out.error_message = std::move(message);
    };
    if (seen[{resource.resource_type, resource.resource_name}] > 1) {
      fail(error_code::invalid_request, "Each resource must appear at most once.");
      continue;
    }
    std::set<std::string> names;
    std::string nulls;
    bool duplicate = false;
    for (const auto& c : resource.configs) {
      duplicate = duplicate || !names.insert(c.name).second;
      if (!c.value) nulls += (nulls.empty() ? "" : ", ") + c.name;
    }
    if (duplicate) {
      fail(error_code::invalid_request, "Error due to duplicate config keys");
      continue;
    }
    if (!nulls.empty()) {
      fail(error_code::invalid_request, "Null value not supported for : " + nulls);
      continue;
    }
    if (resource.resource_type == config_resource_broker) {
      if (!resource.resource_name.empty() &&
          resource.resource_name != std::to_string(config.node_id)) {
        fail(error_code::invalid_request, "Unexpected broker id, expected " +
                                              std::to_string(config.node_id) + ", but received " +
                                              resource.resource_name);
        continue;
      }
      if (!names.empty()) {
        std::string list;
        for (const std::string& n : names)
          list += (list.empty() ? "" : ", ") + n;
        fail(error_code::invalid_request,
             "Cannot update these configs dynamically: Set(" + list + ")");
      }
      continue;
    }
    if (resource.resource_type != config_resource_topic) {
      fail(error_code::invalid_request,
           "Unknown resource type " + std::to_string(resource.resource_type));
      continue;
    }
    if (controller != nullptr) {
      to_controller.push_back({response.responses.size() - 1, replace_with(resource)});
      continue;
    }
    topic* t = topics.find(resource.resource_name);
    if (t == nullptr) {
      fail(error_code::unknown_topic_or_partition, "This server does not host this topic.");
      continue;
    }
    topic_overrides configs = t->configs;
    if (std::string err = replace_with(resource)(configs); !err.empty()) {
      fail(error_code::invalid_config, err);
      continue;
    }
    if (request.validate_only) continue;
    topic_configs.replace(*t, std::move(configs),
                          [fail, name = t->name, ticket = persisted.add()](std::error_code ec) {
                            if (ec) {
                              fail(error_code::kafka_storage_error, "Cannot persist topic configs");
                            } else {
                              log_info("topic ", name, ": configs replaced by AlterConfigs");
                            }
                            ticket.done();
                          });
  }
  if (!to_controller.empty()) {
    co_await change_topic_configs_in_cluster(metadata, *controller, ctx, request, response,
                                             std::move(to_controller));
  }
  co_await persisted.wait();
  co_return response;
}

}  // namespace sluice::server
