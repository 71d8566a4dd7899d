// Leader epochs in a log: leader-epoch-checkpoint written as batches of new epochs arrive,
// read back at open, rebuilt from the batches when missing or malformed, caught up when it lags
// the log, and cut with the log at either end; and truncate_to as a diverged follower uses it.

#include <algorithm>
#include <fstream>

#include "storage/log.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::batch_summary;
using testing::make_batch;
using testing::make_producer_batch;
using testing::seg_name;
using entries = std::vector<epoch_entry>;

std::vector<uint8_t> bytes_of(std::string_view text) {
  return {text.begin(), text.end()};
}

class leader_epoch_log_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path part() { return dir_ / "t-0"; }
  std::filesystem::path checkpoint() { return part() / leader_epoch_checkpoint_file; }

  std::unique_ptr<log> open_log(load_state state = testing::clean_load()) {
    std::error_code ec;
    auto l = open_log_at(part(), {"t", 0}, cfg_, state, ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }
  append_info append(log& l, std::vector<uint8_t> batch, int32_t epoch) {
    append_info info;
    EXPECT_FALSE(testing::append_through_roll(l, disk_, batch, epoch, info));
    disk_.drain();
    return info;
  }
  size_t events_containing(std::string_view needle) const {
    return static_cast<size_t>(std::count_if(events_.begin(), events_.end(), [&](const auto& e) {
      return e.find(needle) != std::string::npos;
    }));
  }
  std::optional<entries> on_disk() {
    std::ifstream in(checkpoint());
    if (!in) return std::nullopt;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_leader_epoch_checkpoint(text);
  }
  // Three-record batches, two per segment: epochs 0, 0 | 0, 2 | 2, 5 over offsets 0..17.
  std::unique_ptr<log> filled() {
    auto l = open_log();
    int i = 0;
    for (int32_t epoch : {0, 0, 0, 2, 2, 5})
      append(*l, make_batch(3, 1000 + 10 * i++), epoch);
    EXPECT_EQ(l->segment_count(), 3u);
    return l;
  }

  log_config cfg_{.segment_bytes = 2 * static_cast<int64_t>(make_batch(3).size()),
                  .index_interval_bytes = 1};
};

TEST_F(leader_epoch_log_test, batches_of_new_epochs_are_recorded_and_read_back) {
  auto l = filled();
  const entries expected{{0, 0}, {2, 9}, {5, 15}};
  EXPECT_EQ(l->leader_epochs().entries(), expected);
  EXPECT_EQ(on_disk(), expected);
  EXPECT_EQ(l->end_offset_for_epoch(2), std::make_pair(2, int64_t{15}));
  EXPECT_EQ(l->end_offset_for_epoch(5), std::make_pair(5, int64_t{18}));
  EXPECT_EQ(l->end_offset_for_epoch(3), std::make_pair(2, int64_t{15}));
  l->close();
  l.reset();
  auto again = open_log();
  EXPECT_EQ(again->leader_epochs().entries(), expected);
  EXPECT_EQ(again->latest_epoch(), 5);
}

TEST_F(leader_epoch_log_test, a_new_leader_epoch_starts_at_the_log_end_before_any_append) {
  auto l = open_log();
  l->assign_epoch_start(0);
  disk_.drain();
  EXPECT_EQ(on_disk(), (entries{{0, 0}}));
  append(*l, make_batch(2), 0);
  l->assign_epoch_start(4);
  disk_.drain();
  EXPECT_EQ(on_disk(), (entries{{0, 0}, {4, 2}}));
  EXPECT_EQ(l->end_offset_for_epoch(4), std::make_pair(4, int64_t{2}));
  EXPECT_EQ(l->end_offset_for_epoch(0), std::make_pair(0, int64_t{2}));
}

TEST_F(leader_epoch_log_test, a_cut_at_the_log_end_drops_an_epoch_that_holds_no_batch) {
  auto l = open_log();
  append(*l, make_batch(2), 0);
  // This broker led epoch 3 and appended nothing before the next leader came, whose log has no
  // epoch 3: the leader answers that the follower diverged after epoch 0, at the log end.
  l->assign_epoch_start(3);
  disk_.drain();
  ASSERT_EQ(l->latest_epoch(), 3);
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 2));
  EXPECT_EQ(l->log_end_offset(), 2);
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}}));
  EXPECT_EQ(on_disk(), (entries{{0, 0}}));
  EXPECT_EQ(l->latest_epoch(), 0);
  // Past the log end too: nothing else changes.
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 5));
  EXPECT_EQ(l->log_end_offset(), 2);
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}}));
}

TEST_F(leader_epoch_log_test, a_missing_or_malformed_checkpoint_is_rebuilt_from_the_batches) {
  const entries expected{{0, 0}, {2, 9}, {5, 15}};
  filled()->close();
  std::filesystem::remove(checkpoint());
  EXPECT_EQ(open_log()->leader_epochs().entries(), expected);
  EXPECT_EQ(on_disk(), expected);

  testing::write_bytes(checkpoint(), {'0', '\n', '7', '\n'});
  EXPECT_EQ(open_log()->leader_epochs().entries(), expected);
  EXPECT_EQ(on_disk(), expected);
  EXPECT_EQ(events_containing("leader-epoch-checkpoint is malformed"), 1u);
}

TEST_F(leader_epoch_log_test, a_checkpoint_that_lags_the_log_is_caught_up_at_open) {
  // The file as it was before the epoch 5 batch (a crash before the write landed), and one that
  // names an epoch whose batches recovery cut away.
  filled()->close();
  testing::write_bytes(checkpoint(), bytes_of("0\n2\n0 0\n2 9\n"));
  EXPECT_EQ(open_log()->leader_epochs().entries(), (entries{{0, 0}, {2, 9}, {5, 15}}));
  testing::write_bytes(checkpoint(), bytes_of("0\n4\n0 0\n2 9\n5 15\n7 40\n"));
  EXPECT_EQ(open_log()->leader_epochs().entries(), (entries{{0, 0}, {2, 9}, {5, 15}}));
  EXPECT_EQ(on_disk(), (entries{{0, 0}, {2, 9}, {5, 15}}));
  // An epoch that starts at the log end has not written yet: it is the current epoch, kept.
  testing::write_bytes(checkpoint(), bytes_of("0\n4\n0 0\n2 9\n5 15\n7 18\n"));
  auto l = open_log();
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {2, 9}, {5, 15}, {7, 18}}));
  EXPECT_EQ(l->latest_epoch(), 7);
}

TEST_F(leader_epoch_log_test, epochs_follow_the_log_start) {
  auto l = filled();
  l->set_high_watermark(18);
  int64_t start = 0;
  ASSERT_FALSE(l->delete_records_before(10, start));
  disk_.drain();
  EXPECT_EQ(start, 10);
  EXPECT_EQ(on_disk(), (entries{{2, 10}, {5, 15}}));
  // An epoch older than every one left: the first offset the log still has.
  EXPECT_EQ(l->end_offset_for_epoch(1), std::make_pair(1, int64_t{10}));
}

// What a follower does when the leader says its log diverged at `offset`: cut there, on a
// segment boundary, inside a segment past its index entries, and with producer state.
TEST_F(leader_epoch_log_test, a_diverged_follower_truncates_to_the_leaders_epoch_end) {
  auto l = filled();
  // The segment boundary between 6-11 and 12-17.
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 12));
  EXPECT_EQ(l->log_end_offset(), 12);
  EXPECT_EQ(l->segment_count(), 3u);  // as in Kafka, the segment based at 12 stays, emptied
  EXPECT_EQ(std::filesystem::file_size(part() / seg_name(12, ".log")), 0u);
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {2, 9}}));
  EXPECT_EQ(on_disk(), (entries{{0, 0}, {2, 9}}));
  EXPECT_EQ(l->end_offset_for_epoch(2), std::make_pair(2, int64_t{12}));

  // Inside the active segment, where epoch 2 began.
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 9));
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}}));
  // The leader's batches of its own epoch follow, and reads find them through the index.
  append(*l, make_batch(3, 2000), 7);
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {7, 9}}));
  read_info info;
  ASSERT_FALSE(l->read(10, 1 << 20, l->log_end_offset(), true, info));
  EXPECT_EQ(testing::batches_in(testing::slurp(info)), (std::vector<batch_summary>{{9, 11}}));
}

TEST_F(leader_epoch_log_test, truncation_rewinds_producer_state_and_epochs_together) {
  auto l = open_log();
  append(*l, make_producer_batch(7, 0, 0, 2), 0);  // 0-1, epoch 0
  append(*l, make_producer_batch(7, 0, 2, 2), 3);  // 2-3, epoch 3
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {3, 2}}));
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 2));
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}}));
  EXPECT_EQ(l->producer_state().find(7)->last_sequence(), 1);
  append_info again = append(*l, make_producer_batch(7, 0, 2, 2), 4);
  EXPECT_FALSE(again.duplicate);
  EXPECT_EQ(again.base_offset, 2);
  EXPECT_EQ(l->leader_epochs().entries(), (entries{{0, 0}, {4, 2}}));
  // Below the log start: the log restarts empty, and so do its epochs.
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 0));
  EXPECT_TRUE(l->leader_epochs().empty());
  EXPECT_EQ(on_disk(), entries{});
}

}  // namespace
}  // namespace sluice::storage
