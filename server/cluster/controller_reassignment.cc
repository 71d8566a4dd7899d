// The controller's partition reassignment (AlterPartitionReassignments and
// ListPartitionReassignments): see controller.h for the rules and reassignment.h for the decisions.
// The completion, which an ISR change brings, is in controller.cc's alter_partition.
#include <algorithm>
#include <map>

#include "server/cluster/controller.h"
#include "server/cluster/controller_internal.h"
#include "server/cluster/reassignment.h"
#include "server/logging.h"

namespace sluice::server::cluster {

namespace asio = boost::asio;
using coordination::compare;
using coordination::compare_op;
using coordination::key_value;
using coordination::operation;
using internal::format_ids;
using internal::stopped;
using wire::error_code;

bool controller::unclean_allowed(const topic_record& topic) const {
  auto it = topic.configs.find("unclean.leader.election.enable");
  if (it == topic.configs.end()) return config_.unclean_leader_election;
  return it->second == "true";
}

asio::awaitable<controller::write_outcome> controller::write_assignment(
    const std::string& topic_key, const topic_record& topic, int64_t topic_revision,
    const wire::uuid& topic_id, const std::vector<assignment_change>& changes, int64_t epoch) {
  const std::string encoded = encode(topic);
  coordination::txn_request txn;
  txn.compares.push_back(compare::mod_revision(topic_key, compare_op::equal, topic_revision));
  txn.success.push_back(operation::put(topic_key, encoded));
  for (const assignment_change& c : changes) {
    const std::string key = keys::partition(prefix(), topic_id, c.partition);
    txn.compares.push_back(compare::mod_revision(key, compare_op::equal, c.based_on));
    txn.success.push_back(operation::put(key, encode(c.record)));
  }
  // The transaction is atomic: the topic key tells whether all of it applied.
  confirmation written = [&encoded, topic_revision](const key_value* kv) {
    return kv != nullptr && kv->value == encoded && kv->mod_revision > topic_revision;
  };
  co_return co_await write(std::move(txn), epoch, topic_key, std::move(written));
}

asio::awaitable<alter_reassignments_result> controller::alter_partition_reassignments(
    std::vector<reassignment_request> requests) {
  std::weak_ptr<bool> alive = alive_;
  alter_reassignments_result result;
  std::shared_ptr<void> my_turn = co_await take_turn(result);
  if (!my_turn) co_return result;
  const int64_t epoch = member_.controller_epoch();
  const metadata_image& image = member_.image();
  const broker_predicate registered = [&image](int32_t id) { return image.broker(id) != nullptr; };
  const broker_predicate eligible = [this](int32_t id) { return eligible_leader(id); };

  // Per topic: its record as the store holds it (the base of the write), the decided state of
  // each partition changed, and which answers wait for the write.
  struct topic_work {
    stored_topic stored;
    topic_record original;
    std::map<int32_t, partition_assignment> decided;
    std::map<int32_t, int64_t> based_on;
    std::vector<size_t> answers;
  };
  std::map<std::string, topic_work> work;
  for (const reassignment_request& r : requests) {
    if (work.contains(r.topic)) continue;
    topic_work& w = work[r.topic];
    w.stored = co_await read_topic(r.topic);
    if (alive.expired()) co_return stopped(std::move(result));
    w.original = w.stored.record;
  }

  for (const reassignment_request& r : requests) {
    reassignment_result& answer = result.partitions.emplace_back();
    answer.topic = r.topic;
    answer.partition = r.partition;
    const std::string where = log_safe(r.topic) + "-" + std::to_string(r.partition);
    const auto refuse = [&](error_code code, std::string message) {
      log_info("controller (epoch ", epoch, "): refused to ",
               r.replicas ? "reassign " : "cancel the reassignment of ", where, ": ",
               wire::error_name(code), " (", log_safe(message), ")");
      answer.error = code;
      answer.message = std::move(message);
    };
    topic_work& w = work[r.topic];
    if (w.stored.refused) {
      refuse(w.stored.refused.code, w.stored.refused.code == error_code::unknown_topic_or_partition
                                        ? "Unable to find a topic named " + r.topic + "."
                                        : w.stored.refused.message);
      continue;
    }
    const partition_state* state = image.partition(w.stored.id, r.partition);
    if (state == nullptr || r.partition < 0 ||
        static_cast<size_t>(r.partition) >= w.stored.record.replicas.size()) {
      refuse(error_code::unknown_topic_or_partition,
             "Unable to find partition " + r.topic + ":" + std::to_string(r.partition) + ".");
      continue;
    }
    const auto p = static_cast<size_t>(r.partition);
    auto decided = w.decided.find(r.partition);
    const partition_assignment now =
        decided != w.decided.end()
            ? decided->second
            : partition_assignment{w.stored.record.replicas[p], state->record};
    partition_assignment next;
    if (!r.replicas) {
      if (!now.record.reassigning()) {
        refuse(error_code::no_reassignment_in_progress,
               "No partition reassignment is in progress.");
        continue;
      }
      std::optional<partition_assignment> reverted =
          revert(now, unclean_allowed(w.stored.record), eligible);
      if (!reverted) {
        refuse(error_code::invalid_replica_assignment,
               "Unable to revert partition assignment for " + r.topic + ":" +
                   std::to_string(r.partition) + " because it would require an unclean leader " +
                   "election.");
        continue;
      }
      next = std::move(*reverted);
    } else {
      if (std::string why = invalid_replica_list(*r.replicas, registered); !why.empty()) {
        refuse(error_code::invalid_replica_assignment, std::move(why));
        continue;
      }
      next = reassign(now, *r.replicas, eligible);
    }
    if (next == now) {
      log_info("controller (epoch ", epoch, "): ", where, " already has replicas ",
               format_ids(now.replicas), "; nothing to write");
      continue;
    }
    log_info("controller (epoch ", epoch,
             "): ", r.replicas ? "reassigning " : "cancelling the reassignment of ", where,
             ": replicas ", format_ids(now.replicas), " -> ", format_ids(next.replicas),
             ", adding ", format_ids(next.record.adding_replicas), ", removing ",
             format_ids(next.record.removing_replicas), ", ISR ", format_ids(next.record.isr),
             ", leader ", next.record.leader, " in leader epoch ", next.record.leader_epoch,
             next.record.reassigning() ? "" : " (complete)");
    w.based_on.emplace(r.partition, state->partition_epoch);
    w.decided[r.partition] = next;
    w.stored.record.replicas[p] = next.replicas;
    w.answers.push_back(result.partitions.size() - 1);
  }

  // One topic at a time; its partitions in transactions of at most max_txn_ops - 2 (the topic
  // key and the election key take the other compares), each writing the topic record as it is
  // with the partitions written so far.
  const size_t per_txn = static_cast<size_t>(std::max<int32_t>(1, config_.max_txn_ops - 2));
  for (auto& [name, w] : work) {
    if (w.decided.empty()) continue;
    std::vector<assignment_change> all;
    for (const auto& [p, decided] : w.decided)
      all.push_back({p, decided.record, w.based_on.at(p)});
    topic_record written = w.original;
    int64_t topic_revision = w.stored.revision;
    error_code failed = error_code::none;
    std::string why;
    for (size_t first = 0; first < all.size() && failed == error_code::none; first += per_txn) {
      const std::vector<assignment_change> chunk(
          all.begin() + static_cast<std::ptrdiff_t>(first),
          all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), first + per_txn)));
      for (const assignment_change& c : chunk)
        written.replicas[static_cast<size_t>(c.partition)] = w.decided.at(c.partition).replicas;
      write_outcome outcome = co_await write_assignment(w.stored.key, written, topic_revision,
                                                        w.stored.id, chunk, epoch);
      if (alive.expired()) co_return stopped(std::move(result));
      switch (outcome.status) {
        case write_status::applied:
          topic_revision = outcome.revision;
          result.revision = std::max(result.revision, outcome.revision);
          continue;
        case write_status::not_controller:
          failed = error_code::not_controller;
          why = internal::not_controller_message;
          break;
        case write_status::conflict:
          // The image this was decided from was behind the store: the client may ask again.
          failed = error_code::request_timed_out;
          why = "The partition changed before its reassignment was written.";
          break;
        case write_status::timed_out:
          failed = error_code::request_timed_out;
          why = outcome.detail;
          break;
        case write_status::failed:
          failed = error_code::unknown_server_error;
          why = outcome.detail;
          break;
      }
      log_warn("controller (epoch ", epoch, "): the reassignment of partitions of topic ",
               log_safe(name), " was not written: ", wire::error_name(failed), " (", why, ")");
      // Partitions of earlier transactions are written; this one and the later ones are not.
      for (size_t i : w.answers) {
        reassignment_result& answer = result.partitions[i];
        bool in_written_chunk = false;
        for (size_t j = 0; j < first; ++j)
          in_written_chunk = in_written_chunk || all[j].partition == answer.partition;
        if (in_written_chunk) continue;
        answer.error = failed;
        answer.message = why;
      }
    }
  }
  co_return result;
}

asio::awaitable<list_reassignments_result> controller::list_partition_reassignments(
    std::optional<std::map<std::string, std::vector<int32_t>>> partitions) {
  std::weak_ptr<bool> alive = alive_;
  list_reassignments_result result;
  std::shared_ptr<void> my_turn = co_await take_turn(result);
  if (!my_turn) co_return result;
  const metadata_image& image = member_.image();
  const auto add = [&](const wire::uuid& id, const topic_record& rec, int32_t p) {
    const partition_state* state = image.partition(id, p);
    if (state == nullptr || p < 0 || static_cast<size_t>(p) >= rec.replicas.size() ||
        !state->record.reassigning()) {
      return;
    }
    result.partitions.push_back({rec.name, p, rec.replicas[static_cast<size_t>(p)],
                                 state->record.adding_replicas, state->record.removing_replicas});
  };
  if (!partitions) {
    std::map<std::string, const std::pair<const wire::uuid, topic_record>*> by_name;
    for (const auto& entry : image.topics()) {
      if (image.topic_id(entry.second.name) == entry.first) by_name[entry.second.name] = &entry;
    }
    for (const auto& [name, entry] : by_name) {
      for (const auto& [p, state] : image.partitions(entry->first))
        add(entry->first, entry->second, p);
    }
    co_return result;
  }
  for (const auto& [name, indexes] : *partitions) {
    std::optional<wire::uuid> id = image.topic_id(name);
    if (!id) continue;
    for (int32_t p : indexes)
      add(*id, *image.topic(*id), p);
  }
  co_return result;
}

}  // namespace sluice::server::cluster
