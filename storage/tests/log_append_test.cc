// log::append beyond framing: per-log config (max.message.bytes, message.timestamp.type,
// segment.ms) and idempotent producers, including their state across close, crash and truncation.

#include "storage/log.h"
#include "storage/tests/test_util.h"

namespace sluice::storage {
namespace {

using testing::batch_summary;
using testing::batches_in;
using testing::file_bytes;
using testing::make_batch;
using testing::make_producer_batch;
using testing::seg_name;
using testing::slurp;
using testing::write_bytes;

class log_append_test : public testing::temp_dir_test {
 protected:
  std::filesystem::path part() { return dir_ / "t-0"; }

  std::unique_ptr<log> open_log(log_config cfg = {}, bool recover = false) {
    std::error_code ec;
    auto l = open_log_at(part(), {"t", 0}, cfg,
                         recover ? testing::crash_load() : testing::clean_load(), ec);
    EXPECT_FALSE(ec) << ec.message();
    return l;
  }

  std::error_code try_append(log& l, std::vector<uint8_t> batch, append_info& info,
                             int64_t now_ms = 10'000) {
    return testing::append_through_roll(l, disk_, batch, 0, info, now_ms);
  }

  append_info append(log& l, std::vector<uint8_t> batch, int64_t now_ms = 10'000) {
    append_info info;
    std::error_code ec = testing::append_through_roll(l, disk_, batch, 0, info, now_ms);
    EXPECT_FALSE(ec) << ec.message();
    return info;
  }

  size_t events_containing(std::string_view needle) {
    size_t n = 0;
    for (const std::string& e : events_)
      n += e.find(needle) != std::string::npos;
    return n;
  }
};

TEST_F(log_append_test, config_defaults_are_kafkas) {
  log_config cfg;
  EXPECT_EQ(cfg.segment_bytes, 1073741824);
  EXPECT_EQ(cfg.segment_ms, 604800000);
  EXPECT_EQ(cfg.retention_ms, 604800000);
  EXPECT_EQ(cfg.retention_bytes, -1);
  EXPECT_EQ(cfg.max_message_bytes, 1048588);
  EXPECT_EQ(cfg.message_timestamp_type, timestamp_type::create_time);
  EXPECT_EQ(cfg.index_interval_bytes, 4096);
}

TEST_F(log_append_test, batch_over_max_message_bytes_is_rejected_and_nothing_written) {
  std::vector<uint8_t> small = make_batch(1);
  std::vector<uint8_t> big = make_batch(5, 1000, 100);
  auto l = open_log({.max_message_bytes = static_cast<int32_t>(small.size())});
  append_info info;
  // The limit is per batch: a request of two batches at the limit each is fine.
  std::vector<uint8_t> two = small;
  two.insert(two.end(), small.begin(), small.end());
  EXPECT_FALSE(try_append(*l, two, info));
  EXPECT_EQ(info.batch_count, 2);

  std::vector<uint8_t> small_then_big = small;
  small_then_big.insert(small_then_big.end(), big.begin(), big.end());
  EXPECT_EQ(try_append(*l, small_then_big, info), errc::record_too_large);
  EXPECT_EQ(l->log_end_offset(), 2);
  EXPECT_EQ(l->size_bytes(), static_cast<int64_t>(two.size()));

  // Raised through set_config, from the next append on.
  log_config cfg = l->config();
  cfg.max_message_bytes = static_cast<int32_t>(big.size());
  l->set_config(cfg);
  EXPECT_FALSE(try_append(*l, big, info));
}

TEST_F(log_append_test, log_append_time_stamps_max_timestamp_and_recomputes_the_crc) {
  auto l = open_log({.message_timestamp_type = timestamp_type::log_append_time});
  std::vector<uint8_t> batch = make_batch(3, 1000, 10, 5);
  wire::record_batch before(batch);
  const int64_t base_ts = before.base_timestamp();
  const uint32_t crc_before = before.crc();

  append_info info;
  ASSERT_FALSE(l->append(batch, 0, info, /*now_ms=*/77'000));
  EXPECT_EQ(info.log_append_time, 77'000);
  EXPECT_EQ(info.max_timestamp, 77'000);
  EXPECT_EQ(info.log_start_offset, 0);

  wire::record_batch after(batch);
  EXPECT_TRUE(after.is_log_append_time());
  EXPECT_EQ(after.max_timestamp(), 77'000);
  EXPECT_EQ(after.base_timestamp(), base_ts);  // records keep their deltas, as in Kafka
  EXPECT_NE(after.crc(), crc_before);
  EXPECT_EQ(after.validate(), wire::batch_error::ok);

  // On disk exactly as stamped, and the log answers timestamp queries with the append time.
  std::vector<uint8_t> on_disk = file_bytes(part() / seg_name(0, ".log"));
  EXPECT_EQ(on_disk, batch);
  EXPECT_EQ(wire::record_batch(on_disk).validate(), wire::batch_error::ok);
  EXPECT_EQ(l->offset_for_timestamp(76'000), 0);
  EXPECT_EQ(l->max_timestamp_and_offset(), std::make_pair(int64_t{77'000}, int64_t{0}));
}

TEST_F(log_append_test, create_time_reports_no_append_time_and_clears_a_client_set_bit) {
  auto l = open_log();
  append_info info = append(*l, make_batch(2, 500));
  EXPECT_EQ(info.log_append_time, -1);
  EXPECT_EQ(info.max_timestamp, 501);

  std::vector<uint8_t> claims_append_time = make_batch(2, 600);
  wire::mutable_record_batch(claims_append_time).set_max_timestamp_and_log_append_time(601);
  ASSERT_FALSE(l->append(claims_append_time, 0, info));
  wire::record_batch stored(claims_append_time);
  EXPECT_FALSE(stored.is_log_append_time());
  EXPECT_EQ(stored.max_timestamp(), 601);
  EXPECT_EQ(stored.validate(), wire::batch_error::ok);
}

TEST_F(log_append_test, segment_ms_rolls_by_the_data_timestamps) {
  auto l = open_log({.segment_ms = 100});
  append(*l, make_batch(1, 1000));  // the segment's rolling base: 1000
  append(*l, make_batch(1, 1100));  // waited exactly segment_ms: not yet
  EXPECT_EQ(l->segment_count(), 1u);
  append(*l, make_batch(1, 1101));
  ASSERT_EQ(l->segment_count(), 2u);
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(2, ".log")));
  // The new segment measures from its own first append.
  append(*l, make_batch(1, 1150));
  EXPECT_EQ(l->segment_count(), 2u);
  append(*l, make_batch(1, 1202));
  EXPECT_EQ(l->segment_count(), 3u);
  // The wall clock plays no part while the batches carry timestamps.
  append(*l, make_batch(1, 1203), /*now_ms=*/1'000'000'000);
  EXPECT_EQ(l->segment_count(), 3u);
}

TEST_F(log_append_test, segment_ms_without_timestamps_measures_from_segment_creation) {
  auto l = open_log({.segment_ms = 10'000});
  auto untimed = [] { return make_batch(1, /*first_ts=*/-1, 10, /*ts_step=*/0); };
  // The log was opened, and its segment created, at or before `opened`.
  const int64_t opened = wall_clock_ms();
  append(*l, untimed(), opened);
  append(*l, untimed(), opened + 5'000);
  EXPECT_EQ(l->segment_count(), 1u);
  append(*l, untimed(), opened + 10'001);
  ASSERT_EQ(l->segment_count(), 2u);
  // Rolled at opened + 10'001: the new segment's clock starts there.
  append(*l, untimed(), opened + 20'001);
  EXPECT_EQ(l->segment_count(), 2u);
  append(*l, untimed(), opened + 20'002);
  EXPECT_EQ(l->segment_count(), 3u);
}

TEST_F(log_append_test, segment_ms_roll_survives_reopen) {
  {
    auto l = open_log({.segment_ms = 100});
    append(*l, make_batch(1, 1000));
    l->close();
  }
  // The rolling base comes back from the first batch header of the active segment.
  auto l = open_log({.segment_ms = 100});
  append(*l, make_batch(1, 1050));
  EXPECT_EQ(l->segment_count(), 1u);
  append(*l, make_batch(1, 1101));
  EXPECT_EQ(l->segment_count(), 2u);
}

TEST_F(log_append_test, duplicate_returns_the_original_offsets_and_writes_nothing) {
  auto l = open_log();
  append(*l, make_batch(2));                                        // 0-1, no producer
  append_info first = append(*l, make_producer_batch(7, 0, 0, 3));  // 2-4
  append(*l, make_batch(1));                                        // 5
  const int64_t size = l->size_bytes();

  append_info retry;
  ASSERT_FALSE(try_append(*l, make_producer_batch(7, 0, 0, 3), retry));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.base_offset, 2);
  EXPECT_EQ(retry.last_offset, 4);
  EXPECT_EQ(retry.max_timestamp, first.max_timestamp);
  EXPECT_EQ(retry.batch_count, 0);
  EXPECT_EQ(retry.log_start_offset, 0);
  EXPECT_EQ(l->log_end_offset(), 6);
  EXPECT_EQ(l->size_bytes(), size);

  append_info next = append(*l, make_producer_batch(7, 0, 3, 1));
  EXPECT_FALSE(next.duplicate);
  EXPECT_EQ(next.base_offset, 6);
}

TEST_F(log_append_test, sequence_gap_is_out_of_order_and_writes_nothing) {
  auto l = open_log();
  append(*l, make_producer_batch(7, 0, 0, 2));
  append_info info;
  EXPECT_EQ(try_append(*l, make_producer_batch(7, 0, 3, 1), info), errc::out_of_order_sequence);
  EXPECT_EQ(l->log_end_offset(), 2);
  // A new epoch must restart at sequence 0.
  EXPECT_EQ(try_append(*l, make_producer_batch(7, 1, 2, 1), info), errc::out_of_order_sequence);
  EXPECT_FALSE(try_append(*l, make_producer_batch(7, 1, 0, 1), info));
}

TEST_F(log_append_test, older_epoch_is_fenced) {
  auto l = open_log();
  append(*l, make_producer_batch(7, 3, 0, 1));
  append_info info;
  EXPECT_EQ(try_append(*l, make_producer_batch(7, 2, 1, 1), info), errc::invalid_producer_epoch);
  EXPECT_EQ(l->log_end_offset(), 1);
}

TEST_F(log_append_test, producer_errors_map_to_new_error_codes) {
  auto l = open_log();
  std::vector<uint8_t> txn = wire::build_record_batch(
      {.attributes = wire::batch_attribute::transactional,
       .producer_id = 9,
       .producer_epoch = 0,
       .base_sequence = 0},
      std::vector<wire::record_to_build>{{1000, std::nullopt, std::nullopt}});
  append(*l, txn);
  append_info info;
  EXPECT_EQ(try_append(*l, make_producer_batch(9, 0, 1, 1), info), errc::invalid_txn_state);
  EXPECT_EQ(try_append(*l, make_producer_batch(10, 0, -1, 1), info), errc::invalid_record);
  EXPECT_EQ(make_error_code(errc::invalid_txn_state).message(),
            "non-transactional batch inside an open transaction");
}

TEST_F(log_append_test, roll_writes_a_producer_snapshot_at_the_new_base) {
  std::vector<uint8_t> b = make_producer_batch(7, 0, 0, 2);
  auto l = open_log({.segment_bytes = static_cast<int64_t>(b.size()) + 1});
  append(*l, b);
  append(*l, make_producer_batch(7, 0, 2, 2));
  ASSERT_EQ(l->segment_count(), 2u);
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(2, ".snapshot")));
}

TEST_F(log_append_test, producer_state_survives_close_and_reopen_through_the_snapshot) {
  {
    auto l = open_log();
    append(*l, make_producer_batch(7, 0, 0, 2));
    append(*l, make_producer_batch(7, 0, 2, 2));
    l->close();
  }
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(4, ".snapshot")));
  auto l = open_log();
  ASSERT_NE(l->producer_state().find(7), nullptr);
  EXPECT_EQ(l->producer_state().map_end_offset(), 4);
  append_info retry;
  ASSERT_FALSE(try_append(*l, make_producer_batch(7, 0, 2, 2), retry));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.base_offset, 2);
  append_info info;
  EXPECT_EQ(try_append(*l, make_producer_batch(7, 0, 5, 1), info), errc::out_of_order_sequence);
}

// A log from before producer snapshots, cleanly shut down: Kafka starts the state empty at the log
// end rather than read the whole log at start. After a crash the log is replayed instead.
TEST_F(log_append_test, clean_log_without_any_snapshot_is_not_replayed) {
  {
    auto l = open_log();
    append(*l, make_producer_batch(7, 0, 0, 2));
    l->close();
  }
  std::filesystem::remove(part() / seg_name(2, ".snapshot"));
  {
    auto l = open_log();
    EXPECT_EQ(l->producer_state().find(7), nullptr);
    EXPECT_EQ(l->producer_state().map_end_offset(), 2);
    l->close();
  }
  std::filesystem::remove(part() / seg_name(2, ".snapshot"));
  auto l = open_log({}, /*recover=*/true);
  EXPECT_NE(l->producer_state().find(7), nullptr);
}

TEST_F(log_append_test, producer_state_after_a_crash_is_replayed_from_the_log) {
  std::vector<uint8_t> b = make_producer_batch(7, 0, 0, 2);
  log_config cfg{.segment_bytes = static_cast<int64_t>(b.size()) * 2};
  {
    auto l = open_log(cfg);
    append(*l, b);                                // 0-1
    append(*l, make_producer_batch(8, 0, 0, 1));  // 2
    append(*l, make_producer_batch(7, 0, 2, 2));  // 3-4: rolls, snapshot at 3
    append(*l, make_producer_batch(7, 0, 4, 2));  // 5-6
    ASSERT_EQ(l->segment_count(), 2u);
    // No close(): no snapshot at the log end.
  }
  EXPECT_TRUE(std::filesystem::exists(part() / seg_name(3, ".snapshot")));
  EXPECT_FALSE(std::filesystem::exists(part() / seg_name(7, ".snapshot")));
  auto l = open_log(cfg, /*recover=*/true);
  EXPECT_EQ(l->producer_state().map_end_offset(), 7);
  append_info retry;
  ASSERT_FALSE(try_append(*l, make_producer_batch(7, 0, 4, 2), retry));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.base_offset, 5);
  // Producer 8 came from the snapshot.
  ASSERT_FALSE(try_append(*l, make_producer_batch(8, 0, 0, 1), retry));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.base_offset, 2);
}

TEST_F(log_append_test, corrupt_snapshot_is_discarded_with_a_log_line_and_the_log_replayed) {
  {
    auto l = open_log();
    append(*l, make_producer_batch(7, 0, 0, 2));
    l->close();
  }
  std::filesystem::path snapshot = part() / seg_name(2, ".snapshot");
  std::vector<uint8_t> bytes = file_bytes(snapshot);
  ASSERT_FALSE(bytes.empty());
  bytes.back() ^= 0xff;
  write_bytes(snapshot, bytes);

  auto l = open_log();
  EXPECT_EQ(events_containing("deleted producer snapshot " + seg_name(2, ".snapshot")), 1u);
  append_info retry;
  ASSERT_FALSE(try_append(*l, make_producer_batch(7, 0, 0, 2), retry));
  EXPECT_TRUE(retry.duplicate);
}

TEST_F(log_append_test, truncation_rewinds_producer_state) {
  auto l = open_log();
  append(*l, make_producer_batch(7, 0, 0, 2));  // 0-1
  append(*l, make_producer_batch(7, 0, 2, 2));  // 2-3
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 2));
  EXPECT_EQ(l->producer_state().map_end_offset(), 2);
  ASSERT_NE(l->producer_state().find(7), nullptr);
  EXPECT_EQ(l->producer_state().find(7)->last_sequence(), 1);
  // The batch that was cut off is written again rather than answered as a duplicate.
  append_info info = append(*l, make_producer_batch(7, 0, 2, 2));
  EXPECT_FALSE(info.duplicate);
  EXPECT_EQ(info.base_offset, 2);

  // Truncating below the log start forgets every producer.
  ASSERT_FALSE(testing::truncate_through(*l, disk_, 0));
  EXPECT_EQ(l->producer_state().producer_count(), 0u);
}

TEST_F(log_append_test, idle_producers_expire) {
  auto l = open_log({.producer_id_expiration_ms = 1000});
  append(*l, make_producer_batch(7, 0, 0, 1, /*first_ts=*/5000));
  l->remove_expired_producers(5999);
  EXPECT_NE(l->producer_state().find(7), nullptr);
  l->remove_expired_producers(6000);
  EXPECT_EQ(l->producer_state().find(7), nullptr);
}

}  // namespace
}  // namespace sluice::storage
