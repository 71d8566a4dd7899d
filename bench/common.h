#pragma once
// Shared plumbing of the benchmark tools: a small option parser, the one-line JSON result, CPU
// and memory of a process from /proc, percentiles, and a watchdog that turns a hung run into a
// result line with an error instead of a hang.
//
// Threading: everything here is used from the tool's main thread, except `mono_ns`, which any
// thread may call.

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::bench {

// `--name value`, `--name=value` and `-X key=value` (repeatable, librdkafka properties), plus
// positional arguments. Anything after `--` is positional, verbatim.
class options {
 public:
  // Throws std::invalid_argument for an option not in `known` (names without dashes; "X" for -X).
  options(int argc, char** argv, std::initializer_list<std::string_view> known);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& fallback) const;
  int64_t i64(const std::string& name, int64_t fallback) const;
  double f64(const std::string& name, double fallback) const;
  const std::vector<std::string>& all(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// "64MiB", "1GiB", "100k", "2M", "500": binary suffixes for sizes, decimal k/M/G for counts.
int64_t parse_quantity(std::string_view text);

int64_t mono_ns();
double seconds_since(int64_t start_ns);

// utime + stime of every thread of `pid`, in seconds; -1 when the process is gone or pid < 0.
// Another process: summed over /proc/<pid>/task/*/schedstat (ns; the runtime that
// /proc/<pid>/stat reports as utime + stime in 10 ms ticks, which is the fallback). pid 0: this
// process, from getrusage (us, including threads that have exited).
double process_cpu_seconds(pid_t pid);
// VmRSS or VmHWM from /proc/<pid>/status, in KiB; -1 when unreadable.
int64_t process_memory_kb(pid_t pid, std::string_view field = "VmRSS");

// CPU used by this process and, when given, the broker, between construction and `stop()`.
class cpu_meter {
 public:
  explicit cpu_meter(pid_t broker_pid);
  void stop();
  double client_seconds() const { return client_; }
  double broker_seconds() const { return broker_; }  // -1 without a broker pid

 private:
  pid_t broker_pid_;
  double client_start_;
  double broker_start_;
  double client_ = 0;
  double broker_ = -1;
};

struct percentiles {
  double p50 = 0, p99 = 0, p999 = 0, max = 0;
  size_t count = 0;
};
// Nearest-rank percentiles; sorts `samples` in place.
percentiles summarize(std::vector<double>& samples);

// One JSON object on one line, keys in insertion order. Numbers that are not finite are null.
class json_line {
 public:
  json_line& add(std::string_view key, std::string_view value);
  json_line& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  json_line& add(std::string_view key, const std::string& value) {
    return add(key, std::string_view(value));
  }
  json_line& add(std::string_view key, double value);
  json_line& add(std::string_view key, int64_t value);
  json_line& add(std::string_view key, int value) { return add(key, static_cast<int64_t>(value)); }
  json_line& add(std::string_view key, size_t value) {
    return add(key, static_cast<int64_t>(value));
  }
  json_line& add(std::string_view key, bool value);
  json_line& add_null(std::string_view key);
  // Adds cpu seconds and cpu seconds per GB (10^9 bytes of `bytes`) for client and broker.
  json_line& add_cpu(const cpu_meter& cpu, double bytes);
  std::string str() const { return body_ + "}"; }
  // Prints the line on stdout and flushes: the one result line of a run.
  void print() const;

 private:
  void key(std::string_view k);
  std::string body_ = "{";
};

std::string json_escape(std::string_view s);

// Arms SIGALRM: when `seconds` pass, `line` (a JSON result with an error) is written to stdout
// and the process exits with status 3. A later call replaces the earlier one; 0 disarms.
void arm_watchdog(double seconds, const std::string& line);

// Fatal setup error: prints `{"tool":..,"error":..}` and exits with status 2.
[[noreturn]] void fail(std::string_view tool, std::string_view mode, std::string_view message);

}  // namespace sluice::bench
