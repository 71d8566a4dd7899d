#include "server/producer_ids.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "storage/file_io.h"

namespace sluice::server {

namespace {

class producer_id_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "producer ids"; }
  std::string message(int value) const override {
    switch (static_cast<producer_id_errc>(value)) {
      case producer_id_errc::exhausted:
        return "every producer id has been handed out";
      case producer_id_errc::contended:
        return "other brokers kept taking the next block of producer ids first";
      case producer_id_errc::malformed_block:
        return "the record of the latest block of producer ids is malformed";
    }
    return "unknown producer id error";
  }
};

}  // namespace

const std::error_category& producer_id_category() {
  static const producer_id_category_impl category;
  return category;
}

std::error_code make_error_code(producer_id_errc e) {
  return {static_cast<int>(e), producer_id_category()};
}

// ---- file_producer_id_blocks -------------------------------------------------------------------

std::error_code file_producer_id_blocks::load(int64_t& next_free, std::string& problem) {
  next_free = 0;
  std::string text;
  bool missing = false;
  if (std::error_code ec =
          storage::read_small_file(storage::default_file_system(), path_, text, missing)) {
    problem = "cannot read " + path_.string() + ": " + ec.message();
    return ec;
  }
  if (missing) return {};
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  int64_t value = -1;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc{} || end != text.data() + text.size() || value < 0) {
    problem = path_.string() + " does not hold a producer id: \"" + text + "\"";
    return std::make_error_code(std::errc::invalid_argument);
  }
  next_free = value;
  return {};
}

void file_producer_id_blocks::reserve(int64_t at_least, int64_t size, reserved_callback done) {
  const int64_t new_end = at_least + size;
  auto r = std::make_shared<std::error_code>();
  disk_.submit(
      path_.string(),
      [path = path_, new_end, r] {
        *r = storage::replace_file(storage::default_file_system(), path,
                                   std::to_string(new_end) + "\n");
      },
      [alive = std::weak_ptr<int>(alive_), at_least, r, done = std::move(done)] {
        if (alive.expired()) return;
        done(*r, *r ? -1 : at_least);
      });
}

// ---- producer_id_allocator ---------------------------------------------------------------------

producer_id_allocator::producer_id_allocator(std::filesystem::path data_dir,
                                             storage::disk_executor& disk)
    : source_(std::make_unique<file_producer_id_blocks>(std::move(data_dir), disk)) {}

producer_id_allocator::producer_id_allocator(std::unique_ptr<producer_id_block_source> source)
    : source_(std::move(source)) {}

producer_id_allocator::~producer_id_allocator() = default;

std::error_code producer_id_allocator::load(std::string& problem) {
  int64_t next_free = 0;
  if (std::error_code ec = source_->load(next_free, problem)) return ec;
  next_id_ = std::max(next_id_, next_free);
  block_end_ = std::max(block_end_, next_id_);
  return {};
}

void producer_id_allocator::skip_through(int64_t id) {
  if (id < next_id_) return;
  // What is left of the current block above `id` stays reserved for this broker; with nothing
  // left, the next id takes a new block, which starts above `id`.
  next_id_ = id + 1;
}

void producer_id_allocator::next(id_callback done) {
  waiting_.push_back(std::move(done));
  serve_waiting();
}

void producer_id_allocator::serve_waiting() {
  for (;;) {
    while (!waiting_.empty() && next_id_ < block_end_) {
      id_callback done = std::move(waiting_.front());
      waiting_.pop_front();
      done({}, next_id_++);
    }
    if (next_id_ < block_end_ || !ahead_) break;
    next_id_ = std::max(next_id_, ahead_->first);
    block_end_ = ahead_->end;
    ahead_.reset();
  }
  // Half used: reserve the next block before anyone has to wait for it.
  if (!ahead_ && (!waiting_.empty() || block_end_ - next_id_ < block_size / 2)) reserve_ahead();
}

void producer_id_allocator::fail_waiting(std::error_code ec) {
  std::deque<id_callback> failed = std::move(waiting_);
  waiting_.clear();
  for (auto& done : failed)
    done(ec, -1);
}

void producer_id_allocator::reserve_ahead() {
  if (reserving_) return;
  const int64_t at_least = std::max(next_id_, block_end_);
  if (at_least > std::numeric_limits<int64_t>::max() - block_size) {
    fail_waiting(producer_id_errc::exhausted);
    return;
  }
  reserving_ = true;
  source_->reserve(at_least, block_size,
                   [this, alive = std::weak_ptr<int>(alive_)](std::error_code ec, int64_t first) {
                     if (alive.expired()) return;
                     reserving_ = false;
                     if (ec) {
                       fail_waiting(ec);
                       return;
                     }
                     const block reserved{first, first + block_size};
                     if (next_id_ >= block_end_) {
                       // Nothing left of the current block (skip_through may have moved past some
                       // of this one meanwhile).
                       next_id_ = std::max(next_id_, reserved.first);
                       block_end_ = reserved.end;
                     } else if (reserved.first == block_end_) {
                       block_end_ = reserved.end;
                     } else {
                       ahead_ = reserved;
                     }
                     serve_waiting();
                   });
}

}  // namespace sluice::server
