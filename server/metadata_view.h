#pragma once
// Who is in the cluster and where, as requests are answered: the same questions whether this
// broker runs alone (it is the whole cluster, its own controller, at its own advertised
// addresses) or is a member of a cluster (the answers come from the member's metadata image).
// Metadata, DescribeCluster and FindCoordinator answer from it; handlers that answer from the
// cluster state in a cluster read the image through it.
//
// Threading: io thread only, like the image it reads.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config.h"

namespace sluice::server {

namespace cluster {
class cluster_member;
class metadata_image;
}  // namespace cluster

struct broker_address {
  int32_t node_id = -1;
  std::string host;
  int32_t port = 0;
  std::optional<std::string> rack;
};

class metadata_view {
 public:
  // `member`: null for a broker that runs alone. `config` and `member` must outlive the view;
  // the view reads them as they are now, so the ports bound at start are the ones advertised.
  metadata_view(const broker_config& config, const cluster::cluster_member* member,
                std::string cluster_id);

  int32_t node_id() const { return config_.node_id; }
  const std::string& cluster_id() const { return cluster_id_; }
  bool in_cluster() const { return member_ != nullptr; }
  // The cluster state this broker follows; null when it runs alone.
  const cluster::metadata_image* image() const;

  // The address this broker advertises to clients of the listener named `listener_name`, as
  // Kafka answers each client with the endpoints of the listener it connected to. An empty or
  // unknown name (a request that came in on no socket, as in handler tests) gets the
  // inter-broker listener's.
  const listener& advertised(std::string_view listener_name = {}) const;
  // The live brokers at their addresses on the listener named `listener_name` (empty: the
  // inter-broker one), as Metadata and DescribeCluster list them; this broker alone when it runs
  // alone.
  std::vector<broker_address> live_brokers(std::string_view listener_name) const;
  // Broker `node_id` at its address on `listener_name` (empty: the inter-broker one), if it is
  // live and has that listener.
  std::optional<broker_address> live_broker(int32_t node_id, std::string_view listener_name) const;
  // The cluster's controller, -1 while none is elected; this broker when it runs alone.
  int32_t controller_id() const;

 private:
  std::string_view listener_or_inter_broker(std::string_view listener_name) const;

  const broker_config& config_;
  const cluster::cluster_member* member_;
  std::string cluster_id_;
};

}  // namespace sluice::server
