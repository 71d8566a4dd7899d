#include "storage/log_sink.h"

#include <unistd.h>

#include <string>

namespace sluice::storage {

namespace {

std::function<void(log_level, std::string_view)>& current_sink() {
  static std::function<void(log_level, std::string_view)> sink;
  return sink;
}

}  // namespace

void set_log_sink(std::function<void(log_level, std::string_view)> sink) {
  current_sink() = std::move(sink);
}

void log_event(std::string_view line, log_level level) {
  if (current_sink()) {
    current_sink()(level, line);
    return;
  }
  // One write(2) so lines from other writers of stderr do not interleave with this one.
  std::string s;
  s.reserve(line.size() + 1);
  s.append(line);
  s.push_back('\n');
  ssize_t ignored = ::write(STDERR_FILENO, s.data(), s.size());
  (void)ignored;
}

}  // namespace sluice::storage
