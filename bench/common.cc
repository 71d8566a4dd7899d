#include "bench/common.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sluice::bench {

options::options(int argc, char** argv, std::initializer_list<std::string_view> known) {
  auto is_known = [&](std::string_view name) {
    return std::find(known.begin(), known.end(), name) != known.end();
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i)
        positional_.emplace_back(argv[i]);
      break;
    }
    std::string name;
    std::string value;
    bool has_value = false;
    if (arg == "-X") {
      if (i + 1 >= argc) throw std::invalid_argument("-X needs key=value");
      name = "X";
      value = argv[++i];
      has_value = true;
    } else if (arg.starts_with("--")) {
      std::string_view body = arg.substr(2);
      size_t eq = body.find('=');
      name = std::string(body.substr(0, eq));
      if (eq != std::string_view::npos) {
        value = std::string(body.substr(eq + 1));
        has_value = true;
      }
    } else {
      positional_.emplace_back(arg);
      continue;
    }
    if (!is_known(name)) throw std::invalid_argument("unknown option " + std::string(arg));
    // A following argument that is not an option is this option's value; otherwise it is a flag.
    if (!has_value && i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) {
      value = argv[++i];
    }
    values_[name].push_back(value);
  }
}

std::string options::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

int64_t options::i64(const std::string& name, int64_t fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : parse_quantity(it->second.back());
}

double options::f64(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  double v = std::strtod(it->second.back().c_str(), &end);
  if (end == it->second.back().c_str() || *end != '\0') {
    throw std::invalid_argument("--" + name + ": not a number: " + it->second.back());
  }
  return v;
}

const std::vector<std::string>& options::all(const std::string& name) const {
  static const std::vector<std::string> none;
  auto it = values_.find(name);
  return it == values_.end() ? none : it->second;
}

int64_t parse_quantity(std::string_view text) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p == text.data()) {
    throw std::invalid_argument("not a number: " + std::string(text));
  }
  std::string_view suffix(p, static_cast<size_t>(text.data() + text.size() - p));
  static const std::pair<std::string_view, int64_t> units[] = {{"", 1},
                                                               {"k", 1000},
                                                               {"K", 1000},
                                                               {"M", 1000000},
                                                               {"G", 1000000000},
                                                               {"KiB", int64_t{1} << 10},
                                                               {"MiB", int64_t{1} << 20},
                                                               {"GiB", int64_t{1} << 30}};
  for (const auto& [name, factor] : units) {
    if (suffix == name) return v * factor;
  }
  throw std::invalid_argument("unknown unit in " + std::string(text));
}

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

double seconds_since(int64_t start_ns) {
  return static_cast<double>(mono_ns() - start_ns) / 1e9;
}

namespace {

// utime + stime from /proc/<pid>/stat: clock ticks (10 ms), the fallback.
double stat_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After ")": field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
  for (int i = 0; i <= 12 && fields >> field; ++i) {
    if (i == 11) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 12) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return static_cast<double>(utime + stime) / ticks;
}

}  // namespace

double process_cpu_seconds(pid_t pid) {
  if (pid < 0) return -1;
  if (pid == 0) {
    // This process: getrusage counts exited threads too (librdkafka's come and go), in us.
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
    return s(ru.ru_utime) + s(ru.ru_stime);
  }
  // Another process: the first field of each thread's schedstat is its time on a CPU in ns, the
  // sum_exec_runtime that the kernel splits into utime and stime for /proc/<pid>/stat, so the
  // same quantity without the 10 ms tick. A short run of a few hundred MB needs that precision.
  std::error_code ec;
  double total = 0;
  bool any = false;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    unsigned long long ns = 0;
    if (in >> ns) {
      total += static_cast<double>(ns) / 1e9;
      any = true;
    }
  }
  return any ? total : stat_cpu_seconds(pid);
}

int64_t process_memory_kb(pid_t pid, std::string_view field) {
  std::string path = pid == 0 ? "/proc/self/status" : "/proc/" + std::to_string(pid) + "/status";
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':') {
      return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

cpu_meter::cpu_meter(pid_t broker_pid)
    : broker_pid_(broker_pid),
      client_start_(process_cpu_seconds(0)),
      broker_start_(broker_pid > 0 ? process_cpu_seconds(broker_pid) : -1) {}

void cpu_meter::stop() {
  client_ = process_cpu_seconds(0) - client_start_;
  if (broker_pid_ > 0 && broker_start_ >= 0) {
    double now = process_cpu_seconds(broker_pid_);
    broker_ = now >= 0 ? now - broker_start_ : -1;
  }
}

percentiles summarize(std::vector<double>& samples) {
  percentiles p;
  p.count = samples.size();
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  auto rank = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    return samples[std::clamp<size_t>(i, 1, samples.size()) - 1];
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.p999 = rank(0.999);
  p.max = samples.back();
  return p;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void json_line::key(std::string_view k) {
  if (body_.size() > 1) body_ += ',';
  body_ += '"';
  body_ += json_escape(k);
  body_ += "\":";
}

json_line& json_line::add(std::string_view k, std::string_view value) {
  key(k);
  body_ += '"';
  body_ += json_escape(value);
  body_ += '"';
  return *this;
}

json_line& json_line::add(std::string_view k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    body_ += "null";
    return *this;
  }
  char buf[64];
  // Plain digits for large figures (msgs/s), significant digits for small ones (latencies).
  std::snprintf(buf, sizeof buf, std::fabs(value) >= 1e5 ? "%.0f" : "%.6g", value);
  body_ += buf;
  return *this;
}

json_line& json_line::add(std::string_view k, int64_t value) {
  key(k);
  body_ += std::to_string(value);
  return *this;
}

json_line& json_line::add(std::string_view k, bool value) {
  key(k);
  body_ += value ? "true" : "false";
  return *this;
}

json_line& json_line::add_null(std::string_view k) {
  key(k);
  body_ += "null";
  return *this;
}

json_line& json_line::add_cpu(const cpu_meter& cpu, double bytes) {
  const double gb = bytes / 1e9;
  add("client_cpu_s", cpu.client_seconds());
  add("client_cpu_s_per_gb", gb > 0 ? cpu.client_seconds() / gb : NAN);
  if (cpu.broker_seconds() >= 0) {
    add("broker_cpu_s", cpu.broker_seconds());
    add("broker_cpu_s_per_gb", gb > 0 ? cpu.broker_seconds() / gb : NAN);
  } else {
    add_null("broker_cpu_s");
    add_null("broker_cpu_s_per_gb");
  }
  return *this;
}

void json_line::print() const {
  std::string line = str();
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

namespace {
// Written before the alarm is armed and only read by the handler: no allocation in the handler.
char watchdog_line[1024];
size_t watchdog_length = 0;

void on_alarm(int) {
  ssize_t ignored = ::write(STDOUT_FILENO, watchdog_line, watchdog_length);
  (void)ignored;
  _exit(3);
}
}  // namespace

void arm_watchdog(double seconds, const std::string& line) {
  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  if (seconds <= 0) return;
  watchdog_length = std::min(line.size(), sizeof watchdog_line - 2);
  std::memcpy(watchdog_line, line.data(), watchdog_length);
  watchdog_line[watchdog_length++] = '\n';
  struct sigaction sa {};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, nullptr);
  itimerval t{};
  t.it_value.tv_sec = static_cast<time_t>(seconds);
  t.it_value.tv_usec = static_cast<suseconds_t>((seconds - std::floor(seconds)) * 1e6);
  setitimer(ITIMER_REAL, &t, nullptr);
}

void fail(std::string_view tool, std::string_view mode, std::string_view message) {
  json_line j;
  j.add("tool", tool);
  if (!mode.empty()) j.add("mode", mode);
  j.add("error", message);
  j.print();
  std::exit(2);
}

}  // namespace sluice::bench
