#include "compat_tests/broker_fixture.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace sluice::compat {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string sluice_bin() {
  const char* bin = std::getenv("SLUICE_BIN");
  if (bin == nullptr || *bin == '\0') {
    throw std::runtime_error("SLUICE_BIN is not set (CTest sets it; by hand: SLUICE_BIN=<path>)");
  }
  if (::access(bin, X_OK) != 0) {
    throw std::runtime_error(std::string("SLUICE_BIN=") + bin + " is not executable");
  }
  return bin;
}

// Reaps `pid` if it has exited; returns true and its wait status then.
bool try_reap(pid_t pid, int& status) {
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

// The entries of a `listeners` value: NAME (upper-cased, as the broker logs it) and host:port.
std::vector<std::pair<std::string, std::string>> listener_entries(const std::string& value) {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    size_t sep = item.find("://");
    if (sep == std::string::npos) continue;
    std::string name = item.substr(0, sep);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    out.emplace_back(std::move(name), item.substr(sep + 3));
  }
  return out;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

start_error::start_error(int code, std::string text)
    : std::runtime_error("sluice exited with status " + std::to_string(code) +
                         " before listening; stderr:\n" + text),
      exit_code(code),
      log(std::move(text)) {}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::sleep_for(5ms);
  }
}

std::string read_partition_log(const fs::path& partition_dir) {
  std::vector<fs::path> segments;
  for (const auto& e : fs::directory_iterator(partition_dir)) {
    if (e.path().extension() == ".log") segments.push_back(e.path());
  }
  // Segment names are zero-padded base offsets, so lexical order is offset order.
  std::sort(segments.begin(), segments.end());
  std::string all;
  for (const auto& s : segments)
    all += slurp(s);
  return all;
}

std::string fault_preload_library() {
  if (const char* lib = std::getenv("SLUICE_FAULT_PRELOAD"); lib != nullptr && *lib != '\0') {
    return lib;
  }
  // Beside the broker: <build>/sluice and <build>/compat_tests/libsluice_fault_preload.so.
  fs::path guess =
      fs::absolute(sluice_bin()).parent_path() / "compat_tests" / "libsluice_fault_preload.so";
  return fs::exists(guess) ? guess.string() : std::string();
}

broker::broker(config_map overrides) : broker(std::move(overrides), environment{}) {}

broker::broker(config_map overrides, environment env) : environment_(std::move(env)) {
  std::string tmpl = (fs::temp_directory_path() / "sluice-compat-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  work_dir_ = tmpl;
  data_dir_ = work_dir_ / "data";
  fs::create_directories(data_dir_);
  config_ = {
      {"node.id", "1"},
      {"listeners", "PLAINTEXT://127.0.0.1:0"},
      {"log.dirs", data_dir_.string()},
      {"num.partitions", "1"},
      {"auto.create.topics.enable", "true"},
  };
  for (auto& [k, v] : overrides)
    config_[k] = v;
  write_properties();
  try {
    start({});
  } catch (...) {
    // No destructor runs for a broker that never started: its directory goes here.
    if (std::getenv("SLUICE_COMPAT_KEEP") == nullptr) {
      std::error_code ec;
      fs::remove_all(work_dir_, ec);
    }
    throw;
  }
}

broker::~broker() {
  bool failed = ::testing::Test::HasFailure();
  if (running()) kill9();
  if (failed) {
    std::string l = log();
    if (l.size() > 8000) l = "...\n" + l.substr(l.size() - 8000);
    std::cerr << "---- sluice stderr (" << log_path_.string() << ") ----\n"
              << l << "\n---- end of sluice stderr ----\n";
  }
  if (std::getenv("SLUICE_COMPAT_KEEP") != nullptr) {
    std::cerr << "keeping " << work_dir_.string() << "\n";
  } else {
    std::error_code ec;
    fs::remove_all(work_dir_, ec);
  }
}

void broker::write_properties() const {
  std::ofstream out(work_dir_ / "server.properties");
  out << "# written by the sluice compat tests\n";
  for (const auto& [k, v] : config_)
    out << k << "=" << v << "\n";
}

void broker::start(const std::map<std::string, uint16_t>& ports) {
  std::string bin = sluice_bin();
  ++runs_;
  log_path_ = work_dir_ / ("broker-" + std::to_string(runs_) + ".stderr");

  const auto configured = listener_entries(config_["listeners"]);
  std::vector<std::string> args = {bin, (work_dir_ / "server.properties").string()};
  if (!ports.empty()) {
    std::string listeners;
    for (const auto& [name, hostport] : configured) {
      std::string host = hostport.substr(0, hostport.rfind(':'));
      listeners += (listeners.empty() ? "" : ",") + name + "://" + host + ":" +
                   std::to_string(ports.at(name));
    }
    args.push_back("--override");
    args.push_back("listeners=" + listeners);
  }
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  // Built before fork: the child may only make async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (!environment_.variables.contains(name)) env_strings.push_back(std::move(entry));
  }
  for (const auto& [k, v] : environment_.variables)
    env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot create " + log_path_.string());
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Do not leak the test's sockets (proxies, client connections) into the broker.
    ::syscall(SYS_close_range, 3u, ~0u, 0u);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  pid_ = pid;

  // One line per listener; the broker prints them once every listener is bound.
  static const std::regex listening(R"(listening on ([^\s:/]+)://(\[[^\]]*\]|[^\s:]+):(\d+))");
  std::string text;
  std::map<std::string, bound_address> found;
  bool up = wait_until(
      [&] {
        text = log();
        found.clear();
        for (std::sregex_iterator it(text.begin(), text.end(), listening), end; it != end; ++it) {
          found[(*it)[1].str()] = {(*it)[2].str(),
                                   static_cast<uint16_t>(std::stoi((*it)[3].str()))};
        }
        if (!found.empty() && found.size() >= configured.size()) return true;
        int status = 0;
        if (try_reap(pid_, status)) {
          pid_ = -1;
          throw start_error(decode_status(status), text);
        }
        return false;
      },
      15s);
  if (!up) {
    kill9();
    throw std::runtime_error("sluice did not print 'listening on' within 15 s; stderr:\n" + text);
  }
  listeners_ = std::move(found);
  const bound_address& main =
      listeners_.contains("PLAINTEXT") ? listeners_.at("PLAINTEXT") : bound(configured.at(0).first);
  host_ = main.host;
  port_ = main.port;
  for (const auto& [name, port] : ports) {
    if (bound(name).port != port) {
      throw std::runtime_error("restart asked for port " + std::to_string(port) + " on " + name +
                               " but got " + std::to_string(bound(name).port));
    }
  }
}

const broker::bound_address& broker::bound(const std::string& listener) const {
  auto it = listeners_.find(listener);
  if (it == listeners_.end()) {
    throw std::invalid_argument("the broker has no listener named " + listener);
  }
  return it->second;
}

std::string broker::host(const std::string& listener) const {
  return bound(listener).host;
}

uint16_t broker::port(const std::string& listener) const {
  return bound(listener).port;
}

std::string broker::bootstrap(const std::string& listener) const {
  return host(listener) + ":" + std::to_string(port(listener));
}

int broker::stop(std::chrono::milliseconds timeout) {
  if (!running()) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  bool exited = wait_until([&] { return try_reap(pid_, status); }, timeout);
  if (!exited) {
    kill9();
    return -1;
  }
  pid_ = -1;
  return decode_status(status);
}

void broker::kill9() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void broker::restart() {
  if (running()) throw std::logic_error("restart: broker still running");
  std::map<std::string, uint16_t> ports;
  for (const auto& [name, address] : listeners_)
    ports[name] = address.port;
  start(ports);
}

std::string broker::log() const {
  return slurp(log_path_);
}

double broker::cpu_seconds() const {
  if (!running()) return 0;
  std::string stat = slurp("/proc/" + std::to_string(pid_) + "/stat");
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace sluice::compat
