#include "server/cluster/reassignment.h"

#include <algorithm>
#include <set>

namespace sluice::server::cluster {

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// `a` without the members of `b`, in `a`'s order.
std::vector<int32_t> minus(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  std::erase_if(a, [&](int32_t id) { return contains(b, id); });
  return a;
}

// Ascending, as KRaft's TreeSet differences are.
std::vector<int32_t> sorted_difference(const std::vector<int32_t>& a,
                                       const std::vector<int32_t>& b) {
  std::set<int32_t> out(a.begin(), a.end());
  for (int32_t id : b)
    out.erase(id);
  return {out.begin(), out.end()};
}

}  // namespace

std::string invalid_replica_list(const std::vector<int32_t>& replicas,
                                 const broker_predicate& registered) {
  if (replicas.empty()) return "The manual partition assignment includes an empty replica list.";
  std::vector<int32_t> sorted = replicas;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (!registered(sorted[i])) {
      return "The manual partition assignment includes broker " + std::to_string(sorted[i]) +
             ", but no such broker is registered.";
    }
    if (i > 0 && sorted[i] == sorted[i - 1]) {
      return "The manual partition assignment includes the broker " + std::to_string(sorted[i]) +
             " more than once.";
    }
  }
  return {};
}

partition_assignment settle(const partition_assignment& before, partition_assignment next,
                            const broker_predicate& eligible, bool unclean) {
  partition_record& r = next.record;
  if (r.reassigning()) {
    std::vector<int32_t> isr = minus(r.isr, r.removing_replicas);
    std::vector<int32_t> replicas = minus(next.replicas, r.removing_replicas);
    const bool complete = !isr.empty() && !replicas.empty() &&
                          std::all_of(replicas.begin(), replicas.end(),
                                      [&](int32_t id) { return contains(isr, id); });
    if (complete) {
      next.replicas = std::move(replicas);
      r.isr = std::move(isr);
      r.adding_replicas.clear();
      r.removing_replicas.clear();
    }
  }

  const auto valid_leader = [&](int32_t id) { return contains(r.isr, id) && eligible(id); };
  const int32_t leader = before.record.leader;
  if (!valid_leader(leader)) {
    r.leader = -1;
    for (int32_t id : next.replicas) {
      if (valid_leader(id)) {
        r.leader = id;
        break;
      }
    }
    if (r.leader < 0 && unclean) {
      for (int32_t id : next.replicas) {
        if (eligible(id)) {
          r.leader = id;
          r.isr = {id};
          break;
        }
      }
    }
  } else {
    r.leader = leader;
  }
  const bool replica_left = std::any_of(before.replicas.begin(), before.replicas.end(),
                                        [&](int32_t id) { return !contains(next.replicas, id); });
  if (r.leader != leader || replica_left) r.leader_epoch = before.record.leader_epoch + 1;
  return next;
}

partition_assignment reassign(const partition_assignment& now, const std::vector<int32_t>& target,
                              const broker_predicate& eligible) {
  const std::vector<int32_t> removing = sorted_difference(now.replicas, target);
  const std::vector<int32_t> adding = sorted_difference(target, now.replicas);
  partition_assignment next = now;
  next.replicas = target;
  next.replicas.insert(next.replicas.end(), removing.begin(), removing.end());
  if (!removing.empty()) next.record.removing_replicas = removing;
  if (!adding.empty()) next.record.adding_replicas = adding;
  return settle(now, std::move(next), eligible);
}

std::optional<partition_assignment> revert(const partition_assignment& now, bool unclean_allowed,
                                           const broker_predicate& eligible) {
  partition_assignment next = now;
  next.replicas = minus(now.replicas, now.record.adding_replicas);
  next.record.isr = minus(now.record.isr, now.record.adding_replicas);
  next.record.adding_replicas.clear();
  next.record.removing_replicas.clear();
  if (next.replicas.empty()) return std::nullopt;
  if (next.record.isr.empty()) {
    if (!unclean_allowed) return std::nullopt;
    next.record.isr = {next.replicas.front()};
  }
  return settle(now, std::move(next), eligible, unclean_allowed);
}

}  // namespace sluice::server::cluster
