// sluice-compat-suite: the librdkafka and raw-protocol scenarios of the broker-neutral suite.
//
//   sluice-compat-suite --bootstrap H:P[,H:P] --prefix P [--api-versions FILE] [--only REGEX]
//                       [--timeout-ms N]                    runs the scenarios
//   sluice-compat-suite --bootstrap H:P --print-api-versions  what the broker advertises
//   sluice-compat-suite --bootstrap H:P --cleanup --prefix P deletes the run's topics and groups
//   sluice-compat-suite --bootstrap H:P --prefix P --create-topic NAME:PARTITIONS
//                                         creates a topic and waits for its leaders (for kcat.sh)
//   sluice-compat-suite --list                               the scenario names
//
// scripts/compat.sh runs it together with the other clients' runners; ../README.md is the
// contract. Exit code: 0 when nothing failed, 1 when a scenario failed, 2 on a usage error.

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "compat_tests/suite/runner/suite.h"

namespace {

using namespace sluice::compat::suite;

struct arguments {
  std::string bootstrap;
  std::string prefix;
  std::string api_versions_file;
  std::string only;
  std::chrono::milliseconds timeout{30000};
  bool print_api_versions = false;
  bool cleanup = false;
  bool list = false;
  std::string create_topic;  // NAME:PARTITIONS
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "sluice-compat-suite: " << why << "\n"
            << "usage: sluice-compat-suite --bootstrap HOST:PORT[,...] --prefix PREFIX "
               "[--api-versions FILE] [--only REGEX] [--timeout-ms N]\n"
               "       sluice-compat-suite --bootstrap HOST:PORT --print-api-versions\n"
               "       sluice-compat-suite --bootstrap HOST:PORT --prefix PREFIX --cleanup\n"
               "       sluice-compat-suite --list\n";
  std::exit(2);
}

arguments parse(int argc, char** argv) {
  arguments a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--bootstrap")
      a.bootstrap = value();
    else if (arg == "--prefix")
      a.prefix = value();
    else if (arg == "--api-versions")
      a.api_versions_file = value();
    else if (arg == "--only")
      a.only = value();
    else if (arg == "--timeout-ms")
      a.timeout = std::chrono::milliseconds(std::stoll(value()));
    else if (arg == "--print-api-versions")
      a.print_api_versions = true;
    else if (arg == "--cleanup")
      a.cleanup = true;
    else if (arg == "--list")
      a.list = true;
    else if (arg == "--create-topic")
      a.create_topic = value();
    else
      usage("unknown argument " + arg);
  }
  if (!a.list && a.bootstrap.empty()) usage("--bootstrap is required");
  if ((a.cleanup || (!a.list && !a.print_api_versions)) && a.prefix.empty())
    usage("--prefix is required");
  if (!std::regex_match(a.prefix, std::regex("[A-Za-z0-9._-]*")))
    usage("the prefix may use only [A-Za-z0-9._-]");
  return a;
}

std::vector<scenario> all_scenarios() {
  std::vector<scenario> out;
  add_produce_scenarios(out);
  add_offsets_scenarios(out);
  add_group_scenarios(out);
  add_admin_scenarios(out);
  add_raw_scenarios(out);
  return out;
}

// Deletes every topic and group whose name starts with the prefix. Best effort, as a user's
// broker may refuse (delete.topic.enable=false, no DeleteGroups): it says what it left behind.
int cleanup(const arguments& a) {
  api_versions apis = api_versions::probe(a.bootstrap, a.timeout);
  admin client(a.bootstrap);
  int left = 0;
  auto starts = [&](const std::string& n) { return n.rfind(a.prefix, 0) == 0; };
  if (apis.has(api::delete_groups) && apis.has(api::list_groups)) {
    for (const std::string& g : client.list_groups()) {
      if (!starts(g)) continue;
      admin::topic_error e = client.delete_group(g);
      // A static member stays in its group until its session times out (KIP-345).
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (e.err == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        e = client.delete_group(g);
      }
      if (e.err) {
        std::cerr << "cleanup: group " << g << " not deleted: " << err_name(e.err) << "\n";
        ++left;
      }
    }
  } else {
    std::cerr << "cleanup: the broker does not advertise ListGroups and DeleteGroups; groups with "
                 "prefix "
              << a.prefix << " are left\n";
  }
  if (apis.has(api::delete_topics)) {
    for (const auto& [t, leaders] : client.topics()) {
      if (!starts(t)) continue;
      admin::topic_error e = client.delete_topic(t);
      if (e.err && e.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        std::cerr << "cleanup: topic " << t << " not deleted: " << err_name(e.err) << "\n";
        ++left;
      }
    }
  } else {
    std::cerr << "cleanup: the broker does not advertise DeleteTopics; topics with prefix "
              << a.prefix << " are left\n";
  }
  return left == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // A broker that closes a connection must not kill the runner (raw scenarios write to sockets
  // the broker may have closed on purpose).
  std::signal(SIGPIPE, SIG_IGN);
  arguments a = parse(argc, argv);
  std::vector<scenario> scenarios = all_scenarios();
  if (a.list) {
    for (const scenario& s : scenarios)
      std::cout << s.client << '/' << s.name << '\n';
    return 0;
  }
  try {
    if (a.print_api_versions) {
      std::cout << api_versions::probe(a.bootstrap, a.timeout).to_lines();
      return 0;
    }
    if (a.cleanup) return cleanup(a);
    if (!a.create_topic.empty()) {
      size_t colon = a.create_topic.rfind(':');
      if (colon == std::string::npos) usage("--create-topic takes NAME:PARTITIONS");
      std::string name = a.create_topic.substr(0, colon);
      if (name.rfind(a.prefix, 0) != 0)
        usage("--create-topic: the name must start with the prefix");
      context ctx("", a.bootstrap, "", api_versions::probe(a.bootstrap, a.timeout), a.timeout);
      // The partition count on stdout: a broker that auto-creates may give more than asked.
      std::cout << ctx.create_topic_named(name, std::stoi(a.create_topic.substr(colon + 1)))
                << std::endl;
      return 0;
    }
  } catch (const skipped& e) {
    std::cerr << "sluice-compat-suite: skipped: " << e.what() << "\n";
    return 77;
  } catch (const std::exception& e) {
    std::cerr << "sluice-compat-suite: " << e.what() << "\n";
    return 1;
  }

  api_versions apis;
  try {
    apis = a.api_versions_file.empty() ? api_versions::probe(a.bootstrap, a.timeout)
                                       : api_versions::load(a.api_versions_file);
  } catch (const std::exception& e) {
    std::cerr << "sluice-compat-suite: cannot learn the broker's API versions: " << e.what()
              << "\n";
    return 1;
  }

  std::regex only(a.only.empty() ? ".*" : a.only, std::regex::extended);
  int failed = 0;
  for (const scenario& s : scenarios) {
    std::string full = s.client + "/" + s.name;
    if (!std::regex_search(full, only)) continue;
    context ctx(s.client, a.bootstrap, a.prefix, apis, a.timeout);
    ctx.set_scenario(s.name);
    auto started = std::chrono::steady_clock::now();
    std::string line;
    try {
      s.run(ctx);
      line = "PASS " + full;
    } catch (const skipped& e) {
      line = "SKIP " + full + ": " + e.what();
    } catch (const std::exception& e) {
      line = "FAIL " + full + ": " + e.what();
      ++failed;
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    std::cerr << full << ": " << ms << " ms\n";
    std::cout << line << std::endl;
  }
  return failed == 0 ? 0 : 1;
}
