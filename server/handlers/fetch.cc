// Fetch (key 1), versions 4-17.
//
// Versions: v13+ name topics by id (KIP-516): an id the broker does not know answers
// UNKNOWN_TOPIC_ID for each of its partitions, and the response carries the ids back. v15+ carry
// the replica id inside ReplicaState (KIP-903; ReplicaEpoch is for KRaft's controller quorum and
// is not checked). v16 adds NodeEndpoints to the response for NOT_LEADER_OR_FOLLOWER answers that
// name a new leader (KIP-951); a single broker never has one to name, so it stays empty. v17 adds
// ReplicaDirectoryId (KIP-853), which Kafka reads only for its KRaft metadata log: ignored.
//
// Zero copy: each partition's `records` is a list of file slices from the segment store; the
// session sends them with sendfile, so record bytes never enter user space here.
//
// Every requested partition appears in the response (the Java consumer drops a full-fetch
// response that omits one). Consumers (replica_id -1) read up to the high watermark, or the last
// stable offset under read_committed; a follower (replica_id >= 0, a replica of the partition)
// reads up to the log end offset and its fetch offset is recorded as its log end offset, which
// drives the high watermark. Byte limits follow KIP-74: partition_max_bytes and max_bytes cap the
// response, except that the first batch of the first non-empty partition is returned whole.
//
// Long poll: with fewer than min_bytes available and no partition in error, the request parks on
// every partition it names until an append wakes it or max_wait_ms passes, then answers with what
// there is. Broker shutdown wakes parked fetches too, and so does DeleteTopics: the parked fetch
// holds its partitions by shared_ptr, and on waking finds the topic gone
// (UNKNOWN_TOPIC_OR_PARTITION).
//
// Cold data: the logs are read in cached_only mode; data not in the page cache (an index of an old
// segment, a batch header, the slices to send) is warmed on the disk executor first and the fetch
// filled again, so a consumer catching up on evicted data never stalls the io thread's other
// connections. After three rounds (data evicted as fast as it is warmed) it reads as it finds.
//
// Sessions (KIP-227, server/fetch_sessions.h): a full fetch with epoch 0 gets a session id when
// a slot is free; incremental fetches update the session and get only the partitions with
// something new. Errors as in Kafka: FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH
// (also when a duplicate request moved the session on meanwhile), FETCH_SESSION_TOPIC_ID_ERROR.
//
// Fetch from follower (KIP-392): from v11 a consumer may fetch from a follower, which serves it up
// to its own high watermark (the leader's, as far as its log reaches). With replica.selector.class
// set, a leader answers a consumer whose rack_id names another replica's rack with no records and
// that replica as PreferredReadReplica (server/replica_selector.h). A consumer at a follower
// with an offset past the follower's log end and no leader epoch gets no records rather than
// OFFSET_OUT_OF_RANGE (it may have come on stale metadata; Kafka's answer since
// apache/kafka#12734).
//
// Deviations: aborted_transactions is empty under read_committed (no transactions yet) and null
// otherwise, as in Kafka.

#include <algorithm>
#include <chrono>
#include <limits>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/broker_stats.h"
#include "server/cluster/metadata_image.h"
#include "server/completion_latch.h"
#include "server/errors.h"
#include "server/fetch_sessions.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"
#include "server/partition_directory.h"
#include "server/replica_manager.h"
#include "server/replica_selector.h"
#include "server/timers.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

namespace asio = boost::asio;
using wire::error_code;

constexpr int8_t read_committed = 1;

// A fetch parked on some partitions until one of them gets data or its time is up. The deadline
// comes from the broker's timer_service, so tests move time by hand.
class parked_fetch final : public data_waiter {
 public:
  // Holds the partitions: DeleteTopics may remove them while this waits (it wakes us first).
  parked_fetch(asio::any_io_executor executor, std::vector<std::shared_ptr<partition>> partitions)
      : wake_(std::move(executor)), partitions_(std::move(partitions)) {
    for (const auto& p : partitions_)
      p->add_waiter(this);
  }
  ~parked_fetch() {
    for (const auto& p : partitions_)
      p->remove_waiter(this);
  }
  parked_fetch(const parked_fetch&) = delete;
  parked_fetch& operator=(const parked_fetch&) = delete;

  void on_data() override { wake_.cancel(); }

  asio::awaitable<void> wait_for(timer_service& timers, std::chrono::milliseconds left) {
    timer_handle deadline = timers.schedule(left, [this] { wake_.cancel(); });
    wake_.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ignored;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }

 private:
  asio::steady_timer wake_;
  std::vector<std::shared_ptr<partition>> partitions_;
};

struct fill_result {
  int64_t bytes = 0;
  bool has_error = false;
  bool diverged = false;    // a partition answers with DivergingEpoch: no waiting
  bool redirected = false;  // a partition names a preferred read replica: no waiting either
  std::vector<std::shared_ptr<partition>> partitions;  // the ones that exist, to park on
  // Partitions whose data was not in memory, with what to warm before filling again.
  std::vector<std::pair<std::shared_ptr<partition>, storage::cold_data>> cold;
};

// How often a fetch warms cold data and looks again before it reads whatever it finds, waiting
// for the disk if it must: a bound on the rounds for data that keeps being evicted.
constexpr int max_warm_rounds = 3;

error_code check_leader_epoch(int32_t requested, const partition& p) {
  // Any negative epoch means "not given" (Kafka's FetchRequest.optionalEpoch).
  if (requested < 0 || requested == p.leader_epoch()) return error_code::none;
  return requested < p.leader_epoch() ? error_code::fenced_leader_epoch
                                      : error_code::unknown_leader_epoch;
}

// The components a fill reads, besides the request.
struct fill_sources {
  const broker_config& config;
  const metadata_view& metadata;
  replica_manager* replicas;
  topic_registry& topics;
  partition_directory& partitions;
};

// Builds the whole response from the current state of the logs.
fill_result fill(const fill_sources& from, const wire::fetch_request& request, int16_t version,
                 bool by_topic_id, wire::fetch_response& response, storage::read_mode mode) {
  fill_result result;
  const bool follower = request.replica_id >= 0;
  // From v11 a consumer's fetch carries its rack (KIP-392): followers serve it too, up to their
  // high watermark, and a leader with a replica selector may send it to one of them.
  const bool from_follower_allowed = !follower && version >= 11;
  const cluster::metadata_image* image = from.metadata.image();
  const replica_selector selector = from.config.read_replica_selector;
  const bool may_redirect = from_follower_allowed && image != nullptr &&
                            selector != replica_selector::leader_only && !request.rack_id.empty();
  int64_t budget = std::max<int64_t>(request.max_bytes, 0);
  response.responses.clear();
  response.responses.reserve(request.topics.size());
  for (const auto& requested_topic : request.topics) {
    auto& topic_out = response.responses.emplace_back();
    topic_out.topic = requested_topic.topic;
    topic_out.topic_id = requested_topic.topic_id;
    // Resolved on every pass: a topic deleted while the fetch was parked is unknown afterwards.
    const topic* by_id = by_topic_id ? from.topics.find_by_id(requested_topic.topic_id) : nullptr;
    topic_out.partitions.reserve(requested_topic.partitions.size());
    for (const auto& requested : requested_topic.partitions) {
      auto& out = topic_out.partitions.emplace_back();
      out.partition_index = requested.partition;
      out.high_watermark = -1;
      partition* p = nullptr;
      error_code ec =
          !by_topic_id ? from.partitions.find_partition(requested_topic.topic, requested.partition,
                                                        p, from_follower_allowed)
          : by_id != nullptr ? from.partitions.find_partition(by_id->name, requested.partition, p,
                                                              from_follower_allowed)
                             : error_code::unknown_topic_id;
      if (ec == error_code::none) {
        ec = check_leader_epoch(requested.current_leader_epoch, *p);
      }
      if (ec == error_code::none && follower && !p->is_replica(request.replica_id)) {
        ec = error_code::not_leader_or_follower;
      }
      if (ec != error_code::none) {
        out.error_code = static_cast<int16_t>(ec);
        result.has_error = true;
        continue;
      }
      result.partitions.push_back(p->shared_from_this());
      out.high_watermark = p->high_watermark();
      out.last_stable_offset = p->last_stable_offset();
      out.log_start_offset = p->log_start_offset();
      // Null under read_uncommitted, as Kafka sends it; empty (no transactions) otherwise.
      if (request.isolation_level == read_committed) {
        out.aborted_transactions.emplace();
      } else {
        out.aborted_transactions.reset();
      }
      const int64_t max_offset = follower ? p->log_end_offset()
                                 : request.isolation_level == read_committed
                                     ? out.last_stable_offset
                                     : out.high_watermark;
      const int64_t offset = requested.fetch_offset;
      if (requested.last_fetched_epoch >= 0) {
        // A follower (v12+, KIP-595) says which epoch its last batch had: if the leader's log
        // has that epoch ending before the fetch offset, or not at all, the follower's log
        // diverged. The answer names where the leader's copy of the epoch ends, with no records,
        // and the follower truncates there (Kafka's Partition.readRecords).
        auto [epoch, end] = p->log().end_offset_for_epoch(requested.last_fetched_epoch);
        if (end == storage::undefined_epoch_offset || epoch == storage::undefined_epoch ||
            offset < p->log_start_offset()) {
          out.error_code = static_cast<int16_t>(error_code::offset_out_of_range);
          result.has_error = true;
          continue;
        }
        if (epoch < requested.last_fetched_epoch || end < offset) {
          out.diverging_epoch.epoch = epoch;
          out.diverging_epoch.end_offset = end;
          result.diverged = true;
          continue;
        }
      }
      if (!follower && !p->is_leader() && requested.current_leader_epoch < 0 &&
          offset > p->log_end_offset()) {
        // A consumer at a follower without a leader epoch (Fetch v11+ without KIP-320, as
        // librdkafka before 2.1 sends it) may be there on stale metadata, ahead of what this
        // replica has copied so far. OFFSET_OUT_OF_RANGE would make it reset its position
        // (auto.offset.reset), so it gets no records instead and asks again, as Kafka answers
        // since apache/kafka#12734. With an epoch, a client knows to ask the leader instead.
        continue;
      }
      if (offset < p->log_start_offset() || offset > p->log_end_offset()) {
        out.error_code = static_cast<int16_t>(error_code::offset_out_of_range);
        result.has_error = true;
        continue;
      }
      if (may_redirect && p->is_leader()) {
        const int32_t chosen = select_read_replica(selector, *p, *image, request.rack_id, offset);
        if (chosen != p->leader_id()) {
          // No records: the consumer fetches them from the replica named (Kafka's answer).
          out.preferred_read_replica = chosen;
          result.redirected = true;
          continue;
        }
      }
      // Not before: a diverged follower's offset says nothing about what it holds.
      if (follower) {
        p->record_follower_fetch(request.replica_id, offset);
        if (from.replicas != nullptr) from.replicas->after_follower_fetch(*p);
      }
      const bool first_data = result.bytes == 0;
      const int64_t limit = std::min<int64_t>(requested.partition_max_bytes, budget);
      if (offset >= max_offset || (limit <= 0 && !first_data)) continue;
      storage::read_info read;
      if (std::error_code rec = p->log().read(offset, limit, max_offset, first_data, read, mode)) {
        if (rec == storage::errc::would_block) {
          result.cold.emplace_back(p->shared_from_this(), std::move(*read.cold));
          continue;
        }
        out.error_code = static_cast<int16_t>(to_kafka_error(rec));
        result.has_error = true;
        continue;
      }
      out.records.slices = std::move(read.slices);
      result.bytes += read.bytes;
      budget -= read.bytes;
    }
  }
  return result;
}

}  // namespace

asio::awaitable<wire::fetch_response> handle_fetch(
    const broker_config& config, const metadata_view& metadata, replica_manager* replicas,
    topic_registry& topics, partition_directory& partitions, fetch_session_cache& sessions,
    timer_service& timers, broker_stats& stats, const stop_signal& stopping, request_context& ctx,
    wire::fetch_request& request) {
  wire::fetch_response response;
  if (ctx.api_version >= 15) request.replica_id = request.replica_state.replica_id;
  const bool by_topic_id = ctx.api_version >= 13;

  // Fetch sessions (Kafka's FetchManager.newContext). Epoch 0 or -1 is a full fetch: it closes
  // the session it names, and epoch 0 asks for a new one. A positive epoch is an incremental
  // fetch of an existing session, which then stands for all the session's partitions.
  const int64_t now_ms = timers.monotonic_now().count();
  const bool full = request.session_epoch == 0 || request.session_epoch == -1;
  int32_t session_id = 0;
  int32_t session_epoch = 0;  // the epoch this fetch moved its session to
  if (full) {
    if (request.session_id != 0) sessions.remove(request.session_id);
  } else {
    fetch_session* session = sessions.find(request.session_id);
    error_code e = error_code::none;
    if (session == nullptr) {
      e = error_code::fetch_session_id_not_found;
    } else if (session->epoch() != request.session_epoch) {
      e = error_code::invalid_fetch_session_epoch;
    } else if (session->uses_topic_ids() != by_topic_id) {
      e = error_code::fetch_session_topic_id_error;
    }
    if (e != error_code::none) {
      response.error_code = static_cast<int16_t>(e);
      co_return response;
    }
    session->update(request);
    if (session->size() == 0) {
      // Everything forgotten: the session ends, and so does this fetch.
      sessions.remove(session->id());
      co_return response;
    }
    session->advance(now_ms);
    session->to_request(request);
    session_id = session->id();
    session_epoch = session->epoch();
  }

  const fill_sources from{config, metadata, replicas, topics, partitions};
  const auto deadline =
      timers.monotonic_now() + std::chrono::milliseconds(std::max(request.max_wait_ms, 0));
  int warm_rounds = 0;
  for (;;) {
    fill_result filled = fill(from, request, ctx.api_version, by_topic_id, response,
                              warm_rounds < max_warm_rounds ? storage::read_mode::cached_only
                                                            : storage::read_mode::may_block);
    if (!filled.cold.empty()) {
      // Data that is not in the page cache is read into it on the disk executor, so that this
      // thread never waits for the disk and the other connections are served meanwhile.
      ++warm_rounds;
      stats.count_cold_read();
      completion_latch warmed(ctx.executor);
      for (auto& [p, cold] : filled.cold) {
        p->log().warm_async(cold, [ticket = warmed.add()](std::error_code) { ticket.done(); });
      }
      co_await warmed.wait();
      continue;
    }
    const auto left = deadline - timers.monotonic_now();
    if (filled.bytes >= request.min_bytes || filled.has_error || filled.diverged ||
        filled.redirected || stopping.raised() || left <= std::chrono::milliseconds(0) ||
        filled.partitions.empty()) {
      break;
    }
    parked_fetch parked(ctx.executor, std::move(filled.partitions));
    co_await parked.wait_for(timers, left);
  }

  if (session_id != 0) {
    // The session may have moved on while this fetch waited (a duplicate request), or gone.
    fetch_session* session = sessions.find(session_id);
    if (session == nullptr || session->epoch() != session_epoch) {
      wire::fetch_response moved;
      moved.error_code = static_cast<int16_t>(error_code::invalid_fetch_session_epoch);
      moved.session_id = session_id;
      co_return moved;
    }
    session->filter_response(response);
    response.session_id = session_id;
  } else if (request.session_epoch == 0) {
    size_t partitions = 0;
    for (const auto& t : request.topics)
      partitions += t.partitions.size();
    if (fetch_session* session =
            sessions.create(request.replica_id >= 0, by_topic_id, partitions, now_ms)) {
      session->update(request);
      session->remember_response(response);
      response.session_id = session->id();
    }
  }
  co_return response;
}

}  // namespace sluice::server
