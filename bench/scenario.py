#!/usr/bin/env python3
"""The standard benchmark scenario: Sluice against librdkafka's mock cluster, side by side.

Run through bench/run.sh, which builds the tools first. For each repetition the two brokers take
turns (Sluice first in odd repetitions, the mock first in even ones), so that machine noise hits
both alike; each turn starts a fresh broker, runs every case in order and stops it:

  produce_100b  produce 2M x 100 B, acks=1, 4 partitions            (sluice-load produce)
  produce_1k    produce 200k x 1 KiB, acks=all, 4 partitions         (sluice-load produce)
  consume_100b  consume the 100 B topic from the beginning to the end (sluice-load consume)
  consume_1k    consume the 1 KiB topic from the beginning to the end (sluice-load consume)
  rawfetch      fetch 1 GiB from both topics, bytes discarded         (sluice-rawfetch)
  e2e           10,000 msgs/s for 10 s, 100 B, acks=1, linger.ms=0   (sluice-load e2e)

Each repetition also runs the zero-copy experiment (sluice-zerocopy) and Sluice's start-up probe
(empty data directory, and 1,000 partitions). Once per run (not with --quick) the scale case
loads one broker with thousands of partitions and 1,000 connections.

Prints medians over the repetitions, the Sluice/mock ratios and the issue-3 targets; writes every
result line to results.jsonl, the tables to summary.md and the brokers' logs (capped) to logs/.
Standard library only.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

LOG_CAP_BYTES = 2 << 20  # per broker log file: a broker that logs in a loop must not fill the disk

FULL = {
    "reps": 3,
    "produce_100b": {"messages": "2000000", "size": "100"},
    "produce_1k": {"messages": "200000", "size": "1024"},
    "rawfetch_bytes": "1GiB",
    "e2e_seconds": "10",
    "zerocopy_bytes": "1GiB",
    "startup_partitions": 1000,
    "scale": True,
}
QUICK = {
    "reps": 1,
    "produce_100b": {"messages": "200000", "size": "100"},
    "produce_1k": {"messages": "20000", "size": "1024"},
    "rawfetch_bytes": "256MiB",
    "e2e_seconds": "3",
    "zerocopy_bytes": "256MiB",
    "startup_partitions": 1000,
    "scale": False,
}
PARTITIONS = 4
TOPICS = ["bench-100b", "bench-1k", "bench-e2e"]


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class CappedLog:
    """Copies a pipe to a file, keeping the first LOG_CAP_BYTES and counting what is dropped."""

    def __init__(self, pipe, path):
        self.path = path
        self.dropped_lines = 0
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe):
        written = 0
        with open(self.path, "ab") as out:
            for line in iter(pipe.readline, b""):
                if written + len(line) <= LOG_CAP_BYTES:
                    out.write(line)
                    written += len(line)
                else:
                    self.dropped_lines += 1
            if self.dropped_lines:
                out.write(f"[... {self.dropped_lines} more lines dropped]\n".encode())


class Broker:
    name = "?"

    def __init__(self):
        self.proc = None
        self.bootstrap = None
        self.logger = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else -1

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL after `timeout`; returns the stop record."""
        if not self.proc:
            return {}
        record = {"peak_rss_kb": rss_kb(self.pid, "VmHWM")}
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            record["killed"] = True
        record["stop_s"] = time.monotonic() - start
        record["exit_code"] = self.proc.returncode
        if self.logger:
            self.logger.thread.join(5)
            record["log_lines_dropped"] = self.logger.dropped_lines
        self.proc = None
        return record


class Sluice(Broker):
    name = "sluice"

    def __init__(self, binary, data_dir, log_path, overrides=()):
        super().__init__()
        port = free_port()
        cmd = [binary,
               "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "--override", f"log.dirs={data_dir}",
               "--override", f"num.partitions={PARTITIONS}"]
        for o in overrides:
            cmd += ["--override", o]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.logger = CappedLog(self.proc.stderr, log_path)
        self.bootstrap = f"127.0.0.1:{port}"
        if not wait_listening(port, 30):
            self.stop()
            raise RuntimeError(f"sluice did not start listening; see {log_path}")


class Mock(Broker):
    name = "mock"

    def __init__(self, binary, log_path):
        super().__init__()
        cmd = [binary] + [a for t in TOPICS for a in ("--topic", f"{t}:{PARTITIONS}")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.logger = CappedLog(self.proc.stderr, log_path)
        line = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(15)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError(f"sluice-mockbroker printed no bootstrap address; see {log_path}")
        self.bootstrap = line[0].decode().strip()


def run_tool(cmd, timeout, log_path):
    """Runs one tool; returns its JSON result line (or an error record)."""
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return {"error": f"killed after {timeout} s", "cmd": " ".join(cmd),
                "stderr_tail": (e.stderr or b"")[-500:].decode(errors="replace")}
    with open(log_path, "ab") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.write(p.stderr[-LOG_CAP_BYTES:])
    for line in reversed(p.stdout.decode(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    return {"error": f"no result line (exit {p.returncode})", "cmd": " ".join(cmd)}


class Scenario:
    def __init__(self, args):
        self.args = args
        self.cfg = QUICK if args.quick else FULL
        self.reps = args.reps or self.cfg["reps"]
        self.tools = os.path.join(args.build_dir, "bench")
        self.sluice_bin = os.path.join(args.build_dir, "sluice")
        self.out = args.out
        self.work = args.work_dir
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        self.results = []
        self.results_file = open(os.path.join(self.out, "results.jsonl"), "w")
        self.live = []

    def tool(self, name):
        return os.path.join(self.tools, name)

    def record(self, rep, broker, case, result):
        row = {"rep": rep, "broker": broker, "case": case}
        row.update(result)
        self.results.append(row)
        self.results_file.write(json.dumps(row) + "\n")
        self.results_file.flush()
        brief = {k: row.get(k) for k in ("msgs_per_s", "mb_per_s", "gb_per_s", "lat_p99_ms",
                                          "broker_cpu_s_per_gb", "start_connect_ms",
                                          "idle_rss_kb", "error") if row.get(k) is not None}
        log(f"  rep {rep} {broker:6} {case:14} {json.dumps(brief)}")

    # --- the broker turn: every case against one fresh broker -----------------------------------

    def broker_turn(self, rep, kind):
        logs = os.path.join(self.out, "logs")
        if kind == "sluice":
            data = os.path.join(self.work, f"sluice-rep{rep}")
            shutil.rmtree(data, ignore_errors=True)
            b = Sluice(self.sluice_bin, data, os.path.join(logs, f"sluice-rep{rep}.log"),
                       self.args.sluice_override)
        else:
            data = None
            b = Mock(self.tool("sluice-mockbroker"), os.path.join(logs, f"mock-rep{rep}.log"))
        self.live.append(b)
        try:
            time.sleep(0.5)
            self.record(rep, kind, "idle", {"idle_rss_kb": rss_kb(b.pid)})
            client_log = os.path.join(logs, f"clients-{kind}-rep{rep}.log")
            common = ["--brokers", b.bootstrap, "--broker-pid", str(b.pid)]
            load = self.tool("sluice-load")
            p100 = self.cfg["produce_100b"]
            p1k = self.cfg["produce_1k"]
            cases = [
                ("produce_100b", [load, "produce", "--topic", "bench-100b", "--messages",
                                  p100["messages"], "--size", p100["size"], "--partitions",
                                  str(PARTITIONS), "--acks", "1"]),
                ("produce_1k", [load, "produce", "--topic", "bench-1k", "--messages",
                                p1k["messages"], "--size", p1k["size"], "--partitions",
                                str(PARTITIONS), "--acks", "all"]),
                ("consume_100b", [load, "consume", "--topic", "bench-100b"]),
                ("consume_1k", [load, "consume", "--topic", "bench-1k"]),
                ("rawfetch", [self.tool("sluice-rawfetch"), "--topic", f"bench-100b:{PARTITIONS}",
                              "--topic", f"bench-1k:{PARTITIONS}", "--bytes",
                              self.cfg["rawfetch_bytes"], "--version", "11"]),
                ("e2e", [load, "e2e", "--topic", "bench-e2e", "--rate", "10000", "--duration-s",
                         self.cfg["e2e_seconds"], "--warmup-s", "2", "--size", "100",
                         "--partitions", str(PARTITIONS), "--acks", "1", "--linger-ms", "0"]),
            ]
            for case, cmd in cases:
                res = run_tool(cmd + common + ["--timeout-s", "150"], 180, client_log)
                if data and case.startswith("produce"):
                    res["broker_data_bytes"] = dir_bytes(data)
                self.record(rep, kind, case, res)
        finally:
            stop = b.stop()
            self.live.remove(b)
            self.record(rep, kind, "stop", stop)
            if data:
                shutil.rmtree(data, ignore_errors=True)

    # --- zero copy, start-up, scale -------------------------------------------------------------

    def zerocopy(self, rep):
        cmd = [self.tool("sluice-zerocopy"), "--dir", self.work, "--reps", "1", "--bytes",
               self.cfg["zerocopy_bytes"]]
        for drain, methods in (("copy", "read+write,mmap+write,sendfile,splice,sendfile*2,"
                                        "sendfile*4,ingest,ingest+pwrite,ingest+prealloc+pwrite,"
                                        "ingest+crc+pwrite"),
                               ("trunc", "sendfile")):
            p = subprocess.run(cmd + ["--drain", drain, "--methods", methods],
                               capture_output=True, timeout=300)
            for line in p.stdout.decode().splitlines():
                if line.startswith("{"):
                    r = json.loads(line)
                    self.record(rep, "machine", f"zc {r.get('method')}*{r.get('connections')} "
                                                f"{r.get('drain')}", r)
        # The ingest runs leave GBs of dirty pages: write them back now, not during the brokers'.
        os.sync()

    def prepare_partitions_dir(self, partitions):
        """A data directory holding one topic of `partitions` partitions, cleanly shut down."""
        data = os.path.join(self.work, f"sluice-{partitions}p")
        shutil.rmtree(data, ignore_errors=True)
        b = Sluice(self.sluice_bin, data, os.path.join(self.out, "logs", "prepare.log"),
                   [f"num.partitions={partitions}"])
        self.live.append(b)
        try:
            res = run_tool([self.tool("sluice-probe"), "metadata", "--brokers", b.bootstrap,
                            "--topics", "many", "--timeout-s", "120"], 150,
                           os.path.join(self.out, "logs", "prepare.log"))
        finally:
            b.stop()
            self.live.remove(b)
        res["partition_dirs"] = sum(1 for d in os.listdir(data) if d.startswith("many-"))
        return data, res

    def startup(self, rep, dirs):
        """Start-up probes. A populated directory is started twice: first after everything else
        this repetition did (its metadata may have left the caches), then again at once."""
        for label, data in dirs:
            runs = [label] if data is None else [f"{label}_first", f"{label}_again"]
            if data is None:
                data = os.path.join(self.work, f"sluice-empty-rep{rep}")
                shutil.rmtree(data, ignore_errors=True)
            for case in runs:
                port = free_port()
                cmd = [self.tool("sluice-probe"), "startup", "--port", str(port), "--idle-ms",
                       "1000", "--log", os.path.join(self.out, "logs", "startup.log"), "--",
                       self.sluice_bin, "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                       "--override", f"log.dirs={data}"]
                res = run_tool(cmd, 120, os.path.join(self.out, "logs", "startup.log"))
                self.record(rep, "sluice", f"startup_{case}", res)
            if label == "empty":
                shutil.rmtree(data, ignore_errors=True)

    def scale(self):
        """Thousands of partitions and 1,000 connections on one broker: memory and service."""
        logs = os.path.join(self.out, "logs")
        data = os.path.join(self.work, "sluice-scale")
        shutil.rmtree(data, ignore_errors=True)
        b = Sluice(self.sluice_bin, data, os.path.join(logs, "scale.log"),
                   ["num.partitions=1000"])
        self.live.append(b)
        probe = self.tool("sluice-probe")
        made = 0
        try:
            time.sleep(0.3)
            steps = [{"partitions": 0, "rss_kb": rss_kb(b.pid), "fds": fd_count(b.pid),
                      "after_connections": False}]
            topic = 0
            connected = False

            def add_topic():
                """1,000 more partitions; False when the broker could not create them all."""
                nonlocal topic
                res = run_tool([probe, "metadata", "--brokers", b.bootstrap, "--topics",
                                f"scale{topic}", "--broker-pid", str(b.pid)], 180,
                               os.path.join(logs, "scale-clients.log"))
                topic += 1
                count = sum(1 for d in os.listdir(data) if d.startswith("scale"))
                steps.append({"partitions": count, "rss_kb": rss_kb(b.pid),
                              "fds": fd_count(b.pid), "create_ms": res.get("elapsed_ms"),
                              "error": res.get("error"), "after_connections": connected})
                log(f"  scale: {count} partitions, rss {steps[-1]['rss_kb']} KiB, "
                    f"fds {steps[-1]['fds']}")
                return count == 1000 * topic

            # 10,000 partitions first, then the 1,000 connections on top of them.
            while topic < 10 and add_topic():
                pass
            made = steps[-1]["partitions"]
            conns = run_tool([probe, "connections", "--brokers", b.bootstrap, "--count", "1000",
                              "--broker-pid", str(b.pid)], 180,
                             os.path.join(logs, "scale-clients.log"))
            conns["partitions"] = made
            connected = True
            self.record(0, "sluice", "scale_connections", conns)
            md = run_tool([probe, "metadata", "--brokers", b.bootstrap, "--broker-pid",
                           str(b.pid)], 120, os.path.join(logs, "scale-clients.log"))
            md["partitions"] = made
            self.record(0, "sluice", "scale_metadata_all", md)
            load = self.tool("sluice-load")
            common = ["--brokers", b.bootstrap, "--broker-pid", str(b.pid), "--timeout-s", "120"]
            self.record(0, "sluice", "scale_produce", run_tool(
                [load, "produce", "--topic", "scale0", "--messages", "200000", "--size", "100",
                 "--partitions", "4", "--acks", "1"] + common, 150,
                os.path.join(logs, "scale-clients.log")))
            self.record(0, "sluice", "scale_consume", run_tool(
                [load, "consume", "--topic", "scale0"] + common, 150,
                os.path.join(logs, "scale-clients.log")))
            self.record(0, "sluice", "scale_partitions", {"steps": steps,
                                                          "nofile_limit": nofile_limit()})
        finally:
            stop = b.stop(60)
            self.live.remove(b)
            self.record(0, "sluice", "scale_stop", stop)
        # Restarting with every partition: the start-up probe on the same directory.
        port = free_port()
        res = run_tool([probe, "startup", "--port", str(port), "--timeout-s", "60", "--log",
                        os.path.join(logs, "scale.log"), "--", self.sluice_bin, "--override",
                        f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override",
                        f"log.dirs={data}"], 150, os.path.join(logs, "scale-clients.log"))
        res["partitions"] = made
        self.record(0, "sluice", "scale_restart", res)
        shutil.rmtree(data, ignore_errors=True)

    def run(self):
        started = time.monotonic()
        phases = set(self.args.phases.split(","))
        if not self.cfg["scale"] or self.args.skip_scale:
            phases.discard("scale")
        dirs = [("empty", None)]
        data_1000 = None
        try:
            if "startup" in phases:
                data_1000, prep = self.prepare_partitions_dir(self.cfg["startup_partitions"])
                self.record(0, "sluice", "prepare_partitions", prep)
                dirs.append((f"{self.cfg['startup_partitions']}", data_1000))
            for rep in range(1, self.reps + 1):
                log(f"repetition {rep}/{self.reps}")
                if "zerocopy" in phases:
                    self.zerocopy(rep)
                if "brokers" in phases:
                    order = ["sluice", "mock"] if rep % 2 == 1 else ["mock", "sluice"]
                    for kind in order:
                        self.broker_turn(rep, kind)
                if "startup" in phases:
                    self.startup(rep, dirs)
            if "scale" in phases:
                log("scale")
                self.scale()
        finally:
            for b in list(self.live):
                b.stop(5)
            if data_1000:
                shutil.rmtree(data_1000, ignore_errors=True)
        elapsed = time.monotonic() - started
        text = report(self.results, self.reps, elapsed, self.args.quick)
        with open(os.path.join(self.out, "summary.md"), "w") as f:
            f.write(text)
        print(text)


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def nofile_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the report ---------------------------------------------------------------------------------

def median_of(results, broker, case, key):
    values = [r[key] for r in results if r["broker"] == broker and r["case"] == case
              and isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def errors_of(results):
    return [r for r in results if r.get("error")]


def fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}g}"


COMPARED = [
    ("produce_100b", "produce 100 B acks=1", ["msgs_per_s", "mb_per_s", "lat_p50_ms", "lat_p99_ms",
                                             "broker_cpu_s_per_gb", "client_cpu_s_per_gb"]),
    ("produce_1k", "produce 1 KiB acks=all", ["msgs_per_s", "mb_per_s", "lat_p50_ms", "lat_p99_ms",
                                             "broker_cpu_s_per_gb", "client_cpu_s_per_gb"]),
    ("consume_100b", "consume 100 B topic", ["messages", "msgs_per_s", "mb_per_s",
                                             "broker_cpu_s_per_gb", "client_cores"]),
    ("consume_1k", "consume 1 KiB topic", ["messages", "msgs_per_s", "mb_per_s",
                                           "broker_cpu_s_per_gb", "client_cores"]),
    ("rawfetch", "raw fetch", ["gb_per_s", "mb_per_request", "broker_cpu_s_per_gb",
                               "client_cpu_s_per_gb"]),
    ("e2e", "e2e 10k msgs/s", ["lat_p50_ms", "lat_p99_ms", "lat_p999_ms", "intended_lat_p99_ms",
                               "lost", "broker_cpu_s"]),
    ("idle", "idle after start", ["idle_rss_kb"]),
    ("stop", "stop", ["peak_rss_kb", "stop_s"]),
]


def report(results, reps, elapsed, quick):
    for r in results:
        if "client_cpu_s" in r and r.get("elapsed_s"):
            r["client_cores"] = r["client_cpu_s"] / r["elapsed_s"]
    lines = [f"# Sluice vs librdkafka mock: {'quick' if quick else 'standard'} scenario, "
             f"{reps} repetition(s), {elapsed:.0f} s", ""]
    lines += ["Medians over the repetitions. Ratio = Sluice / mock.", "",
              "| case | metric | Sluice | mock | ratio |", "|---|---|---:|---:|---:|"]
    for case, title, keys in COMPARED:
        for key in keys:
            s = median_of(results, "sluice", case, key)
            m = median_of(results, "mock", case, key)
            ratio = s / m if s is not None and m not in (None, 0) else None
            lines.append(f"| {title} | {key} | {fmt(s)} | {fmt(m)} | {fmt(ratio)} |")
    lines += ["", "## Zero-copy experiment (this machine, loopback TCP)", "",
              "| method | connections | receiver | GB/s | sender CPU s/GB | receiver CPU s/GB |",
              "|---|---:|---|---:|---:|---:|"]
    zc_cases = sorted({r["case"] for r in results if r["case"].startswith("zc ")},
                      key=lambda c: (c.endswith("trunc"), c))
    for case in zc_cases:
        row = next(r for r in results if r["case"] == case)
        lines.append(f"| {row.get('method')} | {row.get('connections')} | {row.get('drain')} | "
                     f"{fmt(median_of(results, 'machine', case, 'gb_per_s'))} | "
                     f"{fmt(median_of(results, 'machine', case, 'sender_cpu_s_per_gb'))} | "
                     f"{fmt(median_of(results, 'machine', case, 'receiver_cpu_s_per_gb'))} |")
    lines += ["", "## Start-up (Sluice)", "",
              "| data directory | to listening (ms) | to first answer (ms) | idle RSS (KiB) | "
              "stop (ms) |", "|---|---:|---:|---:|---:|"]
    for case in sorted({r["case"] for r in results if r["case"].startswith("startup_")}):
        lines.append(f"| {case[8:]} | "
                     f"{fmt(median_of(results, 'sluice', case, 'start_connect_ms'))} | "
                     f"{fmt(median_of(results, 'sluice', case, 'start_api_ms'))} | "
                     f"{fmt(median_of(results, 'sluice', case, 'idle_rss_kb'))} | "
                     f"{fmt(median_of(results, 'sluice', case, 'stop_ms'))} |")
    lines += scale_report(results)
    lines += targets_report(results)
    errs = errors_of(results)
    if errs:
        lines += ["", "## Errors", ""]
        lines += [f"- rep {r['rep']} {r['broker']} {r['case']}: {r['error']}" for r in errs]
    return "\n".join(lines) + "\n"


def scale_report(results):
    parts = next((r for r in results if r["case"] == "scale_partitions"), None)
    if not parts:
        return []
    steps = [s for s in parts["steps"] if s.get("rss_kb") is not None]
    out = ["", "## Scale (Sluice, one broker)", "",
           f"Descriptor limit (RLIMIT_NOFILE) of the broker: {parts.get('nofile_limit')}.", "",
           "| partitions | RSS (KiB) | open descriptors | create 1,000 (ms) | note |",
           "|---:|---:|---:|---:|---|"]
    for s in steps:
        note = "after the 1,000 connections" if s.get("after_connections") else ""
        if s.get("error"):
            note += f" error: {s['error']}"
        out.append(f"| {s['partitions']} | {s['rss_kb']} | {s['fds']} | "
                   f"{fmt(s.get('create_ms'))} | {note.strip()} |")
    # The slope before the connection test: freed connection memory stays in the heap.
    before = [s for s in steps if not s.get("after_connections")]
    if len(before) >= 2 and before[-1]["partitions"] > 0:
        span = before[-1]["partitions"] - before[0]["partitions"]
        per = (before[-1]["rss_kb"] - before[0]["rss_kb"]) * 1024 / span
        fds = (before[-1]["fds"] - before[0]["fds"]) / span
        steps_kb = [(b["rss_kb"] - a["rss_kb"]) for a, b in zip(before, before[1:])]
        out += ["", f"Memory per partition: {per:,.0f} bytes (per 1,000: "
                    f"{', '.join(str(k) for k in steps_kb)} KiB, i.e. linear); descriptors per "
                    f"partition: {fds:.2f}."]
    for case, title in (("scale_connections", "1,000 connections"),
                        ("scale_metadata_all", "Metadata for all topics"),
                        ("scale_produce", "produce 200k x 100 B"),
                        ("scale_consume", "consume it back"),
                        ("scale_restart", "restart")):
        r = next((x for x in results if x["case"] == case), None)
        if r:
            keep = {k: v for k, v in r.items() if k not in ("rep", "broker", "case", "tool")}
            out.append(f"- {title}: `{json.dumps(keep)}`")
    return out


def targets_report(results):
    def med(b, c, k):
        return median_of(results, b, c, k)

    def ratio(c, k):
        s, m = med("sluice", c, k), med("mock", c, k)
        return s / m if s is not None and m else None

    rows = []

    def target(name, value, ok, note=""):
        verdict = "n/a" if ok is None else ("met" if ok else "NOT met")
        rows.append(f"| {name} | {value} | {verdict} | {note} |")

    r = ratio("produce_100b", "msgs_per_s")
    target("produce 100 B acks=1 >= 0.95x mock msgs/s", fmt(r), None if r is None else r >= 0.95)
    r = ratio("produce_1k", "msgs_per_s")
    target("produce 1 KiB acks=all >= 0.95x mock msgs/s", fmt(r), None if r is None else r >= 0.95)
    c = med("sluice", "produce_1k", "broker_cpu_s_per_gb")
    floor = median_of(results, "machine", "zc ingest+crc+pwrite*1 copy", "receiver_cpu_s_per_gb")
    floor_nocrc = median_of(results, "machine", "zc ingest+pwrite*1 copy", "receiver_cpu_s_per_gb")
    ingest = median_of(results, "machine", "zc ingest*1 copy", "receiver_cpu_s_per_gb")
    target("produce 1 KiB: broker CPU <= 0.25 s/GB", fmt(c), None if c is None else c <= 0.25,
           f"floor here: recv {fmt(ingest)}, recv+pwrite {fmt(floor_nocrc)}, recv+crc+pwrite "
           f"{fmt(floor)} s/GB")
    for case in ("consume_100b", "consume_1k"):
        r = ratio(case, "msgs_per_s")
        target(f"{case}: at the client's limit (>= 0.95x mock msgs/s)", fmt(r),
               None if r is None else r >= 0.95,
               f"client cores {fmt(med('sluice', case, 'client_cores'))}")
        c = med("sluice", case, "broker_cpu_s_per_gb")
        sf = median_of(results, "machine", "zc sendfile*1 copy", "sender_cpu_s_per_gb")
        sf_trunc = median_of(results, "machine", "zc sendfile*1 trunc", "sender_cpu_s_per_gb")
        target(f"{case}: broker CPU <= 0.05 s/GB", fmt(c), None if c is None else c <= 0.05,
               f"floor here: bare sendfile sender {fmt(sf)} s/GB ({fmt(sf_trunc)} with a "
               f"discarding receiver)")
    f = med("sluice", "rawfetch", "gb_per_s")
    z = median_of(results, "machine", "zc sendfile*1 copy", "gb_per_s")
    r = f / z if f and z else None
    target("raw fetch >= 0.8x sendfile (1 connection)", f"{fmt(f)} / {fmt(z)} GB/s = {fmt(r)}",
           None if r is None else r >= 0.8)
    p = med("sluice", "e2e", "lat_p99_ms")
    m = med("mock", "e2e", "lat_p99_ms")
    target("e2e p99 <= 2 ms", f"{fmt(p)} ms", None if p is None else p <= 2)
    target("e2e p99 <= 0.5x mock", f"{fmt(p)} / {fmt(m)} ms",
           None if p is None or m is None else p <= 0.5 * m)
    s = med("sluice", "startup_empty", "start_connect_ms")
    a = med("sluice", "startup_empty", "start_api_ms")
    worst = max((x["start_connect_ms"] for x in results
                 if x["case"] == "startup_empty" and "start_connect_ms" in x), default=None)
    target("start, empty data dir <= 20 ms", f"{fmt(s)} ms listening, {fmt(a)} ms first answer",
           None if s is None else s <= 20, f"worst {fmt(worst)} ms")
    big = sorted({x["case"] for x in results if x["case"].startswith("startup_") and
                  x["case"].endswith("_first")})
    for case in big:
        s = med("sluice", case, "start_connect_ms")
        worst = max((x["start_connect_ms"] for x in results
                     if x["case"] == case and "start_connect_ms" in x), default=None)
        again = med("sluice", case.replace("_first", "_again"), "start_connect_ms")
        target(f"start, {case[8:-6]} partitions <= 1 s", f"{fmt(s)} ms (worst {fmt(worst)})",
               None if worst is None else worst <= 1000,
               f"started again at once: {fmt(again)} ms")
    rss = med("sluice", "startup_empty", "idle_rss_kb")
    target("idle RSS <= 15 MB", f"{fmt(rss)} KiB", None if rss is None else rss <= 15 * 1024)
    parts = next((x for x in results if x["case"] == "scale_partitions"), None)
    if parts:
        made = max(s["partitions"] for s in parts["steps"])
        conns = next((x for x in results if x["case"] == "scale_connections"), {})
        ok = made >= 10000 and not conns.get("error")
        target("10,000 partitions and 1,000 connections", f"{made} partitions; 1,000 connections "
               f"at {conns.get('partitions')} partitions: "
               f"{'error: ' + conns['error'] if conns.get('error') else 'ok'}", ok,
               f"RLIMIT_NOFILE {parts.get('nofile_limit')}")
    return ["", "## Issue 3 targets", "", "| target | measured | verdict | note |",
            "|---|---|---|---|"] + rows


def stop_on_signal(live):
    """On SIGTERM or SIGINT, stops the brokers still in `live` and exits."""
    def on_signal(signo, _):
        for b in list(live):
            b.stop(5)
        sys.exit(128 + signo)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work-dir", required=True, help="data directories (on the disk to test)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--phases", default="zerocopy,brokers,startup,scale",
                    help="comma-separated subset of zerocopy,brokers,startup,scale")
    ap.add_argument("--sluice-override", action="append", default=[], metavar="KEY=VALUE",
                    help="a broker setting for the brokers phase's Sluice (repeatable), e.g. "
                         "log.flush.on.ack=never")
    args = ap.parse_args()
    scenario = Scenario(args)
    stop_on_signal(scenario.live)
    scenario.run()


if __name__ == "__main__":
    main()
