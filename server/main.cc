// sluice [server.properties] [--override key=value ...]
//
// Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 2 for a bad configuration or an unusable
// data directory, 1 for anything else.

#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "server/broker.h"
#include "server/config.h"
#include "server/logging.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

namespace {

// A partition holds one descriptor per segment and a connection one socket. Many systems start
// processes with a soft limit of 1,024, a few hundred partitions' worth; the hard limit is what
// the administrator actually allows, so take all of it, as Kafka's start scripts expect ulimit to.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t wanted = limit.rlim_max;
  limit.rlim_cur = wanted;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  sluice::server::log_info("raised the open-file limit to ", wanted);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice::server;
  std::filesystem::path properties;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << config_help();
      return 0;
    }
    if (arg == "--version") {
      std::cout << "sluice " << SLUICE_VERSION << "\n";
      return 0;
    }
    if (arg == "--override") {
      if (i + 1 >= argc) {
        std::cerr << "sluice: --override needs key=value\n";
        return 2;
      }
      overrides.emplace_back(argv[++i]);
    } else if (arg.starts_with("--override=")) {
      overrides.emplace_back(arg.substr(11));
    } else if (arg.starts_with("-")) {
      std::cerr << "sluice: unknown option " << arg << " (see --help)\n";
      return 2;
    } else if (properties.empty()) {
      properties = arg;
    } else {
      std::cerr << "sluice: more than one properties file given\n";
      return 2;
    }
  }

  config_result loaded = load_config(properties, overrides);
  if (!loaded.error.empty()) {
    std::cerr << "sluice: " << loaded.error << "\n";
    return 2;
  }
  for (const std::string& w : loaded.warnings)
    log_warn(w);

  // A peer that disappears must not kill the broker: writes report EPIPE instead.
  std::signal(SIGPIPE, SIG_IGN);
  raise_descriptor_limit();

  try {
    boost::asio::io_context io(1);
    broker b(io, std::move(loaded.config));
    if (std::string err = b.start(); !err.empty()) {
      std::cerr << "sluice: " << err << "\n";
      return 2;
    }
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int signo) {
      if (ec) return;
      log_info("received ", signo == SIGINT ? "SIGINT" : "SIGTERM");
      b.stop();
    });
    io.run();
    b.close_storage();
    log_info("stopped cleanly");
    return 0;
  } catch (const std::exception& e) {
    log_error("fatal: ", e.what());
    return 1;
  }
}
