#include "server/cluster/replica_fetcher.h"

#include <algorithm>
#include <exception>
#include <map>
#include <set>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/errors.h"
#include "server/fetch_sessions.h"
#include "server/logging.h"
#include "wire/generated/api_versions_request.h"
#include "wire/generated/api_versions_response.h"
#include "wire/generated/fetch_request.h"
#include "wire/generated/fetch_response.h"
#include "wire/record_batch.h"

namespace sluice::server::cluster {

namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using wire::error_code;

// Non-flexible, so that any Kafka-protocol broker reads it, and enough to learn the ranges.
constexpr int16_t api_versions_version = 2;

std::string hex(const wire::uuid& id) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : id) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace

class replica_fetcher::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(asio::any_io_executor executor, timer_service& timers, replica_sink& sink,
       replica_fetcher_config config)
      : executor_(std::move(executor)),
        timers_(timers),
        sink_(sink),
        config_(with_client_defaults(std::move(config))),
        who_("replica fetcher for leader broker " + std::to_string(config_.leader_id)),
        client_(executor_, timers_, config_.client),
        wake_(executor_) {}

  void add(std::vector<partition_to_fetch> partitions);
  void remove(const std::vector<topic_partition_id>& partitions);
  void start();
  void stop();

  size_t partition_count() const { return partitions_.size(); }
  bool running() const { return started_ && !stopped_; }
  int16_t fetch_version() const { return fetch_version_; }
  int32_t leader_id() const { return config_.leader_id; }

 private:
  struct partition_state {
    std::string topic;
    replica_sink::position position;
    // Not fetched before this (monotonic time): the leader sent a batch with broken framing.
    std::optional<milliseconds> retry_at;
    // Catch-up progress, for the log.
    bool lagging = false;
    bool lag_reported = false;
    milliseconds lagging_since{0};
    int64_t bytes_since = 0;
  };

  static replica_fetcher_config with_client_defaults(replica_fetcher_config config) {
    config.client.local_node_id = config.local_node_id;
    if (config.client.name.empty())
      config.client.name = "broker " + std::to_string(config.leader_id);
    return config;
  }

  static asio::awaitable<void> run(std::shared_ptr<impl> self);
  asio::awaitable<void> loop();
  // Learns the leader's Fetch versions; false (logged) when the fetcher must back off.
  asio::awaitable<bool> negotiate();
  // Fills `request` with what this round fetches; false when no partition can be fetched now
  // (`next_retry`: when a delayed one can).
  bool build(wire::fetch_request& request, std::optional<milliseconds>& next_retry);
  asio::awaitable<void> handle_response(const wire::fetch_response& response);
  asio::awaitable<void> handle_partition(topic_partition_id tp,
                                         const wire::fetch_response::partition_data& data);
  // After the fetcher changed the local log: the new position, or the partition stops.
  void after_change(topic_partition_id tp, std::error_code error, const char* what);
  void stop_partition(topic_partition_id tp, error_code error, const std::string& why);
  void progress(topic_partition_id tp, partition_state& state, int64_t high_watermark,
                size_t bytes);
  void connection_failed(const std::string& why);
  asio::awaitable<void> wait(std::optional<milliseconds> timeout, bool wake_on_change);
  std::string name(topic_partition_id tp) const;

  asio::any_io_executor executor_;
  timer_service& timers_;
  replica_sink& sink_;
  replica_fetcher_config config_;
  std::string who_;  // how every log line starts
  broker_client client_;
  asio::steady_timer wake_;
  std::map<topic_partition_id, partition_state> partitions_;
  // What the leader's fetch session holds for each partition: the position last sent.
  std::map<topic_partition_id, replica_sink::position> session_;
  int32_t session_id_ = 0;
  int32_t session_epoch_ = 0;  // 0: the next fetch is a full one
  int16_t fetch_version_ = 0;  // 0: ask the leader first
  bool started_ = false;
  bool stopped_ = false;
  bool waiting_for_change_ = false;
  bool failing_ = false;  // the last exchange with the leader failed (logged once)
};

void replica_fetcher::impl::add(std::vector<partition_to_fetch> partitions) {
  if (partitions.empty()) return;
  size_t added = 0;
  for (partition_to_fetch& p : partitions) {
    partition_state state;
    state.topic = std::move(p.topic);
    state.position = p.initial;
    added += partitions_.insert_or_assign(p.tp, std::move(state)).second ? 1 : 0;
  }
  log_info(who_, ": partitions: ", added, " added, ", partitions.size() - added, " set again, ",
           partitions_.size(), " in all");
  if (waiting_for_change_) wake_.cancel();
}

void replica_fetcher::impl::remove(const std::vector<topic_partition_id>& partitions) {
  size_t removed = 0;
  for (const topic_partition_id& tp : partitions)
    removed += partitions_.erase(tp);
  if (removed > 0) {
    log_info(who_, ": partitions: ", removed, " removed, ", partitions_.size(), " left");
  }
}

void replica_fetcher::impl::start() {
  if (started_ || stopped_) return;
  started_ = true;
  log_info(who_, " (", config_.client.host, ":", config_.client.port, "): started with ",
           partitions_.size(), " partitions");
  asio::co_spawn(executor_, run(shared_from_this()), asio::detached);
}

void replica_fetcher::impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  client_.close();
  wake_.cancel();
  if (started_) log_info(who_, ": stopped");
}

asio::awaitable<void> replica_fetcher::impl::run(std::shared_ptr<impl> self) {
  // co_spawn may start the coroutine inside start(); nothing runs within the call.
  co_await asio::post(self->executor_, asio::use_awaitable);
  try {
    co_await self->loop();
  } catch (const std::exception& e) {
    log_error(self->who_, ": failed: ", e.what());
  }
}

asio::awaitable<void> replica_fetcher::impl::loop() {
  while (!stopped_) {
    if (fetch_version_ == 0 && !co_await negotiate()) {
      co_await wait(config_.backoff, false);
      continue;
    }
    wire::fetch_request request;
    std::optional<milliseconds> next_retry;
    if (!build(request, next_retry)) {
      co_await wait(next_retry, true);
      continue;
    }
    // Holds the frame that the records of the response point into until they are appended.
    auto reply = co_await client_.call(request, fetch_version_);
    if (stopped_) co_return;
    if (reply.error) {
      connection_failed(reply.error.message());
      co_await wait(config_.backoff, false);
      continue;
    }
    if (failing_) {
      failing_ = false;
      log_info(who_, ": fetching again");
    }
    co_await handle_response(reply.body);
  }
}

asio::awaitable<bool> replica_fetcher::impl::negotiate() {
  // Named: GCC 12 destroys a temporary in a co_await expression twice.
  const wire::api_versions_request request;
  auto reply = co_await client_.call(request, api_versions_version);
  if (stopped_) co_return false;
  if (reply.error) {
    connection_failed(reply.error.message());
    co_return false;
  }
  if (reply.body.error_code != 0) {
    connection_failed(
        "ApiVersions answered " +
        std::string(wire::error_name(static_cast<error_code>(reply.body.error_code))));
    co_return false;
  }
  for (const auto& api : reply.body.api_keys) {
    if (api.api_key != wire::fetch_request::api_key) continue;
    const int16_t version = std::min(api.max_version, max_fetch_version);
    if (version < std::max(api.min_version, min_fetch_version)) break;
    fetch_version_ = version;
    co_return true;
  }
  connection_failed("the leader serves no Fetch version from " + std::to_string(min_fetch_version) +
                    " to " + std::to_string(max_fetch_version));
  co_return false;
}

bool replica_fetcher::impl::build(wire::fetch_request& request,
                                  std::optional<milliseconds>& next_retry) {
  const milliseconds now = timers_.monotonic_now();
  const bool full = session_epoch_ == 0;
  request.replica_id = config_.local_node_id;
  request.replica_state.replica_id = config_.local_node_id;
  request.replica_state.replica_epoch = config_.broker_epoch;
  request.max_wait_ms = config_.max_wait_ms;
  request.min_bytes = config_.min_bytes;
  request.max_bytes = config_.max_bytes;
  request.isolation_level = 0;
  // A full fetch naming the old session closes it on the leader (Kafka's nextCloseExisting).
  request.session_id = session_id_;
  request.session_epoch = session_epoch_;

  std::set<topic_partition_id> fetchable;
  std::map<wire::uuid, size_t> topic_at;
  std::map<topic_partition_id, replica_sink::position> sent;
  for (auto& [tp, state] : partitions_) {
    if (state.retry_at && *state.retry_at > now) {
      const milliseconds left = *state.retry_at - now;
      next_retry = next_retry ? std::min(*next_retry, left) : left;
      continue;
    }
    state.retry_at.reset();
    fetchable.insert(tp);
    if (!full) {
      auto known = session_.find(tp);
      if (known != session_.end() && known->second == state.position) continue;
    }
    auto [at, inserted] = topic_at.try_emplace(tp.topic_id, request.topics.size());
    if (inserted) request.topics.emplace_back().topic_id = tp.topic_id;
    auto& p = request.topics[at->second].partitions.emplace_back();
    p.partition = tp.partition;
    p.current_leader_epoch = state.position.current_leader_epoch;
    p.fetch_offset = state.position.fetch_offset;
    p.last_fetched_epoch = state.position.last_fetched_epoch;
    p.log_start_offset = state.position.log_start_offset;
    p.partition_max_bytes = config_.partition_max_bytes;
    sent.emplace(tp, state.position);
  }
  if (fetchable.empty()) return false;

  if (full) {
    session_ = std::move(sent);
    return true;
  }
  std::map<wire::uuid, size_t> forgotten_at;
  for (auto it = session_.begin(); it != session_.end();) {
    if (fetchable.contains(it->first)) {
      ++it;
      continue;
    }
    auto [at, inserted] =
        forgotten_at.try_emplace(it->first.topic_id, request.forgotten_topics_data.size());
    if (inserted) request.forgotten_topics_data.emplace_back().topic_id = it->first.topic_id;
    request.forgotten_topics_data[at->second].partitions.push_back(it->first.partition);
    it = session_.erase(it);
  }
  for (auto& [tp, position] : sent)
    session_.insert_or_assign(tp, position);
  return true;
}

asio::awaitable<void> replica_fetcher::impl::handle_response(const wire::fetch_response& response) {
  if (const auto top = static_cast<error_code>(response.error_code); top != error_code::none) {
    // Whatever the leader's session holds now, the next fetch is a full one.
    session_epoch_ = 0;
    if (top == error_code::fetch_session_id_not_found) {
      log_debug(who_, ": the leader no longer has fetch session ", session_id_);
      session_id_ = 0;
      co_return;
    }
    if (top == error_code::invalid_fetch_session_epoch) {
      log_debug(who_, ": the leader expected another epoch of fetch session ", session_id_);
      co_return;
    }
    log_warn(who_, ": the leader answered the fetch with ", wire::error_name(top),
             "; fetching again in ", config_.backoff.count(), " ms");
    co_await wait(config_.backoff, false);
    co_return;
  }
  if (session_epoch_ == 0) {
    // Session id 0: the leader keeps no session for us, and every fetch stays a full one.
    session_id_ = response.session_id;
    session_epoch_ = session_id_ != 0 ? 1 : 0;
  } else {
    session_epoch_ = next_session_epoch(session_epoch_);
  }
  for (const auto& topic : response.responses) {
    for (const auto& data : topic.partitions) {
      if (stopped_) co_return;
      co_await handle_partition(topic_partition_id{topic.topic_id, data.partition_index}, data);
    }
  }
}

asio::awaitable<void> replica_fetcher::impl::handle_partition(
    topic_partition_id tp, const wire::fetch_response::partition_data& data) {
  auto it = partitions_.find(tp);
  auto asked = session_.find(tp);
  if (it == partitions_.end() || asked == session_.end() || asked->second != it->second.position) {
    co_return;
  }
  const replica_sink::position position = it->second.position;
  const auto error = static_cast<error_code>(data.error_code);

  if (error == error_code::none && data.diverging_epoch.epoch >= 0 &&
      data.diverging_epoch.end_offset >= 0) {
    const int64_t offset = std::min(data.diverging_epoch.end_offset, position.fetch_offset);
    log_info(who_, ": ", name(tp), ": the leader's epoch ", data.diverging_epoch.epoch,
             " ends at offset ", data.diverging_epoch.end_offset,
             "; truncating the local log (end ", position.fetch_offset, ", last epoch ",
             position.last_fetched_epoch, ") to ", offset);
    const std::error_code truncated = co_await sink_.truncate(tp, offset);
    if (stopped_) co_return;
    after_change(tp, truncated, "truncating the local log");
    co_return;
  }

  if (error == error_code::offset_out_of_range && data.log_start_offset >= 0 &&
      position.fetch_offset < data.log_start_offset) {
    log_info(who_, ": ", name(tp), ": local log end ", position.fetch_offset,
             " is below the leader's log start ", data.log_start_offset,
             "; starting the local log again there");
    const std::error_code reset = co_await sink_.reset_to(tp, data.log_start_offset);
    if (stopped_) co_return;
    after_change(tp, reset, "starting the local log again");
    co_return;
  }

  if (error != error_code::none) {
    stop_partition(tp, error,
                   "the leader answered " + std::string(wire::error_name(error)) +
                       " for fetch offset " + std::to_string(position.fetch_offset) +
                       " in leader epoch " + std::to_string(position.current_leader_epoch));
    co_return;
  }

  // A byte limit may end the records inside a batch: only whole batches are appended, and the
  // rest comes again from the next fetch offset.
  const std::span<const uint8_t> records(data.records.bytes.data(), data.records.bytes.size());
  wire::batch_reader batches(records);
  while (batches.next()) {
  }
  const std::span<const uint8_t> complete = records.first(batches.position());
  const wire::batch_error framing = batches.error();
  const std::error_code appended =
      co_await sink_.append(tp, complete, data.high_watermark, data.log_start_offset);
  if (stopped_) co_return;
  after_change(tp, appended, "appending to the local log");
  it = partitions_.find(tp);
  if (it == partitions_.end()) co_return;
  progress(tp, it->second, data.high_watermark, complete.size());
  if (framing != wire::batch_error::ok && framing != wire::batch_error::truncated) {
    log_warn(who_, ": ", name(tp), ": the leader sent a batch whose framing is broken (",
             make_error_code(framing).message(), ") at byte ", complete.size(), " of ",
             records.size(), "; fetching it again in ", config_.backoff.count(), " ms");
    it->second.retry_at = timers_.monotonic_now() + config_.backoff;
  }
}

void replica_fetcher::impl::after_change(topic_partition_id tp, std::error_code error,
                                         const char* what) {
  auto it = partitions_.find(tp);
  if (it == partitions_.end()) return;  // removed meanwhile
  if (error) {
    stop_partition(tp, to_kafka_error(error), std::string(what) + " failed: " + error.message());
    return;
  }
  std::optional<replica_sink::position> now = sink_.fetch_position(tp);
  it = partitions_.find(tp);
  if (it == partitions_.end()) return;
  if (!now) {
    log_info(who_, ": ", name(tp), ": no longer followed");
    partitions_.erase(it);
    return;
  }
  it->second.position = *now;
}

void replica_fetcher::impl::stop_partition(topic_partition_id tp, error_code error,
                                           const std::string& why) {
  log_warn(who_, ": ", name(tp), ": ", why, "; not fetching it until its state is set again");
  partitions_.erase(tp);
  sink_.partition_error(tp, error);
}

void replica_fetcher::impl::progress(topic_partition_id tp, partition_state& state,
                                     int64_t high_watermark, size_t bytes) {
  const int64_t behind = high_watermark - state.position.fetch_offset;
  const milliseconds now = timers_.monotonic_now();
  if (behind <= 0) {
    if (state.lag_reported) {
      log_info(who_, ": ", name(tp), ": caught up with the leader at offset ",
               state.position.fetch_offset);
    }
    state.lagging = false;
    state.lag_reported = false;
    return;
  }
  if (!state.lagging) {
    state.lagging = true;
    state.lagging_since = now;
    state.bytes_since = 0;
  }
  state.bytes_since += static_cast<int64_t>(bytes);
  if (now - state.lagging_since < config_.progress_interval) return;
  log_info(who_, ": ", name(tp), ": ", behind, " offsets behind the leader's high watermark ",
           high_watermark, " (local log end ", state.position.fetch_offset, "); ",
           state.bytes_since, " bytes fetched in the last ", (now - state.lagging_since).count(),
           " ms");
  state.lag_reported = true;
  state.lagging_since = now;
  state.bytes_since = 0;
}

void replica_fetcher::impl::connection_failed(const std::string& why) {
  // Whatever the leader made of the request in flight, its session cannot be trusted now, and
  // the next connection may reach a leader of another version.
  session_epoch_ = 0;
  fetch_version_ = 0;
  std::string detail = why;
  if (!client_.last_failure().empty() && !client_.connected()) {
    detail += " (" + client_.last_failure() + ")";
  }
  if (failing_) {
    log_debug(who_, ": still cannot fetch: ", detail);
    return;
  }
  failing_ = true;
  log_warn(who_, " (", config_.client.host, ":", config_.client.port, "): cannot fetch: ", detail,
           "; trying again every ", config_.backoff.count(), " ms");
}

asio::awaitable<void> replica_fetcher::impl::wait(std::optional<milliseconds> timeout,
                                                  bool wake_on_change) {
  if (stopped_ || (timeout && *timeout <= milliseconds(0))) co_return;
  timer_handle deadline;
  if (timeout) deadline = timers_.schedule(*timeout, [this] { wake_.cancel(); });
  waiting_for_change_ = wake_on_change;
  wake_.expires_at(asio::steady_timer::time_point::max());
  boost::system::error_code ignored;
  co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  waiting_for_change_ = false;
}

std::string replica_fetcher::impl::name(topic_partition_id tp) const {
  auto it = partitions_.find(tp);
  const std::string topic = it != partitions_.end() ? log_safe(it->second.topic) : hex(tp.topic_id);
  return topic + "-" + std::to_string(tp.partition);
}

replica_fetcher::replica_fetcher(asio::any_io_executor executor, timer_service& timers,
                                 replica_sink& sink, replica_fetcher_config config)
    : impl_(std::make_shared<impl>(std::move(executor), timers, sink, std::move(config))) {}

replica_fetcher::~replica_fetcher() {
  impl_->stop();
}

void replica_fetcher::add_partitions(std::vector<partition_to_fetch> partitions) {
  impl_->add(std::move(partitions));
}

void replica_fetcher::remove_partitions(const std::vector<topic_partition_id>& partitions) {
  impl_->remove(partitions);
}

void replica_fetcher::start() {
  impl_->start();
}

void replica_fetcher::stop() {
  impl_->stop();
}

size_t replica_fetcher::partition_count() const {
  return impl_->partition_count();
}

bool replica_fetcher::running() const {
  return impl_->running();
}

int16_t replica_fetcher::fetch_version() const {
  return impl_->fetch_version();
}

int32_t replica_fetcher::leader_id() const {
  return impl_->leader_id();
}

}  // namespace sluice::server::cluster
