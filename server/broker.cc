#include "server/broker.h"

#include <algorithm>
#include <exception>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/cluster/producer_id_blocks.h"
#include "server/controller_channel.h"
#include "server/coordination/etcd_store.h"
#include "server/logging.h"
#include "server/replica_manager.h"
#include "server/session.h"
#include "server/topic_config.h"
#include "storage/checkpoint.h"
#include "storage/file_io.h"
#include "storage/log_sink.h"

namespace sluice::server {

namespace asio = boost::asio;
using asio::ip::tcp;

broker::broker(asio::io_context& io, broker_config config, timer_service* timers)
    : io_(io),
      config_(std::move(config)),
      budget_(config_.queued_max_request_bytes, config_.queued_max_requests),
      own_timers_(timers == nullptr ? std::make_unique<asio_timer_service>(io.get_executor())
                                    : nullptr),
      timers_(timers == nullptr ? own_timers_.get() : timers),
      fetch_sessions_(static_cast<size_t>(config_.max_incremental_fetch_session_cache_slots)) {}

broker::~broker() = default;

namespace {

void bind_acceptor(tcp::acceptor& acceptor, const tcp::endpoint& endpoint,
                   boost::system::error_code& ec) {
  acceptor.open(endpoint.protocol(), ec);
  // Dual-stack: a wildcard IPv6 socket also accepts IPv4 clients.
  if (!ec && endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(false), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
}

// host:port, with an IPv6 address in brackets.
std::string host_port(const std::string& host, uint16_t port) {
  bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Kafka's producer.id.expiration.check.interval.ms default.
constexpr int64_t producer_expiration_check_interval_ms = 600000;
}  // namespace

std::string broker::start() {
  // The broker's value of every topic config (topic_config.h); topics with configs of their own
  // get them from topic_registry::load_configs below, before anything is appended.
  {
    std::error_code ec;
    std::filesystem::create_directories(config_.log_dir, ec);
    if (ec) return "cannot use log directory " + config_.log_dir.string() + ": " + ec.message();
  }
  std::string problem;
  std::string expected_cluster_id;
  if (!config_.metadata_etcd_endpoints.empty()) {
    coordination::etcd_config etcd;
    if (!coordination::parse_etcd_endpoints(config_.metadata_etcd_endpoints, etcd.endpoints,
                                            problem)) {
      return "metadata.etcd.endpoints: " + problem;
    }
    store_ = std::make_unique<coordination::etcd_store>(io_.get_executor(), std::move(etcd));
    cluster::cluster_member_config member;
    member.node_id = config_.node_id;
    member.prefix = config_.metadata_etcd_prefix;
    member.rack = config_.broker_rack;
    member.session_timeout_ms = config_.broker_session_timeout_ms;
    member_ = std::make_unique<cluster::cluster_member>(io_, *store_, std::move(member));
    expected_cluster_id = run_to_completion(member_->bootstrap(problem));
    if (expected_cluster_id.empty()) return problem;
  }
  cluster_id_ = load_cluster_id(expected_cluster_id, problem);
  if (cluster_id_.empty()) return problem;
  storage::log_config log_defaults = effective_log_config(config_, {});
  disk_ = std::make_unique<thread_pool_disk_executor>(io_, config_.num_io_threads);
  logs_ = std::make_unique<storage::log_manager>(
      config_.log_dir, log_defaults, storage::log_env{storage::default_file_system(), *disk_});
  logs_->set_file_delete_delay_ms(config_.log_segment_delete_delay_ms);
  // Storage's lines during load are held back: on failure the last one is the detail of the one
  // fatal message; on success they are logged (recovery truncations matter to operators).
  std::vector<std::pair<storage::log_level, std::string>> load_lines;
  auto to_broker_log = [](storage::log_level level, std::string_view line) {
    if (level == storage::log_level::info) {
      log_info(line);
    } else {
      log_warn(line);
    }
  };
  storage::set_log_sink([&load_lines](storage::log_level level, std::string_view line) {
    load_lines.emplace_back(level, line);
  });
  std::error_code load_ec;
  try {
    load_ec = logs_->load();
  } catch (const std::exception& e) {
    // std::filesystem iteration can throw mid-listing; the sink must not outlive load_lines.
    storage::set_log_sink(to_broker_log);
    return "cannot use log directory " + config_.log_dir.string() + ": " + e.what();
  }
  storage::set_log_sink(to_broker_log);
  if (load_ec) {
    return "cannot use log directory " + config_.log_dir.string() + ": " +
           (load_lines.empty() ? load_ec.message() : load_lines.back().second);
  }
  for (const auto& [level, line] : load_lines)
    to_broker_log(level, line);
  if (member_) {
    // Blocks of the whole cluster, from the store: a producer whose partitions move to another
    // broker must not find its id in use by another producer there.
    producer_ids_ =
        std::make_unique<producer_id_allocator>(std::make_unique<cluster::producer_id_blocks>(
            io_.get_executor(), *store_, config_.node_id, member_->config().prefix));
  } else {
    producer_ids_ = std::make_unique<producer_id_allocator>(config_.log_dir, *disk_);
  }
  if (producer_ids_->load(problem)) return problem;
  if (member_) {
    // A data directory an earlier version used in a cluster recorded this broker's own blocks in
    // its file: ids from them may be in use on any broker's partitions.
    file_producer_id_blocks own_blocks(config_.log_dir, *disk_);
    int64_t handed_out_below = 0;
    if (own_blocks.load(handed_out_below, problem)) return problem;
    if (handed_out_below > 0) producer_ids_->skip_through(handed_out_below - 1);
  }
  for (storage::log* l : logs_->logs())
    producer_ids_->skip_through(l->producer_state().max_producer_id());
  topics_ = std::make_unique<topic_registry>(*logs_, config_);
  if (std::error_code ec = topics_->load()) {
    return "cannot load topics from " + config_.log_dir.string() + ": " + ec.message();
  }
  if (std::string err = topics_->load_configs(); !err.empty()) {
    return "cannot load topic configs: " + err;
  }

  group_coordinator_config groups_config;
  groups_config.min_session_timeout =
      std::chrono::milliseconds(config_.group_min_session_timeout_ms);
  groups_config.max_session_timeout =
      std::chrono::milliseconds(config_.group_max_session_timeout_ms);
  groups_config.initial_rebalance_delay =
      std::chrono::milliseconds(config_.group_initial_rebalance_delay_ms);
  groups_config.max_offset_metadata_bytes = static_cast<size_t>(config_.offset_metadata_max_bytes);
  groups_config.offsets_retention = std::chrono::minutes(config_.offsets_retention_minutes);
  groups_config.offsets_retention_check_interval =
      std::chrono::milliseconds(config_.offsets_retention_check_interval_ms);
  if (std::string err = load_groups(groups_config); !err.empty()) return err;

  if (config_.advertised_listeners.size() != config_.listeners.size()) {
    return "listeners and advertised listeners do not match: configuration not resolved";
  }
  // Every listener is bound before any is announced or accepts: the `listening on` lines tell
  // scripts and tests that the broker is up, so none may appear for a start that then fails.
  std::vector<std::unique_ptr<tcp::acceptor>> bound;
  for (size_t i = 0; i < config_.listeners.size(); ++i) {
    const listener& l = config_.listeners[i];
    boost::system::error_code ec;
    asio::ip::address address = l.host.empty() ? asio::ip::address(asio::ip::address_v6::any())
                                               : asio::ip::make_address(l.host, ec);
    if (ec) {
      // A host name rather than an address: resolve it once.
      tcp::resolver resolver(io_);
      auto results = resolver.resolve(l.host, std::to_string(l.port), ec);
      if (ec || results.empty()) return "cannot resolve listener host " + l.host;
      address = results.begin()->endpoint().address();
    }
    auto acceptor = std::make_unique<tcp::acceptor>(io_);
    bind_acceptor(*acceptor, tcp::endpoint(address, l.port), ec);
    if (ec && l.host.empty()) {
      // A wildcard listener on a host without IPv6 (common in containers): IPv4 only.
      acceptor = std::make_unique<tcp::acceptor>(io_);
      bind_acceptor(*acceptor, tcp::endpoint(asio::ip::address_v4::any(), l.port), ec);
    }
    if (ec) {
      return "cannot listen on " + l.name + "://" + host_port(l.host, l.port) + ": " + ec.message();
    }
    // An ephemeral port is advertised as the port actually bound (Kafka's
    // ListenerInfo.withEphemeralPortsCorrected).
    if (config_.advertised_listeners[i].port == 0) {
      config_.advertised_listeners[i].port = acceptor->local_endpoint().port();
    }
    bound.push_back(std::move(acceptor));
  }
  if (member_) {
    // Registered with the addresses actually bound, before the first client is accepted.
    std::map<std::string, cluster::endpoint> endpoints;
    for (const listener& a : config_.advertised_listeners)
      endpoints[a.name] = cluster::endpoint{a.host, a.port};
    member_->set_listeners(std::move(endpoints));
    if (std::string refused = run_to_completion(member_->join()); !refused.empty()) {
      return refused;
    }
    // Topic configs are the cluster's: every broker applies its topics' records as they change,
    // before the replica manager acts on the same change.
    topics_->follow_configs([this](const topic& t) -> const std::map<std::string, std::string>* {
      if (!member_) return nullptr;
      const cluster::topic_record* record = member_->image().topic(t.id);
      return record != nullptr && record->name == t.name ? &record->configs : nullptr;
    });
    config_sync_ = member_->on_change([this] { topics_->sync_configs(); });
    cluster::controller_config controller_config;
    controller_config.default_num_partitions = config_.num_partitions;
    controller_config.default_replication_factor = config_.default_replication_factor;
    controller_config.max_partitions_per_request = static_cast<int32_t>(max_partitions_per_request);
    controller_config.auto_leader_rebalance = config_.auto_leader_rebalance_enable;
    controller_config.unclean_leader_election = config_.unclean_leader_election_enable;
    controller_config.leader_imbalance_check_interval_ms =
        config_.leader_imbalance_check_interval_seconds * 1000;
    controller_config.leader_imbalance_per_broker_percentage =
        config_.leader_imbalance_per_broker_percentage;
    controller_config.offsets_topic_num_partitions = config_.offsets_topic_num_partitions;
    controller_config.offsets_topic_replication_factor = config_.offsets_topic_replication_factor;
    controller_config.offsets_topic_segment_bytes = config_.offsets_topic_segment_bytes;
    controller_ = std::make_unique<cluster::controller>(*store_, *member_, controller_config);
    controller_->start(io_.get_executor());
    channel_ = std::make_unique<controller_channel>(io_.get_executor(), *timers_, config_, *member_,
                                                    *controller_);
    replicas_ =
        std::make_unique<replica_manager>(io_.get_executor(), *timers_, config_, *topics_, *member_,
                                          [channel = channel_.get()](isr_change_request request) {
                                            return channel->alter_partition(std::move(request));
                                          });
    replicas_->on_reconciled([this] { follow_offsets_partitions(); });
    replicas_->start();
  }
  metadata_ = std::make_unique<metadata_view>(config_, member_.get(), cluster_id_);
  partitions_ = std::make_unique<partition_directory>(io_.get_executor(), config_, *topics_,
                                                      member_.get(), channel_.get());
  topic_configs_ = std::make_unique<topic_config_store>(*topics_, *disk_, config_.log_dir);
  services_ = std::make_unique<handler_services>(handler_services{
      .config = config_,
      .metadata = *metadata_,
      .controller = channel_.get(),
      .replicas = replicas_.get(),
      .topics = *topics_,
      .partitions = *partitions_,
      .topic_configs = *topic_configs_,
      .groups = *groups_,
      .producer_ids = *producer_ids_,
      .fetch_sessions = fetch_sessions_,
      .timers = *timers_,
      .stats = stats_,
      .stopping = stopping_,
      .budget = budget_,
  });
  for (size_t i = 0; i < bound.size(); ++i) {
    const listener& l = config_.listeners[i];
    const listener& a = config_.advertised_listeners[i];
    // One line per listener, in this format: compat_tests/broker_fixture.cc, kcat_lib.sh and the
    // capture proxy read the bound address from it.
    log_info("listening on ", l.name, "://",
             host_port(l.host.empty() ? "0.0.0.0" : l.host, bound[i]->local_endpoint().port()),
             " (advertised as ", host_port(a.host, a.port), ")");
    accept(*bound[i], i);
  }
  acceptors_ = std::move(bound);
  checkpoint_timer_.emplace(io_);
  schedule_checkpoint();
  recovery_point_timer_.emplace(io_);
  schedule_recovery_point_flush();
  flush_scheduler_timer_.emplace(io_);
  schedule_flush_scheduler();
  retention_timer_.emplace(io_);
  schedule_retention();
  deleted_dirs_timer_.emplace(io_);
  schedule_deleted_dirs_removal();
  return {};
}

// Group state lives in the internal topic __consumer_offsets, as in Kafka: the coordinator
// appends every commit and group change to it. A broker running alone keeps one partition of it,
// replayed here before the broker serves anyone. In a cluster the topic is the cluster's (its
// controller creates it), and the coordinator serves the groups of the partitions this broker
// leads, each loaded when its leadership arrives (follow_offsets_partitions).
std::string broker::load_groups(const group_coordinator_config& groups_config) {
  offsets_ = std::make_unique<offsets_topic>(io_.get_executor(), *disk_);
  groups_ = std::make_unique<group_coordinator>(io_.get_executor(), groups_config, offsets_.get(),
                                                timers_);
  offsets_->attach(groups_.get());
  if (member_) {
    groups_->set_offsets_partitions(0);
    offsets_->replicate_with(offsets_replication{
        timers_, std::chrono::milliseconds(config_.offsets_commit_timeout_ms), [this] {
          const topic* t = topics_->find(consumer_offsets_topic);
          return t != nullptr ? min_insync_replicas(config_, *t) : 1;
        }});
    groups_->start_offset_expiry();
    return {};
  }
  topic* offsets_topic = topics_->find(consumer_offsets_topic);
  if (offsets_topic == nullptr) {
    wire::error_code e = topics_->create(consumer_offsets_topic, 1, offsets_topic);
    if (e != wire::error_code::none) {
      return "cannot create " + std::string(consumer_offsets_topic) + ": " +
             std::string(wire::error_name(e));
    }
  }
  partition& offsets_partition = *offsets_topic->partitions.front();
  replay_stats stats;
  // Refusing to start beats serving without commits that a client was told are safe.
  if (std::error_code ec = offsets_->adopt(0, offsets_partition, stats)) {
    return "cannot replay " + std::string(consumer_offsets_topic) + "-0: " + ec.message();
  }
  if (stats.records > 0) {
    log_info("replayed ", consumer_offsets_topic, "-0: ", stats.records, " records in ",
             stats.batches, " batches");
  }
  groups_->start_offset_expiry();
  return {};
}

void broker::follow_offsets_partitions() {
  if (!member_ || !groups_ || stopping_.raised()) return;
  const cluster::metadata_image& image = member_->image();
  // Topics the cluster deleted: every coordinator writes tombstones for its groups' offsets of
  // them, as Kafka's brokers do on the metadata change (GroupCoordinator.onPartitionsDeleted).
  std::set<std::string, std::less<>> names;
  for (const auto& [topic_id, record] : image.topics()) {
    if (image.topic_id(record.name) == topic_id) names.insert(record.name);
  }
  for (const std::string& name : cluster_topic_names_) {
    if (!names.contains(name)) groups_->on_topic_deleted(name);
  }
  cluster_topic_names_ = std::move(names);
  std::optional<wire::uuid> id = image.topic_id(consumer_offsets_topic);
  const cluster::topic_record* record = id ? image.topic(*id) : nullptr;
  if (record == nullptr) return;
  if (groups_->offsets_partitions() == 0) {
    // Fixed for the topic's life, as Kafka reads it once from the topic's metadata.
    groups_->set_offsets_partitions(static_cast<int32_t>(record->replicas.size()));
  }
  std::map<int32_t, std::pair<std::shared_ptr<partition>, int32_t>> leading;
  topic* t = topics_->find(consumer_offsets_topic);
  if (t != nullptr && t->id == *id) {
    for (const auto& p : t->partitions) {
      if (p && p->is_leader() && !p->deleted() && !p->offline()) {
        leading.emplace(p->index(), std::make_pair(p, p->leader_epoch()));
      }
    }
  }
  offsets_->lead_exactly(leading);
}

namespace {
// A timer period from a config value that may be Long.MAX_VALUE (Kafka's "never").
std::chrono::milliseconds period(int64_t ms) {
  constexpr int64_t a_year = 365LL * 24 * 3600 * 1000;
  return std::chrono::milliseconds(std::clamp<int64_t>(ms, 1, a_year));
}
}  // namespace

void broker::schedule_checkpoint() {
  checkpoint_timer_->expires_after(period(config_.replica_high_watermark_checkpoint_interval_ms));
  checkpoint_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_.raised()) return;
    topics_->checkpoint_async({});
    schedule_checkpoint();
  });
}

void broker::schedule_recovery_point_flush() {
  recovery_point_timer_->expires_after(period(config_.log_flush_offset_checkpoint_interval_ms));
  recovery_point_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_.raised()) return;
    // Kafka's flush-checkpoint task: the recovery points move as the flushes complete, and the
    // checkpoint written then records them, so a crash recovery starts there.
    logs_->flush_async([this] {
      if (!stopping_.raised()) topics_->checkpoint_async({});
    });
    schedule_recovery_point_flush();
  });
}

void broker::schedule_flush_scheduler() {
  if (config_.log_flush_scheduler_interval_ms == INT64_MAX) return;  // Kafka's default: never
  flush_scheduler_timer_->expires_after(period(config_.log_flush_scheduler_interval_ms));
  flush_scheduler_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_.raised()) return;
    // Kafka's LogManager.flushDirtyLogs.
    const int64_t now = storage::wall_clock_ms();
    for (storage::log* l : logs_->logs()) {
      if (l->unflushed_messages() > 0 && now - l->last_flush_ms() >= l->config().flush_ms) {
        l->flush_async();
      }
    }
    schedule_flush_scheduler();
  });
}

void broker::schedule_retention() {
  retention_timer_->expires_after(
      std::chrono::milliseconds(std::max<int64_t>(1, config_.log_retention_check_interval_ms)));
  retention_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_.raised()) return;
    const int64_t now = storage::wall_clock_ms();
    try {
      // Each log logs what it deleted; nothing to add here.
      (void)logs_->enforce_retention(now);
      if (now - last_producer_expiry_ms_ >= producer_expiration_check_interval_ms) {
        logs_->remove_expired_producers(now);
        last_producer_expiry_ms_ = now;
      }
    } catch (const std::exception& e) {
      // A directory listing that failed mid-way (std::filesystem throws): the next round retries,
      // and the broker keeps serving rather than dying with its files half-closed.
      log_error("retention check failed: ", e.what());
    }
    schedule_retention();
  });
}

void broker::schedule_deleted_dirs_removal() {
  // Kafka checks every 30 s at most; a second keeps the directories' stay close to the delay.
  deleted_dirs_timer_->expires_after(std::chrono::seconds(1));
  deleted_dirs_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_.raised()) return;
    (void)logs_->remove_deleted_dirs(storage::wall_clock_ms());
    schedule_deleted_dirs_removal();
  });
}

void broker::accept(tcp::acceptor& acceptor, size_t listener_index) {
  acceptor.async_accept([this, &acceptor, listener_index](boost::system::error_code ec,
                                                          tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_.raised()) return;
      // Out of descriptors or memory: accepting again at once would fail again at once (and
      // flood the log), so back off, doubling up to a second, and log only the first failure.
      if (accept_backoff_ms_ == 0) log_warn("accept failed: ", ec.message(), "; backing off");
      accept_backoff_ms_ = std::clamp(accept_backoff_ms_ * 2, 100, 1000);
      auto retry =
          std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(accept_backoff_ms_));
      retry->async_wait(
          [this, &acceptor, listener_index, retry](boost::system::error_code wait_ec) {
            if (!wait_ec && !stopping_.raised()) accept(acceptor, listener_index);
          });
      return;
    }
    if (accept_backoff_ms_ != 0) {
      log_info("accepting connections again");
      accept_backoff_ms_ = 0;
    }
    auto s = std::make_shared<session>(
        std::move(socket), config_, budget_, *services_,
        [this](uint64_t id) { on_session_closed(id); }, next_session_id_++,
        config_.listeners[listener_index].name);
    sessions_.emplace(s->id(), s);
    s->start();
    accept(acceptor, listener_index);
  });
}

void broker::stop() {
  if (stopping_.raised()) return;
  if (controlled_shutdown_started_) {
    log_warn("controlled shutdown: asked to stop again: stopping now");
    if (controlled_shutdown_timer_) controlled_shutdown_timer_->cancel();
    finish_stop();
    return;
  }
  if (member_ && channel_ && config_.controlled_shutdown_enable) {
    controlled_shutdown_started_ = true;
    asio::co_spawn(io_, controlled_shutdown(), [this](const std::exception_ptr& e) {
      if (e) log_error("controlled shutdown failed; stopping anyway");
      finish_stop();
    });
    return;
  }
  finish_stop();
}

std::vector<std::string> broker::led_partitions(bool movable) const {
  std::vector<std::string> out;
  const cluster::metadata_image& image = member_->image();
  for (const auto& [id, rec] : image.topics()) {
    for (const auto& [p, state] : image.partitions(id)) {
      if (state->record.leader != config_.node_id || p < 0 ||
          static_cast<size_t>(p) >= rec.replicas.size() ||
          (rec.replicas[p].size() > 1) != movable) {
        continue;
      }
      out.push_back(rec.name + "-" + std::to_string(p));
    }
  }
  return out;
}

// Kafka's ZooKeeper-era KafkaServer.controlledShutdown: ask the controller, and ask again after
// controlled.shutdown.retry.backoff.ms while leaderships remain, at most
// controlled.shutdown.max.retries times. An attempt that moved everything waits up to the backoff
// for this broker's state to show it; one that did not waits the backoff before the next. So the
// whole takes at most retries x (request timeout + backoff).
asio::awaitable<void> broker::controlled_shutdown() {
  const int32_t attempts = config_.controlled_shutdown_max_retries;
  const auto backoff = std::chrono::milliseconds(config_.controlled_shutdown_retry_backoff_ms);
  log_info("controlled shutdown: moving this broker's leaderships to other in-sync replicas (",
           attempts, " attempts at most, ", backoff.count(), " ms apart)");
  // Partitions of one replica cannot move: they are offline until this broker is back.
  if (std::vector<std::string> alone = led_partitions(false); !alone.empty()) {
    std::string names;
    for (size_t i = 0; i < alone.size() && i < 10; ++i)
      names += (i ? ", " : "") + alone[i];
    if (alone.size() > 10) names += " and " + std::to_string(alone.size() - 10) + " more";
    log_warn(
        "controlled shutdown: ", alone.size(),
        " partition(s) with replication factor 1 go offline until this broker is back: ", names);
  }
  if (std::string problem = co_await member_->begin_controlled_shutdown(); !problem.empty()) {
    log_warn("controlled shutdown: could not mark the registration: ", problem);
  }
  if (stopping_.raised()) co_return;
  for (int32_t attempt = 1; attempt <= attempts; ++attempt) {
    cluster::controlled_shutdown_result r = co_await channel_->controlled_shutdown();
    if (stopping_.raised()) co_return;
    if (r.error == wire::error_code::none && r.remaining.empty()) {
      // Every move is written: wait until this broker's own state shows them.
      std::function<bool()> moved = [this] { return led_partitions(true).empty(); };
      co_await member_->wait_until(std::move(moved), backoff);
      if (stopping_.raised()) co_return;
      if (std::vector<std::string> left = led_partitions(true); left.empty()) {
        log_info(
            "controlled shutdown: this broker leads no partition of several replicas (attempt ",
            attempt, ")");
        co_return;
      }
    }
    const size_t left = led_partitions(true).size();
    if (attempt == attempts) {
      log_warn("controlled shutdown: gave up after ", attempts, " attempts: still leads ", left,
               " partition(s) (last answer ", wire::error_name(r.error),
               r.message.empty() ? "" : ": ", r.message, "); stopping");
      co_return;
    }
    log_info("controlled shutdown: attempt ", attempt, " left ", left, " leadership(s) (",
             wire::error_name(r.error), "); again in ", backoff.count(), " ms");
    controlled_shutdown_timer_.emplace(io_, backoff);
    co_await controlled_shutdown_timer_->async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopping_.raised()) co_return;
  }
}

void broker::finish_stop() {
  if (stopping_.raised()) return;
  stopping_.raise();
  log_info("shutting down: no new connections, answering in-flight requests");
  // The registration goes now rather than a session timeout later; the io_context runs until the
  // revocation is answered (or the store's request timeout).
  if (replicas_) replicas_->stop();
  if (controller_) controller_->stop();
  if (channel_) channel_->close();
  if (member_) member_->leave([] {});
  if (checkpoint_timer_) checkpoint_timer_->cancel();
  if (recovery_point_timer_) recovery_point_timer_->cancel();
  if (flush_scheduler_timer_) flush_scheduler_timer_->cancel();
  if (retention_timer_) retention_timer_->cancel();
  if (deleted_dirs_timer_) deleted_dirs_timer_->cancel();
  // Parked joins and syncs answer now (NOT_COORDINATOR: clients find the coordinator again).
  if (groups_) groups_->shutdown();
  for (auto& a : acceptors_) {
    boost::system::error_code ec;
    a->close(ec);
  }
  // Parked fetches answer now with what they have.
  for (const auto& [name, t] : topics_->all()) {
    for (const auto& p : t.partitions)
      p->wake_waiters();
  }
  std::vector<std::shared_ptr<session>> live;
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live)
    s->shutdown();
  if (sessions_.empty()) return;
  grace_timer_.emplace(io_, std::chrono::milliseconds(config_.shutdown_grace_ms));
  grace_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    log_warn("shutdown grace period over: closing ", sessions_.size(), " connection(s)");
    std::vector<std::shared_ptr<session>> remaining;
    for (auto& [id, weak] : sessions_) {
      if (auto s = weak.lock()) remaining.push_back(std::move(s));
    }
    for (auto& s : remaining)
      s->close();
    sessions_.clear();
  });
}

void broker::on_session_closed(uint64_t id) {
  sessions_.erase(id);
  if (stopping_.raised() && sessions_.empty() && grace_timer_) grace_timer_->cancel();
}

void broker::close_storage() {
  if (!logs_) return;
  uint64_t syncs = 0;
  uint64_t waits = 0;
  for (storage::log* l : logs_->logs()) {
    syncs += l->sync_count();
    waits += l->synced_waiters();
  }
  // One line an operator (and the group-commit test) can read: how well syncs were shared.
  log_info("durability: ", syncs, " fsyncs released ", waits, " durability waits; ",
           stats_.acks_all_batches, " acks=all batches");
  size_t index_heap = 0;
  for (storage::log* l : logs_->logs())
    index_heap += l->index_heap_bytes();
  log_info("reads: ", stats_.cold_reads, " fetch rounds warmed cold data off the io thread; ",
           index_heap, " bytes of index entries on the heap");
  if (std::error_code ec = logs_->shutdown()) {
    log_error("clean shutdown of ", config_.log_dir.string(), " failed: ", ec.message());
  }
}

template <typename T>
T broker::run_to_completion(asio::awaitable<T> call) {
  std::optional<T> result;
  std::exception_ptr failure;
  asio::co_spawn(io_, std::move(call), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) result = std::move(value);
  });
  // Not io_.run(): what the call leaves running (a lease's keep-alive) keeps the context busy.
  while (!result && !failure) {
    if (io_.stopped()) io_.restart();
    io_.run_one();
  }
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

// Kafka keeps the cluster id in meta.properties in each log dir; so does Sluice, with the same
// keys, generating one on the first start of an empty data directory. Written atomically and
// synced. An unreadable or malformed file, or a missing one in a data directory that already
// holds partitions, stops the start: a new cluster id would silently make this a different
// cluster's data. A node.id that differs from the configured one stops it too, as in Kafka.
std::string broker::load_cluster_id(const std::string& expected, std::string& problem) {
  storage::file_system& fs = storage::default_file_system();
  const std::filesystem::path path = config_.log_dir / "meta.properties";
  std::string text;
  bool missing = false;
  if (std::error_code ec = storage::read_small_file(fs, path, text, missing)) {
    problem = "cannot read " + path.string() + ": " + ec.message();
    return {};
  }
  if (!missing) {
    std::map<std::string, std::string, std::less<>> props;
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      std::string_view line(text.data() + start,
                            (nl == std::string::npos ? text.size() : nl) - start);
      start = nl == std::string::npos ? text.size() : nl + 1;
      if (line.empty() || line.front() == '#') continue;
      size_t eq = line.find('=');
      if (eq == std::string_view::npos) {
        problem = path.string() + " is malformed (a line without '=')";
        return {};
      }
      props[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
    auto id = props.find("cluster.id");
    if (id == props.end() || id->second.empty()) {
      problem = path.string() + " has no cluster.id";
      return {};
    }
    for (const char* key : {"node.id", "broker.id"}) {
      if (auto node = props.find(key);
          node != props.end() && node->second != std::to_string(config_.node_id)) {
        problem = "the stored " + std::string(key) + " " + node->second + " in " + path.string() +
                  " does not match the configured node.id " + std::to_string(config_.node_id);
        return {};
      }
    }
    if (!expected.empty() && id->second != expected) {
      // Kafka's InconsistentClusterIdException: mixing two clusters' data would serve one's
      // records under the other's topics.
      problem = "the log directory " + config_.log_dir.string() + " belongs to cluster " +
                id->second + ", not to the cluster " + expected + " at " +
                config_.metadata_etcd_prefix + " in metadata.etcd.endpoints: refusing to start " +
                "(use an empty log directory to join this cluster)";
      return {};
    }
    return id->second;
  }
  std::vector<storage::dir_entry> entries;
  if (std::error_code ec = fs.list(config_.log_dir, entries)) {
    problem = "cannot list " + config_.log_dir.string();
    return {};
  }
  for (const auto& e : entries) {
    if (e.is_directory && storage::parse_partition_dir_name(e.name)) {
      problem = config_.log_dir.string() + " holds partitions but no meta.properties: refusing " +
                "to give existing data a new cluster id (restore meta.properties)";
      return {};
    }
  }
  const std::string id = expected.empty() ? cluster::random_cluster_id() : expected;
  std::string content = "#\n# Written by sluice\nversion=1\ncluster.id=" + id +
                        "\nnode.id=" + std::to_string(config_.node_id) + "\n";
  if (std::error_code ec = storage::replace_file(fs, path, content)) {
    problem = "cannot write " + path.string() + ": " + ec.message();
    return {};
  }
  return id;
}

}  // namespace sluice::server
