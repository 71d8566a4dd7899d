// The leader epoch cache on its own: Kafka's assign, endOffsetFor and truncation rules, and the
// leader-epoch-checkpoint text format.

#include "storage/leader_epoch_cache.h"

#include <gtest/gtest.h>

namespace sluice::storage {
namespace {

using entries = std::vector<epoch_entry>;

TEST(leader_epoch_cache, assign_keeps_epochs_and_offsets_increasing) {
  leader_epoch_cache c;
  EXPECT_TRUE(c.assign(0, 0));
  EXPECT_FALSE(c.assign(0, 5));  // the same epoch writing on
  EXPECT_TRUE(c.assign(2, 10));
  EXPECT_FALSE(c.assign(-1, 11));
  EXPECT_EQ(c.entries(), (entries{{0, 0}, {2, 10}}));
  // A new epoch starting where the previous one wrote nothing replaces it.
  EXPECT_TRUE(c.assign(3, 10));
  EXPECT_EQ(c.entries(), (entries{{0, 0}, {3, 10}}));
  // An older epoch at a later offset (a follower appending a leader's batches over its own
  // divergent ones) drops every entry it contradicts.
  EXPECT_TRUE(c.assign(1, 7));
  EXPECT_EQ(c.entries(), (entries{{0, 0}, {1, 7}}));
  EXPECT_EQ(c.latest_epoch(), 1);
}

TEST(leader_epoch_cache, end_offset_for_follows_kafkas_table) {
  leader_epoch_cache empty;
  EXPECT_EQ(empty.end_offset_for(0, 10), std::make_pair(undefined_epoch, undefined_epoch_offset));

  leader_epoch_cache c(entries{{2, 5}, {4, 20}, {7, 30}});
  EXPECT_EQ(c.end_offset_for(undefined_epoch, 40),
            std::make_pair(undefined_epoch, undefined_epoch_offset));
  EXPECT_EQ(c.end_offset_for(7, 40), std::make_pair(7, int64_t{40}));  // the latest: log end
  EXPECT_EQ(c.end_offset_for(4, 40), std::make_pair(4, int64_t{30}));
  EXPECT_EQ(c.end_offset_for(2, 40), std::make_pair(2, int64_t{20}));
  // An epoch that never wrote: the largest one below it, ending where the next one starts.
  EXPECT_EQ(c.end_offset_for(5, 40), std::make_pair(4, int64_t{30}));
  EXPECT_EQ(c.end_offset_for(3, 40), std::make_pair(2, int64_t{20}));
  // Older than anything left: the requested epoch, ending where the first one starts.
  EXPECT_EQ(c.end_offset_for(1, 40), std::make_pair(1, int64_t{5}));
  // Newer than the latest: no answer.
  EXPECT_EQ(c.end_offset_for(8, 40), std::make_pair(undefined_epoch, undefined_epoch_offset));
}

TEST(leader_epoch_cache, truncation_from_either_end) {
  leader_epoch_cache c(entries{{0, 0}, {2, 10}, {3, 20}});
  EXPECT_FALSE(c.truncate_from_end(25));
  EXPECT_TRUE(c.truncate_from_end(20));
  EXPECT_EQ(c.entries(), (entries{{0, 0}, {2, 10}}));
  EXPECT_TRUE(c.truncate_from_start(5));
  EXPECT_EQ(c.entries(), (entries{{0, 5}, {2, 10}}));
  EXPECT_FALSE(c.truncate_from_start(5));
  EXPECT_TRUE(c.truncate_from_start(12));
  EXPECT_EQ(c.entries(), (entries{{2, 12}}));
  EXPECT_EQ(c.epoch_for(11), std::nullopt);
  EXPECT_EQ(c.epoch_for(12), 2);
  EXPECT_TRUE(c.truncate_from_end(0));
  EXPECT_TRUE(c.empty());
}

TEST(leader_epoch_cache, checkpoint_text_is_kafkas) {
  const entries e{{0, 0}, {3, 1520}};
  EXPECT_EQ(format_leader_epoch_checkpoint(e), "0\n2\n0 0\n3 1520\n");
  EXPECT_EQ(parse_leader_epoch_checkpoint("0\n2\n0 0\n3 1520\n"), e);
  EXPECT_EQ(parse_leader_epoch_checkpoint("0\n0\n"), entries{});
  for (const char* bad : {"", "1\n0\n", "0\n2\n0 0\n", "0\n1\n0 0\n1 1\n", "0\n2\n3 0\n1 5\n",
                          "0\n2\n1 5\n2 5\n", "0\n1\n0\t0\n", "0\n1\n-1 0\n", "0\nx\n"}) {
    EXPECT_EQ(parse_leader_epoch_checkpoint(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace sluice::storage
