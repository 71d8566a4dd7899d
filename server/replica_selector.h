#pragma once
// Fetch from follower (KIP-392): which replica a consumer should read a partition from, chosen
// by the partition's leader when replica.selector.class names Kafka's RackAwareReplicaSelector.
//
// As Kafka's selector: a consumer without a rack (client.rack), or with one no replica shares,
// reads from the leader; if the leader is in its rack, from the leader; otherwise from the
// replica in its rack that is furthest along. Only in-sync replicas whose log reaches the fetch
// offset are candidates (Kafka asks for a log end at or past the offset and a catch-up within
// replica.lag.time.max.ms, which the ISR already says).
//
// Threading: io thread (reads the partition's leader state and the metadata image).
#include <cstdint>
#include <string_view>

namespace sluice::server {

namespace cluster {
class metadata_image;
}
class partition;

enum class replica_selector { leader_only, rack_aware };

// Kafka's class names; "" (the default) is leader_only. False for a name Sluice does not know.
bool parse_replica_selector(std::string_view class_name, replica_selector& out);
constexpr std::string_view rack_aware_selector_class =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";

// The broker the consumer in `client_rack` should fetch `fetch_offset` of `p` from: `p`'s leader
// (this broker) or one of its followers. `p` must be the leader.
int32_t select_read_replica(replica_selector selector, const partition& p,
                            const cluster::metadata_image& image, std::string_view client_rack,
                            int64_t fetch_offset);

}  // namespace sluice::server
