#pragma once
// Incremental fetch sessions (KIP-227), as Kafka's FetchSessionCache keeps them.
//
// A client (consumer or follower) that fetches many partitions sends them all once, in a full
// fetch with session epoch 0; the broker remembers them in a session and answers with its id.
// Later fetches name the session and its next epoch, and carry only the partitions whose fetch
// state changed (plus ForgottenTopicsData for the ones to drop); the response carries only the
// partitions with something new: records, a moved high watermark or log start, an error, or a
// diverging epoch. With hundreds of partitions that makes an idle fetch a few bytes each way.
//
// The cache holds at most max.incremental.fetch.session.cache.slots sessions. When it is full, a
// new session takes the slot of one unused for longer than the eviction time (120 s, Kafka's
// constant); failing that, of the "least valuable" session that is old enough: a follower's
// session may take a consumer's, and otherwise the new session needs more partitions than the one
// it replaces. When nothing can be evicted the full fetch is answered with session id 0 (no
// session), which every client handles by sending full fetches.
//
// Threading: the io thread, like everything in server/.

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "wire/codec.h"
#include "wire/generated/fetch_request.h"
#include "wire/generated/fetch_response.h"

namespace sluice::server {

// What the session remembers of one partition: the requester's fetch state (updated by each
// incremental request that names the partition) and what the last response reported.
struct cached_fetch_partition {
  std::string topic;      // sessions of v12 and older
  wire::uuid topic_id{};  // sessions of v13 and newer
  int32_t partition = 0;
  int32_t current_leader_epoch = -1;
  int64_t fetch_offset = 0;
  int32_t last_fetched_epoch = -1;
  int64_t log_start_offset = -1;
  int32_t partition_max_bytes = 0;
  // As last sent; -1 means "send again" (never sent, or last sent with an error).
  int64_t high_watermark = -1;
  int64_t sent_log_start_offset = -1;
};

class fetch_session {
 public:
  using key = std::tuple<wire::uuid, std::string, int32_t>;

  fetch_session(int32_t id, bool privileged, bool uses_topic_ids, int64_t now_ms)
      : id_(id),
        privileged_(privileged),
        uses_topic_ids_(uses_topic_ids),
        created_ms_(now_ms),
        last_used_ms_(now_ms) {}

  int32_t id() const { return id_; }
  // The epoch the next request must carry.
  int32_t epoch() const { return epoch_; }
  bool privileged() const { return privileged_; }
  bool uses_topic_ids() const { return uses_topic_ids_; }
  int64_t created_ms() const { return created_ms_; }
  int64_t last_used_ms() const { return last_used_ms_; }
  size_t size() const { return order_.size(); }

  // Adds or updates the partitions a request names, then drops the forgotten ones.
  void update(const wire::fetch_request& request);
  // The session's partitions as a request, in the session's order (the fetch fills them so).
  void to_request(wire::fetch_request& out) const;
  // Keeps in `response` only the partitions with something new and remembers what was sent;
  // those that returned records go to the back of the order, so that a byte limit does not
  // always favour the same partitions.
  void filter_response(wire::fetch_response& response);
  // Records what a full response sent, for the first incremental one.
  void remember_response(const wire::fetch_response& response);

  void advance(int64_t now_ms);

 private:
  key key_of(const std::string& topic, const wire::uuid& id, int32_t partition) const {
    return uses_topic_ids_ ? key{id, {}, partition} : key{{}, topic, partition};
  }

  int32_t id_;
  int32_t epoch_ = 1;
  bool privileged_;
  bool uses_topic_ids_;
  int64_t created_ms_;
  int64_t last_used_ms_;
  std::list<cached_fetch_partition> order_;
  std::map<key, std::list<cached_fetch_partition>::iterator> index_;
};

class fetch_session_cache {
 public:
  static constexpr int64_t eviction_ms = 120'000;  // MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS

  explicit fetch_session_cache(size_t slots) : slots_(slots) {}

  fetch_session* find(int32_t id);
  // A new session for a full fetch that named `partitions`, or nullptr when there is no slot and
  // none can be evicted (see above).
  fetch_session* create(bool privileged, bool uses_topic_ids, size_t partitions, int64_t now_ms);
  void remove(int32_t id);
  size_t size() const { return sessions_.size(); }

 private:
  bool evict_one(bool privileged, size_t partitions, int64_t now_ms);

  size_t slots_;
  std::unordered_map<int32_t, std::unique_ptr<fetch_session>> sessions_;
  std::mt19937 random_{std::random_device{}()};
};

// Kafka's FetchMetadata.nextEpoch: 1 after INT32_MAX.
inline int32_t next_session_epoch(int32_t epoch) {
  return epoch == INT32_MAX ? 1 : epoch + 1;
}

}  // namespace sluice::server
