#!/usr/bin/env python3
"""The replication benchmarks of issue 12: a three-broker Sluice cluster on one etcd, beside a
standalone Sluice, in one run. Run through bench/cluster.sh, which builds the tools first.

Processes (all on 127.0.0.1, free ports, fresh data directories under --work-dir): one etcd
(Debian's), brokers 1, 2 and 3 joined through it (default.replication.factor=3; broker 1 starts
first so that it wins the controller election), and a standalone broker without etcd. Every one
is started here, stopped here by its PID (SIGTERM, SIGKILL after 20 s), and a broker stopped with
SIGSTOP gets SIGCONT before that.

Phases, in this order:

  propagation  N topics (1 partition, replication factor 3) created one at a time through
               broker 1 (CreateTopics) while brokers 2 and 3 are asked for the topic's Metadata in
               a loop, one request at a time on one connection each: the time from sending the
               CreateTopics until each broker shows the topic with its partition led.
  produce      sluice-load produce of M x 1 KiB to a fresh 6-partition topic, in turn: the
               standalone broker with acks=1 and with acks=all, the cluster (replication factor
               3, bootstrap = the three brokers) with acks=all and with acks=1; repetitions
               interleaved (the order rotates), medians. The CPU of every broker (and etcd) over
               each case is read from /proc.
  follower     what the leader pays to serve a follower against what it pays to serve a consumer,
               zero copy both: (a) a topic of 6 partitions all on broker 1 alone (replication
               factor 1, manual assignment) gets C bytes with acks=1, then a librdkafka consumer
               (sluice-load consume) reads it all and sluice-rawfetch reads C bytes of it with the
               follower's fetch sizes (10 MiB per response, 1 MiB per partition): broker 1's CPU
               per GB served. (b) A topic of 6 partitions each assigned [1, 2, 3] (broker 1
               leads all); broker 3 is stopped (SIGSTOP); C bytes are produced with acks=1;
               broker 2 is let catch up; then broker 3 is resumed (SIGCONT) and timed until its
               DescribeLogDirs sizes equal the leader's for every partition: broker 1's CPU over
               that interval is the cost of serving C bytes to one follower, with no produce
               going on. The same interval gives the catch-up time of C bytes.

Prints a summary, writes results.jsonl and summary.md. Standard library only.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenario import free_port, log, run_tool  # noqa: E402

FULL = {"reps": 3, "messages": 500000, "follower_bytes": 1 << 30, "propagation_topics": 20}
QUICK = {"reps": 1, "messages": 50000, "follower_bytes": 128 << 20, "propagation_topics": 5}
PARTITIONS = 6
SIZE = 1024


def cpu_s(pid):
    """utime + stime of every thread of pid, in seconds (schedstat ns; /proc/pid/stat fallback)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def resident(paths):
    """(resident bytes, total bytes) of files, from fincore (util-linux); None if unavailable."""
    paths = [p for p in paths if os.path.getsize(p) > 0]
    if not paths or not shutil.which("fincore"):
        return None
    p = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES,SIZE"] + paths,
                       capture_output=True, text=True)
    res = size = 0
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            res += int(parts[0])
            size += int(parts[1])
    return res, size


class Proc:
    """A process started here, its output to a file, stopped by its PID."""

    def __init__(self, name, cmd, log_path):
        self.name = name
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.stopped = False  # SIGSTOPped by us

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_for_line(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def sigstop(self):
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped = True

    def stop(self, timeout=20):
        if self.proc.poll() is not None:
            return {"exit_code": self.proc.returncode, "already_exited": True}
        if self.stopped:
            os.kill(self.pid, signal.SIGCONT)
            self.stopped = False
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        record = {}
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            record["killed"] = True
        record["stop_s"] = round(time.monotonic() - start, 3)
        record["exit_code"] = self.proc.returncode
        self.log_file.close()
        return record


class Bench:
    def __init__(self, args):
        self.args = args
        self.cfg = dict(QUICK if args.quick else FULL)
        if args.reps:
            self.cfg["reps"] = args.reps
        if args.messages:
            self.cfg["messages"] = args.messages
        if args.follower_bytes:
            self.cfg["follower_bytes"] = args.follower_bytes
        self.tools = os.path.join(args.build_dir, "bench")
        self.bin = os.path.join(args.build_dir, "sluice")
        self.out = args.out
        self.work = args.work_dir
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        self.clients_log = os.path.join(self.out, "logs", "clients.log")
        self.results = []
        self.file = open(os.path.join(self.out, "results.jsonl"), "w")
        self.live = []
        self.brokers = {}  # node id -> (Proc, port)
        self.problems = []
        self.warnings = []

    def tool(self, name):
        return os.path.join(self.tools, name)

    def record(self, phase, case, result):
        row = {"phase": phase, "case": case}
        row.update(result)
        self.results.append(row)
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        brief = {k: v for k, v in row.items()
                 if k not in ("phase", "case", "tool", "mode", "topic", "cmd")
                 and not isinstance(v, (dict, list))}
        log(f"  {phase:11} {case:24} {json.dumps(brief)[:300]}")
        if "error" in row:
            self.problems.append(f"{phase}/{case}: {row['error']}")
        return row

    def run(self, cmd, timeout):
        return run_tool(cmd, timeout, self.clients_log)

    # --- processes ------------------------------------------------------------------------------

    def start_etcd(self):
        self.etcd_port, peer = free_port(), free_port()
        while peer == self.etcd_port:
            peer = free_port()
        data = os.path.join(self.work, "etcd")
        url = f"http://127.0.0.1:{self.etcd_port}"
        purl = f"http://127.0.0.1:{peer}"
        cmd = ["etcd", "--name", "bench", "--data-dir", data,
               "--listen-client-urls", url, "--advertise-client-urls", url,
               "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
               "--initial-cluster", f"bench={purl}", "--initial-cluster-state", "new",
               "--log-level", "warn"]
        self.etcd = Proc("etcd", cmd, os.path.join(self.out, "logs", "etcd.log"))
        self.live.append(self.etcd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if b"true" in r.read():
                        return url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy; see logs/etcd.log")

    def start_broker(self, name, node_id, etcd_url=None):
        port = free_port()
        data = os.path.join(self.work, name)
        shutil.rmtree(data, ignore_errors=True)
        cmd = [self.bin, "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "--override", f"log.dirs={data}"]
        if etcd_url:
            cmd += ["--override", f"node.id={node_id}",
                    "--override", f"metadata.etcd.endpoints={etcd_url}",
                    "--override", f"metadata.etcd.prefix={self.prefix}",
                    "--override", "default.replication.factor=3"]
        p = Proc(name, cmd, os.path.join(self.out, "logs", f"{name}.log"))
        self.live.append(p)
        if not p.wait_for_line("listening on PLAINTEXT://", 60):
            raise RuntimeError(f"{name} did not log 'listening on'; see logs/{name}.log")
        p.port = port
        p.data = data
        p.address = f"127.0.0.1:{port}"
        return p

    def stop_all(self):
        records = {}
        # Brokers first (a clean shutdown revokes the lease in etcd), etcd last.
        for p in [x for x in self.live if x is not getattr(self, "etcd", None)] + \
                 [x for x in self.live if x is getattr(self, "etcd", None)]:
            records[p.name] = p.stop()
        self.live.clear()
        return records

    def cluster_cpu(self):
        return {name: cpu_s(p.pid) for name, p in self.named.items()}

    # --- tools ----------------------------------------------------------------------------------

    def create(self, broker, topic, assign=None, partitions=PARTITIONS):
        cmd = [self.tool("sluice-clusterprobe"), "create", "--brokers", broker.address,
               "--topic", topic, "--partitions", str(partitions)]
        if assign:
            cmd += ["--assign", assign]
        r = self.run(cmd, 90)
        if "error" in r:
            self.record("setup", f"create {topic}", r)
            raise RuntimeError(f"creating {topic} on {broker.name}: {r['error']}")
        return r

    def produce(self, bootstrap, topic, messages, acks, broker_pid, timeout=300):
        return self.run([self.tool("sluice-load"), "produce", "--brokers", bootstrap,
                         "--topic", topic, "--messages", str(messages), "--size", str(SIZE),
                         "--partitions", str(PARTITIONS), "--acks", acks,
                         "--broker-pid", str(broker_pid), "--timeout-s", str(timeout)],
                        timeout + 30)

    def logsize(self, broker, topic):
        r = self.run([self.tool("sluice-clusterprobe"), "logsize", "--brokers", broker.address,
                      "--topic", topic], 30)
        return r.get("bytes")

    def log_files(self, broker, topic):
        return sorted(glob.glob(os.path.join(broker.data, f"{topic}-*", "*.log")))

    # --- phases ---------------------------------------------------------------------------------

    def propagation(self):
        b1, b2, b3 = self.brokers[1], self.brokers[2], self.brokers[3]
        count = self.cfg["propagation_topics"]
        r = self.run([self.tool("sluice-clusterprobe"), "propagation", "--create-on", b1.address,
                      "--watch", f"{b2.address},{b3.address}", "--count", str(count),
                      "--prefix", "propagation", "--partitions", "1",
                      "--interval-us", str(self.args.propagation_interval_us),
                      "--timeout-s", str(30 + 20 * count)], 60 + 20 * count)
        # Rename the per-address keys to broker names.
        for b in (b2, b3):
            for k in list(r):
                if b.address in k:
                    r[k.replace("_" + b.address, "_" + b.name)] = r.pop(k)
        self.record("propagation", f"{count} topics", r)

    def produce_phase(self):
        reps, messages = self.cfg["reps"], self.cfg["messages"]
        single, b1 = self.single, self.brokers[1]
        bootstrap = ",".join(self.brokers[i].address for i in (1, 2, 3))
        cases = [("single acks=1", "1"), ("cluster acks=all", "all"),
                 ("cluster acks=1", "1"), ("single acks=all", "all")]
        for rep in range(1, reps + 1):
            shift = (rep - 1) % len(cases)
            for name, acks in cases[shift:] + cases[:shift]:
                is_cluster = name.startswith("cluster")
                topic = f"produce-{name.split()[0]}-{acks}-{rep}"
                self.create(b1 if is_cluster else single, topic)
                # A follower that fetches a new partition before its leader has created it gets
                # UNKNOWN_TOPIC_ID and tries again after replica.fetch.backoff.ms (1 s): wait that
                # out, so that an acks=all case does not time a follower's back-off.
                time.sleep(1.2)
                before = self.cluster_cpu()
                r = self.produce(bootstrap if is_cluster else single.address, topic, messages,
                                 acks, b1.pid if is_cluster else single.pid)
                after = self.cluster_cpu()
                r["rep"] = rep
                for k in before:
                    r[f"cpu_s_{k}"] = round(after[k] - before[k], 3)
                if is_cluster:
                    r["brokers_cpu_s"] = round(sum(r[f"cpu_s_b{i}"] for i in (1, 2, 3)), 3)
                else:
                    r["brokers_cpu_s"] = r["cpu_s_single"]
                self.record("produce", name, r)

    def follower_phase(self):
        b1, b2, b3 = self.brokers[1], self.brokers[2], self.brokers[3]
        volume = self.cfg["follower_bytes"]
        messages = volume // SIZE

        # (a) serving a consumer: replication factor 1, all on broker 1.
        topic = "serve-rf1"
        self.create(b1, topic, assign="1")
        r = self.produce(b1.address, topic, messages, "1", b1.pid)
        self.record("follower", "produce rf1 acks=1", r)
        log_bytes = self.logsize(b1, topic)
        res = resident(self.log_files(b1, topic))
        r = self.run([self.tool("sluice-load"), "consume", "--brokers", b1.address,
                      "--topic", topic, "--broker-pid", str(b1.pid), "--timeout-s", "300"], 330)
        r["log_bytes"] = log_bytes
        if res:
            r["resident_before_bytes"], r["file_bytes"] = res
        if log_bytes and r.get("broker_cpu_s") is not None:
            r["broker_cpu_s_per_log_gb"] = r["broker_cpu_s"] / (log_bytes / 1e9)
        self.record("follower", "consumer (librdkafka)", r)
        res = resident(self.log_files(b1, topic))
        r = self.run([self.tool("sluice-rawfetch"), "--brokers", b1.address,
                      "--topic", f"{topic}:{PARTITIONS}", "--bytes", str(volume),
                      "--max-bytes", str(10 << 20), "--partition-max-bytes", str(1 << 20),
                      "--broker-pid", str(b1.pid), "--timeout-s", "300"], 330)
        if res:
            r["resident_before_bytes"], r["file_bytes"] = res
        self.record("follower", "consumer (rawfetch)", r)

        # (b) serving a follower: every partition on [1, 2, 3], broker 1 leading.
        topic = "catchup-rf3"
        self.create(b1, topic, assign="1,2,3")
        time.sleep(1.5)  # past a first fetch's UNKNOWN_TOPIC_ID back-off (see produce_phase)
        stopped_at = time.monotonic()
        b3.sigstop()
        r = self.produce(b1.address, topic, messages, "1", b1.pid)
        self.record("follower", "produce rf3 acks=1, b3 stopped", r)
        # Broker 2 followed all along; wait until it has everything, so that what broker 1
        # serves during the measurement is broker 3's catch-up alone.
        r = self.run([self.tool("sluice-clusterprobe"), "catchup", "--leader", b1.address,
                      "--follower", b2.address, "--topic", topic, "--timeout-s", "120"], 150)
        self.record("follower", "b2 (followed live)", r)
        res = resident(self.log_files(b1, topic))
        b3_log_offset = len(b3.log_text())
        r = self.run([self.tool("sluice-clusterprobe"), "catchup", "--leader", b1.address,
                      "--follower", b3.address, "--topic", topic, "--resume-pid", str(b3.pid),
                      "--leader-pid", str(b1.pid), "--follower-pid", str(b3.pid),
                      "--timeout-s", "300"], 330)
        b3.stopped = False
        r["b3_stopped_s"] = round(time.monotonic() - stopped_at - r.get("elapsed_s", 0), 2)
        if res:
            r["leader_resident_before_bytes"], r["leader_file_bytes"] = res
        self.record("follower", "b3 catch-up (resumed)", r)
        time.sleep(1)
        lines = [l for l in b3.log_text()[b3_log_offset:].splitlines()
                 if "replica fetcher" in l or "lease" in l or "error" in l.lower()
                 or "warn" in l.lower()]
        with open(os.path.join(self.out, "b3-after-resume.log"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def check_disk(self):
        """Scales the follower phase down when the work directory's disk cannot hold the run."""
        st = os.statvfs(self.work)
        free = st.f_bavail * st.f_frsize
        produce = self.cfg["reps"] * self.cfg["messages"] * SIZE * (1 + 1 + 3 + 3)
        need = lambda fb: 1.1 * (produce + fb * (1 + 3))  # noqa: E731 - rf1 once, rf3 three times
        wanted = self.cfg["follower_bytes"]
        while self.cfg["follower_bytes"] > (64 << 20) and need(self.cfg["follower_bytes"]) * 2 > free:
            self.cfg["follower_bytes"] //= 2
        log(f"disk: {free / 1e9:.1f} GB free in {self.work}; the run writes about "
            f"{need(self.cfg['follower_bytes']) / 1e9:.1f} GB")
        if self.cfg["follower_bytes"] != wanted:
            log(f"follower phase scaled down to {self.cfg['follower_bytes']} bytes for the disk")
        if need(self.cfg["follower_bytes"]) > free:
            raise RuntimeError(f"not enough disk in {self.work}: {free / 1e9:.1f} GB free")
        self.record("setup", "disk", {"free_bytes": free, "follower_bytes": self.cfg["follower_bytes"],
                                      "messages": self.cfg["messages"], "reps": self.cfg["reps"]})

    def execute(self):
        started = time.monotonic()
        self.check_disk()
        self.prefix = f"/bench-cluster-{os.getpid()}-{int(time.time())}"
        etcd_url = self.start_etcd()
        log(f"etcd at {etcd_url}, prefix {self.prefix}")
        for i in (1, 2, 3):
            self.brokers[i] = self.start_broker(f"b{i}", i, etcd_url)
        self.single = self.start_broker("single", 1)
        self.named = {"b1": self.brokers[1], "b2": self.brokers[2], "b3": self.brokers[3],
                      "etcd": self.etcd, "single": self.single}
        log("pids: " + ", ".join(f"{k} {p.pid} ({getattr(p, 'address', etcd_url)})"
                                 for k, p in self.named.items()))
        phases = self.args.phases.split(",")
        try:
            if "propagation" in phases:
                self.propagation()
            if "produce" in phases:
                self.produce_phase()
            if "follower" in phases:
                self.follower_phase()
        finally:
            cpu = self.cluster_cpu()
            stops = self.stop_all()
            self.record("teardown", "stop", {"stops": stops, "cpu_s_total": cpu,
                                             "elapsed_s": round(time.monotonic() - started, 1)})
        for p in self.named.values():
            lines = p.log_text().splitlines()
            bad = [l for l in lines if " ERROR " in l or "FATAL" in l]
            if bad:
                self.problems.append(f"{p.name}: {len(bad)} error lines, first: {bad[0][:300]}")
            warn = [l for l in lines if " WARN " in l]
            if warn:
                self.warnings.append(f"{p.name}: {len(warn)} WARN lines; first: {warn[0][:300]}")


def med(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def report(bench):
    rows = bench.results
    out = ["# Cluster benchmark", ""]
    prod = [r for r in rows if r["phase"] == "produce"]
    if prod:
        out += [f"## Produce: {bench.cfg['messages']:,} x {SIZE} B, {PARTITIONS} partitions "
                f"(medians of {bench.cfg['reps']})", "",
                "| case | msgs/s | MB/s | latency p50 / p99 ms | CPU s/GB: b1 or single / all "
                "brokers | etcd CPU s |", "|---|---:|---:|---:|---:|---:|"]
        by = {}
        for r in prod:
            by.setdefault(r["case"], []).append(r)
        for case in ("single acks=1", "single acks=all", "cluster acks=1", "cluster acks=all"):
            rs = by.get(case, [])
            if not rs:
                continue
            gb = bench.cfg["messages"] * SIZE / 1e9
            out.append(f"| {case} | {fmt(med(rs, 'msgs_per_s'))} | {fmt(med(rs, 'mb_per_s'))} | "
                       f"{fmt(med(rs, 'lat_p50_ms'))} / {fmt(med(rs, 'lat_p99_ms'))} | "
                       f"{fmt(med(rs, 'broker_cpu_s_per_gb'))} / "
                       f"{fmt((med(rs, 'brokers_cpu_s') or 0) / gb)} | "
                       f"{fmt(med(rs, 'cpu_s_etcd'))} |")
        out += ["", "Per repetition, in the order run: msgs/s (CPU s/GB of all brokers)", ""]
        for rep in sorted({r["rep"] for r in prod}):
            gb = bench.cfg["messages"] * SIZE / 1e9
            out.append(f"- rep {rep}: " + "; ".join(
                f"{r['case']} {fmt(r.get('msgs_per_s'))} ({fmt(r.get('brokers_cpu_s', 0) / gb)})"
                for r in prod if r["rep"] == rep))
        a, b = by.get("cluster acks=all", []), by.get("single acks=1", [])
        if a and b:
            ratios = []
            for ra in a:
                rb = [x for x in b if x["rep"] == ra["rep"]]
                if rb and ra.get("msgs_per_s") and rb[0].get("msgs_per_s"):
                    ratios.append(ra["msgs_per_s"] / rb[0]["msgs_per_s"])
            ratio = med(a, "msgs_per_s") / med(b, "msgs_per_s")
            out += ["", f"Replicated acks=all / single acks=1 (medians): **{ratio:.3f}x** "
                    f"(per repetition: {', '.join(f'{x:.2f}' for x in ratios)}); target >= 0.5x: "
                    f"{'met' if ratio >= 0.5 else 'NOT met'}"]
    fol = {r["case"]: r for r in rows if r["phase"] == "follower"}
    cu = fol.get("b3 catch-up (resumed)")
    if cu:
        out += ["", "## Follower cost and catch-up", "",
                "| what | bytes | s | MB/s | broker 1 CPU s | broker 1 CPU s/GB | page cache "
                "resident before |", "|---|---:|---:|---:|---:|---:|---:|"]
        c = fol.get("consumer (librdkafka)", {})
        rf = fol.get("consumer (rawfetch)", {})

        def resid(r, k="resident_before_bytes", t="file_bytes"):
            return f"{100 * r[k] / r[t]:.0f}%" if r.get(t) else "-"
        if c:
            out.append(f"| consumer (librdkafka), RF 1 topic on broker 1 | {fmt(c.get('log_bytes'))}"
                       f" | {fmt(c.get('elapsed_s'))} | {fmt(c.get('mb_per_s'))} | "
                       f"{fmt(c.get('broker_cpu_s'))} | {fmt(c.get('broker_cpu_s_per_log_gb'))} | "
                       f"{resid(c)} |")
        if rf:
            out.append(f"| consumer (sluice-rawfetch, 10 MiB / 1 MiB per fetch) | "
                       f"{fmt(rf.get('record_bytes'))} | {fmt(rf.get('elapsed_s'))} | "
                       f"{fmt((rf.get('gb_per_s') or 0) * 1000)} | {fmt(rf.get('broker_cpu_s'))} | "
                       f"{fmt(rf.get('broker_cpu_s_per_gb'))} | {resid(rf)} |")
        out.append(f"| follower broker 3 catching up (SIGCONT to equal sizes) | "
                   f"{fmt(cu.get('bytes'))} | {fmt(cu.get('elapsed_s'))} | {fmt(cu.get('mb_per_s'))}"
                   f" | {fmt(cu.get('leader_cpu_s'))} | {fmt(cu.get('leader_cpu_s_per_gb'))} | "
                   f"{resid(cu, 'leader_resident_before_bytes', 'leader_file_bytes')} |")
        out += ["", f"Follower CPU during its catch-up: {fmt(cu.get('follower_cpu_s'))} s "
                f"({fmt(cu.get('follower_cpu_s_per_gb'))} s/GB); broker 3 was stopped "
                f"{cu.get('b3_stopped_s')} s before SIGCONT; its first DescribeLogDirs answer came "
                f"{fmt(cu.get('first_answer_ms'))} ms after SIGCONT."]
        if c.get("broker_cpu_s_per_log_gb") and cu.get("leader_cpu_s_per_gb"):
            r1 = cu["leader_cpu_s_per_gb"] / c["broker_cpu_s_per_log_gb"]
            line = f"Leader CPU per GB, follower / librdkafka consumer: **{r1:.2f}x**"
            if rf.get("broker_cpu_s_per_gb"):
                line += f"; follower / rawfetch: {cu['leader_cpu_s_per_gb'] / rf['broker_cpu_s_per_gb']:.2f}x"
            out += ["", line + f"; target <= 1.5x: {'met' if r1 <= 1.5 else 'NOT met'}"]
    pr = [r for r in rows if r["phase"] == "propagation"]
    if pr:
        p = pr[0]
        out += ["", f"## Propagation: {p.get('topics')} topics created through broker 1 "
                f"(controller: broker {p.get('controller')})", "",
                "| | median ms | max ms |", "|---|---:|---:|"]
        for k, label in (("answer", "CreateTopics answered by broker 1"),
                         ("visible_b2", "visible on broker 2"), ("visible_b3", "visible on broker 3"),
                         ("visible_all", "visible, brokers 2 and 3 together"),
                         ("last_visible_after_answer", "last of 2 and 3 visible, after the answer")):
            out.append(f"| {label} | {fmt(p.get(k + '_p50_ms'))} | {fmt(p.get(k + '_max_ms'))} |")
    if bench.problems:
        out += ["", "## Problems", ""] + [f"- {x}" for x in bench.problems]
    if bench.warnings:
        out += ["", "## Warnings in the brokers' logs", ""] + [f"- {x}" for x in bench.warnings]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--follower-bytes", type=int, default=0)
    ap.add_argument("--propagation-interval-us", type=int, default=0)
    ap.add_argument("--phases", default="propagation,produce,follower")
    args = ap.parse_args()
    if not shutil.which("etcd"):
        sys.exit("cluster.py: etcd is missing (Debian: apt-get install etcd-server)")
    bench = Bench(args)

    def on_signal(signo, _):
        bench.stop_all()
        sys.exit(128 + signo)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        bench.execute()
    except Exception as e:  # noqa: BLE001 - report, then still write what was measured
        bench.problems.append(f"aborted: {e}")
        bench.stop_all()
    text = report(bench)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main())
