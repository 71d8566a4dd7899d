// sluice-reassign: moves partitions between the brokers of a cluster (KIP-455's
// AlterPartitionReassignments and ListPartitionReassignments, v0), for those without Kafka's
// kafka-reassign-partitions.sh, which needs a JVM. Any broker takes the requests and forwards them
// to the controller.
//
//   sluice-reassign --bootstrap-server HOST:PORT[,...] --execute TOPIC:PARTITION=ID,ID... ...
//   sluice-reassign --bootstrap-server HOST:PORT[,...] --cancel TOPIC:PARTITION ...
//   sluice-reassign --bootstrap-server HOST:PORT[,...] --list [TOPIC:PARTITION ...]
//
// --execute starts each reassignment and returns (the new replicas catch up in the background);
// --list shows those still in progress, every one or the partitions named; --cancel puts the
// partitions back on their replicas from before. Exit status 0 when every partition was
// accepted, 1 when one was refused, 2 on a usage or connection error.
//
// Built from the compat tests' raw protocol helpers (raw_kafka.h), which share nothing with the
// broker's codec.

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compat_tests/raw_kafka.h"

namespace {

using sluice::compat::bytes;

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "sluice-reassign: " << why << "\n"
            << "usage: sluice-reassign --bootstrap-server HOST:PORT[,...]\n"
            << "         (--execute TOPIC:PARTITION=ID,ID... ... | --cancel TOPIC:PARTITION ... |\n"
            << "          --list [TOPIC:PARTITION ...])\n";
  std::exit(2);
}

int32_t number(std::string_view text, const std::string& arg) {
  int32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    usage("not a number in " + arg);
  }
  return value;
}

// TOPIC:PARTITION[=ID,ID...]; the topic may itself contain ':' (it is split at the last one).
sluice::compat::reassignment_target parse_target(const std::string& arg, bool with_replicas) {
  const size_t eq = arg.find('=');
  if (with_replicas != (eq != std::string::npos)) {
    usage(with_replicas ? "no =REPLICAS in " + arg : "unexpected =REPLICAS in " + arg);
  }
  const std::string tp = arg.substr(0, eq);
  const size_t colon = tp.rfind(':');
  if (colon == std::string::npos || colon == 0) usage("not TOPIC:PARTITION: " + arg);
  sluice::compat::reassignment_target t;
  t.topic = tp.substr(0, colon);
  t.partition = number(std::string_view(tp).substr(colon + 1), arg);
  if (with_replicas) {
    t.replicas.emplace();
    std::string_view ids = std::string_view(arg).substr(eq + 1);
    while (!ids.empty()) {
      const size_t comma = ids.find(',');
      t.replicas->push_back(number(ids.substr(0, comma), arg));
      ids = comma == std::string_view::npos ? std::string_view() : ids.substr(comma + 1);
    }
  }
  return t;
}

// Sends `request` to the first bootstrap broker that answers; its response body (header v1).
bytes ask(const std::string& bootstrap, const bytes& request) {
  std::string_view rest = bootstrap;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string address(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) usage("not HOST:PORT: " + address);
    try {
      sluice::compat::raw_connection conn(
          address.substr(0, colon),
          static_cast<uint16_t>(number(address.substr(colon + 1), address)));
      bytes payload = sluice::compat::round_trip(conn, request, std::chrono::seconds(70));
      auto body = sluice::compat::split_response(payload, true).body;
      return bytes(body.begin(), body.end());
    } catch (const std::exception& e) {
      std::cerr << "sluice-reassign: " << address << ": " << e.what() << "\n";
    }
  }
  std::cerr << "sluice-reassign: no broker of " << bootstrap << " answered\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string bootstrap;
  std::string mode;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--bootstrap-server") {
      if (++i == argc) usage("--bootstrap-server needs a value");
      bootstrap = argv[i];
    } else if (a == "--execute" || a == "--cancel" || a == "--list") {
      if (!mode.empty()) usage("one of --execute, --cancel, --list");
      mode = a;
    } else {
      args.push_back(a);
    }
  }
  if (bootstrap.empty()) usage("--bootstrap-server is required");
  if (mode.empty()) usage("one of --execute, --cancel, --list is required");
  constexpr int32_t timeout_ms = 60000;

  if (mode == "--list") {
    std::optional<std::map<std::string, std::vector<int32_t>>> which;
    for (const std::string& a : args) {
      auto t = parse_target(a, false);
      if (!which) which.emplace();
      (*which)[t.topic].push_back(t.partition);
    }
    bytes body = ask(bootstrap,
                     sluice::compat::list_partition_reassignments_v0_request(1, which, timeout_ms));
    auto listed = sluice::compat::parse_list_partition_reassignments_v0(body);
    if (listed.error_code != 0) {
      std::cout << "error " << listed.error_code << ": " << listed.error_message.value_or("")
                << "\n";
      return 1;
    }
    if (listed.partitions.empty()) std::cout << "no reassignment in progress\n";
    for (const auto& p : listed.partitions) {
      std::cout << p.topic << "-" << p.partition << ": replicas " << sluice::compat::ids(p.replicas)
                << " adding " << sluice::compat::ids(p.adding) << " removing "
                << sluice::compat::ids(p.removing) << "\n";
    }
    return 0;
  }

  if (args.empty()) usage(mode + " needs at least one partition");
  std::vector<sluice::compat::reassignment_target> targets;
  for (const std::string& a : args)
    targets.push_back(parse_target(a, mode == "--execute"));
  bytes body = ask(
      bootstrap, sluice::compat::alter_partition_reassignments_v0_request(1, targets, timeout_ms));
  auto answer = sluice::compat::parse_alter_partition_reassignments_v0(body);
  int status = answer.error_code == 0 ? 0 : 1;
  for (const auto& r : answer.results) {
    std::cout << r.topic << "-" << r.partition << ": ";
    if (r.error_code == 0) {
      std::cout << (mode == "--execute" ? "accepted" : "cancelled") << "\n";
      continue;
    }
    status = 1;
    std::cout << "error " << r.error_code << ": " << r.message.value_or("") << "\n";
  }
  return status;
}
