// log::append_replicated, a follower's append of its leader's batches: written byte for byte,
// offsets and epochs kept; partial tails, gaps, overlaps and corrupt batches; rolls; producer
// state that a later leadership takes over; recovery; and the follower's high watermark and log
// start.

#include <algorithm>
#include <map>

#include "storage/log.h"
#include "storage/tests/fault_injection_fs.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::batch_summary;
using testing::batches_in;
using testing::commit_marker;
using testing::file_bytes;
using testing::make_batch;
using testing::make_producer_batch;
using testing::seg_name;
using testing::slurp;
using entries = std::vector<epoch_entry>;
using bytes = std::vector<uint8_t>;

// A batch as a leader would have written it: its offsets and epoch set (both outside the CRC).
bytes at(bytes b, int64_t base_offset, int32_t epoch = 0) {
  wire::mutable_record_batch m(b);
  m.set_base_offset(base_offset);
  m.set_partition_leader_epoch(epoch);
  return b;
}

bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

class log_replicated_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path leader_dir() { return dir_ / "leader" / "t-0"; }
  std::filesystem::path follower_dir() { return dir_ / "follower" / "t-0"; }

  std::unique_ptr<log> open_at(const std::filesystem::path& dir, log_config cfg,
                               load_state state = testing::clean_load()) {
    std::error_code ec;
    auto l = open_at_or_fail(dir, cfg, state, ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }
  std::unique_ptr<log> open_at_or_fail(const std::filesystem::path& dir, log_config cfg,
                                       load_state state, std::error_code& ec) {
    return open_log_at(dir, {"t", 0}, cfg, state, ec);
  }
  std::unique_ptr<log> open_follower(load_state state = testing::clean_load()) {
    return open_at(follower_dir(), cfg_, state);
  }

  void lead(log& l, bytes batch, int32_t epoch) {
    append_info info;
    EXPECT_FALSE(testing::append_through_roll(l, disk_, batch, epoch, info, 10'000));
    disk_.drain();
  }

  // The leader's log as a follower's fetches see it: batches from `offset` on, at least one,
  // up to `max_bytes`.
  static bytes fetch(const log& l, int64_t offset, int64_t max_bytes = INT32_MAX) {
    read_info info;
    EXPECT_FALSE(l.read(offset, max_bytes, l.log_end_offset(), true, info));
    return slurp(info);
  }

  // What the broker's follower does with one fetched chunk: append, wait for a roll, go on with
  // what one call did not take. Returns the append_info of every call that wrote.
  std::vector<append_info> replicate(log& f, std::span<const uint8_t> chunk) {
    std::vector<append_info> calls;
    while (!chunk.empty()) {
      append_info info;
      std::error_code ec = f.append_replicated(chunk, info);
      if (ec == errc::roll_in_progress) {
        disk_.drain();
        continue;
      }
      EXPECT_FALSE(ec) << ec.message();
      if (ec || info.bytes == 0) break;
      calls.push_back(info);
      chunk = chunk.subspan(static_cast<size_t>(info.bytes));
    }
    disk_.drain();
    return calls;
  }

  // Three-record batches in epochs 0, 0, 0, 3, 3, 5, 5, 5 (a producer's among them, timestamps
  // not in order), two per segment.
  std::unique_ptr<log> filled_leader() {
    auto l = open_at(leader_dir(), cfg_);
    const int32_t epochs[] = {0, 0, 0, 3, 3, 5, 5, 5};
    for (int i = 0; i < 8; ++i) {
      bytes b = i == 2 ? make_producer_batch(7, 0, 0, 3, producer_ts_)
                       : make_batch(3, 1000 + 100 * (i % 3));
      lead(*l, std::move(b), epochs[i]);
    }
    EXPECT_EQ(l->segment_count(), 4u);
    return l;
  }

  // Every file of a partition directory, by name.
  static std::map<std::string, bytes> files_of(const std::filesystem::path& dir) {
    std::map<std::string, bytes> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      out[e.path().filename().string()] = file_bytes(e.path());
    return out;
  }

  static std::map<std::string, bytes> segment_logs_of(const std::filesystem::path& dir) {
    std::map<std::string, bytes> out = files_of(dir);
    std::erase_if(out, [](const auto& kv) { return !kv.first.ends_with(".log"); });
    return out;
  }

  std::optional<entries> epochs_on_disk(const std::filesystem::path& dir) {
    return parse_leader_epoch_checkpoint(file_text_of(dir / leader_epoch_checkpoint_file));
  }
  static std::string file_text_of(const std::filesystem::path& p) {
    bytes b = file_bytes(p);
    return {b.begin(), b.end()};
  }

  // Now-ish: a restart forgets producers idle for producer.id.expiration.ms.
  const int64_t producer_ts_ = wall_clock_ms();
  const int64_t batch_size_ = static_cast<int64_t>(make_batch(3).size());
  log_config cfg_{.segment_bytes = 2 * batch_size_, .index_interval_bytes = 1};
};

TEST_F(log_replicated_test, fetching_batch_by_batch_gives_a_byte_identical_partition_directory) {
  auto leader = filled_leader();
  auto follower = open_follower();
  for (int64_t next = 0; next < leader->log_end_offset(); next = follower->log_end_offset()) {
    bytes one = fetch(*leader, next, 1);
    ASSERT_EQ(batches_in(one).size(), 1u);
    std::vector<append_info> calls = replicate(*follower, one);
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].base_offset, next);
  }
  EXPECT_EQ(follower->log_end_offset(), 24);
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{0, 0}, {3, 9}, {5, 15}}));
  EXPECT_EQ(follower->max_timestamp_and_offset(), leader->max_timestamp_and_offset());
  for (int64_t ts : {int64_t{999}, int64_t{1000}, int64_t{1150}, int64_t{1201}, producer_ts_ + 1,
                     producer_ts_ + 3})
    EXPECT_EQ(follower->timestamp_and_offset_for(ts), leader->timestamp_and_offset_for(ts)) << ts;
  leader->close();
  follower->close();
  // Segments, both indexes (one entry per append, as on the leader), the epoch checkpoint and the
  // producer snapshots of every roll and of the close.
  std::map<std::string, bytes> expected = files_of(leader_dir());
  EXPECT_EQ(expected.size(), 4u * 3 + 1 + 4);
  EXPECT_TRUE(expected.contains(seg_name(18, ".snapshot")));
  EXPECT_TRUE(expected.contains(seg_name(24, ".snapshot")));
  EXPECT_EQ(files_of(follower_dir()), expected);
}

TEST_F(log_replicated_test, one_fetch_of_everything_keeps_offsets_epochs_and_segment_bytes) {
  auto leader = filled_leader();
  auto follower = open_follower();
  bytes all = fetch(*leader, 0);
  ASSERT_EQ(batches_in(all).size(), 8u);
  // One call takes what one segment holds; the rest follows after a roll, segment by segment,
  // which cuts the follower's segments where the leader's are cut.
  std::vector<append_info> calls = replicate(*follower, all);
  ASSERT_EQ(calls.size(), 4u);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].base_offset, static_cast<int64_t>(6 * i));
    EXPECT_EQ(calls[i].last_offset, static_cast<int64_t>(6 * i + 5));
    EXPECT_EQ(calls[i].batch_count, 2);
    EXPECT_EQ(calls[i].bytes, 2 * batch_size_);
    EXPECT_EQ(calls[i].log_append_time, -1);
    EXPECT_FALSE(calls[i].duplicate);
  }
  EXPECT_EQ(calls[1].max_timestamp, producer_ts_ + 2);  // the producer batch's last record
  EXPECT_EQ(follower->log_end_offset(), 24);
  EXPECT_EQ(follower->segment_count(), 4u);
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{0, 0}, {3, 9}, {5, 15}}));
  EXPECT_EQ(epochs_on_disk(follower_dir()), (entries{{0, 0}, {3, 9}, {5, 15}}));
  EXPECT_EQ(segment_logs_of(follower_dir()), segment_logs_of(leader_dir()));
  // Every offset is found through the follower's own indexes.
  for (int64_t o = 0; o < 24; ++o)
    EXPECT_EQ(fetch(*follower, o, 1), fetch(*leader, o, 1)) << o;
}

TEST_F(log_replicated_test, epoch_changes_inside_one_append_each_start_an_entry) {
  cfg_.segment_bytes = 1 << 20;  // every chunk here fits one segment
  auto follower = open_follower();
  // Newer epochs start entries where their first batch starts; a batch of the latest epoch
  // changes nothing.
  bytes chunk = concat({at(make_batch(1), 0, 1), at(make_batch(2), 1, 4), at(make_batch(1), 3, 4),
                        at(make_batch(1), 4, 9)});
  append_info info;
  ASSERT_FALSE(follower->append_replicated(chunk, info));
  EXPECT_EQ(info.batch_count, 4);
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{1, 0}, {4, 1}, {9, 4}}));
  EXPECT_EQ(follower->end_offset_for_epoch(4), std::make_pair(4, int64_t{4}));
  EXPECT_EQ(follower->end_offset_for_epoch(9), std::make_pair(9, int64_t{5}));
  disk_.drain();
  EXPECT_EQ(epochs_on_disk(follower_dir()), (entries{{1, 0}, {4, 1}, {9, 4}}));
  // The leader's epochs stay in the bytes: nothing was stamped.
  read_info read;
  ASSERT_FALSE(follower->read(0, INT32_MAX, 5, true, read));
  EXPECT_EQ(slurp(read), chunk);
}

TEST_F(log_replicated_test, a_stale_epoch_entry_at_the_log_end_gives_way_to_the_leaders_epoch) {
  // This replica led epoch 7 without writing; the new leader's batches at that offset are of
  // epoch 6, which it never saw: the entry for 7 is contradicted and goes, as Kafka's assign does.
  auto follower = open_follower();
  append_info info;
  ASSERT_FALSE(follower->append_replicated(at(make_batch(2), 0, 5), info));
  follower->assign_epoch_start(7);
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{5, 0}, {7, 2}}));
  ASSERT_FALSE(follower->append_replicated(at(make_batch(2), 2, 6), info));
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{5, 0}, {6, 2}}));
  disk_.drain();
  EXPECT_EQ(epochs_on_disk(follower_dir()), (entries{{5, 0}, {6, 2}}));
}

TEST_F(log_replicated_test, gaps_and_overlaps_are_refused_without_writing) {
  cfg_.segment_bytes = 1 << 20;  // every chunk here fits one segment
  auto follower = open_follower();
  append_info info;
  ASSERT_FALSE(
      follower->append_replicated(concat({at(make_batch(3), 0), at(make_batch(3), 3)}), info));
  disk_.drain();  // the checkpoint of epoch 0
  ASSERT_EQ(follower->log_end_offset(), 6);
  const int64_t size = follower->size_bytes();
  const bytes on_disk = file_bytes(follower_dir() / seg_name(0, ".log"));
  auto refused = [&](const bytes& chunk, errc expected) {
    append_info out;
    EXPECT_EQ(follower->append_replicated(chunk, out), expected);
    EXPECT_EQ(out.bytes, 0);
    EXPECT_EQ(follower->log_end_offset(), 6);
    EXPECT_EQ(follower->size_bytes(), size);
  };
  // The first batch must start at the log end.
  refused(at(make_batch(3), 7), errc::offset_out_of_range);  // a gap
  refused(at(make_batch(3), 3), errc::offset_out_of_range);  // an overlap
  refused(at(make_batch(3), 5), errc::offset_out_of_range);  // inside the last batch
  // Later batches must follow their predecessor, and nothing of a bad chunk is written, not even
  // its good first batch.
  refused(concat({at(make_batch(3), 6), at(make_batch(3), 10)}), errc::invalid_record);
  refused(concat({at(make_batch(3), 6), at(make_batch(3), 8)}), errc::invalid_record);
  refused(concat({at(make_batch(3), 6), at(make_batch(3), 9), at(make_batch(1), 9)}),
          errc::invalid_record);
  EXPECT_EQ(file_bytes(follower_dir() / seg_name(0, ".log")), on_disk);
  EXPECT_EQ(disk_.pending(), 0u);
  ASSERT_FALSE(
      follower->append_replicated(concat({at(make_batch(3), 6), at(make_batch(3), 9)}), info));
  EXPECT_EQ(follower->log_end_offset(), 12);
}

TEST_F(log_replicated_test, corrupt_batches_are_refused_as_on_the_leader_path) {
  auto follower = open_follower();
  auto refused = [&](const bytes& chunk, errc expected) {
    append_info out;
    EXPECT_EQ(follower->append_replicated(chunk, out), expected);
    EXPECT_EQ(follower->log_end_offset(), 0);
    EXPECT_EQ(follower->size_bytes(), 0);
  };
  bytes bad_crc = at(make_batch(3), 6);
  bad_crc.back() ^= 0x01;  // a record byte
  refused(concat({at(make_batch(3), 0), at(make_batch(3), 3), bad_crc}), errc::corrupt_message);

  bytes bad_count = at(make_batch(3), 3);
  bad_count[wire::batch_field::records_count + 3] = 2;
  wire::mutable_record_batch(bad_count).update_crc();
  refused(concat({at(make_batch(3), 0), bad_count}), errc::invalid_record);

  bytes bad_magic = at(make_batch(3), 0);
  bad_magic[wire::batch_field::magic] = 1;
  refused(bad_magic, errc::invalid_record);

  bytes bad_length = at(make_batch(3), 3);
  bad_length[wire::batch_field::batch_length + 3] = 10;  // below a header's 49
  refused(concat({at(make_batch(3), 0), bad_length}), errc::corrupt_message);
}

TEST_F(log_replicated_test, a_trailing_partial_batch_is_left_out_and_reported) {
  cfg_.segment_bytes = 1 << 20;  // every chunk here fits one segment
  auto follower = open_follower();
  const bytes whole = concat({at(make_batch(3), 0, 2), at(make_batch(2), 3, 2)});
  const bytes next = at(make_batch(4), 5, 2);
  // Cut inside the records, inside the header, and before batchLength is complete.
  for (size_t cut : {next.size() - 1, size_t{30}, size_t{5}}) {
    bytes chunk = whole;
    chunk.insert(chunk.end(), next.begin(), next.begin() + static_cast<ptrdiff_t>(cut));
    auto f = open_at(dir_ / ("cut-" + std::to_string(cut)) / "t-0", cfg_);
    append_info info;
    ASSERT_FALSE(f->append_replicated(chunk, info)) << cut;
    EXPECT_EQ(info.bytes, static_cast<int64_t>(whole.size()));
    EXPECT_EQ(info.batch_count, 2);
    EXPECT_EQ(info.last_offset, 4);
    EXPECT_EQ(f->log_end_offset(), 5);
    EXPECT_EQ(f->size_bytes(), static_cast<int64_t>(whole.size()));
  }
  // Nothing but a partial batch: nothing to do, and no error.
  append_info info;
  ASSERT_FALSE(follower->append_replicated(std::span(next).first(40), info));
  EXPECT_EQ(info.bytes, 0);
  EXPECT_EQ(info.batch_count, 0);
  EXPECT_EQ(follower->log_end_offset(), 0);
  ASSERT_FALSE(follower->append_replicated({}, info));
  EXPECT_EQ(info.bytes, 0);
  EXPECT_EQ(follower->size_bytes(), 0);
  // The next fetch brings the whole batch.
  ASSERT_FALSE(follower->append_replicated(concat({whole, next}), info));
  EXPECT_EQ(follower->log_end_offset(), 9);
}

TEST_F(log_replicated_test, a_full_segment_rolls_in_a_job_and_the_append_waits_for_it) {
  auto follower = open_follower();
  append_info info;
  ASSERT_FALSE(follower->append_replicated(at(make_batch(3), 0), info));
  ASSERT_FALSE(follower->append_replicated(at(make_batch(3), 3), info));
  disk_.drain();  // the checkpoint of epoch 0
  EXPECT_EQ(disk_.pending(), 0u);
  const bytes third = at(make_batch(3), 6, 1);
  ASSERT_EQ(follower->append_replicated(third, info), errc::roll_in_progress);
  EXPECT_EQ(info.bytes, 0);
  EXPECT_EQ(follower->log_end_offset(), 6);
  EXPECT_FALSE(std::filesystem::exists(follower_dir() / seg_name(6, ".log")));
  EXPECT_FALSE(follower->latest_epoch() == 1);  // nothing of the batch was taken in
  EXPECT_EQ(follower->append_replicated(third, info), errc::roll_in_progress);
  bool writable = false;
  follower->when_writable([&] { writable = true; });
  EXPECT_FALSE(writable);
  ASSERT_TRUE(disk_.run_one());  // the new segment's files
  EXPECT_TRUE(writable);
  EXPECT_TRUE(std::filesystem::exists(follower_dir() / seg_name(6, ".log")));
  ASSERT_FALSE(follower->append_replicated(third, info));
  EXPECT_EQ(info.base_offset, 6);
  EXPECT_EQ(follower->segment_count(), 2u);
  EXPECT_EQ(file_bytes(follower_dir() / seg_name(6, ".log")), third);
  EXPECT_EQ(follower->recovery_point(), 0);
  disk_.drain();  // the old segment's flush
  EXPECT_EQ(follower->recovery_point(), 6);
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{0, 0}, {1, 6}}));
}

TEST_F(log_replicated_test, segment_ms_rolls_by_the_leaders_timestamps) {
  cfg_.segment_bytes = 1 << 20;
  cfg_.segment_ms = 1000;
  auto follower = open_follower();
  append_info info;
  ASSERT_FALSE(follower->append_replicated(at(make_batch(1, 5000), 0), info, 0));
  ASSERT_FALSE(follower->append_replicated(at(make_batch(1, 6000), 1), info, 0));
  // 1001 ms of data time later; the wall clock (now_ms) is not what counts.
  const bytes late = at(make_batch(1, 6001), 2);
  ASSERT_EQ(follower->append_replicated(late, info, 0), errc::roll_in_progress);
  disk_.drain();
  ASSERT_FALSE(follower->append_replicated(late, info, 0));
  EXPECT_EQ(follower->segment_count(), 2u);
  EXPECT_TRUE(std::filesystem::exists(follower_dir() / seg_name(2, ".log")));
}

TEST_F(log_replicated_test,
       a_batch_larger_than_a_segment_gets_its_own_and_max_message_bytes_is_not_applied) {
  cfg_.segment_bytes = batch_size_;
  cfg_.max_message_bytes = 100;  // below every batch here: the leader's limit, not the follower's
  auto follower = open_follower();
  const bytes big = at(make_batch(3, 1000, 500), 3);
  ASSERT_GT(static_cast<int64_t>(big.size()), 3 * batch_size_);
  std::vector<append_info> calls =
      replicate(*follower, concat({at(make_batch(3), 0), big, at(make_batch(3), 6)}));
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[1].base_offset, 3);
  EXPECT_EQ(calls[1].bytes, static_cast<int64_t>(big.size()));
  EXPECT_EQ(follower->segment_count(), 3u);
  EXPECT_EQ(file_bytes(follower_dir() / seg_name(3, ".log")), big);
  EXPECT_EQ(follower->log_end_offset(), 9);
  // The leader path does apply max_message_bytes.
  bytes again = make_batch(3);
  append_info info;
  EXPECT_EQ(follower->append(again, 0, info), errc::record_too_large);
}

TEST_F(log_replicated_test, one_call_takes_at_most_one_segment) {
  auto follower = open_follower();  // two batches per segment
  bytes chunk;
  for (int i = 0; i < 5; ++i)
    chunk = concat({chunk, at(make_batch(3), 3 * i)});
  append_info info;
  ASSERT_FALSE(follower->append_replicated(chunk, info));
  EXPECT_EQ(info.batch_count, 2);
  EXPECT_EQ(info.bytes, 2 * batch_size_);
  EXPECT_EQ(info.last_offset, 5);
  std::span<const uint8_t> rest = std::span(chunk).subspan(static_cast<size_t>(info.bytes));
  EXPECT_EQ(follower->append_replicated(rest, info), errc::roll_in_progress);
  disk_.drain();
  ASSERT_FALSE(follower->append_replicated(rest, info));
  EXPECT_EQ(info.base_offset, 6);
  EXPECT_EQ(info.batch_count, 2);
  rest = rest.subspan(static_cast<size_t>(info.bytes));
  EXPECT_EQ(follower->append_replicated(rest, info), errc::roll_in_progress);
  disk_.drain();
  ASSERT_FALSE(follower->append_replicated(rest, info));
  EXPECT_EQ(info.batch_count, 1);
  EXPECT_EQ(info.bytes, static_cast<int64_t>(rest.size()));
  EXPECT_EQ(follower->log_end_offset(), 15);
  EXPECT_EQ(follower->segment_count(), 3u);
}

TEST_F(log_replicated_test, a_bad_batch_past_the_first_segment_still_refuses_the_whole_chunk) {
  auto follower = open_follower();
  bytes bad = at(make_batch(3), 9);
  bad.back() ^= 0x40;
  bytes chunk = concat({at(make_batch(3), 0), at(make_batch(3), 3), at(make_batch(3), 6), bad});
  append_info info;
  EXPECT_EQ(follower->append_replicated(chunk, info), errc::corrupt_message);
  EXPECT_EQ(follower->log_end_offset(), 0);
}

TEST_F(log_replicated_test, a_replica_that_becomes_leader_continues_its_producers_sequences) {
  auto leader = open_at(leader_dir(), cfg_);
  lead(*leader, make_producer_batch(7, 0, 0, 2), 0);
  lead(*leader, make_batch(1), 0);
  lead(*leader, make_producer_batch(7, 0, 2, 3), 0);
  lead(*leader, make_producer_batch(8, 4, 0, 1), 0);
  lead(*leader, make_producer_batch(7, 0, 5, 1), 0);
  auto follower = open_follower();
  replicate(*follower, fetch(*leader, 0));
  ASSERT_EQ(follower->log_end_offset(), 8);
  for (int64_t pid : {7, 8}) {
    const producer_state_entry* mine = follower->producer_state().find(pid);
    const producer_state_entry* theirs = leader->producer_state().find(pid);
    ASSERT_NE(mine, nullptr);
    EXPECT_EQ(mine->epoch, theirs->epoch);
    EXPECT_EQ(mine->batches, theirs->batches);
    EXPECT_EQ(mine->last_timestamp, theirs->last_timestamp);
  }
  EXPECT_EQ(follower->producer_state().find(7)->last_sequence(), 5);
  EXPECT_EQ(follower->producer_state().map_end_offset(), 8);

  // Leadership moves here.
  follower->assign_epoch_start(1);
  append_info info;
  bytes next = make_producer_batch(7, 0, 6, 2);
  ASSERT_FALSE(follower->append(next, 1, info));
  EXPECT_EQ(info.base_offset, 8);
  EXPECT_FALSE(info.duplicate);
  // A retry of the last batch the old leader wrote gets its original offsets.
  bytes retry = make_producer_batch(8, 4, 0, 1);
  ASSERT_FALSE(follower->append(retry, 1, info));
  EXPECT_TRUE(info.duplicate);
  EXPECT_EQ(info.base_offset, 6);
  bytes gap = make_producer_batch(7, 0, 9, 1);
  EXPECT_EQ(follower->append(gap, 1, info), errc::out_of_order_sequence);
  bytes zombie = make_producer_batch(8, 3, 1, 1);
  EXPECT_EQ(follower->append(zombie, 1, info), errc::invalid_producer_epoch);
}

TEST_F(log_replicated_test, producer_state_takes_the_leaders_batches_unchecked) {
  cfg_.segment_bytes = 1 << 20;  // every chunk here fits one segment
  auto follower = open_follower();
  const int64_t now = wall_clock_ms();
  wire::batch_build_options txn{.producer_id = 9, .producer_epoch = 2, .base_sequence = 0};
  txn.attributes = wire::batch_attribute::transactional;
  const uint8_t v[] = {'v'};
  wire::record_to_build r{now, std::nullopt, std::span(v)};
  // A sequence gap, an older epoch, a transaction and its marker: a leader decided all of it.
  bytes chunk = concat(
      {at(make_producer_batch(5, 3, 0, 2), 0), at(make_producer_batch(5, 3, 40, 1), 2),
       at(make_producer_batch(6, 2, 0, 1), 3), at(make_producer_batch(6, 1, 7, 1), 4),
       at(wire::build_record_batch(txn, std::span(&r, 1)), 5), commit_marker(6, 9, 2, 11, now)});
  append_info info;
  ASSERT_FALSE(follower->append_replicated(chunk, info));
  EXPECT_EQ(info.batch_count, 6);
  const producer_state_entry* p5 = follower->producer_state().find(5);
  ASSERT_NE(p5, nullptr);
  EXPECT_EQ(p5->last_sequence(), 40);
  EXPECT_EQ(p5->last_offset(), 2);
  EXPECT_EQ(p5->batches.size(), 2u);
  const producer_state_entry* p6 = follower->producer_state().find(6);
  ASSERT_NE(p6, nullptr);
  EXPECT_EQ(p6->epoch, 1);
  EXPECT_EQ(p6->last_sequence(), 7);
  const producer_state_entry* p9 = follower->producer_state().find(9);
  ASSERT_NE(p9, nullptr);
  EXPECT_EQ(p9->coordinator_epoch, 11);
  EXPECT_EQ(p9->current_txn_first_offset, -1);  // committed by the marker
  EXPECT_EQ(follower->producer_state().map_end_offset(), 7);
}

TEST_F(log_replicated_test, everything_survives_a_clean_restart_and_a_crash) {
  auto leader = filled_leader();
  const bytes all = fetch(*leader, 0);
  for (bool crash : {false, true}) {
    SCOPED_TRACE(crash ? "crash" : "clean");
    std::filesystem::remove_all(follower_dir());
    {
      auto follower = open_follower();
      replicate(*follower, all);
      ASSERT_EQ(follower->log_end_offset(), 24);
      if (!crash) follower->close();
      // A crash: the log goes without a flush or a snapshot at its end.
    }
    auto again = open_follower(crash ? testing::crash_load(0) : testing::clean_load());
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->log_end_offset(), 24);
    EXPECT_EQ(again->segment_count(), 4u);
    EXPECT_EQ(again->leader_epochs().entries(), (entries{{0, 0}, {3, 9}, {5, 15}}));
    const producer_state_entry* p = again->producer_state().find(7);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->last_sequence(), 2);
    EXPECT_EQ(p->last_offset(), 8);
    EXPECT_EQ(again->max_timestamp_and_offset(), leader->max_timestamp_and_offset());
    EXPECT_EQ(fetch(*again, 0), all);
    EXPECT_EQ(segment_logs_of(follower_dir()), segment_logs_of(leader_dir()));
    // And it takes the next fetch where it left off (in a new segment: the last one is full).
    EXPECT_EQ(replicate(*again, at(make_batch(1), 24, 5)).size(), 1u);
    EXPECT_EQ(again->log_end_offset(), 25);
    EXPECT_EQ(again->segment_count(), 5u);
  }
  EXPECT_TRUE(std::any_of(events_.begin(), events_.end(), [](const std::string& e) {
    return e.find("recovered " + seg_name(18, ".log")) != std::string::npos;
  }));
}

TEST_F(log_replicated_test, the_high_watermark_is_the_callers_and_capped_at_the_log_end) {
  auto follower = open_follower();
  append_info info;
  ASSERT_FALSE(follower->append_replicated(at(make_batch(3), 0), info));
  EXPECT_EQ(follower->high_watermark(), 0);
  follower->set_high_watermark(2);
  ASSERT_FALSE(follower->append_replicated(at(make_batch(3), 3), info));
  EXPECT_EQ(follower->high_watermark(), 2);
  // The leader's high watermark may be past what this replica has.
  follower->set_high_watermark(50);
  EXPECT_EQ(follower->high_watermark(), 6);
}

TEST_F(log_replicated_test, the_log_start_follows_the_leaders_up_to_the_high_watermark) {
  cfg_.segment_bytes = batch_size_;
  auto follower = open_follower();
  const int32_t epochs[] = {1, 1, 2, 3};
  bytes chunk;
  for (int i = 0; i < 4; ++i)
    chunk = concat({chunk, at(make_batch(3), 3 * i, epochs[i])});
  replicate(*follower, chunk);
  ASSERT_EQ(follower->segment_count(), 4u);
  follower->set_high_watermark(9);

  int64_t start = -5;
  int deleted_calls = 0;
  auto count = [&](std::error_code ec) {
    EXPECT_FALSE(ec);
    ++deleted_calls;
  };
  // Kafka's -1 (unknown) and anything at or below the start change nothing.
  ASSERT_FALSE(follower->follow_leader_log_start(-1, start, count));
  EXPECT_EQ(start, 0);
  ASSERT_FALSE(follower->follow_leader_log_start(0, start, count));
  EXPECT_EQ(deleted_calls, 2);
  EXPECT_EQ(follower->log_start_offset(), 0);
  EXPECT_EQ(follower->segment_count(), 4u);
  // Beyond this replica's high watermark: the caller sets that from the same response first.
  EXPECT_EQ(follower->follow_leader_log_start(10, start, count), errc::offset_out_of_range);
  EXPECT_EQ(follower->log_start_offset(), 0);

  ASSERT_FALSE(follower->follow_leader_log_start(7, start, count));
  EXPECT_EQ(start, 7);
  EXPECT_EQ(follower->log_start_offset(), 7);
  EXPECT_EQ(follower->segment_count(), 2u);  // those wholly below 7
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{2, 7}, {3, 9}}));
  EXPECT_EQ(deleted_calls, 2);
  disk_.drain();
  EXPECT_EQ(deleted_calls, 3);
  EXPECT_FALSE(std::filesystem::exists(follower_dir() / seg_name(0, ".log")));
  EXPECT_FALSE(std::filesystem::exists(follower_dir() / seg_name(3, ".log")));
  read_info read;
  EXPECT_EQ(follower->read(5, INT32_MAX, 12, true, read), errc::offset_out_of_range);
  // Never back down.
  ASSERT_FALSE(follower->follow_leader_log_start(4, start, count));
  EXPECT_EQ(start, 7);
  EXPECT_EQ(follower->log_start_offset(), 7);
}

TEST_F(log_replicated_test, a_log_wholly_below_the_leaders_start_starts_again_there) {
  auto leader = filled_leader();
  auto follower = open_follower();
  replicate(*follower, fetch(*leader, 0, 3 * batch_size_));  // offsets 0-8, epoch 0
  ASSERT_EQ(follower->log_end_offset(), 9);
  ASSERT_NE(follower->producer_state().find(7), nullptr);
  follower->set_high_watermark(follower->log_end_offset());

  // Not to where it already is: that is truncation's work.
  std::optional<std::error_code> refused;
  follower->start_again_at(9, [&](std::error_code ec) { refused = ec; });
  EXPECT_EQ(refused, errc::offset_out_of_range);

  // The leader deleted up to 15 meanwhile (DeleteRecords, retention). The new segment is made
  // by a job, and appends wait for it as for a roll.
  std::optional<std::error_code> done;
  follower->start_again_at(15, [&](std::error_code ec) { done = ec; });
  EXPECT_EQ(follower->log_end_offset(), 9) << "nothing changes before the job ran";
  append_info early;
  EXPECT_EQ(follower->append_replicated(at(make_batch(1), 15, 5), early), errc::roll_in_progress);
  disk_.run_one();
  EXPECT_EQ(follower->log_start_offset(), 15) << "the log changes once its new segment exists";
  EXPECT_FALSE(done.has_value()) << "the old files are not deleted yet";
  EXPECT_TRUE(std::filesystem::exists(follower_dir() / seg_name(0, ".log")));
  disk_.drain();
  ASSERT_TRUE(done.has_value());
  ASSERT_FALSE(*done) << done->message();
  EXPECT_EQ(follower->log_start_offset(), 15);
  EXPECT_EQ(follower->log_end_offset(), 15);
  EXPECT_EQ(follower->high_watermark(), 15);
  EXPECT_EQ(follower->segment_count(), 1u);
  EXPECT_TRUE(follower->leader_epochs().entries().empty());
  EXPECT_EQ(follower->producer_state().producer_count(), 0u);
  EXPECT_EQ(segment_logs_of(follower_dir()),
            (std::map<std::string, bytes>{{seg_name(15, ".log"), {}}}));

  // It takes the leader's batches from there on, and keeps them across a crash.
  replicate(*follower, fetch(*leader, 15));
  EXPECT_EQ(follower->log_end_offset(), 24);
  EXPECT_EQ(follower->leader_epochs().entries(), (entries{{5, 15}}));
  follower.reset();
  // A crash before any checkpoint recorded the new start.
  auto again = open_follower(testing::crash_load(0, 0));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->log_start_offset(), 15);
  EXPECT_EQ(again->log_end_offset(), 24);
  EXPECT_EQ(fetch(*again, 15), fetch(*leader, 15));
}

TEST_F(log_replicated_test, closed_and_offline_logs_take_nothing) {
  testing::fault_injection_fs fs;
  std::error_code ec;
  auto follower = log::open(follower_dir(), {"t", 0}, cfg_, {fs, disk_}, testing::clean_load(), ec);
  ASSERT_FALSE(ec);
  append_info info;
  fs.crash_after(0);
  EXPECT_EQ(follower->append_replicated(at(make_batch(3), 0), info), errc::log_offline);
  EXPECT_TRUE(follower->offline());
  EXPECT_EQ(follower->log_end_offset(), 0);
  EXPECT_EQ(follower->append_replicated(at(make_batch(3), 0), info), errc::log_offline);

  auto other = open_at(dir_ / "other" / "t-0", cfg_);
  other->close();
  EXPECT_EQ(other->append_replicated(at(make_batch(3), 0), info), errc::log_closed);
}

}  // namespace
}  // namespace sluice::storage
