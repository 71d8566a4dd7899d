#include "storage/producer_state.h"

#include <climits>

#include "storage/tests/test_util.h"
#include "wire/crc32c.h"

namespace sluice::storage {
namespace {

using testing::commit_marker;
using testing::file_bytes;
using testing::write_bytes;

producer_batch idempotent(int64_t producer_id, int16_t epoch, int32_t base_sequence,
                          int32_t records, int64_t max_timestamp = 1000) {
  producer_batch b;
  b.producer_id = producer_id;
  b.producer_epoch = epoch;
  b.base_sequence = base_sequence;
  b.last_offset_delta = records - 1;
  b.max_timestamp = max_timestamp;
  return b;
}

producer_batch transactional(int64_t producer_id, int16_t epoch, int32_t base_sequence,
                             int32_t records) {
  producer_batch b = idempotent(producer_id, epoch, base_sequence, records);
  b.is_transactional = true;
  return b;
}

append_verdict verdict_of(const producer_state_manager& m, const producer_batch& b) {
  return m.check(std::span(&b, 1)).verdict;
}

// The log's side of the contract: check, "write" at the log end, update.
class producer_state_test : public testing::temp_dir_test {
 protected:
  append_check append(const producer_batch& b) {
    append_check c = state().check(std::span(&b, 1));
    if (c.verdict == append_verdict::accept) {
      state().update(b, log_end_);
      log_end_ += b.last_offset_delta + 1;
    }
    return c;
  }

  producer_state_manager& state() {
    if (!state_) state_.emplace(default_file_system(), dir_);
    return *state_;
  }

  std::optional<producer_state_manager> state_;
  int64_t log_end_ = 0;
};

TEST(producer_sequence, wraps_at_int32_max) {
  EXPECT_EQ(increment_sequence(5, 3), 8);
  EXPECT_EQ(increment_sequence(INT32_MAX, 1), 0);
  EXPECT_EQ(increment_sequence(INT32_MAX - 1, 4), 2);
  EXPECT_EQ(decrement_sequence(8, 3), 5);
  EXPECT_EQ(decrement_sequence(0, 1), INT32_MAX);
  EXPECT_EQ(decrement_sequence(2, 4), INT32_MAX - 1);
  EXPECT_EQ(idempotent(1, 0, INT32_MAX - 1, 4).last_sequence(), 1);  // MAX-1, MAX, 0, 1
  EXPECT_EQ(idempotent(1, 0, 10, 1).last_sequence(), 10);
}

TEST_F(producer_state_test, batches_without_producer_id_bypass_the_state) {
  producer_batch plain = idempotent(no_producer_id, no_producer_epoch, no_sequence, 3);
  EXPECT_EQ(append(plain).verdict, append_verdict::accept);
  EXPECT_EQ(append(plain).verdict, append_verdict::accept);
  EXPECT_EQ(state().producer_count(), 0u);
  EXPECT_EQ(state().map_end_offset(), 6);
}

TEST_F(producer_state_test, unknown_producer_is_accepted_at_any_sequence) {
  // KIP-360 (Kafka 2.5+): no UNKNOWN_PRODUCER_ID, whatever the first sequence.
  EXPECT_EQ(append(idempotent(7, 0, 0, 2)).verdict, append_verdict::accept);
  EXPECT_EQ(append(idempotent(8, 3, 1234, 2)).verdict, append_verdict::accept);
  const producer_state_entry* e = state().find(8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->epoch, 3);
  EXPECT_EQ(e->last_sequence(), 1235);
  EXPECT_EQ(e->last_offset(), 3);
}

TEST_F(producer_state_test, in_sequence_accepted_and_gaps_rejected) {
  ASSERT_EQ(append(idempotent(1, 0, 0, 3)).verdict, append_verdict::accept);  // seq 0..2
  EXPECT_EQ(verdict_of(state(), idempotent(1, 0, 4, 1)), append_verdict::out_of_order_sequence);
  EXPECT_EQ(verdict_of(state(), idempotent(1, 0, 2, 1)), append_verdict::out_of_order_sequence);
  // Overlapping the last batch without matching its range exactly is no duplicate.
  EXPECT_EQ(verdict_of(state(), idempotent(1, 0, 0, 2)), append_verdict::out_of_order_sequence);
  EXPECT_EQ(append(idempotent(1, 0, 3, 1)).verdict, append_verdict::accept);
  EXPECT_EQ(state().find(1)->last_sequence(), 3);
}

TEST_F(producer_state_test, retries_of_the_last_five_batches_are_duplicates_with_original_offsets) {
  log_end_ = 100;
  std::vector<producer_batch> sent;
  for (int i = 0; i < 6; ++i) {
    sent.push_back(idempotent(42, 2, i * 10, 10, 5000 + i));
    ASSERT_EQ(append(sent.back()).verdict, append_verdict::accept);
  }
  EXPECT_EQ(state().find(42)->batches.size(), producer_batches_retained);
  for (int i = 1; i < 6; ++i) {
    append_check c = state().check(std::span(&sent[i], 1));
    ASSERT_EQ(c.verdict, append_verdict::duplicate) << "batch " << i;
    EXPECT_EQ(c.original.first_offset, 100 + i * 10);
    EXPECT_EQ(c.original.last_offset, 100 + i * 10 + 9);
    EXPECT_EQ(c.original.first_sequence, i * 10);
    EXPECT_EQ(c.original.last_sequence, i * 10 + 9);
    EXPECT_EQ(c.original.max_timestamp, 5000 + i);
  }
  // The sixth-oldest has been forgotten: its retry is out of order, not a duplicate.
  EXPECT_EQ(verdict_of(state(), sent[0]), append_verdict::out_of_order_sequence);
  // A duplicate changes nothing.
  EXPECT_EQ(append(sent[3]).verdict, append_verdict::duplicate);
  EXPECT_EQ(log_end_, 160);
  EXPECT_EQ(state().find(42)->last_sequence(), 59);
}

TEST_F(producer_state_test, epoch_bump_must_restart_at_sequence_zero) {
  ASSERT_EQ(append(idempotent(1, 4, 0, 5)).verdict, append_verdict::accept);
  EXPECT_EQ(verdict_of(state(), idempotent(1, 5, 5, 1)), append_verdict::out_of_order_sequence);
  EXPECT_EQ(verdict_of(state(), idempotent(1, 5, 1, 1)), append_verdict::out_of_order_sequence);
  ASSERT_EQ(append(idempotent(1, 5, 0, 2)).verdict, append_verdict::accept);
  const producer_state_entry* e = state().find(1);
  EXPECT_EQ(e->epoch, 5);
  ASSERT_EQ(e->batches.size(), 1u);  // the old epoch's batches are gone
  EXPECT_EQ(e->batches[0].first_offset, 5);
}

TEST_F(producer_state_test, older_epoch_is_fenced) {
  producer_batch old_epoch = idempotent(1, 4, 0, 5);
  ASSERT_EQ(append(old_epoch).verdict, append_verdict::accept);
  ASSERT_EQ(append(idempotent(1, 5, 0, 1)).verdict, append_verdict::accept);
  EXPECT_EQ(verdict_of(state(), idempotent(1, 4, 5, 1)), append_verdict::invalid_producer_epoch);
  // Even the exact retry of an old-epoch batch: duplicates only count within the current epoch.
  EXPECT_EQ(verdict_of(state(), old_epoch), append_verdict::invalid_producer_epoch);
}

TEST_F(producer_state_test, sequence_wraps_from_int32_max_to_zero) {
  ASSERT_EQ(append(idempotent(9, 0, INT32_MAX - 2, 3)).verdict, append_verdict::accept);
  EXPECT_EQ(state().find(9)->last_sequence(), INT32_MAX);
  EXPECT_EQ(verdict_of(state(), idempotent(9, 0, 1, 1)), append_verdict::out_of_order_sequence);
  ASSERT_EQ(append(idempotent(9, 0, 0, 2)).verdict, append_verdict::accept);
  // A batch that itself spans the wrap, and its retry.
  producer_batch spanning = idempotent(10, 0, INT32_MAX - 1, 4);
  ASSERT_EQ(append(spanning).verdict, append_verdict::accept);
  EXPECT_EQ(state().find(10)->last_sequence(), 1);
  append_check dup = state().check(std::span(&spanning, 1));
  ASSERT_EQ(dup.verdict, append_verdict::duplicate);
  EXPECT_EQ(dup.original.first_sequence, INT32_MAX - 1);
  EXPECT_EQ(append(idempotent(10, 0, 2, 1)).verdict, append_verdict::accept);
}

TEST_F(producer_state_test, control_batches_and_negative_sequences_from_clients_are_invalid) {
  producer_batch control = idempotent(1, 0, 0, 1);
  control.is_control = true;
  EXPECT_EQ(verdict_of(state(), control), append_verdict::invalid_record);
  EXPECT_EQ(verdict_of(state(), idempotent(1, 0, -1, 1)), append_verdict::invalid_record);
}

TEST_F(producer_state_test, several_batches_are_checked_as_if_each_earlier_one_was_written) {
  ASSERT_EQ(append(idempotent(1, 0, 0, 2)).verdict, append_verdict::accept);
  std::vector<producer_batch> request = {idempotent(1, 0, 2, 3), idempotent(2, 0, 0, 1),
                                         idempotent(1, 0, 5, 1)};
  EXPECT_EQ(state().check(request).verdict, append_verdict::accept);

  request[2] = idempotent(1, 0, 6, 1);  // gap after the first batch of the request
  append_check gap = state().check(request);
  EXPECT_EQ(gap.verdict, append_verdict::out_of_order_sequence);
  EXPECT_EQ(gap.batch_index, 2u);

  request[2] = idempotent(1, 0, 0, 2);  // retry of a written batch makes the append a duplicate
  append_check dup = state().check(request);
  EXPECT_EQ(dup.verdict, append_verdict::duplicate);
  EXPECT_EQ(dup.batch_index, 2u);
  EXPECT_EQ(dup.original.last_offset, 1);

  // An epoch bump inside the request fences the rest of the request's older-epoch batches.
  std::vector<producer_batch> bump = {idempotent(1, 1, 0, 1), idempotent(1, 0, 2, 1)};
  append_check fenced = state().check(bump);
  EXPECT_EQ(fenced.verdict, append_verdict::invalid_producer_epoch);
  EXPECT_EQ(fenced.batch_index, 1u);

  // Checking wrote nothing; updating batch by batch gives the state the check assumed.
  EXPECT_EQ(state().find(1)->last_sequence(), 1);
  request[2] = idempotent(1, 0, 5, 1);
  for (const producer_batch& b : request) {
    state().update(b, log_end_);
    log_end_ += b.last_offset_delta + 1;
  }
  EXPECT_EQ(state().find(1)->last_sequence(), 5);
  EXPECT_EQ(state().find(1)->batches.size(), 3u);
  EXPECT_EQ(state().find(2)->last_offset(), 5);
  EXPECT_EQ(state().map_end_offset(), 7);
}

TEST_F(producer_state_test, open_transaction_rejects_non_transactional_batches) {
  ASSERT_EQ(append(transactional(3, 0, 0, 2)).verdict, append_verdict::accept);
  EXPECT_EQ(state().find(3)->current_txn_first_offset, 0);
  EXPECT_EQ(verdict_of(state(), idempotent(3, 0, 2, 1)), append_verdict::invalid_txn_state);
  ASSERT_EQ(append(transactional(3, 0, 2, 1)).verdict, append_verdict::accept);
  EXPECT_EQ(state().find(3)->current_txn_first_offset, 0);  // still the transaction's start
  std::vector<producer_batch> mixed = {transactional(4, 0, 0, 1), idempotent(4, 0, 1, 1)};
  EXPECT_EQ(state().check(mixed).verdict, append_verdict::invalid_txn_state);
}

// Whole batches as they sit in a .log, for apply().
std::vector<uint8_t> data_batch(int64_t base_offset, int64_t producer_id, int16_t epoch,
                                int32_t base_sequence, int records, int64_t first_ts,
                                bool is_transactional = false) {
  std::vector<wire::record_to_build> rs;
  static const uint8_t value[] = {'v'};
  for (int i = 0; i < records; ++i)
    rs.push_back({first_ts + i, std::nullopt, std::span(value)});
  wire::batch_build_options o;
  o.base_offset = base_offset;
  o.producer_id = producer_id;
  o.producer_epoch = epoch;
  o.base_sequence = base_sequence;
  if (is_transactional) o.attributes = wire::batch_attribute::transactional;
  return wire::build_record_batch(o, rs);
}

TEST_F(producer_state_test, apply_rebuilds_state_from_log_batches_without_validation) {
  auto b1 = data_batch(0, 5, 0, 0, 3, 100, /*is_transactional=*/true);
  auto b2 = data_batch(3, 5, 0, 3, 2, 200, /*is_transactional=*/true);
  auto gap = data_batch(5, 6, 1, 77, 1, 300);  // not validated: recovery trusts the log
  auto plain = data_batch(6, no_producer_id, no_producer_epoch, no_sequence, 4, 400);
  auto marker = commit_marker(10, 5, 0, 7, 500);
  for (const auto* bytes : {&b1, &b2, &gap, &plain, &marker}) {
    state().apply(wire::record_batch(*bytes));
  }
  EXPECT_EQ(state().map_end_offset(), 11);
  const producer_state_entry* e = state().find(5);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->batches.size(), 2u);
  EXPECT_EQ(e->last_sequence(), 4);
  EXPECT_EQ(e->last_offset(), 4);
  EXPECT_EQ(e->coordinator_epoch, 7);
  EXPECT_EQ(e->current_txn_first_offset, -1);  // committed
  EXPECT_EQ(e->last_timestamp, 500);
  EXPECT_EQ(state().find(6)->last_sequence(), 77);
  EXPECT_EQ(state().producer_count(), 2u);
  // A retry of b2 is still recognised after the marker.
  producer_batch retry = producer_batch::from(wire::record_batch(b2));
  EXPECT_EQ(state().check(std::span(&retry, 1)).original.first_offset, 3);
}

TEST_F(producer_state_test, marker_with_bumped_epoch_drops_old_batches) {
  state().apply(wire::record_batch(data_batch(0, 5, 0, 0, 2, 100, true)));
  auto marker = commit_marker(2, 5, 1, 3, 150);
  state().apply(wire::record_batch(marker));
  const producer_state_entry* e = state().find(5);
  EXPECT_EQ(e->epoch, 1);
  EXPECT_TRUE(e->batches.empty());
  // Known epoch, no batch: the next batch must start at 0.
  EXPECT_EQ(verdict_of(state(), idempotent(5, 1, 2, 1)), append_verdict::out_of_order_sequence);
  EXPECT_EQ(verdict_of(state(), idempotent(5, 1, 0, 1)), append_verdict::accept);
}

// The bytes Kafka's ProducerStateManager.writeSnapshot produces, built field by field.
struct be_buffer {
  std::vector<uint8_t> bytes;
  be_buffer& put(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
};

TEST_F(producer_state_test, snapshot_is_byte_exact_kafka_format) {
  log_end_ = 1000;
  ASSERT_EQ(append(idempotent(77, 3, 10, 5, 1'700'000'000'123)).verdict, append_verdict::accept);
  ASSERT_EQ(append(transactional(12, 0, 0, 2)).verdict, append_verdict::accept);
  ASSERT_FALSE(state().take_snapshot());
  EXPECT_EQ(state().map_end_offset(), 1007);

  be_buffer b;
  b.put(1, 2).put(0, 4).put(2, 4);  // version, crc placeholder, two entries sorted by producer id
  b.put(12, 8)
      .put(0, 2)
      .put(1, 4)
      .put(1006, 8)
      .put(1, 4)
      .put(1000, 8)
      .put(0xffffffff, 4)
      .put(1005, 8);
  b.put(77, 8)
      .put(3, 2)
      .put(14, 4)
      .put(1004, 8)
      .put(4, 4)
      .put(1'700'000'000'123, 8)
      .put(0xffffffff, 4)
      .put(0xffffffffffffffff, 8);
  uint32_t crc = wire::crc32c(0, std::span(b.bytes).subspan(6));
  for (int i = 0; i < 4; ++i)
    b.bytes[2 + i] = static_cast<uint8_t>(crc >> (8 * (3 - i)));

  EXPECT_EQ(producer_snapshot_file_name(1007), "00000000000000001007.snapshot");
  EXPECT_EQ(file_bytes(dir_ / "00000000000000001007.snapshot"), b.bytes);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "00000000000000001007.snapshot.tmp"));

  std::vector<producer_snapshot_entry> parsed;
  ASSERT_EQ(parse_producer_snapshot(b.bytes, parsed), snapshot_defect::none);
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[1], (producer_snapshot_entry{77, 3, 14, 1004, 4, 1'700'000'000'123, -1, -1}));
  std::string again = format_producer_snapshot(parsed);
  EXPECT_EQ(std::vector<uint8_t>(again.begin(), again.end()), b.bytes);
}

TEST_F(producer_state_test, empty_snapshot_and_unchanged_state) {
  log_end_ = 5;
  state().update(idempotent(no_producer_id, -1, -1, 5), 0);
  ASSERT_FALSE(state().take_snapshot());
  be_buffer b;
  b.put(1, 2).put(wire::crc32c(0, std::vector<uint8_t>{0, 0, 0, 0}), 4).put(0, 4);
  EXPECT_EQ(file_bytes(dir_ / producer_snapshot_file_name(5)), b.bytes);
  // Nothing new since: no second file, and the existing one is not rewritten.
  std::filesystem::remove(dir_ / producer_snapshot_file_name(5));
  ASSERT_FALSE(state().take_snapshot());
  EXPECT_FALSE(std::filesystem::exists(dir_ / producer_snapshot_file_name(5)));
}

TEST_F(producer_state_test, snapshot_round_trip_keeps_the_last_batch_of_each_producer) {
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(append(idempotent(1, 2, i * 4, 4, 900 + i)).verdict, append_verdict::accept);
  ASSERT_EQ(append(transactional(2, 0, 0, 1)).verdict, append_verdict::accept);
  ASSERT_FALSE(state().take_snapshot());

  producer_state_manager reloaded(default_file_system(), dir_);
  snapshot_reload_report report;
  ASSERT_FALSE(reloaded.truncate_and_reload(0, log_end_, 1000, report));
  EXPECT_EQ(report.loaded_offset, 13);
  EXPECT_TRUE(report.discarded.empty());
  EXPECT_EQ(reloaded.map_end_offset(), 13);
  ASSERT_EQ(reloaded.producer_count(), 2u);
  const producer_state_entry* e = reloaded.find(1);
  EXPECT_EQ(e->epoch, 2);
  ASSERT_EQ(e->batches.size(), 1u);
  EXPECT_EQ(e->batches[0], (producer_batch_metadata{8, 11, 8, 11, 902}));
  EXPECT_EQ(e->last_timestamp, 902);
  EXPECT_EQ(reloaded.find(2)->current_txn_first_offset, 12);

  // Only the newest batch survives a reload (as in Kafka).
  EXPECT_EQ(verdict_of(reloaded, idempotent(1, 2, 8, 4)), append_verdict::duplicate);
  EXPECT_EQ(verdict_of(reloaded, idempotent(1, 2, 4, 4)), append_verdict::out_of_order_sequence);
  EXPECT_EQ(verdict_of(reloaded, idempotent(1, 2, 12, 1)), append_verdict::accept);
}

TEST_F(producer_state_test, corrupt_snapshots_are_reported_deleted_and_skipped) {
  ASSERT_EQ(append(idempotent(1, 0, 0, 1)).verdict, append_verdict::accept);
  ASSERT_FALSE(state().take_snapshot());  // at 1
  ASSERT_EQ(append(idempotent(1, 0, 1, 1)).verdict, append_verdict::accept);
  ASSERT_FALSE(state().take_snapshot());  // at 2
  ASSERT_EQ(append(idempotent(1, 0, 2, 1)).verdict, append_verdict::accept);
  ASSERT_FALSE(state().take_snapshot());  // at 3

  auto newest = dir_ / producer_snapshot_file_name(3);
  std::vector<uint8_t> bytes = file_bytes(newest);
  bytes[20] ^= 0x01;  // inside the first entry
  write_bytes(newest, bytes);
  auto middle = dir_ / producer_snapshot_file_name(2);
  bytes = file_bytes(middle);
  bytes[1] = 2;  // version 2
  write_bytes(middle, bytes);

  producer_state_manager reloaded(default_file_system(), dir_);
  snapshot_reload_report report;
  ASSERT_FALSE(reloaded.truncate_and_reload(0, 3, 1000, report));
  ASSERT_EQ(report.discarded.size(), 2u);
  EXPECT_EQ(report.discarded[0].offset, 3);
  EXPECT_EQ(report.discarded[0].defect, snapshot_defect::crc_mismatch);
  EXPECT_EQ(report.discarded[1].offset, 2);
  EXPECT_EQ(report.discarded[1].defect, snapshot_defect::unknown_version);
  EXPECT_EQ(report.loaded_offset, 1);
  EXPECT_EQ(reloaded.map_end_offset(), 1);
  EXPECT_EQ(reloaded.find(1)->last_sequence(), 0);
  std::vector<int64_t> left;
  ASSERT_FALSE(reloaded.snapshot_offsets(left));
  EXPECT_EQ(left, std::vector<int64_t>{1});
}

TEST(producer_snapshot, malformed_files_are_rejected) {
  std::vector<producer_snapshot_entry> out;
  producer_snapshot_entry e{5, 1, 9, 40, 2, 77, -1, -1};
  std::string good = format_producer_snapshot(std::span(&e, 1));
  auto as_bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  ASSERT_EQ(parse_producer_snapshot(as_bytes(good), out), snapshot_defect::none);
  EXPECT_EQ(out, std::vector<producer_snapshot_entry>{e});

  EXPECT_EQ(parse_producer_snapshot({}, out), snapshot_defect::malformed);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(parse_producer_snapshot(as_bytes(good.substr(0, 9)), out), snapshot_defect::malformed);

  // Structural damage under a valid CRC: a wrong count, a torn entry, trailing bytes.
  auto with_valid_crc = [](std::vector<uint8_t> b) {
    uint32_t crc = wire::crc32c(0, std::span(b).subspan(6));
    for (int i = 0; i < 4; ++i)
      b[2 + i] = static_cast<uint8_t>(crc >> (8 * (3 - i)));
    return b;
  };
  std::vector<uint8_t> two_announced = as_bytes(good);
  two_announced[9] = 2;
  EXPECT_EQ(parse_producer_snapshot(with_valid_crc(two_announced), out),
            snapshot_defect::malformed);
  std::vector<uint8_t> negative = as_bytes(good);
  negative[6] = 0xff;
  EXPECT_EQ(parse_producer_snapshot(with_valid_crc(negative), out), snapshot_defect::malformed);
  std::vector<uint8_t> torn = as_bytes(good);
  torn.pop_back();
  EXPECT_EQ(parse_producer_snapshot(with_valid_crc(torn), out), snapshot_defect::malformed);
  std::vector<uint8_t> trailing = as_bytes(good);
  trailing.push_back(0);
  EXPECT_EQ(parse_producer_snapshot(with_valid_crc(trailing), out), snapshot_defect::malformed);
  // And a torn entry with the stored CRC is a CRC mismatch.
  torn = as_bytes(good);
  torn.pop_back();
  EXPECT_EQ(parse_producer_snapshot(torn, out), snapshot_defect::crc_mismatch);
}

TEST_F(producer_state_test, truncation_removes_later_snapshots_and_reloads) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(append(idempotent(1, 0, i * 10, 10)).verdict, append_verdict::accept);
    ASSERT_FALSE(state().take_snapshot());  // at 10, 20, 30
  }
  // The log was cut back to 25: the snapshot at 30 describes data that is gone.
  snapshot_reload_report report;
  ASSERT_FALSE(state().truncate_and_reload(0, 25, 1000, report));
  EXPECT_EQ(report.loaded_offset, 20);
  EXPECT_EQ(state().map_end_offset(), 20);
  EXPECT_EQ(state().find(1)->last_sequence(), 19);
  std::vector<int64_t> offsets;
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_EQ(offsets, (std::vector<int64_t>{10, 20}));
  // The caller replays [20, 25) from the log, then the state goes on from there.
  state().update(idempotent(1, 0, 20, 5), 20);
  log_end_ = 25;
  EXPECT_EQ(append(idempotent(1, 0, 25, 1)).verdict, append_verdict::accept);
  // A later snapshot at a new offset is written again.
  ASSERT_FALSE(state().take_snapshot());
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_EQ(offsets, (std::vector<int64_t>{10, 20, 26}));

  ASSERT_FALSE(state().delete_snapshots_after(15));
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_EQ(offsets, std::vector<int64_t>{10});
  ASSERT_FALSE(state().take_snapshot());  // the state at 26 is no longer on disk
  EXPECT_TRUE(std::filesystem::exists(dir_ / producer_snapshot_file_name(26)));
}

TEST_F(producer_state_test, truncation_below_every_snapshot_restarts_empty_at_log_start) {
  ASSERT_EQ(append(idempotent(1, 0, 0, 10)).verdict, append_verdict::accept);
  ASSERT_FALSE(state().take_snapshot());
  snapshot_reload_report report;
  ASSERT_FALSE(state().truncate_and_reload(0, 4, 1000, report));
  EXPECT_FALSE(report.loaded_offset);
  EXPECT_EQ(state().map_end_offset(), 0);
  EXPECT_EQ(state().producer_count(), 0u);
}

TEST_F(producer_state_test, log_start_moving_deletes_snapshots_at_or_below_it_and_keeps_state) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(append(idempotent(1, 0, i * 10, 10)).verdict, append_verdict::accept);
    ASSERT_FALSE(state().take_snapshot());
  }
  snapshot_reload_report report;
  ASSERT_FALSE(state().truncate_and_reload(20, 30, 1000, report));
  EXPECT_FALSE(report.loaded_offset);  // the state already ended at 30: nothing reloaded
  EXPECT_EQ(state().find(1)->batches.size(), 3u);
  std::vector<int64_t> offsets;
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_EQ(offsets, std::vector<int64_t>{30});
}

TEST_F(producer_state_test, retention_keeps_the_two_newest_snapshots) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(append(idempotent(1, 0, i * 10, 10)).verdict, append_verdict::accept);
    ASSERT_FALSE(state().take_snapshot());  // 10 .. 50
  }
  std::vector<int64_t> offsets;
  ASSERT_FALSE(state().delete_snapshots_before(30));
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_EQ(offsets, (std::vector<int64_t>{30, 40, 50}));
  ASSERT_FALSE(state().delete_snapshots_before(1000));
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_EQ(offsets, (std::vector<int64_t>{40, 50}));
}

TEST_F(producer_state_test, truncate_fully_forgets_everything) {
  ASSERT_EQ(append(idempotent(1, 0, 0, 10)).verdict, append_verdict::accept);
  ASSERT_FALSE(state().take_snapshot());
  ASSERT_FALSE(state().truncate_fully_and_start_at(500));
  EXPECT_EQ(state().producer_count(), 0u);
  EXPECT_EQ(state().map_end_offset(), 500);
  std::vector<int64_t> offsets;
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_TRUE(offsets.empty());
}

TEST_F(producer_state_test, snapshot_listing_ignores_other_files) {
  write_bytes(dir_ / "00000000000000000000.log", {});
  write_bytes(dir_ / "00000000000000000007.snapshot.tmp", {});
  write_bytes(dir_ / "7.snapshot", {});
  write_bytes(dir_ / "0000000000000000000x.snapshot", {});
  write_bytes(dir_ / "00000000000000000009.snapshot", {});
  std::vector<int64_t> offsets;
  ASSERT_FALSE(state().snapshot_offsets(offsets));
  EXPECT_EQ(offsets, std::vector<int64_t>{9});
}

TEST_F(producer_state_test, idle_producers_expire_unless_in_a_transaction) {
  producer_state_manager m(default_file_system(), dir_, 1000);
  m.update(idempotent(1, 0, 0, 1, /*max_timestamp=*/5000), 0);
  m.update(idempotent(2, 0, 0, 1, /*max_timestamp=*/5500), 1);
  m.update(transactional(3, 0, 0, 1), 2);  // max_timestamp 1000: long idle, but open
  m.remove_expired(5999);
  EXPECT_EQ(m.producer_count(), 3u);
  m.remove_expired(6000);  // exactly producer.id.expiration.ms after producer 1's last write
  EXPECT_EQ(m.find(1), nullptr);
  EXPECT_NE(m.find(2), nullptr);
  EXPECT_NE(m.find(3), nullptr);
  // Expired producers are not loaded from a snapshot either.
  ASSERT_FALSE(m.take_snapshot());
  producer_state_manager reloaded(default_file_system(), dir_, 1000);
  snapshot_reload_report report;
  ASSERT_FALSE(reloaded.truncate_and_reload(0, 3, 7000, report));
  EXPECT_EQ(reloaded.find(2), nullptr);
  EXPECT_NE(reloaded.find(3), nullptr);
  EXPECT_EQ(default_producer_id_expiration_ms, 86'400'000);
}

}  // namespace
}  // namespace sluice::storage
