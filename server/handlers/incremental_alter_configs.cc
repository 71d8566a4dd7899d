// IncrementalAlterConfigs (key 44), versions 0-1.
//
// TOPIC resources: operations apply in order to the topic's current overrides. SET (0) sets a
// value; DELETE (1) removes an override (the config returns to the broker's value; deleting one
// that is not set is a no-op); APPEND (2) and SUBTRACT (3) add items to or remove items from a
// LIST config (cleanup.policy), starting from its current value, and are INVALID_CONFIG for any
// other config ("Config value append is not allowed for config key: x", Kafka's words). The
// resulting set goes through the topic config table (INVALID_CONFIG for an unknown name or a
// refused value, nothing changes), takes effect on the logs at once and is persisted before the
// answer. validate_only checks and changes nothing. An unknown operation is INVALID_REQUEST.
//
// Resource-level rules, BROKER resources and errors are those of AlterConfigs (alter_configs.cc):
// Sluice has no dynamic broker configs, so SET, APPEND and SUBTRACT on a broker are
// INVALID_REQUEST "Cannot update these configs dynamically"; DELETE alone changes nothing and
// succeeds, as in Kafka.
//
// In a cluster the operations apply to the topic's cluster record, on the controller (any other
// broker forwards the TOPIC resources to it), to the overrides as the store holds them when the
// controller's turn comes; as for AlterConfigs (alter_configs.cc, topic_config_changes.h).

#include <algorithm>
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

enum op : int8_t { op_set = 0, op_delete = 1, op_append = 2, op_subtract = 3 };

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items)
    out += (out.empty() ? "" : ",") + i;
  return out;
}

// The resource's operations, in order, on the topic's current overrides; then the whole set is
// validated.
topic_config_change apply_operations(
    const broker_config& config,
    const wire::incremental_alter_configs_request::alter_configs_resource& r) {
  return [&config, ops = r.configs](topic_overrides& configs) -> std::string {
    for (const auto& c : ops) {
      if (c.config_operation == op_set) {
        configs[c.name] = *c.value;
      } else if (c.config_operation == op_delete) {
        configs.erase(c.name);
      } else {
        const char* verb = c.config_operation == op_append ? "append" : "subtract";
        const topic_config_spec* spec = find_topic_config(c.name);
        if (spec == nullptr) return validate_topic_config(c.name, *c.value);
        if (spec->type != config_type::list) {
          return std::string("Config value ") + verb + " is not allowed for config key: " + c.name;
        }
        std::vector<std::string> items = split_list(effective_value(config, configs, *spec));
        for (const std::string& v : split_list(*c.value)) {
          auto at = std::find(items.begin(), items.end(), v);
          if (c.config_operation == op_append && at == items.end()) items.push_back(v);
          if (c.config_operation == op_subtract && at != items.end()) items.erase(at);
        }
        configs[c.name] = join_list(items);
      }
    }
    return validate_topic_overrides(configs);
  };
}

}  // namespace

boost::asio::awaitable<wire::incremental_alter_configs_response> handle_incremental_alter_configs(
    const broker_config& config, const metadata_view& metadata, controller_channel* controller,
    topic_registry& topics, topic_config_store& topic_configs, request_context& ctx,
    wire::incremental_alter_configs_request& request) {
  using wire::error_code;
  wire::incremental_alter_configs_response response;
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
    int8_t bad_op = -1;
    for (const auto& c : resource.configs) {
      duplicate = duplicate || !names.insert(c.name).second;
      if (c.config_operation < op_set || c.config_operation > op_subtract) {
        bad_op = c.config_operation;
      }
      if (!c.value && c.config_operation != op_delete) {
        nulls += (nulls.empty() ? "" : ", ") + c.name;
      }
    }
    if (duplicate) {
      fail(error_code::invalid_request, "Error due to duplicate config keys");
      continue;
    }
    if (!nulls.empty()) {
      fail(error_code::invalid_request, "Null value not supported for : " + nulls);
      continue;
    }
    if (bad_op != -1) {
      fail(error_code::invalid_request, "Unknown operations type " + std::to_string(bad_op));
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
      std::string list;
      for (const auto& c : resource.configs) {
        if (c.config_operation != op_delete) list += (list.empty() ? "" : ", ") + c.name;
      }
      if (!list.empty()) {
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
      to_controller.push_back({response.responses.size() - 1, apply_operations(config, resource)});
      continue;
    }
    topic* t = topics.find(resource.resource_name);
    if (t == nullptr) {
      fail(error_code::unknown_topic_or_partition, "This server does not host this topic.");
      continue;
    }
    topic_overrides configs = t->configs;
    if (std::string problem = apply_operations(config, resource)(configs); !problem.empty()) {
      fail(error_code::invalid_config, problem);
      continue;
    }
    if (request.validate_only) continue;
    topic_configs.replace(*t, std::move(configs),
                          [fail, name = t->name, ticket = persisted.add()](std::error_code ec) {
                            if (ec) {
                              fail(error_code::kafka_storage_error, "Cannot persist topic configs");
                            } else {
                              log_info("topic ", name,
                                       ": configs changed by IncrementalAlterConfigs");
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
