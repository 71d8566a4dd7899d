#include "server/broker.h"

#include <algorithm>
#include <exception>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include <boost/asio/ip/v6_only.hpp>

#include "server/logging.h"
#include "server/session.h"
#include "server/topic_config.h"
#include "storage/log_sink.h"

namespace sluice::server {

namespace asio = boost::asio;
using asio::ip::tcp;

broker::broker(asio::io_context& io, broker_config config) : io_(io), config_(std::move(config)) {}

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

// Kafka checkpoints recovery points every 60 s (log.flush.offset.checkpoint.interval.ms) and high
// watermarks every 5 s; one timer does both here, at the shorter period.
constexpr std::chrono::seconds checkpoint_interval{5};
// Kafka's producer.id.expiration.check.interval.ms default.
constexpr int64_t producer_expiration_check_interval_ms = 600000;
}  // namespace

std::string broker::start() {
  // The broker's value of every topic config (topic_config.h); topics with configs of their own
  // get them from topic_registry::load_configs below, before anything is appended.
  storage::log_config log_defaults = effective_log_config(config_, {});
  logs_ = std::make_unique<storage::log_manager>(config_.log_dir, log_defaults);
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
  cluster_id_ = load_cluster_id();
  if (cluster_id_.empty()) {
    return "cannot write " + (config_.log_dir / "meta.properties").string();
  }
  producer_ids_ = std::make_unique<producer_id_allocator>(config_.log_dir);
  if (std::string problem; producer_ids_->load(problem)) return problem;
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
      return "cannot listen on " + l.name + "://" + l.host + ":" + std::to_string(l.port) + ": " +
             ec.message();
    }
    uint16_t bound_port = acceptor->local_endpoint().port();
    // An ephemeral listener advertises the port it actually got.
    if (i < config_.advertised_listeners.size() && config_.advertised_listeners[i].port == 0) {
      config_.advertised_listeners[i].port = bound_port;
    }
    std::string shown_host = l.host.empty() ? "0.0.0.0" : l.host;
    log_info("listening on ", l.name, "://", shown_host, ":", bound_port, " (advertised as ",
             advertised().host, ":", advertised().port, ")");
    accept(*acceptor);
    acceptors_.push_back(std::move(acceptor));
  }
  checkpoint_timer_.emplace(io_);
  schedule_checkpoint();
  retention_timer_.emplace(io_);
  schedule_retention();
  return {};
}

namespace {
// Feeds what __consumer_offsets holds back into the coordinator.
class coordinator_loader final : public group_loader {
 public:
  explicit coordinator_loader(group_coordinator& c) : coordinator_(c) {}
  void load_group(std::string_view id, const group_metadata_record& r, int64_t ts) override {
    coordinator_.load_group(id, r, ts);
  }
  void load_offset(std::string_view id, const offset_record& r) override {
    coordinator_.load_offset(id, r);
  }

 private:
  group_coordinator& coordinator_;
};
}  // namespace

// Group state lives in the internal topic __consumer_offsets, as in Kafka: the coordinator
// appends every commit and group change to it, and its records are replayed here before the
// broker serves anyone.
std::string broker::load_groups(const group_coordinator_config& groups_config) {
  topic* offsets_topic = topics_->find(consumer_offsets_topic);
  if (offsets_topic == nullptr) {
    wire::error_code e = topics_->create(consumer_offsets_topic, 1, offsets_topic);
    if (e != wire::error_code::none) {
      return "cannot create " + std::string(consumer_offsets_topic) + ": " +
             std::string(wire::error_name(e));
    }
  }
  partition& offsets_partition = *offsets_topic->partitions.front();
  offsets_log_ = std::make_unique<offsets_log>(offsets_partition, io_.get_executor());
  groups_ =
      std::make_unique<group_coordinator>(io_.get_executor(), groups_config, offsets_log_.get());
  coordinator_loader loader(*groups_);
  replay_stats stats;
  // Refusing to start beats serving without commits that a client was told are safe.
  if (std::error_code ec = replay_consumer_offsets(offsets_partition.log(), loader, &stats)) {
    return "cannot replay " + std::string(consumer_offsets_topic) + "-0: " + ec.message();
  }
  if (stats.records > 0) {
    log_info("replayed ", consumer_offsets_topic, "-0: ", stats.records, " records in ",
             stats.batches, " batches");
  }
  groups_->start_offset_expiry();
  return {};
}

void broker::schedule_checkpoint() {
  checkpoint_timer_->expires_after(checkpoint_interval);
  checkpoint_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    if (std::error_code cec = logs_->checkpoint()) {
      log_error("writing checkpoints in ", config_.log_dir.string(), " failed: ", cec.message());
    }
    schedule_checkpoint();
  });
}

void broker::schedule_retention() {
  retention_timer_->expires_after(
      std::chrono::milliseconds(std::max<int64_t>(1, config_.log_retention_check_interval_ms)));
  retention_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
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

void broker::accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([this, &acceptor](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      // Out of descriptors or memory: accepting again at once would fail again at once (and
      // flood the log), so back off, doubling up to a second, and log only the first failure.
      if (accept_backoff_ms_ == 0) log_warn("accept failed: ", ec.message(), "; backing off");
      accept_backoff_ms_ = std::clamp(accept_backoff_ms_ * 2, 100, 1000);
      auto retry =
          std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(accept_backoff_ms_));
      retry->async_wait([this, &acceptor, retry](boost::system::error_code wait_ec) {
        if (!wait_ec && !stopping_) accept(acceptor);
      });
      return;
    }
    if (accept_backoff_ms_ != 0) {
      log_info("accepting connections again");
      accept_backoff_ms_ = 0;
    }
    auto s = std::make_shared<session>(std::move(socket), *this, next_session_id_++);
    sessions_.emplace(s->id(), s);
    s->start();
    accept(acceptor);
  });
}

void broker::stop() {
  if (stopping_) return;
  stopping_ = true;
  log_info("shutting down: no new connections, answering in-flight requests");
  if (checkpoint_timer_) checkpoint_timer_->cancel();
  if (retention_timer_) retention_timer_->cancel();
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
  if (stopping_ && sessions_.empty() && grace_timer_) grace_timer_->cancel();
}

void broker::close_storage() {
  if (!logs_) return;
  if (std::error_code ec = logs_->shutdown()) {
    log_error("clean shutdown of ", config_.log_dir.string(), " failed: ", ec.message());
  }
}

wire::error_code broker::find_or_create_topic(std::string_view name, bool allow_auto_create,
                                              topic*& out) {
  out = topics_->find(name);
  if (out != nullptr) return wire::error_code::none;
  if (!is_valid_topic_name(name)) return wire::error_code::invalid_topic_exception;
  // Internal topics are the broker's own to create (Kafka: never by a client's request).
  if (!allow_auto_create || !config_.auto_create_topics_enable || is_internal_topic(name)) {
    return wire::error_code::unknown_topic_or_partition;
  }
  return topics_->create(name, config_.num_partitions, out);
}

// Kafka keeps the cluster id in meta.properties in each log dir; so does Sluice, with the same
// keys, generating one on first start.
std::string broker::load_cluster_id() {
  std::filesystem::path path = config_.log_dir / "meta.properties";
  std::ifstream in(path);
  std::string line;
  while (in && std::getline(in, line)) {
    if (line.starts_with("cluster.id=")) return line.substr(11);
  }
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::mt19937_64 rng{std::random_device{}()};
  std::string id;
  for (int i = 0; i < 22; ++i)
    id.push_back(alphabet[rng() % 64]);
  std::ofstream out(path, std::ios::trunc);
  out << "#\n# Written by sluice\nversion=1\ncluster.id=" << id << "\nnode.id=" << config_.node_id
      << "\n";
  out.close();
  return out ? id : std::string{};
}

}  // namespace sluice::server
