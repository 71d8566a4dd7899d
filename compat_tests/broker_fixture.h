#pragma once
// Runs the real `sluice` binary as a child process for the compat tests.
//
// The binary comes from $SLUICE_BIN (CTest sets it to $<TARGET_FILE:sluice>). Each `broker` gets a
// fresh temporary directory holding server.properties, the data directory (log.dirs) and one
// stderr log per run. It binds port 0 and learns the real port from the `listening on
// NAME://host:port` line it prints for each listener; a restart passes those ports explicitly so
// clients that cached the addresses reconnect to the same places.
//
// Threading: a `broker` is used from the test's main thread. The child is started with
// PR_SET_PDEATHSIG tied to the thread that forked it, so never start or restart from a helper
// thread that may exit before the test does.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace sluice::compat {

using config_map = std::map<std::string, std::string>;
// Environment variables added to the broker's own (for example LD_PRELOAD for fault injection).
// A type of its own, so that a braced list of config pairs never reads as one.
struct environment {
  std::map<std::string, std::string> variables;
};

// Thrown by broker's constructor (and restart()) when the broker exits before it listens, as a
// refused start does: its exit code and stderr.
struct start_error : std::runtime_error {
  start_error(int exit_code, std::string log);
  int exit_code;
  std::string log;
};

class broker {
 public:
  // Starts the broker with defaults (node.id=1, listeners on 127.0.0.1:0, one partition per
  // auto-created topic) overridden by `overrides`. Throws if it does not come up in time
  // (start_error if it exited first).
  explicit broker(config_map overrides = {});
  // The same with variables added to the broker's environment.
  explicit broker(config_map overrides, environment env);
  ~broker();
  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;

  // The PLAINTEXT listener's bound address, or the first listener's when none has that name.
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  std::string bootstrap() const { return host_ + ":" + std::to_string(port_); }
  // The bound address of the listener named `listener` (upper case, as the broker logs it);
  // throws if there is none.
  std::string host(const std::string& listener) const;
  uint16_t port(const std::string& listener) const;
  std::string bootstrap(const std::string& listener) const;
  const std::filesystem::path& data_dir() const { return data_dir_; }
  std::filesystem::path partition_dir(const std::string& topic, int32_t partition) const {
    return data_dir_ / (topic + "-" + std::to_string(partition));
  }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // SIGTERM and wait. Returns the exit code, 128+signal if killed by a signal, or -1 if it did not
  // exit within the timeout (then it is SIGKILLed).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // SIGKILL and reap.
  void kill9();
  // Starts again on the same data directory and port.
  void restart();

  // stderr of the current (or last) run.
  std::string log() const;
  // User+system CPU seconds the running broker has used so far (from /proc).
  double cpu_seconds() const;

 private:
  struct bound_address {
    std::string host;
    uint16_t port = 0;
  };
  // `ports`: listener name -> port to bind again (a restart); empty for the configured ones.
  void start(const std::map<std::string, uint16_t>& ports);
  void write_properties() const;
  const bound_address& bound(const std::string& listener) const;

  config_map config_;
  environment environment_;
  std::filesystem::path work_dir_;
  std::filesystem::path data_dir_;
  std::filesystem::path log_path_;
  int runs_ = 0;
  pid_t pid_ = -1;
  std::string host_;
  uint16_t port_ = 0;
  std::map<std::string, bound_address> listeners_;
};

// Polls `cond` every few milliseconds until it is true or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& cond,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The library that injects disk faults into the broker (compat_tests/fault_preload.c):
// $SLUICE_FAULT_PRELOAD, else the one built beside $SLUICE_BIN; empty when there is none.
std::string fault_preload_library();

// Contents of the partition's .log segments concatenated in offset order.
std::string read_partition_log(const std::filesystem::path& partition_dir);

}  // namespace sluice::compat
