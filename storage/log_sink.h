#pragma once
// Where storage reports events worth an operator's attention (recovery truncations, index
// rebuilds, I/O failures): one line per event, no trailing newline, naming the topic-partition.
// The default sink writes the line to stderr; the server installs its own at start.
//
// Threading: set the sink at start-up, before storage is used, and not while disk jobs run;
// storage calls it from the thread that owns the logs and from the disk executor's threads, so
// the sink must be safe to call from several threads at once.

#include <functional>
#include <string_view>

namespace sluice::storage {

// Most events are warnings (something was wrong and storage repaired or refused it); routine
// housekeeping that operators still want in the log, such as retention deleting segments, is info.
enum class log_level { info, warning };

// Installs `sink`; an empty function restores the stderr default.
void set_log_sink(std::function<void(log_level, std::string_view)> sink);

// Sends one line to the current sink.
void log_event(std::string_view line, log_level level = log_level::warning);

}  // namespace sluice::storage
