// libFuzzer target: RecordBatch v2 views over arbitrary bytes (wire/record_batch.h). The input is
// split with batch_reader as a Produce `records` field or a `.log` chunk would be, and each batch,
// as well as the whole input taken as one batch, is validated and its records iterated. Beyond
// "never crash", it checks what the header promises: a batch that validates is exactly
// batchLength + 12 bytes, its records stay inside it, there are never more than recordsCount of
// them, and the broker's in-place edits keep a valid batch valid.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <vector>

#include "wire/record_batch.h"

namespace {

using namespace sluice;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_record_batch: %s\n", what);
  std::abort();
}

bool inside(std::span<const uint8_t> part, std::span<const uint8_t> whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

struct read_records {
  std::vector<wire::record_view> records;
  bool ok = false;
};

read_records iterate(const wire::record_batch& batch) {
  read_records out;
  wire::record_reader reader(batch);
  while (std::optional<wire::record_view> r = reader.next()) {
    if (r->key && !inside(*r->key, batch.bytes())) fail("a key outside the batch");
    if (r->value && !inside(*r->value, batch.bytes())) fail("a value outside the batch");
    if (!inside(r->headers, batch.bytes())) fail("headers outside the batch");
    out.records.push_back(*r);
    if (out.records.size() > static_cast<size_t>(batch.records_count())) {
      fail("more records than recordsCount");
    }
  }
  out.ok = reader.ok();
  if (out.ok && batch.records_count() >= 0 &&
      out.records.size() != static_cast<size_t>(batch.records_count())) {
    fail("record_reader ended cleanly before recordsCount records");
  }
  return out;
}

// The edits the broker makes to a valid batch it accepts (log::append) keep it valid.
void check_broker_edits(const wire::record_batch& batch) {
  std::vector<uint8_t> copy(batch.bytes().begin(), batch.bytes().end());
  wire::mutable_record_batch m(copy);
  m.set_base_offset(42);
  m.set_partition_leader_epoch(7);
  if (m.validate(false) != wire::batch_error::ok) fail("stamping offsets broke a valid batch");
  m.set_max_timestamp_and_log_append_time(1234567);
  if (m.validate(false) != wire::batch_error::ok) fail("LogAppendTime broke a valid batch");
  if (!m.is_log_append_time() || m.max_timestamp() != 1234567 || m.base_offset() != 42) {
    fail("LogAppendTime fields not set");
  }
}

// Records read from an uncompressed batch, rebuilt with build_record_batch, read back the same.
void check_rebuild(const read_records& read) {
  std::vector<wire::record_to_build> to_build;
  for (size_t i = 0; i < read.records.size(); ++i) {
    to_build.push_back({static_cast<int64_t>(i), read.records[i].key, read.records[i].value});
  }
  std::vector<uint8_t> built = wire::build_record_batch({}, to_build);
  wire::record_batch rebuilt(built);
  if (rebuilt.validate(true) != wire::batch_error::ok) fail("a built batch does not validate");
  read_records again = iterate(rebuilt);
  if (!again.ok || again.records.size() != read.records.size()) {
    fail("a built batch does not read back");
  }
  auto same = [](const std::optional<std::span<const uint8_t>>& a,
                 const std::optional<std::span<const uint8_t>>& b) {
    if (a.has_value() != b.has_value()) return false;
    return !a || std::equal(a->begin(), a->end(), b->begin(), b->end());
  };
  for (size_t i = 0; i < read.records.size(); ++i) {
    const wire::record_view& r = again.records[i];
    if (!same(r.key, read.records[i].key) || !same(r.value, read.records[i].value) ||
        r.offset_delta != static_cast<int32_t>(i) || r.header_count != 0) {
      fail("a built batch reads back different records");
    }
  }
}

void check_batch(const wire::record_batch& batch) {
  // Every accessor is bounds-checked, whatever the view's length; the derived offsets too.
  volatile int64_t sink = batch.base_offset() ^ batch.partition_leader_epoch() ^ batch.magic() ^
                          batch.crc() ^ batch.attributes() ^ batch.base_timestamp() ^
                          batch.max_timestamp() ^ batch.producer_id() ^ batch.producer_epoch() ^
                          batch.base_sequence() ^ batch.last_offset() ^ batch.next_offset() ^
                          batch.size_bytes() ^ batch.compute_crc();
  (void)sink;

  const wire::batch_error strict = batch.validate(true);
  const wire::batch_error lax = batch.validate(false);
  if (strict == wire::batch_error::ok && lax != wire::batch_error::ok) {
    fail("valid with the record count check but not without it");
  }
  read_records read = iterate(batch);
  if (lax != wire::batch_error::ok) return;

  if (!batch.has_header() || batch.size_bytes() != static_cast<int64_t>(batch.bytes().size())) {
    fail("a valid batch is not batchLength + 12 bytes");
  }
  if (batch.last_offset_delta() < 0) fail("a valid batch with a negative lastOffsetDelta");
  check_broker_edits(batch);
  // An empty batch cannot be rebuilt as a producer batch: recordsCount 0 never equals
  // lastOffsetDelta + 1.
  if (read.ok && batch.compression() == 0 && !read.records.empty()) check_rebuild(read);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy, so that ASan catches a read one byte past the input.
  const std::vector<uint8_t> input(data, data + size);
  const std::span<const uint8_t> bytes(input);

  wire::batch_reader reader(bytes);
  size_t framed = 0;
  while (std::optional<wire::record_batch> batch = reader.next()) {
    if (batch->bytes().data() != bytes.data() + framed) fail("batches are not contiguous");
    framed += batch->bytes().size();
    if (reader.position() != framed) fail("position() is not the end of the last batch");
    check_batch(*batch);
  }
  if (reader.position() != framed || framed > bytes.size()) fail("position() past the batches");
  if (reader.error() == wire::batch_error::ok && framed != bytes.size()) {
    fail("a clean end before the end of the data");
  }
  if (reader.next()) fail("batch_reader goes on after it stopped");

  // The whole input as one view: longer or shorter than batchLength says.
  check_batch(wire::record_batch(bytes));
  return 0;
}
