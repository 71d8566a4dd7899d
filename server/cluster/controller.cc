#include "server/cluster/controller.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <set>
#include <sstream>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/cluster/controller_internal.h"
#include "server/cluster/reassignment.h"
#include "server/logging.h"
#include "server/topics.h"
#include "storage/checkpoint.h"

namespace sluice::server::cluster {

namespace asio = boost::asio;
using coordination::compare;
using coordination::compare_op;
using coordination::key_value;
using coordination::operation;
using coordination::store_errc;
using internal::format_ids;
using internal::not_controller_message;
using internal::stopped;
using wire::error_code;

namespace {

constexpr char unknown_topic_message[] = "This server does not host this topic-partition.";

constexpr char unknown_topic_id_message[] = "This server does not host this topic ID.";
constexpr char too_many_partitions_message[] =
    "Excessively large number of partitions per request.";

// Kafka's Topic.validate, with its messages.
std::string invalid_topic_name(const std::string& name) {
  if (is_valid_topic_name(name)) return {};
  if (name.empty()) return "Topic name is illegal, it can't be empty";
  if (name == "." || name == "..") return "Topic name cannot be \".\" or \"..\"";
  if (name.size() > 249) {
    return "Topic name is illegal, it can't be longer than 249 characters, topic name: " + name;
  }
  return "Topic name \"" + name +
         "\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'";
}

// Kafka's Topic.unifyCollisionChars: '.' and '_' map to the same metric names.
std::string collision_key(std::string_view name) {
  std::string key(name);
  std::replace(key.begin(), key.end(), '.', '_');
  return key;
}

std::string cannot_replicate(int64_t replication_factor, size_t brokers) {
  return "The target replication factor of " + std::to_string(replication_factor) +
         " cannot be reached because only " + std::to_string(brokers) +
         " broker(s) are registered.";
}

}  // namespace

controller::controller(coordination::metadata_store& store, cluster_member& member,
                       controller_config config)
    : store_(store),
      member_(member),
      config_(std::move(config)),
      queue_(std::make_shared<queue>()) {}

controller::~controller() {
  alive_.reset();
  stop();
  queue_->close();
}

std::vector<placement_broker> controller::live_brokers() const {
  std::vector<placement_broker> out;
  // A broker in controlled shutdown gets no new replicas, as KRaft's usable brokers.
  for (const auto& [id, b] : member_.image().brokers()) {
    if (!b.record.controlled_shutdown) out.push_back({id, b.record.rack});
  }
  return out;
}

asio::awaitable<controller::failure> controller::ready() {
  std::weak_ptr<bool> alive = alive_;
  if (!member_.is_controller())
    co_return failure{error_code::not_controller, not_controller_message};
  const int64_t target = last_written_;
  if (member_.image().revision() < target) {
    auto caught_up = std::make_shared<asio::steady_timer>(
        co_await asio::this_coro::executor, std::chrono::milliseconds(config_.catch_up_timeout_ms));
    cancel_handle watching = member_.on_change([caught_up, &image = member_.image(), target] {
      if (image.revision() >= target) caught_up->cancel();
    });
    co_await caught_up->async_wait(asio::as_tuple(asio::use_awaitable));
    if (alive.expired()) co_return failure{error_code::not_controller, not_controller_message};
    if (member_.image().revision() < target) {
      log_warn("controller: the metadata image is at revision ", member_.image().revision(),
               ", still short of this controller's last write at ", target, " after ",
               config_.catch_up_timeout_ms, " ms");
      co_return failure{error_code::request_timed_out,
                        "The controller's view of the cluster has not caught up with its last "
                        "write yet."};
    }
  }
  if (!member_.is_controller())
    co_return failure{error_code::not_controller, not_controller_message};
  co_return failure{};
}

asio::awaitable<controller::write_outcome> controller::write(coordination::txn_request txn,
                                                             int64_t epoch, std::string confirm_key,
                                                             confirmation applied) {
  std::weak_ptr<bool> alive = alive_;
  const std::string election = keys::controller(prefix());
  txn.compares.insert(txn.compares.begin(),
                      compare::create_revision(election, compare_op::equal, epoch));
  const auto gone = write_outcome{write_status::not_controller, 0, "the controller is stopping"};

  coordination::txn_result r = co_await store_.txn(std::move(txn));
  if (alive.expired()) co_return gone;
  if (!r.error && r.succeeded) {
    last_written_ = std::max(last_written_, r.revision);
    co_return write_outcome{write_status::applied, r.revision, {}};
  }
  if (!r.error) {
    // The answer does not say which compare failed: the election key tells whether it was ours.
    coordination::range_result now = co_await store_.get(election);
    if (alive.expired()) co_return gone;
    if (now.error) {
      co_return write_outcome{write_status::timed_out, 0,
                              "The metadata store refused a conditional write and then did not "
                              "answer: " +
                                  now.error.message()};
    }
    if (now.kvs.empty() || now.kvs.front().create_revision != epoch) {
      co_return write_outcome{write_status::not_controller, 0, not_controller_message};
    }
    co_return write_outcome{write_status::conflict, 0, {}};
  }
  if (r.error == store_errc::unavailable) {
    co_return write_outcome{write_status::timed_out, 0,
                            "The metadata store is unavailable: " + r.error.message()};
  }
  if (r.error == store_errc::rejected || r.error == store_errc::lease_not_found) {
    co_return write_outcome{write_status::failed, 0,
                            "The metadata store refused the write: " + r.error.message()};
  }
  // The write may or may not have applied: only the key it writes can tell.
  coordination::range_result check = co_await store_.get(confirm_key);
  if (alive.expired()) co_return gone;
  const key_value* kv = check.kvs.empty() ? nullptr : &check.kvs.front();
  if (check.error || !applied(kv)) {
    co_return write_outcome{
        write_status::timed_out, 0,
        "The outcome of a write to the metadata store is unknown (" + r.error.message() + ")."};
  }
  // A deletion's revision cannot be read back: the next decision may then see the deleted keys
  // for a moment, and its own compares keep that from writing anything wrong.
  const int64_t revision = kv ? kv->mod_revision : 0;
  last_written_ = std::max(last_written_, revision);
  co_return write_outcome{write_status::applied, revision, {}};
}

asio::awaitable<controller::write_outcome> controller::write_partitions(
    const topic_plan& plan, int64_t epoch, const std::vector<compare>& compares,
    std::vector<operation> final_ops, std::string confirm_key, std::string confirm_value) {
  std::weak_ptr<bool> alive = alive_;
  std::vector<operation> puts;
  for (size_t p = static_cast<size_t>(plan.first_new_partition); p < plan.record.replicas.size();
       ++p) {
    const std::vector<int32_t>& replicas = plan.record.replicas[p];
    puts.push_back(operation::put(keys::partition(prefix(), plan.id, static_cast<int32_t>(p)),
                                  encode(partition_record{replicas.front(), 0, replicas})));
  }
  const size_t limit =
      std::max(static_cast<size_t>(std::max(config_.max_txn_ops, 1)), final_ops.size() + 1);
  // The last transaction requires the last key of every earlier one: a sweep that erased them
  // after a failure makes a late arrival of the last transaction fail, instead of completing a
  // topic with missing partitions.
  std::vector<compare> final_compares = compares;
  size_t next = 0;
  while (puts.size() - next + final_ops.size() > limit) {
    coordination::txn_request txn;
    txn.compares = compares;
    const size_t end = next + limit;
    txn.success.assign(puts.begin() + static_cast<std::ptrdiff_t>(next),
                       puts.begin() + static_cast<std::ptrdiff_t>(end));
    const std::string marker = puts[end - 1].key;
    const std::string value = puts[end - 1].value;
    confirmation written = [value](const key_value* kv) {
      return kv != nullptr && kv->value == value;
    };
    write_outcome w = co_await write(std::move(txn), epoch, marker, std::move(written));
    if (alive.expired()) co_return w;
    if (w.status != write_status::applied) {
      if (next > 0) swept_epoch_ = 0;
      co_return w;
    }
    final_compares.push_back(compare::create_revision(marker, compare_op::greater, 0));
    next = end;
  }
  coordination::txn_request last;
  last.compares = std::move(final_compares);
  last.success.assign(puts.begin() + static_cast<std::ptrdiff_t>(next), puts.end());
  for (operation& op : final_ops)
    last.success.push_back(std::move(op));
  confirmation written = [value = std::move(confirm_value)](const key_value* kv) {
    return kv != nullptr && kv->value == value;
  };
  write_outcome w =
      co_await write(std::move(last), epoch, std::move(confirm_key), std::move(written));
  if (alive.expired()) co_return w;
  if (w.status != write_status::applied && next > 0) swept_epoch_ = 0;
  co_return w;
}

asio::awaitable<void> controller::sweep_orphans(int64_t epoch) {
  std::weak_ptr<bool> alive = alive_;
  const std::string topics_prefix = keys::topics(prefix());
  coordination::range_result topics = co_await store_.get_prefix(topics_prefix);
  if (alive.expired()) co_return;
  coordination::range_result parts;
  if (!topics.error) {
    parts = co_await store_.get_prefix(prefix() + "/partitions/");
    if (alive.expired()) co_return;
  }
  if (topics.error || parts.error) {
    log_warn("controller (epoch ", epoch,
             "): cannot read the partitions to erase those of incomplete creations: ",
             (topics.error ? topics.error : parts.error).message());
    co_return;
  }
  struct known_topic {
    size_t partitions = 0;
    int64_t mod_revision = 0;
  };
  std::map<wire::uuid, known_topic> known;
  for (const key_value& kv : topics.kvs) {
    std::optional<wire::uuid> id =
        storage::uuid_from_base64(std::string_view(kv.key).substr(topics_prefix.size()));
    if (!id) continue;
    std::optional<topic_record> record = decode_topic(kv.value);
    // A record this version cannot read is left alone, with every partition it may have.
    known[*id] = {record ? record->replicas.size() : SIZE_MAX, kv.mod_revision};
  }
  std::map<wire::uuid, std::vector<std::string>> orphans;
  for (const key_value& kv : parts.kvs) {
    auto tp = keys::partition_of(prefix(), kv.key);
    if (!tp) continue;
    auto it = known.find(tp->first);
    if (it == known.end() || static_cast<size_t>(tp->second) >= it->second.partitions) {
      orphans[tp->first].push_back(kv.key);
    }
  }
  bool complete = true;
  const size_t limit = static_cast<size_t>(std::max(config_.max_txn_ops, 1));
  for (const auto& [id, orphan_keys] : orphans) {
    const std::string topic_key = keys::topic(prefix(), id);
    auto it = known.find(id);
    // Each transaction requires its first key to be there, so that it changes something and the
    // image shows its revision; it counts as applied once that key is gone.
    std::vector<std::pair<coordination::txn_request, std::string>> erasures;
    if (it == known.end()) {
      coordination::txn_request txn;
      txn.compares.push_back(compare::create_revision(orphan_keys.front(), compare_op::greater, 0));
      txn.compares.push_back(compare::create_revision(topic_key, compare_op::equal, 0));
      txn.success.push_back(operation::erase_prefix(keys::partitions(prefix(), id)));
      erasures.emplace_back(std::move(txn), orphan_keys.front());
    } else {
      for (size_t next = 0; next < orphan_keys.size(); next += limit) {
        coordination::txn_request txn;
        txn.compares.push_back(compare::create_revision(orphan_keys[next], compare_op::greater, 0));
        txn.compares.push_back(
            compare::mod_revision(topic_key, compare_op::equal, it->second.mod_revision));
        for (size_t i = next; i < std::min(orphan_keys.size(), next + limit); ++i)
          txn.success.push_back(operation::erase(orphan_keys[i]));
        erasures.emplace_back(std::move(txn), orphan_keys[next]);
      }
    }
    bool erased = true;
    for (auto& [txn, confirm_key] : erasures) {
      confirmation erased_key = [](const key_value* kv) { return kv == nullptr; };
      write_outcome w = co_await write(std::move(txn), epoch, confirm_key, std::move(erased_key));
      if (alive.expired()) co_return;
      erased = erased && w.status == write_status::applied;
    }
    complete = complete && erased;
    log_info("controller (epoch ", epoch, "): ", erased ? "erased " : "could not erase ",
             orphan_keys.size(), " partition key(s) of topic id ", storage::uuid_to_base64(id),
             " left by an incomplete write",
             it == known.end() ? " (no topic record)" : " (beyond the topic's assignment)");
  }
  if (complete) swept_epoch_ = epoch;
}

controller::failure controller::check_manual_assignment(
    const std::vector<int32_t>& replicas, std::optional<size_t> replication_factor) const {
  const broker_predicate registered = [this](int32_t id) {
    return member_.image().broker(id) != nullptr;
  };
  if (std::string why = invalid_replica_list(replicas, registered); !why.empty()) {
    return {error_code::invalid_replica_assignment, std::move(why)};
  }
  const size_t count = replicas.size();
  if (replication_factor && count != *replication_factor) {
    return {error_code::invalid_replica_assignment,
            "The manual partition assignment includes a partition with " + std::to_string(count) +
                " replica(s), but this is not consistent with previous partitions, which have " +
                std::to_string(*replication_factor) + " replica(s)."};
  }
  return {};
}

controller::failure controller::decide_create(const create_topic_request& t, topic_plan& plan) {
  const metadata_image& image = member_.image();
  if (std::string why = invalid_topic_name(t.name); !why.empty()) {
    return {error_code::invalid_topic_exception, why};
  }
  if (image.topic_id(t.name)) {
    return {error_code::topic_already_exists, "Topic '" + t.name + "' already exists."};
  }
  const std::string key = collision_key(t.name);
  for (const auto& [id, existing] : image.topics()) {
    if (existing.name != t.name && collision_key(existing.name) == key) {
      return {error_code::invalid_topic_exception,
              "Topic '" + t.name + "' collides with existing topic: " + existing.name};
    }
  }
  plan.record.name = t.name;
  plan.record.configs = t.configs;
  plan.first_new_partition = 0;

  if (!t.assignments.empty()) {
    if (t.replication_factor != -1) {
      return {error_code::invalid_request,
              "A manual partition assignment was specified, but replication factor was not set "
              "to -1."};
    }
    if (t.num_partitions != -1) {
      return {error_code::invalid_request,
              "A manual partition assignment was specified, but numPartitions was not set to -1."};
    }
    std::optional<size_t> replication_factor;
    for (const auto& [p, replicas] : t.assignments) {
      if (failure f = check_manual_assignment(replicas, replication_factor)) return f;
      replication_factor = replicas.size();
    }
    int32_t expected = 0;
    for (const auto& [p, replicas] : t.assignments) {
      if (p != expected++) {
        return {error_code::invalid_replica_assignment,
                "partitions should be a consecutive 0-based integer sequence"};
      }
      plan.record.replicas.push_back(replicas);
    }
  } else {
    if (t.replication_factor < -1 || t.replication_factor == 0) {
      return {error_code::invalid_replication_factor,
              "Replication factor must be larger than 0, or -1 to use the default value."};
    }
    if (t.num_partitions < -1 || t.num_partitions == 0) {
      return {error_code::invalid_partitions,
              "Number of partitions was set to an invalid non-positive value."};
    }
    placement_request request;
    request.partitions = t.num_partitions == -1 ? config_.default_num_partitions : t.num_partitions;
    request.replication_factor =
        t.replication_factor == -1 ? config_.default_replication_factor : t.replication_factor;
    const std::string unable = "Unable to replicate the partition " +
                               std::to_string(request.replication_factor) + " time(s): ";
    std::vector<placement_broker> brokers = live_brokers();
    if (request.replication_factor > 0 &&
        static_cast<size_t>(request.replication_factor) > brokers.size()) {
      return {error_code::invalid_replication_factor,
              unable + cannot_replicate(request.replication_factor, brokers.size())};
    }
    placement_result placed = place_replicas(std::move(brokers), request, random_);
    switch (placed.error) {
      case placement_error::none:
        break;
      case placement_error::invalid_partitions:
        return {error_code::invalid_partitions, placed.message};
      case placement_error::invalid_replication_factor:
      case placement_error::partial_rack_information:
        return {error_code::invalid_replication_factor, unable + placed.message};
    }
    plan.record.replicas = std::move(placed.assignment);
  }
  plan.id = random_topic_id();
  return {};
}

asio::awaitable<std::vector<create_topic_result>> controller::create_topics(
    std::vector<create_topic_request> requests) {
  std::weak_ptr<bool> alive = alive_;
  std::vector<create_topic_result> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i)
    results[i].name = requests[i].name;
  auto fail_all = [&results](const failure& f) {
    for (create_topic_result& r : results) {
      if (r.error == error_code::none) {
        r.error = f.code;
        r.message = f.message;
      }
    }
  };

  queue::turn my_turn = co_await queue::take(queue_);
  if (alive.expired()) {
    fail_all({error_code::not_controller, not_controller_message});
    co_return results;
  }
  if (failure f = co_await ready()) {
    fail_all(f);
    co_return results;
  }
  if (alive.expired()) co_return results;

  // Kafka's front end refuses every occurrence of a name given twice before the controller
  // sees the request, and the controller counts the partitions of the rest.
  std::map<std::string, int> occurrences;
  for (const create_topic_request& t : requests)
    ++occurrences[t.name];
  int64_t total_partitions = 0;
  bool writes = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    const create_topic_request& t = requests[i];
    if (occurrences[t.name] > 1) {
      results[i].error = error_code::invalid_request;
      results[i].message = "Duplicate topic name.";
      continue;
    }
    total_partitions += !t.assignments.empty()   ? static_cast<int64_t>(t.assignments.size())
                        : t.num_partitions == -1 ? config_.default_num_partitions
                                                 : std::max<int64_t>(t.num_partitions, 0);
    writes = writes || !t.validate_only;
  }
  if (total_partitions > config_.max_partitions_per_request) {
    log_info("controller (epoch ", member_.controller_epoch(), "): refused to create ",
             requests.size(), " topic(s) with ", total_partitions, " partitions in one request");
    fail_all({error_code::policy_violation, too_many_partitions_message});
    co_return results;
  }

  const int64_t epoch = member_.controller_epoch();
  if (writes && swept_epoch_ != epoch) {
    co_await sweep_orphans(epoch);
    if (alive.expired()) {
      fail_all({error_code::not_controller, not_controller_message});
      co_return results;
    }
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    if (results[i].error != error_code::none) continue;
    results[i] = co_await create_one(requests[i]);
    if (alive.expired()) {
      fail_all({error_code::not_controller, not_controller_message});
      co_return results;
    }
  }
  co_return results;
}

asio::awaitable<create_topic_result> controller::create_one(const create_topic_request& t) {
  std::weak_ptr<bool> alive = alive_;
  create_topic_result result;
  result.name = t.name;
  // Every topic is decided from an image that shows the previous one, as a name colliding with
  // one created just before must be refused.
  if (failure f = co_await ready()) {
    result.error = f.code;
    result.message = f.message;
    co_return result;
  }
  if (alive.expired()) co_return stopped(std::move(result));
  const int64_t epoch = member_.controller_epoch();
  const std::string what = t.validate_only ? "validate the creation of" : "create";
  topic_plan plan;
  if (failure f = decide_create(t, plan)) {
    log_info("controller (epoch ", epoch, "): refused to ", what, " topic ", log_safe(t.name), ": ",
             wire::error_name(f.code), " (", log_safe(f.message), ")");
    result.error = f.code;
    result.message = std::move(f.message);
    co_return result;
  }
  result.num_partitions = static_cast<int32_t>(plan.record.replicas.size());
  result.replication_factor = static_cast<int16_t>(plan.record.replicas.front().size());
  if (t.validate_only) {
    log_info("controller (epoch ", epoch, "): topic ", t.name, " with ", result.num_partitions,
             " partitions, replication factor ", result.replication_factor,
             " may be created (validate only)");
    co_return result;
  }

  const std::string id_text = storage::uuid_to_base64(plan.id);
  const std::string name_key = keys::topic_name(prefix(), t.name);
  std::vector<compare> compares = {compare::create_revision(name_key, compare_op::equal, 0)};
  std::vector<operation> final_ops = {
      operation::put(keys::topic(prefix(), plan.id), encode(plan.record)),
      operation::put(name_key, id_text)};
  write_outcome w =
      co_await write_partitions(plan, epoch, compares, std::move(final_ops), name_key, id_text);
  if (alive.expired()) co_return stopped(std::move(result));
  switch (w.status) {
    case write_status::applied:
      result.topic_id = plan.id;
      log_info("controller (epoch ", epoch, "): created topic ", t.name, " (id ", id_text,
               ") with ", result.num_partitions, " partitions, replication factor ",
               result.replication_factor, " at revision ", w.revision);
      co_return result;
    case write_status::not_controller:
      result.error = error_code::not_controller;
      result.message = not_controller_message;
      break;
    case write_status::conflict:
      result.error = error_code::topic_already_exists;
      result.message = "Topic '" + t.name + "' already exists.";
      break;
    case write_status::timed_out:
      result.error = error_code::request_timed_out;
      result.message = w.detail;
      break;
    case write_status::failed:
      result.error = error_code::unknown_server_error;
      result.message = w.detail;
      break;
  }
  log_info("controller (epoch ", epoch, "): could not create topic ", t.name, ": ",
           wire::error_name(result.error), " (", result.message, ")");
  result.num_partitions = -1;
  result.replication_factor = -1;
  co_return result;
}

asio::awaitable<std::vector<delete_topic_result>> controller::delete_topics(
    std::vector<delete_topic_request> requests) {
  std::weak_ptr<bool> alive = alive_;
  std::vector<delete_topic_result> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    results[i].name = requests[i].name;
    results[i].id = requests[i].id;
  }
  queue::turn my_turn = co_await queue::take(queue_);
  for (size_t i = 0; i < requests.size(); ++i) {
    if (alive.expired()) {
      results[i].error = error_code::not_controller;
      results[i].message = not_controller_message;
      continue;
    }
    results[i] = co_await delete_one(requests[i]);
  }
  co_return results;
}

asio::awaitable<delete_topic_result> controller::delete_one(const delete_topic_request& request) {
  std::weak_ptr<bool> alive = alive_;
  delete_topic_result result;
  result.name = request.name;
  result.id = request.id;
  if (failure f = co_await ready()) {
    result.error = f.code;
    result.message = std::move(f.message);
    co_return result;
  }
  if (alive.expired()) co_return stopped(std::move(result));
  const int64_t epoch = member_.controller_epoch();
  const metadata_image& image = member_.image();
  const bool by_name = !request.name.empty();
  const auto unknown = [&] {
    result.error = by_name ? error_code::unknown_topic_or_partition : error_code::unknown_topic_id;
    result.message = by_name ? unknown_topic_message : unknown_topic_id_message;
  };
  std::optional<wire::uuid> id = by_name ? image.topic_id(request.name) : request.id;
  const topic_record* record = id ? image.topic(*id) : nullptr;
  if (record == nullptr) {
    unknown();
    log_info("controller (epoch ", epoch, "): refused to delete topic ",
             by_name ? log_safe(request.name) : "id " + storage::uuid_to_base64(request.id), ": ",
             wire::error_name(result.error));
    co_return result;
  }
  result.id = *id;
  result.name = record->name;
  const size_t partitions = record->replicas.size();
  const std::string id_text = storage::uuid_to_base64(*id);
  const std::string topic_key = keys::topic(prefix(), *id);

  coordination::txn_request txn;
  txn.compares.push_back(compare::create_revision(topic_key, compare_op::greater, 0));
  txn.success.push_back(operation::erase(topic_key));
  txn.success.push_back(operation::erase_prefix(keys::partitions(prefix(), *id)));
  if (image.topic_id(record->name) == *id) {
    const std::string name_key = keys::topic_name(prefix(), record->name);
    txn.compares.push_back(compare::value_is(name_key, compare_op::equal, id_text));
    txn.success.push_back(operation::erase(name_key));
  }
  confirmation erased = [](const key_value* kv) { return kv == nullptr; };
  write_outcome w = co_await write(std::move(txn), epoch, topic_key, std::move(erased));
  if (alive.expired()) co_return stopped(std::move(result));
  switch (w.status) {
    case write_status::applied:
      log_info("controller (epoch ", epoch, "): deleted topic ", result.name, " (id ", id_text,
               ") with ", partitions, " partitions");
      co_return result;
    case write_status::not_controller:
      result.error = error_code::not_controller;
      result.message = not_controller_message;
      break;
    case write_status::conflict:
      unknown();
      break;
    case write_status::timed_out:
      result.error = error_code::request_timed_out;
      result.message = w.detail;
      break;
    case write_status::failed:
      result.error = error_code::unknown_server_error;
      result.message = w.detail;
      break;
  }
  log_info("controller (epoch ", epoch, "): could not delete topic ", result.name, " (id ", id_text,
           "): ", wire::error_name(result.error), " (", result.message, ")");
  co_return result;
}

asio::awaitable<create_partitions_result> controller::create_partitions(
    create_partitions_request request) {
  std::weak_ptr<bool> alive = alive_;
  create_partitions_result result;
  const auto fail = [&result](error_code code, std::string message) {
    result.error = code;
    result.message = std::move(message);
    return result;
  };
  queue::turn my_turn = co_await queue::take(queue_);
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  if (failure f = co_await ready()) co_return fail(f.code, std::move(f.message));
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  const int64_t epoch = member_.controller_epoch();
  if (!request.validate_only && swept_epoch_ != epoch) {
    co_await sweep_orphans(epoch);
    if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
    if (failure f = co_await ready()) co_return fail(f.code, std::move(f.message));
    if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  }
  const std::string name = log_safe(request.name);
  const auto refuse = [&](error_code code, std::string message) {
    log_info("controller (epoch ", epoch, "): refused to add partitions to topic ", name, ": ",
             wire::error_name(code), " (", log_safe(message), ")");
    return fail(code, std::move(message));
  };
  stored_topic stored = co_await read_topic(request.name);
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  if (stored.refused) co_return refuse(stored.refused.code, std::move(stored.refused.message));
  const std::string& topic_key = stored.key;
  topic_record& record = stored.record;
  const int64_t topic_revision = stored.revision;
  const int32_t current = static_cast<int32_t>(record.replicas.size());
  if (request.count == current) {
    co_return refuse(error_code::invalid_partitions,
                     "Topic already has " + std::to_string(current) + " partition(s).");
  }
  if (request.count < current) {
    co_return refuse(error_code::invalid_partitions,
                     "The topic " + request.name + " currently has " + std::to_string(current) +
                         " partition(s); " + std::to_string(request.count) +
                         " would not be an increase.");
  }
  const int32_t additional = request.count - current;
  if (additional > config_.max_partitions_per_request) {
    co_return refuse(error_code::policy_violation, too_many_partitions_message);
  }
  if (request.assignments && request.assignments->size() != static_cast<size_t>(additional)) {
    co_return refuse(
        error_code::invalid_replica_assignment,
        "Attempted to add " + std::to_string(additional) + " additional partition(s), but only " +
            std::to_string(request.assignments->size()) + " assignment(s) were specified.");
  }
  if (current == 0) {
    co_return refuse(error_code::unknown_server_error,
                     "Invalid state: topic " + request.name + " appears to have no partitions.");
  }
  const size_t replication_factor = record.replicas.front().size();

  topic_plan plan;
  plan.id = stored.id;
  plan.record = record;
  plan.first_new_partition = current;
  if (request.assignments) {
    for (const std::vector<int32_t>& replicas : *request.assignments) {
      if (failure f = check_manual_assignment(replicas, replication_factor)) {
        co_return refuse(f.code, std::move(f.message));
      }
      plan.record.replicas.push_back(replicas);
    }
  } else {
    std::vector<placement_broker> brokers = live_brokers();
    std::sort(brokers.begin(), brokers.end(),
              [](const placement_broker& a, const placement_broker& b) { return a.id < b.id; });
    if (replication_factor > brokers.size()) {
      co_return refuse(error_code::invalid_replication_factor,
                       cannot_replicate(static_cast<int64_t>(replication_factor), brokers.size()));
    }
    // Kafka continues from partition 0's preferred leader, so the new partitions' leaders carry
    // on the existing round-robin.
    const int32_t first_leader = record.replicas.front().front();
    auto start =
        std::find_if(brokers.begin(), brokers.end(),
                     [first_leader](const placement_broker& b) { return b.id >= first_leader; });
    placement_request placement;
    placement.partitions = additional;
    placement.replication_factor = static_cast<int16_t>(replication_factor);
    placement.first_partition = current;
    placement.start_index =
        start == brokers.end() ? 0 : static_cast<int32_t>(start - brokers.begin());
    placement_result placed = place_replicas(std::move(brokers), placement, random_);
    if (placed.error == placement_error::invalid_partitions) {
      co_return refuse(error_code::invalid_partitions, placed.message);
    }
    if (placed.error != placement_error::none) {
      co_return refuse(error_code::invalid_replication_factor, placed.message);
    }
    for (std::vector<int32_t>& replicas : placed.assignment)
      plan.record.replicas.push_back(std::move(replicas));
  }
  if (request.validate_only) {
    log_info("controller (epoch ", epoch, "): topic ", name, " may grow from ", current, " to ",
             request.count, " partitions (validate only)");
    co_return result;
  }

  std::string encoded = encode(plan.record);
  std::vector<compare> compares = {
      compare::mod_revision(topic_key, compare_op::equal, topic_revision)};
  std::vector<operation> final_ops = {operation::put(topic_key, encoded)};
  write_outcome w = co_await write_partitions(plan, epoch, compares, std::move(final_ops),
                                              topic_key, std::move(encoded));
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  switch (w.status) {
    case write_status::applied:
      log_info("controller (epoch ", epoch, "): topic ", name, " grew from ", current, " to ",
               request.count, " partitions at revision ", w.revision);
      co_return result;
    case write_status::not_controller:
      co_return refuse(error_code::not_controller, not_controller_message);
    case write_status::conflict:
      // Only the controller writes topic records, and its operations do not overlap.
      co_return refuse(error_code::unknown_server_error,
                       "The topic changed in the metadata store while partitions were being "
                       "added.");
    case write_status::timed_out:
      co_return refuse(error_code::request_timed_out, w.detail);
    case write_status::failed:
      break;
  }
  co_return refuse(error_code::unknown_server_error, w.detail);
}

asio::awaitable<controller::stored_topic> controller::read_topic(const std::string& name) {
  stored_topic out;
  std::optional<wire::uuid> id = member_.image().topic_id(name);
  if (!id) {
    out.refused = {error_code::unknown_topic_or_partition, unknown_topic_message};
    co_return out;
  }
  out.id = *id;
  out.key = keys::topic(prefix(), *id);
  coordination::range_result read = co_await store_.get(out.key);
  if (read.error) {
    out.refused = {error_code::request_timed_out,
                   "The metadata store did not answer: " + read.error.message()};
    co_return out;
  }
  std::optional<topic_record> record =
      read.kvs.empty() ? std::nullopt : decode_topic(read.kvs.front().value);
  if (!record) {
    out.refused = {error_code::unknown_topic_or_partition, unknown_topic_message};
    co_return out;
  }
  out.record = std::move(*record);
  out.revision = read.kvs.front().mod_revision;
  co_return out;
}

asio::awaitable<alter_topic_configs_result> controller::alter_topic_configs(
    alter_topic_configs_request request) {
  std::weak_ptr<bool> alive = alive_;
  alter_topic_configs_result result;
  const auto fail = [&result](error_code code, std::string message) {
    result.error = code;
    result.message = std::move(message);
    return result;
  };
  queue::turn my_turn = co_await queue::take(queue_);
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  if (failure f = co_await ready()) co_return fail(f.code, std::move(f.message));
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  const int64_t epoch = member_.controller_epoch();
  const std::string name = log_safe(request.name);
  const char* what = request.validate_only ? " (validate only)" : "";
  const auto refuse = [&](error_code code, std::string message) {
    log_info("controller (epoch ", epoch, "): refused to change the configs of topic ", name, what,
             ": ", wire::error_name(code), " (", log_safe(message), ")");
    return fail(code, std::move(message));
  };
  stored_topic stored = co_await read_topic(request.name);
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  if (stored.refused) co_return refuse(stored.refused.code, std::move(stored.refused.message));
  const std::string& topic_key = stored.key;
  topic_record& record = stored.record;
  const int64_t topic_revision = stored.revision;
  std::map<std::string, std::string> configs = record.configs;
  if (std::string why = request.change(configs); !why.empty()) {
    co_return refuse(error_code::invalid_config, std::move(why));
  }
  if (request.validate_only) {
    log_info("controller (epoch ", epoch, "): the configs of topic ", name,
             " may change (validate only)");
    co_return result;
  }
  if (configs == record.configs) {
    log_info("controller (epoch ", epoch, "): the configs of topic ", name,
             " are already as asked; nothing written");
    co_return result;
  }

  record.configs = std::move(configs);
  const std::string encoded = encode(record);
  coordination::txn_request txn;
  txn.compares.push_back(compare::mod_revision(topic_key, compare_op::equal, topic_revision));
  txn.success.push_back(operation::put(topic_key, encoded));
  confirmation written = [&encoded, topic_revision](const key_value* kv) {
    return kv != nullptr && kv->value == encoded && kv->mod_revision > topic_revision;
  };
  write_outcome w = co_await write(std::move(txn), epoch, topic_key, std::move(written));
  if (alive.expired()) co_return fail(error_code::not_controller, not_controller_message);
  switch (w.status) {
    case write_status::applied:
      result.revision = w.revision;
      log_info("controller (epoch ", epoch, "): topic ", name, " now has ", record.configs.size(),
               " config override(s) at revision ", w.revision);
      co_return result;
    case write_status::not_controller:
      co_return refuse(error_code::not_controller, not_controller_message);
    case write_status::conflict:
      // Only the controller writes topic records, and its operations do not overlap.
      co_return refuse(error_code::unknown_server_error,
                       "The topic changed in the metadata store while its configs were being "
                       "changed.");
    case write_status::timed_out:
      co_return refuse(error_code::request_timed_out, w.detail);
    case write_status::failed:
      break;
  }
  co_return refuse(error_code::unknown_server_error, w.detail);
}

asio::awaitable<alter_partition_result> controller::alter_partition(
    alter_partition_request request) {
  std::weak_ptr<bool> alive = alive_;
  alter_partition_result result;
  queue::turn my_turn = co_await queue::take(queue_);
  if (alive.expired()) {
    result.error = error_code::not_controller;
    co_return result;
  }
  if (failure f = co_await ready()) {
    result.error = f.code;
    co_return result;
  }
  if (alive.expired()) co_return stopped(std::move(result));
  const int64_t epoch = member_.controller_epoch();
  const metadata_image& image = member_.image();
  const topic_record* topic = image.topic(request.topic_id);
  const std::string where =
      (topic ? topic->name : "topic id " + storage::uuid_to_base64(request.topic_id)) + "-" +
      std::to_string(request.partition);
  const auto refuse = [&](error_code code, const std::string& why) {
    log_info("controller (epoch ", epoch, "): refused AlterPartition from broker ",
             request.broker_id, " for ", where, ": ", wire::error_name(code), " (", why, ")");
    result.error = code;
    return result;
  };

  // Kafka's order (ReplicationControlManager.alterPartition and validateAlterPartitionData).
  const live_broker* broker = image.broker(request.broker_id);
  if (broker == nullptr) {
    co_return refuse(error_code::stale_broker_epoch, "the broker is not registered");
  }
  if (broker->epoch != request.broker_epoch) {
    co_return refuse(error_code::stale_broker_epoch, "expected broker epoch " +
                                                         std::to_string(broker->epoch) + ", got " +
                                                         std::to_string(request.broker_epoch));
  }
  if (topic == nullptr) co_return refuse(error_code::unknown_topic_id, "unknown topic id");
  const partition_state* state = image.partition(request.topic_id, request.partition);
  if (state == nullptr || request.partition < 0 ||
      static_cast<size_t>(request.partition) >= topic->replicas.size()) {
    co_return refuse(error_code::unknown_topic_or_partition, "unknown partition");
  }
  const partition_record& current = state->record;
  const std::vector<int32_t>& replicas = topic->replicas[static_cast<size_t>(request.partition)];
  // A leader ahead of the controller learned its state from a newer controller.
  if (request.leader_epoch > current.leader_epoch) {
    co_return refuse(error_code::not_controller, "leader epoch " +
                                                     std::to_string(request.leader_epoch) +
                                                     " is newer than this controller's " +
                                                     std::to_string(current.leader_epoch));
  }
  if (request.partition_epoch > state->partition_epoch) {
    co_return refuse(error_code::not_controller, "partition epoch " +
                                                     std::to_string(request.partition_epoch) +
                                                     " is newer than this controller's " +
                                                     std::to_string(state->partition_epoch));
  }
  if (request.leader_epoch < current.leader_epoch) {
    co_return refuse(error_code::fenced_leader_epoch,
                     "the current leader epoch is " + std::to_string(current.leader_epoch) +
                         ", not " + std::to_string(request.leader_epoch));
  }
  if (request.broker_id != current.leader) {
    co_return refuse(error_code::invalid_request,
                     "the current leader is " + std::to_string(current.leader));
  }
  if (request.partition_epoch < state->partition_epoch) {
    co_return refuse(error_code::invalid_update_version,
                     "the current partition epoch is " + std::to_string(state->partition_epoch) +
                         ", not " + std::to_string(request.partition_epoch));
  }
  std::set<int32_t> seen;
  for (int32_t id : request.new_isr) {
    if (!seen.insert(id).second ||
        std::find(replicas.begin(), replicas.end(), id) == replicas.end()) {
      co_return refuse(error_code::invalid_request, "invalid ISR " + format_ids(request.new_isr) +
                                                        " for replicas " + format_ids(replicas));
    }
  }
  if (!seen.contains(current.leader)) {
    co_return refuse(error_code::invalid_request,
                     "the ISR " + format_ids(request.new_isr) + " does not include the leader");
  }
  // Only a replica joining the ISR must be registered and not in controlled shutdown (which
  // took it out of every ISR). Kafka checks every member, but its controller takes a fenced
  // broker out of every ISR first; nothing does that here yet, and requiring it would block a
  // leader from shrinking away one dead follower while another still counts as in sync.
  for (int32_t id : request.new_isr) {
    const bool joining = std::find(current.isr.begin(), current.isr.end(), id) == current.isr.end();
    if (joining && !eligible_leader(id)) {
      co_return refuse(
          error_code::ineligible_replica,
          "replica " + std::to_string(id) + " in the new ISR " + format_ids(request.new_isr) +
              (image.broker(id) == nullptr ? " is not registered" : " is in controlled shutdown"));
    }
  }

  result.leader = current.leader;
  result.leader_epoch = current.leader_epoch;
  if (request.new_isr == current.isr) {
    result.isr = current.isr;
    result.partition_epoch = state->partition_epoch;
    co_return result;
  }
  partition_record updated = current;
  updated.isr = request.new_isr;
  std::vector<int32_t> new_replicas = replicas;
  if (current.reassigning()) {
    // KRaft completes a reassignment in the AlterPartition that brings its last target replica
    // into the ISR.
    const broker_predicate eligible = [this](int32_t id) { return eligible_leader(id); };
    partition_assignment settled = settle({replicas, current}, {replicas, updated}, eligible);
    updated = std::move(settled.record);
    new_replicas = std::move(settled.replicas);
  }
  const std::string partition_key = keys::partition(prefix(), request.topic_id, request.partition);
  const std::string encoded = encode(updated);
  const int64_t based_on = state->partition_epoch;
  const std::string before = format_ids(current.isr);
  write_outcome w;
  if (new_replicas != replicas) {
    // The replicas live in the topic record: it is written in the same transaction.
    stored_topic stored = co_await read_topic(topic->name);
    if (alive.expired()) co_return stopped(std::move(result));
    if (stored.refused) co_return refuse(stored.refused.code, stored.refused.message);
    stored.record.replicas[static_cast<size_t>(request.partition)] = new_replicas;
    const std::vector<assignment_change> changes = {{request.partition, updated, based_on}};
    w = co_await write_assignment(stored.key, stored.record, stored.revision, request.topic_id,
                                  changes, epoch);
    if (w.status == write_status::applied) {
      log_info("controller (epoch ", epoch, "): reassignment of ", where, " completed: replicas ",
               format_ids(new_replicas), ", ISR ", format_ids(updated.isr), ", leader ",
               updated.leader, " in leader epoch ", updated.leader_epoch, " (partition epoch ",
               based_on, " -> ", w.revision, ")");
    }
  } else {
    coordination::txn_request txn;
    txn.compares.push_back(compare::mod_revision(partition_key, compare_op::equal, based_on));
    txn.success.push_back(operation::put(partition_key, encoded));
    confirmation written = [&encoded, based_on](const key_value* kv) {
      return kv != nullptr && kv->value == encoded && kv->mod_revision > based_on;
    };
    w = co_await write(std::move(txn), epoch, partition_key, std::move(written));
  }
  if (alive.expired()) {
    result.error = error_code::not_controller;
    co_return result;
  }
  switch (w.status) {
    case write_status::applied:
      if (updated.leader != request.broker_id) {
        // Written, and yet an error: the completed reassignment moved the leadership, and the
        // asking leader must learn the new state from the cluster's (KRaft answers the same).
        result.leader = result.leader_epoch = -1;
        result.error = error_code::new_leader_elected;
        co_return result;
      }
      result.leader_epoch = updated.leader_epoch;
      result.isr = updated.isr;
      result.partition_epoch = w.revision;
      if (new_replicas == replicas) {  // else the completion's line said it
        log_info("controller (epoch ", epoch, "): ISR of ", where, " changed from ", before, " to ",
                 format_ids(updated.isr), " at the request of leader ", request.broker_id,
                 " (partition epoch ", based_on, " -> ", w.revision, ")");
      }
      co_return result;
    case write_status::not_controller:
      result.leader = result.leader_epoch = -1;
      co_return refuse(error_code::not_controller, "deposed before the change was written");
    case write_status::conflict:
      result.leader = result.leader_epoch = -1;
      co_return refuse(error_code::invalid_update_version,
                       "the partition changed before the change was written");
    case write_status::timed_out:
      result.leader = result.leader_epoch = -1;
      co_return refuse(error_code::request_timed_out, w.detail);
    case write_status::failed:
      break;
  }
  result.leader = result.leader_epoch = -1;
  co_return refuse(error_code::unknown_server_error, w.detail);
}

}  // namespace sluice::server::cluster
