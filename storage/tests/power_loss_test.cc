// Power loss at every step of a scripted workload. The workload drives a log_manager the way the
// broker does (topic creation, group-committed appends with rolls and producer snapshots,
// checkpoints, periodic flushes, DeleteRecords, deletion and re-creation of a topic) on the
// fault-injecting file system. It is run once to count its mutating file operations (writes,
// syncs, creations, renames, removals), then once per count k with the "machine" stopping after
// operation k and the power lost: only synced bytes and directory entries survive.
//
// After each loss the data directory must load, and everything that was acknowledged must be
// there: every batch whose durability wait succeeded (acks=all on a single broker), intact at its
// offset; every log start that DeleteRecords acknowledged; every deletion of a topic
// acknowledged (its old data never reappears under its name).

#include <cstdio>
#include <map>

#include "storage/checkpoint.h"
#include "storage/log.h"
#include "storage/tests/fault_injection_fs.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::fault_injection_fs;
using testing::make_producer_batch;
using testing::manual_disk_executor;
using testing::slurp;

struct acknowledged_batch {
  topic_partition tp;
  wire::uuid topic_id;  // which incarnation of the name
  int64_t base_offset;
  std::vector<uint8_t> bytes;
};

struct acknowledged {
  std::vector<acknowledged_batch> batches;
  std::map<topic_partition, int64_t> log_starts;
  // The deletion of the old b was asked for (from then on its data may go, whatever the answer),
  // and answered as done (from then on it must never come back).
  bool old_b_delete_requested = false;
  bool old_b_deleted = false;
};

const wire::uuid id_a{1};
const wire::uuid id_b_old{2};
const wire::uuid id_b_new{3};

class power_loss_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path data() { return dir_ / "data"; }

  // What the broker does, in one scripted order. Every step tolerates failures after the crash
  // point; only what completed successfully is recorded as acknowledged.
  void workload(fault_injection_fs& fs, manual_disk_executor& disk, acknowledged& acked) {
    const int64_t batch_size = static_cast<int64_t>(make_producer_batch(1, 0, 0, 2, 1000).size());
    const log_config cfg{.segment_bytes = 3 * batch_size, .index_interval_bytes = 1};
    log_manager m(data(), cfg, {fs, disk});
    if (m.load()) return;

    std::map<topic_partition, std::shared_ptr<log>> logs;
    auto create = [&](topic_partition tp, wire::uuid id) {
      m.create_async(tp, id, cfg, [&, tp](std::error_code ec, std::shared_ptr<log> l) {
        if (!ec) logs[tp] = std::move(l);
      });
      disk.drain();
    };
    std::map<wire::uuid, int32_t> sequences;
    auto produce = [&](const topic_partition& tp, int n) {
      auto it = logs.find(tp);
      if (it == logs.end()) return;
      log& l = *it->second;
      const wire::uuid id = *l.topic_id();
      int32_t& sequence = sequences[id];
      for (int i = 0; i < n; ++i) {
        // a's batches come from an idempotent producer, b's do not.
        auto batch = std::make_shared<std::vector<uint8_t>>(
            tp.topic == "a" ? make_producer_batch(42, 0, sequence, 2, 1000 + sequence)
                            : testing::make_batch(2, 1000 + sequence, 25));
        append_info info;
        std::error_code ec = l.append(*batch, 0, info);
        if (ec == errc::roll_in_progress) {
          disk.drain();
          ec = l.append(*batch, 0, info);
        }
        if (ec) return;
        sequence += 2;
        l.set_high_watermark(l.log_end_offset());
        // acks=all on a single broker: acknowledged once durable.
        l.when_durable(info.last_offset + 1,
                       [&acked, tp, id, base = info.base_offset, batch](std::error_code dec) {
                         if (!dec) acked.batches.push_back({tp, id, base, *batch});
                       });
      }
    };

    const topic_partition a{"a", 0};
    const topic_partition b{"b", 0};
    create(a, id_a);
    create(b, id_b_old);
    produce(a, 2);
    produce(b, 1);
    disk.drain();   // a group commit covering three appends
    produce(a, 3);  // rolls, snapshots
    m.checkpoint_async();
    disk.drain();
    produce(a, 2);
    m.flush_async();  // the periodic flush: data and index entries
    disk.drain();

    // DeleteRecords on a: acknowledged once the new log start is checkpointed.
    if (auto it = logs.find(a); it != logs.end()) {
      int64_t start = 0;
      if (!it->second->delete_records_before(4, start)) {
        m.checkpoint_async([&acked, a, start](std::error_code ec) {
          if (!ec) acked.log_starts[a] = start;
        });
      }
      disk.drain();
    }

    // b deleted, then created again under the same name with new data.
    if (logs.count(b)) {
      acked.old_b_delete_requested = true;
      m.remove_async(b, [&acked](std::error_code ec) { acked.old_b_deleted = !ec; });
      logs.erase(b);
      create(b, id_b_new);
    }
    produce(b, 5);  // rolls
    produce(a, 1);
    disk.drain();
    m.checkpoint_async();
    disk.drain();
    // Destroyed without shutdown(): the power goes out with whatever is in flight.
  }

  // Loads the data directory after the loss and checks everything acknowledged.
  void verify(const acknowledged& acked, size_t crash_point) {
    SCOPED_TRACE("power lost after mutating operation " + std::to_string(crash_point));
    manual_disk_executor disk;
    fault_injection_fs fs;  // no faults; it only spares the disk the real fsyncs of recovery
    log_manager m(data(), {}, {fs, disk});
    std::error_code ec = m.load();
    ASSERT_FALSE(ec) << ec.message();
    for (const acknowledged_batch& a : acked.batches) {
      const topic_partition& tp = a.tp;
      const int64_t base = a.base_offset;
      const std::vector<uint8_t>& bytes = a.bytes;
      // The old b's batches may go once its deletion was asked for.
      if (a.topic_id == id_b_old && acked.old_b_delete_requested) continue;
      log* l = m.find(tp);
      ASSERT_NE(l, nullptr) << tp.topic << " lost with acknowledged data";
      ASSERT_EQ(l->topic_id(), a.topic_id) << tp.topic << " is not the topic that acknowledged";
      if (base < l->log_start_offset()) continue;  // removed by an acknowledged DeleteRecords
      read_info read;
      ASSERT_FALSE(l->read(base, static_cast<int64_t>(bytes.size()), l->log_end_offset(),
                           /*min_one=*/true, read))
          << tp.topic << " offset " << base;
      std::vector<uint8_t> stored = slurp(read);
      stored.resize(std::min(stored.size(), bytes.size()));
      EXPECT_EQ(stored, bytes) << tp.topic << " offset " << base << " lost or changed";
    }
    for (const auto& [tp, start] : acked.log_starts) {
      log* l = m.find(tp);
      ASSERT_NE(l, nullptr);
      EXPECT_GE(l->log_start_offset(), start) << "deleted records came back in " << tp.topic;
    }
    if (acked.old_b_deleted) {
      log* l = m.find({"b", 0});
      EXPECT_TRUE(l == nullptr || l->topic_id() == id_b_new) << "a deleted topic came back";
    }
  }
};

TEST_F(power_loss_test, everything_acknowledged_survives_a_power_loss_at_any_step) {
  size_t total = 0;
  {
    fault_injection_fs fs;
    manual_disk_executor disk;
    acknowledged acked;
    workload(fs, disk, acked);
    total = fs.mutating_ops();
    ASSERT_GT(acked.batches.size(), 8u);  // the script acknowledges what it should
    ASSERT_TRUE(acked.old_b_deleted);
    ASSERT_EQ(acked.log_starts.size(), 1u);
    std::filesystem::remove_all(data());
  }
  ASSERT_GT(total, 100u);
  size_t acknowledged_somewhere = 0;
  for (size_t k = 0; k <= total; ++k) {
    fault_injection_fs fs;
    fs.crash_after(k);
    manual_disk_executor disk;
    acknowledged acked;
    workload(fs, disk, acked);
    fs.lose_power();
    acknowledged_somewhere += acked.batches.size();
    verify(acked, k);
    std::filesystem::remove_all(data());
    if (HasFatalFailure()) return;
  }
  // Later crash points acknowledge more: the check was not vacuous.
  EXPECT_GT(acknowledged_somewhere, total);
  // The figure docs/RELIABILITY.md quotes.
  std::printf("[ power loss ] %zu crash points, %zu acknowledged batches checked in all\n",
              total + 1, acknowledged_somewhere);
}

// The same workload with every fdatasync of a .log failing from some point on: nothing is
// acknowledged after the failure, and what was acknowledged before it survives a power loss.
TEST_F(power_loss_test, a_failing_fsync_acknowledges_nothing_that_is_lost) {
  for (int failing_from = 0; failing_from < 12; ++failing_from) {
    fault_injection_fs fs;
    int syncs = 0;
    fs.fail_sync_if = [&](const std::filesystem::path& p) {
      return p.extension() == ".log" && syncs++ >= failing_from;
    };
    manual_disk_executor disk;
    acknowledged acked;
    workload(fs, disk, acked);
    fs.lose_power();
    verify(acked, static_cast<size_t>(failing_from));
    std::filesystem::remove_all(data());
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace sluice::storage
