#pragma once
// One line per event on stderr: `2026-11-21T22:59:00.123Z INFO  message`. Callers name the
// topic-partition or client the event concerns inside the message. Not for per-record logging.

#include <sstream>
#include <string>
#include <string_view>

namespace sluice::server {

enum class log_level { debug, info, warn, error };

// A client-supplied string (client id, group or member id, a topic name in an error) made safe for
// a log line: printable ASCII stays, a backslash is doubled, anything else (a newline that would
// forge a line, a terminal escape, bytes of other encodings) becomes \xNN. Long values are cut at
// 256 bytes, marked with "...".
std::string log_safe(std::string_view text);

void set_log_level(log_level level);
bool log_enabled(log_level level);
void write_log_line(log_level level, std::string_view message);

template <class... Args>
void log(log_level level, const Args&... args) {
  if (!log_enabled(level)) return;
  std::ostringstream os;
  (os << ... << args);
  write_log_line(level, os.str());
}

template <class... Args>
void log_info(const Args&... args) {
  log(log_level::info, args...);
}
template <class... Args>
void log_warn(const Args&... args) {
  log(log_level::warn, args...);
}
template <class... Args>
void log_error(const Args&... args) {
  log(log_level::error, args...);
}
template <class... Args>
void log_debug(const Args&... args) {
  log(log_level::debug, args...);
}

}  // namespace sluice::server
