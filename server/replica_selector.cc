#include "server/replica_selector.h"

#include "server/cluster/metadata_image.h"
#include "server/partition.h"

namespace sluice::server {

bool parse_replica_selector(std::string_view class_name, replica_selector& out) {
  if (class_name.empty()) {
    out = replica_selector::leader_only;
    return true;
  }
  if (class_name == rack_aware_selector_class) {
    out = replica_selector::rack_aware;
    return true;
  }
  return false;
}

int32_t select_read_replica(replica_selector selector, const partition& p,
                            const cluster::metadata_image& image, std::string_view client_rack,
                            int64_t fetch_offset) {
  const int32_t leader = p.leader_id();
  if (selector != replica_selector::rack_aware || client_rack.empty()) return leader;
  auto in_rack = [&](int32_t id) {
    const cluster::live_broker* b = image.broker(id);
    return b != nullptr && b->record.rack && *b->record.rack == client_rack;
  };
  if (in_rack(leader)) return leader;
  int32_t best = leader;
  int64_t best_end = -1;
  for (int32_t id : p.isr()) {
    if (id == leader || !in_rack(id)) continue;
    const int64_t end = p.follower_log_end(id);
    if (end >= fetch_offset && end > best_end) {
      best = id;
      best_end = end;
    }
  }
  return best;
}

}  // namespace sluice::server
