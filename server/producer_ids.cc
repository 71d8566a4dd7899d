#include "server/producer_ids.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "storage/file_io.h"

namespace sluice::server {

std::error_code producer_id_allocator::load(std::string& problem) {
  std::string text;
  bool missing = false;
  if (std::error_code ec = storage::read_small_file(path_, text, missing)) {
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

std::error_code producer_id_allocator::next(int64_t& out) {
  if (next_id_ >= block_end_) {
    if (next_id_ > std::numeric_limits<int64_t>::max() - block_size) {
      return std::make_error_code(std::errc::value_too_large);
    }
    int64_t new_end = next_id_ + block_size;
    if (std::error_code ec = storage::replace_file(path_, std::to_string(new_end) + "\n")) {
      return ec;
    }
    block_end_ = new_end;
  }
  out = next_id_++;
  return {};
}

}  // namespace sluice::server
