// DescribeConfigs (key 32), versions 0-4.
//
// TOPIC resources (type 2): every supported topic config (server/topic_config.h) with the value
// in effect and its source: DYNAMIC_TOPIC_CONFIG (1) for the topic's own override,
// STATIC_BROKER_CONFIG (4) when it follows a key set in server.properties or by --override,
// DEFAULT_CONFIG (5) otherwise. Synonyms (v1+, when include_synonyms) are Kafka's list, built as
// ConfigHelper.createTopicConfigEntry does: the override, then the broker synonyms that are set,
// then those with a Kafka default, from the synonym the topic config maps to onwards (so
// retention.ms without overrides lists none: Kafka has no default for log.retention.ms). An
// unknown topic is UNKNOWN_TOPIC_OR_PARTITION, a malformed name INVALID_TOPIC_EXCEPTION.
//
// BROKER resources (type 4) named by this node's id: every key of the broker's configuration
// table, read-only (none is dynamic), source STATIC_BROKER_CONFIG or DEFAULT_CONFIG. An empty
// name (the cluster-wide dynamic defaults) lists nothing, as on a Kafka cluster that has none;
// another id is INVALID_REQUEST.
//
// configuration_keys null or empty asks for everything; named keys that do not exist are left
// out. config_type and documentation (when include_documentation) from v3.
//
// Deviations: other resource types (BROKER_LOGGER, GROUP, CLIENT_METRICS) are INVALID_REQUEST.
// Broker keys that do not mirror a topic config report config_type UNKNOWN.

#include <algorithm>

#include "server/cluster/metadata_image.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"
#include "server/topic_config.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

using result_t = wire::describe_configs_response::describe_configs_result;

void fill(const std::vector<described_config>& configs,
          const wire::describe_configs_request::describe_configs_resource& resource,
          const wire::describe_configs_request& request, result_t& out) {
  const bool all = !resource.configuration_keys || resource.configuration_keys->empty();
  for (const described_config& d : configs) {
    if (!all && std::find(resource.configuration_keys->begin(), resource.configuration_keys->end(),
                          d.name) == resource.configuration_keys->end()) {
      continue;
    }
    auto& c = out.configs.emplace_back();
    c.name = d.name;
    c.value = d.value;
    c.read_only = d.read_only;
    c.is_default = d.source == config_source::default_config;
    c.config_source = static_cast<int8_t>(d.source);
    c.is_sensitive = d.is_sensitive;
    if (request.include_synonyms) {
      for (const config_synonym& s : d.synonyms) {
        auto& syn = c.synonyms.emplace_back();
        syn.name = s.name;
        syn.value = s.value;
        syn.source = static_cast<int8_t>(s.source);
      }
    }
    c.config_type = static_cast<int8_t>(d.type);
    if (request.include_documentation) {
      c.documentation = std::string(d.doc);
    } else {
      c.documentation.reset();
    }
  }
}

}  // namespace

wire::describe_configs_response handle_describe_configs(const broker_config& config,
                                                        const metadata_view& metadata,
                                                        topic_registry& topics, request_context&,
                                                        wire::describe_configs_request& request) {
  using wire::error_code;
  wire::describe_configs_response response;
  for (const auto& resource : request.resources) {
    result_t& out = response.results.emplace_back();
    out.resource_type = resource.resource_type;
    out.resource_name = resource.resource_name;
    out.error_message.reset();
    auto fail = [&](error_code code, std::string message) {
      out.error_code = static_cast<int16_t>(code);
      if (!message.empty()) out.error_message = std::move(message);
    };
    if (resource.resource_type == config_resource_topic) {
      if (!is_valid_topic_name(resource.resource_name)) {
        fail(error_code::invalid_topic_exception,
             "Topic name '" + resource.resource_name + "' is illegal");
        continue;
      }
      if (const cluster::metadata_image* image = metadata.image()) {
        // In a cluster, from the topic's record: every broker answers, replica or not.
        std::optional<wire::uuid> id = image->topic_id(resource.resource_name);
        if (!id) {
          fail(error_code::unknown_topic_or_partition, "");
          continue;
        }
        const auto& stored = image->topic(*id)->configs;
        fill(describe_topic_configs(config, topic_overrides(stored.begin(), stored.end())),
             resource, request, out);
        continue;
      }
      topic* t = topics.find(resource.resource_name);
      if (t == nullptr) {
        fail(error_code::unknown_topic_or_partition, "");
        continue;
      }
      fill(describe_topic_configs(config, t->configs), resource, request, out);
    } else if (resource.resource_type == config_resource_broker) {
      if (resource.resource_name.empty()) continue;
      if (resource.resource_name != std::to_string(config.node_id)) {
        fail(error_code::invalid_request,
             "Unexpected broker id, expected " + std::to_string(config.node_id) +
                 " or empty string, but received " + resource.resource_name);
        continue;
      }
      fill(describe_broker_configs(config), resource, request, out);
    } else {
      fail(error_code::invalid_request,
           "Unsupported resource type: " + std::to_string(resource.resource_type));
    }
  }
  return response;
}

}  // namespace sluice::server
