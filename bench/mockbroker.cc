// sluice-mockbroker: librdkafka's mock cluster (rdkafka_mock.h) as a standalone process, the peer
// Sluice is compared with in bench/run.sh.
//
//   sluice-mockbroker [--brokers N] [--topic NAME:PARTITIONS ...]
//
// Prints its bootstrap address ("127.0.0.1:PORT") as the first line on stdout, then serves until
// SIGINT or SIGTERM and exits 0. The mock keeps every record batch in memory and answers on one
// thread per cluster; it does not check CRCs and answers a Fetch with at most one stored batch per
// partition (librdkafka 2.0.2), which is what it is: a well-known, in-memory, no-durability
// reference point rather than a production broker.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "bench/common.h"

namespace {
constexpr std::string_view tool = "sluice-mockbroker";
}

int main(int argc, char** argv) {
  using namespace sluice::bench;
  try {
    options o(argc, argv, {"brokers", "topic"});
    const int brokers = static_cast<int>(o.i64("brokers", 1));

    // Block the stop signals before librdkafka starts threads, so that only sigwait sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The handle only hosts the cluster; it never connects anywhere.
    if (rd_kafka_conf_set(conf, "client.id", "sluice-mockbroker", err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
      fail(tool, "", err);
    }
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) fail(tool, "", std::string("rd_kafka_new: ") + err);
    rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, brokers);
    if (cluster == nullptr) fail(tool, "", "rd_kafka_mock_cluster_new failed");

    for (const std::string& spec : o.all("topic")) {
      size_t colon = spec.rfind(':');
      std::string name = spec.substr(0, colon);
      int partitions = colon == std::string::npos ? 1 : std::stoi(spec.substr(colon + 1));
      if (rd_kafka_resp_err_t e =
              rd_kafka_mock_topic_create(cluster, name.c_str(), partitions, 1)) {
        fail(tool, "", "topic " + name + ": " + rd_kafka_err2str(e));
      }
    }

    std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    std::fflush(stdout);

    int signo = 0;
    sigwait(&stop_signals, &signo);
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(rk);
    return 0;
  } catch (const std::exception& e) {
    fail(tool, "", e.what());
  }
}
