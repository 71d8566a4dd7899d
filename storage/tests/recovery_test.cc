// Crash recovery, index rebuilds, checkpoints and the clean-shutdown path, through log::open and
// log_manager as the broker uses them.

#include <sys/stat.h>
#include <unistd.h>

#include "storage/log.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::batch_summary;
using testing::batches_in;
using testing::file_bytes;
using testing::file_text;
using testing::make_batch;
using testing::seg_name;
using testing::slurp;
using testing::write_bytes;

class recovery_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path part() { return dir_ / "t-0"; }

  std::unique_ptr<log> open_log(bool recover, int64_t recovery_point, log_config cfg = {}) {
    std::error_code ec;
    auto l = open_log_at(part(), {"t", 0}, cfg,
                         recover ? testing::crash_load(recovery_point) : testing::clean_load(), ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }

  append_info append(log& l, std::vector<uint8_t> batch) {
    append_info info;
    std::error_code ec = testing::append_through_roll(l, disk_, batch, 0, info);
    EXPECT_FALSE(ec) << ec.message();
    return info;
  }

  std::vector<batch_summary> everything(const log& l) {
    read_info info;
    EXPECT_FALSE(l.read(l.log_start_offset(), INT32_MAX, l.log_end_offset(), true, info));
    return batches_in(slurp(info));
  }

  // Writes three batches (0-2, 3-5, 6-8) and returns the .log size after each.
  std::vector<int64_t> three_batches(log_config cfg = {}) {
    auto l = open_log(false, 0, cfg);
    std::vector<int64_t> sizes;
    for (int i = 0; i < 3; ++i) {
      append(*l, make_batch(3, 1000 + 10 * i));
      sizes.push_back(l->size_bytes());
    }
    l->close();
    return sizes;
  }

  size_t events_containing(std::string_view needle) {
    size_t n = 0;
    for (const std::string& e : events_)
      n += e.find(needle) != std::string::npos;
    return n;
  }
};

TEST_F(recovery_test, torn_write_at_the_tail_is_truncated) {
  std::vector<int64_t> sizes = three_batches();
  std::filesystem::path log_file = part() / seg_name(0, ".log");
  std::vector<uint8_t> bytes = file_bytes(log_file);
  std::vector<uint8_t> half = make_batch(4);
  half.resize(half.size() / 2);
  bytes.insert(bytes.end(), half.begin(), half.end());
  write_bytes(log_file, bytes);

  auto l = open_log(true, 0);
  EXPECT_EQ(l->log_end_offset(), 9);
  EXPECT_EQ(static_cast<int64_t>(file_bytes(log_file).size()), sizes[2]);
  EXPECT_EQ(events_containing("t-0: recovery truncated"), 1u);
  EXPECT_EQ(l->recovery_point(), 9);

  EXPECT_EQ(append(*l, make_batch(2)).base_offset, 9);
  EXPECT_EQ(everything(*l), (std::vector<batch_summary>{{0, 2}, {3, 5}, {6, 8}, {9, 10}}));
}

TEST_F(recovery_test, torn_header_at_the_tail_is_truncated) {
  std::vector<int64_t> sizes = three_batches();
  std::filesystem::path log_file = part() / seg_name(0, ".log");
  std::vector<uint8_t> bytes = file_bytes(log_file);
  bytes.resize(bytes.size() + 7, 0xab);
  write_bytes(log_file, bytes);
  auto l = open_log(true, 0);
  EXPECT_EQ(l->log_end_offset(), 9);
  EXPECT_EQ(static_cast<int64_t>(file_bytes(log_file).size()), sizes[2]);
}

TEST_F(recovery_test, corrupt_byte_in_the_last_batch_drops_only_that_batch) {
  std::vector<int64_t> sizes = three_batches();
  std::filesystem::path log_file = part() / seg_name(0, ".log");
  std::vector<uint8_t> bytes = file_bytes(log_file);
  bytes[static_cast<size_t>(sizes[1] + (sizes[2] - sizes[1]) / 2)] ^= 0x40;
  write_bytes(log_file, bytes);

  auto l = open_log(true, 0);
  EXPECT_EQ(l->log_end_offset(), 6);
  EXPECT_EQ(static_cast<int64_t>(file_bytes(log_file).size()), sizes[1]);
  EXPECT_EQ(events_containing("recovery truncated"), 1u);
  EXPECT_EQ(events_containing("CRC"), 1u);
  EXPECT_EQ(everything(*l), (std::vector<batch_summary>{{0, 2}, {3, 5}}));
  // Offsets continue from the last valid batch.
  EXPECT_EQ(append(*l, make_batch(1)).base_offset, 6);
  EXPECT_EQ(everything(*l), (std::vector<batch_summary>{{0, 2}, {3, 5}, {6, 6}}));
}

TEST_F(recovery_test, corruption_in_an_unflushed_segment_deletes_later_segments) {
  const int64_t s = static_cast<int64_t>(make_batch(3).size());
  three_batches({.segment_bytes = s, .index_interval_bytes = 4096});  // one batch per segment
  ASSERT_TRUE(std::filesystem::exists(part() / seg_name(6, ".log")));
  std::filesystem::path middle = part() / seg_name(3, ".log");
  std::vector<uint8_t> bytes = file_bytes(middle);
  bytes[70] ^= 1;
  write_bytes(middle, bytes);

  auto l = open_log(true, 3, {.segment_bytes = s, .index_interval_bytes = 4096});
  EXPECT_EQ(l->log_end_offset(), 3);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(6, ".log")));
  EXPECT_EQ(events_containing("recovery truncated"), 1u);
  EXPECT_EQ(events_containing("deleted 1 later segment"), 1u);
  EXPECT_EQ(append(*l, make_batch(2)).base_offset, 3);
}

TEST_F(recovery_test, segments_below_the_recovery_point_are_trusted) {
  const int64_t s = static_cast<int64_t>(make_batch(3).size());
  three_batches({.segment_bytes = s, .index_interval_bytes = 4096});
  // Damage the payload of the first segment, which is below the recovery point: not rescanned.
  std::filesystem::path first = part() / seg_name(0, ".log");
  std::vector<uint8_t> bytes = file_bytes(first);
  bytes[70] ^= 1;
  write_bytes(first, bytes);
  auto l = open_log(true, 6, {.segment_bytes = s, .index_interval_bytes = 4096});
  EXPECT_EQ(l->log_end_offset(), 9);
  EXPECT_EQ(l->segment_count(), 3u);
  // Only the segment holding the recovery point was read.
  EXPECT_EQ(events_containing("recovered"), 1u);
  EXPECT_EQ(events_containing("recovered " + seg_name(6, ".log")), 1u);
  EXPECT_EQ(events_containing("truncated"), 0u);
}

TEST_F(recovery_test, missing_index_is_rebuilt) {
  const log_config cfg{.segment_bytes = 1 << 20, .index_interval_bytes = 1};
  {
    auto l = open_log(false, 0, cfg);
    for (int i = 0; i < 6; ++i)
      append(*l, make_batch(2, 1000 + i));
    l->close();
  }
  std::filesystem::path index = part() / seg_name(0, ".index");
  std::filesystem::path time_index = part() / seg_name(0, ".timeindex");
  std::vector<uint8_t> index_before = file_bytes(index);
  std::vector<uint8_t> time_before = file_bytes(time_index);
  ASSERT_EQ(index_before.size(), 5u * 8);
  std::filesystem::remove(index);

  auto l = open_log(false, 12, cfg);  // trusted, yet the missing index is noticed
  EXPECT_EQ(file_bytes(index), index_before);
  EXPECT_EQ(file_bytes(time_index), time_before);
  EXPECT_EQ(events_containing("rebuilt the indexes"), 1u);
  EXPECT_EQ(l->log_end_offset(), 12);
  EXPECT_EQ(l->offset_for_timestamp(1003), 5);
}

TEST_F(recovery_test, inconsistent_index_is_rebuilt) {
  const log_config cfg{.segment_bytes = 1 << 20, .index_interval_bytes = 1};
  {
    auto l = open_log(false, 0, cfg);
    for (int i = 0; i < 6; ++i)
      append(*l, make_batch(2, 1000 + i));
    l->close();
  }
  std::filesystem::path index = part() / seg_name(0, ".index");
  std::vector<uint8_t> index_before = file_bytes(index);
  // Kafka-style zero-filled tail from preallocation: not strictly increasing.
  std::vector<uint8_t> padded = index_before;
  padded.resize(padded.size() + 64, 0);
  write_bytes(index, padded);
  auto l = open_log(false, 12, cfg);
  EXPECT_EQ(file_bytes(index), index_before);
  EXPECT_EQ(events_containing("rebuilt the indexes"), 1u);
}

TEST_F(recovery_test, orphans_and_temporary_files_are_removed) {
  three_batches();
  write_bytes(part() / seg_name(500, ".index"), {1, 2, 3});
  write_bytes(part() / "partition.metadata.tmp", {1});
  write_bytes(part() / seg_name(0, ".log.deleted"), {1});
  auto l = open_log(true, 0);
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(500, ".index")));
  EXPECT_FALSE(std::filesystem::exists(part() / "partition.metadata.tmp"));
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(0, ".log.deleted")));
  EXPECT_EQ(l->log_end_offset(), 9);
}

class log_manager_test : public recovery_test {
 protected:
  std::unique_ptr<log_manager> manager(log_config cfg = {}) {
    auto m = std::make_unique<log_manager>(dir_ / "data", cfg, env());
    std::error_code ec = m->load();
    EXPECT_FALSE(ec) << ec.message();
    return m;
  }
  log* create(log_manager& m, topic_partition tp) {
    std::error_code ec;
    log* l = m.create(tp, id_, ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }
  wire::uuid id_{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
};

TEST_F(log_manager_test, shutdown_writes_checkpoints_and_marker) {
  {
    auto m = manager();
    log* a = create(*m, {"orders", 0});
    log* b = create(*m, {"orders", 1});
    append(*a, make_batch(3));
    append(*a, make_batch(2));
    append(*b, make_batch(4));
    a->set_high_watermark(3);
    b->set_high_watermark(4);
    EXPECT_EQ(m->logs().size(), 2u);
    EXPECT_EQ(m->find({"orders", 1}), b);
    EXPECT_EQ(m->find({"orders", 2}), nullptr);
    ASSERT_FALSE(m->shutdown());
  }
  std::filesystem::path d = dir_ / "data";
  EXPECT_EQ(file_text(d / "recovery-point-offset-checkpoint"), "0\n2\norders 0 5\norders 1 4\n");
  EXPECT_EQ(file_text(d / "log-start-offset-checkpoint"), "0\n2\norders 0 0\norders 1 0\n");
  EXPECT_EQ(file_text(d / "replication-offset-checkpoint"), "0\n2\norders 0 3\norders 1 4\n");
  EXPECT_TRUE(std::filesystem::exists(d / ".kafka_cleanshutdown"));
  EXPECT_EQ(file_text(d / "orders-0" / "partition.metadata"),
            "version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw\n");
  EXPECT_FALSE(std::filesystem::exists(d / "recovery-point-offset-checkpoint.tmp"));

  auto m = manager();
  EXPECT_FALSE(std::filesystem::exists(d / ".kafka_cleanshutdown"));
  ASSERT_EQ(m->logs().size(), 2u);
  log* a = m->find({"orders", 0});
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->log_end_offset(), 5);
  EXPECT_EQ(a->high_watermark(), 3);
  EXPECT_EQ(a->recovery_point(), 5);
  EXPECT_EQ(a->topic_id(), id_);
  EXPECT_EQ(m->find({"orders", 1})->high_watermark(), 4);
  EXPECT_TRUE(events_.empty());
}

TEST_F(log_manager_test, clean_shutdown_skips_recovery) {
  std::vector<int64_t> sizes;
  {
    auto m = manager();
    log* a = create(*m, {"t", 0});
    for (int i = 0; i < 3; ++i) {
      append(*a, make_batch(3));
      sizes.push_back(a->size_bytes());
    }
    ASSERT_FALSE(m->shutdown());
  }
  // Damage the payload of the last batch. Framing is intact, so only a CRC check would notice.
  std::filesystem::path log_file = dir_ / "data" / "t-0" / seg_name(0, ".log");
  std::vector<uint8_t> bytes = file_bytes(log_file);
  bytes[static_cast<size_t>(sizes[2] - 3)] ^= 1;
  write_bytes(log_file, bytes);
  {
    auto m = manager();  // marker present: trusted, nothing rescanned
    EXPECT_EQ(m->find({"t", 0})->log_end_offset(), 9);
    EXPECT_TRUE(events_.empty());
  }  // destroyed without shutdown(): as after a crash, no marker
  EXPECT_FALSE(std::filesystem::exists(dir_ / "data" / ".kafka_cleanshutdown"));
  // Now recovery runs and finds the damage, below the recovery point (9, checkpointed at the
  // clean shutdown): synced, acknowledged data is never truncated away, so the load fails.
  log_manager m(dir_ / "data", {}, env());
  EXPECT_EQ(m.load(), errc::corrupt_log);
  EXPECT_EQ(events_containing("t-0: " + seg_name(0, ".log") +
                              " holds an invalid batch below the recovery point"),
            1u);
}

TEST_F(log_manager_test, unclean_restart_recovers_from_the_checkpointed_recovery_point) {
  const int64_t s = static_cast<int64_t>(make_batch(3).size());
  const log_config cfg{.segment_bytes = 2 * s, .index_interval_bytes = 4096};
  {
    auto m = manager(cfg);
    log* a = create(*m, {"t", 0});
    for (int i = 0; i < 5; ++i)
      append(*a, make_batch(3));  // segments at 0, 6, 12
    EXPECT_EQ(a->recovery_point(), 12);
    ASSERT_FALSE(m->checkpoint());
  }  // crash
  EXPECT_EQ(file_text(dir_ / "data" / "recovery-point-offset-checkpoint"), "0\n1\nt 0 12\n");
  std::filesystem::path active = dir_ / "data" / "t-0" / seg_name(12, ".log");
  std::vector<uint8_t> bytes = file_bytes(active);
  std::vector<uint8_t> torn = make_batch(3);
  bytes.insert(bytes.end(), torn.begin(), torn.begin() + 20);
  write_bytes(active, bytes);

  auto m = manager(cfg);
  log* a = m->find({"t", 0});
  EXPECT_EQ(a->log_end_offset(), 15);
  EXPECT_EQ(a->segment_count(), 3u);
  EXPECT_EQ(events_containing("t-0: recovery truncated"), 1u);
  EXPECT_EQ(append(*a, make_batch(1)).base_offset, 15);
}

TEST_F(log_manager_test, create_checks_names_and_topic_ids) {
  auto m = manager();
  std::error_code ec;
  EXPECT_EQ(m->create({"../evil", 0}, id_, ec), nullptr);
  EXPECT_EQ(ec, errc::invalid_topic_partition);
  EXPECT_EQ(m->create({"ok", -1}, id_, ec), nullptr);
  EXPECT_EQ(ec, errc::invalid_topic_partition);

  log* l = m->create({"ok", 0}, wire::uuid{}, ec);  // no id yet: no partition.metadata
  ASSERT_NE(l, nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "data" / "ok-0" / "partition.metadata"));
  EXPECT_EQ(m->create({"ok", 0}, id_, ec), l);  // same log; the id is now recorded
  EXPECT_FALSE(ec);
  EXPECT_EQ(l->topic_id(), id_);
  wire::uuid other = id_;
  other[15] = 0;
  EXPECT_EQ(m->create({"ok", 0}, other, ec), nullptr);
  EXPECT_EQ(ec, errc::inconsistent_topic_id);
}

TEST_F(log_manager_test, ignores_foreign_directories_and_rejects_a_file_root) {
  std::filesystem::create_directories(dir_ / "data" / "lost+found");
  std::filesystem::create_directories(dir_ / "data" / "orders-0.tmp");
  auto m = manager();
  EXPECT_TRUE(m->logs().empty());
  EXPECT_EQ(events_containing("ignoring directory"), 2u);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "data" / "lost+found"));

  write_bytes(dir_ / "file-root", {1});
  log_manager bad(dir_ / "file-root", {}, env());
  EXPECT_EQ(bad.load(), errc::io_error);
}

TEST_F(log_manager_test, malformed_checkpoints_mean_full_recovery) {
  {
    auto m = manager();
    append(*create(*m, {"t", 0}), make_batch(2));
    ASSERT_FALSE(m->shutdown());
  }
  write_bytes(dir_ / "data" / "recovery-point-offset-checkpoint", {'x'});
  write_bytes(dir_ / "data" / "replication-offset-checkpoint", {'0', '\n', '9'});
  std::filesystem::remove(dir_ / "data" / ".kafka_cleanshutdown");
  auto m = manager();
  EXPECT_EQ(m->find({"t", 0})->log_end_offset(), 2);
  EXPECT_EQ(events_containing("ignoring malformed"), 2u);
  EXPECT_EQ(events_containing("every log is recovered in full"), 1u);
}

TEST_F(log_manager_test, malformed_log_start_checkpoint_refuses_to_start) {
  {
    auto m = manager();
    log* l = create(*m, {"t", 0});
    for (int i = 0; i < 3; ++i)
      append(*l, make_batch(2));
    l->set_high_watermark(6);
    int64_t start = 0;
    ASSERT_FALSE(l->delete_records_before(4, start));
    ASSERT_FALSE(m->shutdown());
  }
  EXPECT_EQ(file_text(dir_ / "data" / "log-start-offset-checkpoint"), "0\n1\nt 0 4\n");
  // A torn or damaged file: falling back to the first segment would serve offsets 0-3 again.
  write_bytes(dir_ / "data" / "log-start-offset-checkpoint", {'0', '\n', '1', '\n', 't'});
  log_manager m(dir_ / "data", {}, env());
  EXPECT_EQ(m.load(), errc::io_error);
  EXPECT_EQ(events_containing("log-start-offset-checkpoint is malformed"), 1u);
  EXPECT_EQ(events_containing("Refusing to start"), 1u);

  // With no partition at all there is nothing to bring back.
  std::filesystem::remove_all(dir_ / "data" / "t-0");
  log_manager empty(dir_ / "data", {}, env());
  EXPECT_FALSE(empty.load());
}

TEST_F(log_manager_test, remove_deletes_the_partition_and_a_new_one_starts_empty) {
  auto m = manager();
  log* a = create(*m, {"t", 0});
  append(*a, make_batch(3));
  read_info held;
  ASSERT_FALSE(a->read(0, 1 << 20, 3, true, held));
  ASSERT_FALSE(m->remove({"t", 0}));
  EXPECT_EQ(m->find({"t", 0}), nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "data" / "t-0"));
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "data"))
    EXPECT_FALSE(e.is_directory()) << e.path();
  // A slice handed out before the removal still reads the old bytes (its descriptor is pinned).
  ASSERT_EQ(held.slices.size(), 1u);
  std::vector<uint8_t> buf(static_cast<size_t>(held.slices[0].length));
  EXPECT_EQ(::pread(held.slices[0].fd, buf.data(), buf.size(), held.slices[0].position),
            static_cast<ssize_t>(buf.size()));

  log* again = create(*m, {"t", 0});
  EXPECT_EQ(again->log_end_offset(), 0);
  EXPECT_FALSE(m->remove({"nope", 0}));
}

TEST_F(log_manager_test, load_finishes_an_interrupted_remove) {
  std::filesystem::path doomed = dir_ / "data" / "t-0.0123456789abcdef0123456789abcdef-delete";
  std::filesystem::create_directories(doomed);
  write_bytes(doomed / seg_name(0, ".log"), {1, 2, 3});
  auto m = manager();
  EXPECT_FALSE(std::filesystem::exists(doomed));
  EXPECT_TRUE(m->logs().empty());
}

TEST_F(log_manager_test, a_deleted_partition_directory_stays_aside_until_its_delay_has_passed) {
  auto m = manager();
  auto aside = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "data"))
      n += e.path().filename().string().ends_with("-delete");
    return n;
  };
  auto remove = [&](topic_partition tp) {
    bool done = false;
    m->remove_async(tp, [&](std::error_code ec) {
      EXPECT_FALSE(ec) << ec.message();
      done = true;
    });
    disk_.drain();
    EXPECT_TRUE(done);
  };
  m->set_file_delete_delay_ms(60000);
  append(*create(*m, {"t", 0}), make_batch(3));
  remove({"t", 0});
  EXPECT_FALSE(std::filesystem::exists(dir_ / "data" / "t-0"));
  EXPECT_EQ(aside(), 1);
  EXPECT_EQ(m->deleted_dirs_waiting(), 1u);

  const int64_t now = wall_clock_ms();
  EXPECT_EQ(m->remove_deleted_dirs(now), 0u);
  disk_.drain();
  EXPECT_EQ(aside(), 1);
  EXPECT_EQ(m->remove_deleted_dirs(now + 60001), 1u);
  EXPECT_EQ(aside(), 1);  // a disk job removes it
  disk_.drain();
  EXPECT_EQ(aside(), 0);
  EXPECT_EQ(m->deleted_dirs_waiting(), 0u);

  m->set_file_delete_delay_ms(0);
  create(*m, {"t", 1});
  remove({"t", 1});
  EXPECT_EQ(aside(), 0);
}

TEST_F(log_manager_test, deletions_that_arrive_together_share_a_checkpoint_write) {
  auto m = manager();
  m->set_file_delete_delay_ms(60000);
  for (int32_t p = 0; p < 3; ++p)
    append(*create(*m, {"t", p}), make_batch(2));
  create(*m, {"u", 0});
  disk_.drain();  // the leader epochs the appends wrote
  int done = 0;
  for (int32_t p = 0; p < 3; ++p) {
    m->remove_async({"t", p}, [&](std::error_code ec) {
      EXPECT_FALSE(ec) << ec.message();
      ++done;
    });
  }
  // Three renames, the checkpoint the first one asked for, and one more for the two that asked
  // while it was queued: five jobs, not six.
  EXPECT_EQ(disk_.drain(), 5u);
  EXPECT_EQ(done, 3);
  std::vector<uint8_t> bytes = testing::file_bytes(dir_ / "data" / recovery_point_checkpoint_file);
  std::string recovery(bytes.begin(), bytes.end());
  EXPECT_EQ(recovery.find("t "), std::string::npos) << recovery;
  EXPECT_NE(recovery.find("u 0"), std::string::npos) << recovery;
}

}  // namespace
}  // namespace sluice::storage
