#include "server/groups/group_internal.h"

#include "server/logging.h"

namespace sluice::server {

// ---- Offset retention -----------------------------------------------------------------------

bool group_coordinator::removes_all_offsets(const group& g,
                                            std::span<const topic_partition> partitions) {
  std::set<topic_partition> removing(partitions.begin(), partitions.end());
  auto removed = [&](const auto& entry) { return removing.contains(entry.first); };
  return std::all_of(g.offsets.begin(), g.offsets.end(), removed) &&
         std::all_of(g.pending_commits.begin(), g.pending_commits.end(), removed);
}

void group_coordinator::remove_offsets(group& g, std::vector<topic_partition> partitions,
                                       const char* why, std::function<void(error_code)> done) {
  auto finish = [this, weak = g.weak_from_this(), partitions, why,
                 done = std::move(done)](error_code e) {
    if (std::shared_ptr<group> g = weak.lock()) {
      if (e == error_code::none) {
        for (const topic_partition& tp : partitions)
          g->offsets.erase(tp);
        if (why)
          log_info("group ", log_safe(g->id), ": ", partitions.size(), " committed offsets ", why);
        maybe_bury(*g);
      } else {
        log_warn("group ", log_safe(g->id), ": tombstones for ", partitions.size(),
                 " committed offsets failed (", wire::error_name(e), "); they stay");
      }
    }
    if (done) done(e);
  };
  if (!store_) {
    finish(error_code::none);
    return;
  }
  store_->remove_offsets(g.id, partitions, std::move(finish));
}

void group_coordinator::bury(group& g, std::vector<topic_partition> partitions, std::string why,
                             std::function<void(error_code)> done) {
  // Not set_state: should the write fail, the group is Empty again since the same moment.
  g.state = group_state::dead;
  // A group that never had a generation only ever wrote offsets (Kafka's check, too).
  const bool metadata = g.generation > 0;
  auto finish = [this, weak = g.weak_from_this(), why = std::move(why),
                 done = std::move(done)](error_code e) {
    if (std::shared_ptr<group> g = weak.lock()) {
      if (e == error_code::none) {
        log_info("group ", log_safe(g->id), " removed (Dead): ", why);
        auto it = groups_.find(g->id);
        if (it != groups_.end() && it->second == g) groups_.erase(it);
      } else {
        g->state = group_state::empty;
        log_warn("group ", log_safe(g->id), ": its tombstones failed (", wire::error_name(e),
                 "); it stays, Empty");
      }
    }
    if (done) done(e);
  };
  if (!store_ || (partitions.empty() && !metadata)) {
    finish(error_code::none);
  } else if (metadata) {
    store_->remove_group(g.id, partitions, std::move(finish));
  } else {
    store_->remove_offsets(g.id, partitions, std::move(finish));
  }
}

void group_coordinator::maybe_bury(group& g) {
  if (g.state == group_state::empty && g.offsets.empty() && g.pending_commits.empty())
    bury(g, {}, "empty without committed offsets", {});
}

std::vector<topic_partition> group_coordinator::expired_offsets(const group& g, int64_t now) const {
  const int64_t retention_ms = config_.offsets_retention.count();
  std::vector<topic_partition> expired;
  if (g.state == group_state::dead) return expired;  // its tombstones are being written
  auto collect = [&](auto since, const std::set<std::string>* keep_topics) {
    for (const auto& [tp, value] : g.offsets) {
      if (keep_topics && keep_topics->contains(tp.topic)) continue;
      // A commit in flight is about to replace the value (Kafka's getExpiredOffsets, too).
      if (g.pending_commits.contains(tp)) continue;
      if (now - since(value) >= retention_ms) expired.push_back(tp);
    }
  };
  auto committed_at = [](const committed_offset& o) { return o.commit_timestamp_ms; };
  if (g.protocol_type.empty()) {
    // Offsets only, no group management.
    collect(committed_at, nullptr);
  } else if (g.state == group_state::empty) {
    if (g.current_state_timestamp_ms >= 0)
      collect([&](const committed_offset&) { return g.current_state_timestamp_ms; }, nullptr);
    else
      collect(committed_at, nullptr);
  } else if (g.state == group_state::stable) {
    if (std::optional<std::set<std::string>> subscribed = g.subscribed())
      collect(committed_at, &*subscribed);
  }
  return expired;
}

size_t group_coordinator::expire_offsets() {
  const int64_t now = wall_clock_ms();
  return remove_offsets_where([&](const group& g) { return expired_offsets(g, now); }, "expired");
}

void group_coordinator::on_topic_deleted(std::string_view topic) {
  // Kafka's GroupCoordinator.onPartitionsDeleted: a topic created again under the same name must
  // not inherit the old topic's committed positions, which would make consumers skip its start.
  // Commits in flight get tombstones too (Kafka's removeOffsets drops pending commits).
  remove_offsets_where(
      [&](const group& g) {
        std::set<topic_partition> doomed;
        for (const auto& [tp, value] : g.offsets) {
          if (tp.topic == topic) doomed.insert(tp);
        }
        for (const auto& [tp, count] : g.pending_commits) {
          if (tp.topic == topic) doomed.insert(tp);
        }
        return std::vector<topic_partition>(doomed.begin(), doomed.end());
      },
      "removed with their deleted topic");
}

size_t group_coordinator::remove_offsets_where(
    const std::function<std::vector<topic_partition>(const group&)>& select, const char* why) {
  // A group with nothing to write leaves the map at once.
  std::vector<std::shared_ptr<group>> all;
  all.reserve(groups_.size());
  for (const auto& [id, g] : groups_)
    all.push_back(g);
  size_t removed_total = 0;
  for (const std::shared_ptr<group>& g : all) {
    std::vector<topic_partition> removed = select(*g);
    removed_total += removed.size();
    if (g->state == group_state::empty && removes_all_offsets(*g, removed)) {
      std::string reason = removed.empty()
                               ? std::string("empty without committed offsets")
                               : std::to_string(removed.size()) + " committed offsets " + why +
                                     "; empty without offsets";
      bury(*g, std::move(removed), std::move(reason), {});
    } else if (!removed.empty()) {
      remove_offsets(*g, std::move(removed), why, {});
    }
  }
  return removed_total;
}

void group_coordinator::start_offset_expiry() {
  expire_offsets();
  schedule_retention_check(config_.offsets_retention_check_interval);
}

void group_coordinator::schedule_retention_check(milliseconds delay) {
  if (stopped_) return;
  retention_timer_ = timers_->schedule(delay, [this] {
    expire_offsets();
    schedule_retention_check(config_.offsets_retention_check_interval);
  });
}

}  // namespace sluice::server
