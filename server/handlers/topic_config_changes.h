#pragma once
// What AlterConfigs and IncrementalAlterConfigs share in a cluster, where a topic's configs live
// in its cluster record and only the controller changes them (cluster/controller.h,
// alter_topic_configs), as CreatePartitions does:
//
// - On the controller, each TOPIC resource is one controller operation, applied to the record as
//   the store holds it when its turn comes; the answer waits until this broker's state shows the
//   writes, so that the client's next request here (DescribeConfigs, a produce that
//   max.message.bytes now refuses) sees them.
// - On any other broker, the TOPIC resources go to the controller as a request of the same API
//   and version, with the entries as the client sent them (KIP-590's forwarding, without the
//   Envelope); the answers are relayed and, for each change, the answer waits until this
//   broker's state shows the topic as the store now holds it.
//
// The other resources (BROKER, malformed, internal topics: each broker's own until group
// coordination moves into the cluster) never leave the broker that got the request: a BROKER
// resource names the broker that must answer for it, which the controller is not.
//
// Threading: io thread only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "server/cluster/metadata_image.h"
#include "server/controller_channel.h"
#include "server/logging.h"
#include "server/metadata_view.h"
#include "server/request_context.h"
#include "server/topic_config.h"
#include "wire/error_code.h"

namespace sluice::server {

// Makes a topic's overrides the new whole set; "" or why it is refused (INVALID_CONFIG). The
// validation is the standalone path's: the handler builds it from the same code.
using topic_config_change = std::function<std::string(topic_overrides& configs)>;

// A TOPIC resource for the controller: its position in the request and in the response.
struct controller_config_change {
  size_t index = 0;
  topic_config_change change;
};

// How long the answer waits for this broker's state to show a change the controller wrote.
inline constexpr std::chrono::milliseconds config_change_visible_timeout{5000};

// Applies `changes` (resources of `request`, whose entries in `response` already carry their
// type and name) through the controller, filling those entries' error codes and messages.
template <class Request, class Response>
boost::asio::awaitable<void> change_topic_configs_in_cluster(
    const metadata_view& metadata, controller_channel& channel, request_context& ctx,
    const Request& request, Response& response, std::vector<controller_config_change> changes) {
  using wire::error_code;
  auto set = [&response](size_t index, int16_t code, std::optional<std::string> message) {
    auto& out = response.responses[index];
    out.error_code = code;
    out.error_message = code == 0 ? std::nullopt : std::move(message);
  };

  if (!channel.local_is_controller()) {
    Request forwarded;
    forwarded.validate_only = request.validate_only;
    for (const controller_config_change& c : changes)
      forwarded.resources.push_back(request.resources[c.index]);
    auto answer = co_await channel.forward(forwarded, ctx.api_version);
    if (answer.error) {
      for (const controller_config_change& c : changes) {
        set(c.index, static_cast<int16_t>(error_code::not_controller),
            "No controller could be reached: " + answer.error.message());
      }
      co_return;
    }
    std::map<std::pair<int8_t, std::string>, size_t> answered;
    for (size_t i = 0; i < answer.body.responses.size(); ++i) {
      const auto& r = answer.body.responses[i];
      answered.emplace(std::pair(r.resource_type, r.resource_name), i);
    }
    std::vector<std::string> changed;
    for (const controller_config_change& c : changes) {
      const auto& out = response.responses[c.index];
      auto it = answered.find({out.resource_type, out.resource_name});
      if (it == answered.end()) {
        set(c.index, static_cast<int16_t>(error_code::unknown_server_error),
            "The controller's answer left this resource out.");
        continue;
      }
      const auto& r = answer.body.responses[it->second];
      set(c.index, r.error_code, r.error_message);
      if (r.error_code == 0 && !request.validate_only) changed.push_back(out.resource_name);
    }
    for (const std::string& name : changed) {
      if (!co_await channel.catch_up_with_topic(name, config_change_visible_timeout)) {
        log_warn("configs of topic ", name, " changed by the controller for ", ctx.peer,
                 " do not show in this broker's cluster state after ",
                 config_change_visible_timeout.count(), " ms");
      }
    }
    co_return;
  }

  int64_t written = 0;
  for (controller_config_change& c : changes) {
    cluster::alter_topic_configs_request ask;
    ask.name = response.responses[c.index].resource_name;
    ask.validate_only = request.validate_only;
    ask.change = [change = std::move(c.change)](std::map<std::string, std::string>& stored) {
      topic_overrides configs(stored.begin(), stored.end());
      std::string why = change(configs);
      stored = std::map<std::string, std::string>(configs.begin(), configs.end());
      return why;
    };
    cluster::alter_topic_configs_result r =
        co_await channel.local().alter_topic_configs(std::move(ask));
    set(c.index, static_cast<int16_t>(r.error), r.message);
    written = std::max(written, r.revision);
  }
  if (written == 0) co_return;
  // Named: GCC 12 destroys a std::function made from a lambda inside a co_await twice.
  std::function<bool()> shown = [&metadata, written] {
    return metadata.image()->revision() >= written;
  };
  if (!co_await channel.wait_until(std::move(shown), config_change_visible_timeout)) {
    log_warn("topic configs written at revision ", written, " for ", ctx.peer,
             " do not show in this broker's cluster state after ",
             config_change_visible_timeout.count(), " ms");
  }
}

}  // namespace sluice::server
