#include "server/producer_ids.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "storage/file_io.h"

namespace sluice::server {

std::error_code producer_id_allocator::load(std::string& problem) {
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
  next_id_ = value;
  block_end_ = value;
  return {};
}

void producer_id_allocator::skip_through(int64_t id) {
  if (id < next_id_) return;
  next_id_ = id + 1;
  // Whatever block was reserved ended below this: the next id reserves a new one first.
  block_end_ = std::min(block_end_, next_id_);
}

void producer_id_allocator::next(id_callback done) {
  waiting_.push_back(std::move(done));
  serve_waiting();
}

void producer_id_allocator::serve_waiting() {
  while (!waiting_.empty() && next_id_ < block_end_) {
    id_callback done = std::move(waiting_.front());
    waiting_.pop_front();
    done({}, next_id_++);
  }
  // Half used: reserve the next block before anyone has to wait for it.
  if (!waiting_.empty() || block_end_ - next_id_ < block_size / 2) reserve_ahead();
}

void producer_id_allocator::reserve_ahead() {
  if (reserving_) return;
  const int64_t base = std::max(next_id_, block_end_);
  if (base > std::numeric_limits<int64_t>::max() - block_size) {
    std::deque<id_callback> failed = std::move(waiting_);
    waiting_.clear();
    for (auto& done : failed)
      done(std::make_error_code(std::errc::value_too_large), -1);
    return;
  }
  reserving_ = true;
  const int64_t new_end = base + block_size;
  auto r = std::make_shared<std::error_code>();
  disk_.submit(
      path_.string(),
      [path = path_, new_end, r] {
        *r = storage::replace_file(storage::default_file_system(), path,
                                   std::to_string(new_end) + "\n");
      },
      [this, alive = std::weak_ptr<int>(alive_), new_end, r] {
        if (alive.expired()) return;
        reserving_ = false;
        if (*r) {
          std::deque<id_callback> failed = std::move(waiting_);
          waiting_.clear();
          for (auto& done : failed)
            done(*r, -1);
          return;
        }
        // Everything from the old block end (or the next id, if it was past it) up to new_end is
        // reserved now.
        block_end_ = new_end;
        serve_waiting();
      });
}

}  // namespace sluice::server
