#include "storage/index.h"

#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::file_bytes;
using testing::write_bytes;

class index_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path path(const char* name) { return dir_ / name; }
};

TEST_F(index_test, offset_index_lookup_extremes) {
  offset_index idx(default_file_system(), path("a.index"), 100);
  ASSERT_FALSE(idx.create());
  // Empty: everything maps to the segment start.
  EXPECT_EQ(idx.lookup(100).offset, 100);
  EXPECT_EQ(idx.lookup(100).position, 0);
  EXPECT_EQ(idx.lookup(5000).position, 0);

  idx.append(110, 4100);
  idx.append(120, 8200);
  idx.append(130, 12300);
  EXPECT_EQ(idx.lookup(50).position, 0);   // before the base offset
  EXPECT_EQ(idx.lookup(109).position, 0);  // before the first entry
  EXPECT_EQ(idx.lookup(109).offset, 100);
  EXPECT_EQ(idx.lookup(110).position, 4100);  // exact
  EXPECT_EQ(idx.lookup(119).position, 4100);  // between
  EXPECT_EQ(idx.lookup(120).position, 8200);
  EXPECT_EQ(idx.lookup(130).position, 12300);  // last
  EXPECT_EQ(idx.lookup(999).position, 12300);  // after the last
  EXPECT_EQ(idx.lookup(999).offset, 130);
}

TEST_F(index_test, offset_index_file_is_big_endian_relative_entries) {
  offset_index idx(default_file_system(), path("b.index"), 100);
  ASSERT_FALSE(idx.create());
  idx.append(110, 4100);
  idx.append(0x01000000 + 100, 0x7f000000);
  ASSERT_FALSE(idx.flush_entries());
  std::vector<uint8_t> expected{0, 0, 0, 10, 0, 0, 0x10, 0x04, 1, 0, 0, 0, 0x7f, 0, 0, 0};
  EXPECT_EQ(file_bytes(path("b.index")), expected);

  offset_index again(default_file_system(), path("b.index"), 100);
  std::error_code ec;
  ASSERT_TRUE(again.load(INT64_MAX, ec));
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again.entry(1).offset, 0x01000000 + 100);
  EXPECT_EQ(again.entry(1).position, 0x7f000000);
}

TEST_F(index_test, offset_index_load_rejects_inconsistent_files) {
  std::error_code ec;
  auto load = [&](std::vector<uint8_t> bytes, int64_t log_size) {
    write_bytes(path("c.index"), bytes);
    offset_index idx(default_file_system(), path("c.index"), 0);
    bool ok = idx.load(log_size, ec);
    EXPECT_FALSE(ec);
    if (!ok) {
      EXPECT_TRUE(idx.empty());
    }
    return ok;
  };
  EXPECT_TRUE(load({}, 0));
  EXPECT_TRUE(load({0, 0, 0, 1, 0, 0, 0, 9}, 100));
  EXPECT_FALSE(load({0, 0, 0, 1, 0, 0, 0}, 100));                              // partial entry
  EXPECT_FALSE(load({0, 0, 0, 1, 0, 0, 0, 200}, 100));                         // beyond the log
  EXPECT_FALSE(load({0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 20}, 100));  // offsets down
  EXPECT_FALSE(load({0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 9}, 100));   // same position
  EXPECT_FALSE(load({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 100));   // zero-filled tail
}

TEST_F(index_test, offset_index_truncate_and_skip_ahead) {
  offset_index idx(default_file_system(), path("d.index"), 0);
  ASSERT_FALSE(idx.create());
  idx.append(10, 1000);
  idx.append(20, 2000);
  idx.append(30, 3000);
  ASSERT_FALSE(idx.flush_entries());

  // skip_ahead: the furthest entry within both the byte and the offset bound.
  EXPECT_EQ(idx.skip_ahead(0, 2500, 100), 2000);
  EXPECT_EQ(idx.skip_ahead(0, 5000, 100), 3000);
  EXPECT_EQ(idx.skip_ahead(0, 5000, 25), 2000);
  EXPECT_EQ(idx.skip_ahead(0, 999, 100), 0);
  EXPECT_EQ(idx.skip_ahead(2500, 5000, 20), 2500);  // never backwards

  ASSERT_FALSE(idx.truncate_to(20));
  EXPECT_EQ(idx.size(), 1u);
  EXPECT_EQ(file_bytes(path("d.index")).size(), 8u);
  ASSERT_FALSE(idx.truncate_to(0));
  EXPECT_TRUE(idx.empty());
  EXPECT_TRUE(file_bytes(path("d.index")).empty());
}

TEST_F(index_test, time_index_appends_only_growing_timestamps) {
  time_index idx(default_file_system(), path("a.timeindex"), 100);
  ASSERT_FALSE(idx.create());
  EXPECT_EQ(idx.last().timestamp, -1);
  EXPECT_EQ(idx.last().offset, 100);
  EXPECT_FALSE(idx.last_below(0));

  idx.maybe_append(1000, 105);
  idx.maybe_append(1000, 110);  // not larger: skipped
  idx.maybe_append(999, 112);   // smaller: skipped
  idx.maybe_append(2000, 120);
  idx.maybe_append(3000, 130);
  ASSERT_EQ(idx.size(), 3u);
  ASSERT_FALSE(idx.flush_entries());
  std::vector<uint8_t> first_entry{0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 5};
  std::vector<uint8_t> on_disk = file_bytes(path("a.timeindex"));
  ASSERT_EQ(on_disk.size(), 36u);
  EXPECT_TRUE(std::equal(first_entry.begin(), first_entry.end(), on_disk.begin()));

  EXPECT_FALSE(idx.last_below(1000));            // before the first entry
  EXPECT_EQ(idx.last_below(1001)->offset, 105);  // between
  EXPECT_EQ(idx.last_below(2000)->offset, 105);  // exact: strictly below
  EXPECT_EQ(idx.last_below(9999)->offset, 130);  // after the last
  EXPECT_EQ(idx.last().timestamp, 3000);

  time_index again(default_file_system(), path("a.timeindex"), 100);
  std::error_code ec;
  ASSERT_TRUE(again.load(ec));
  EXPECT_EQ(again.size(), 3u);

  ASSERT_FALSE(again.truncate_to(120));
  EXPECT_EQ(again.size(), 1u);
  EXPECT_EQ(file_bytes(path("a.timeindex")).size(), 12u);
}

TEST_F(index_test, time_index_load_rejects_inconsistent_files) {
  std::vector<uint8_t> down{0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 2};
  write_bytes(path("b.timeindex"), down);
  time_index idx(default_file_system(), path("b.timeindex"), 0);
  std::error_code ec;
  EXPECT_FALSE(idx.load(ec));
  EXPECT_TRUE(idx.empty());

  write_bytes(path("b.timeindex"), std::vector<uint8_t>(13, 1));
  time_index partial(default_file_system(), path("b.timeindex"), 0);
  EXPECT_FALSE(partial.load(ec));
}

TEST_F(index_test, missing_file_is_not_loaded_and_is_created_by_the_first_write) {
  offset_index idx(default_file_system(), path("e.index"), 0);
  std::error_code ec;
  EXPECT_FALSE(idx.load(100, ec));
  EXPECT_FALSE(ec);
  EXPECT_FALSE(std::filesystem::exists(path("e.index")));
  idx.append(3, 50);
  ASSERT_FALSE(idx.flush_entries());
  EXPECT_EQ(file_bytes(path("e.index")).size(), 8u);
}

TEST_F(index_test, lazy_reset_empties_the_file_on_the_next_write_only) {
  write_bytes(path("f.index"), {0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 20});
  offset_index idx(default_file_system(), path("f.index"), 0);
  idx.reset_lazily();
  EXPECT_EQ(file_bytes(path("f.index")).size(), 16u);  // untouched so far
  EXPECT_FALSE(idx.flush_entries());                   // nothing pending: still untouched
  EXPECT_EQ(file_bytes(path("f.index")).size(), 16u);
  idx.append(5, 70);
  ASSERT_FALSE(idx.flush_entries());
  std::vector<uint8_t> expected{0, 0, 0, 5, 0, 0, 0, 70};
  EXPECT_EQ(file_bytes(path("f.index")), expected);
}

}  // namespace
}  // namespace sluice::storage
