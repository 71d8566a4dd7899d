#!/usr/bin/env python3
"""The engine benchmarks of issue 9: stalls, the cost of durability, bounded memory, crash
recovery and index memory. Run through bench/engine.sh, which builds the tools first.

Phases (--phases, default all):

  stalls      e2e latency at 10,000 msgs/s (100 B, acks=1) on a quiet broker, then while, in
              turn: another producer writes 10 MB/s into 1 GiB segments (the load alone), then
              rolls 1 MiB segments at that rate; a 1,000-partition topic is
              created and deleted; a consumer reads 1 GiB evicted from the page cache
              (posix_fadvise DONTNEED). The clients making that background work run at nice 19,
              so that on a small machine their own CPU is not counted as the broker's stall.
              With --baseline-bin, the same against another broker binary, side by side.
  durability  produce 200k x 1 KiB, acks=all, 4 partitions, with sync-before-ack (the default,
              log.flush.on.ack=sole-replica) and without (never), interleaved repetitions; fsyncs
              per second from the broker's shutdown summary.
  memory      sluice-flood: 200 connections each pipelining 8 Produce requests of 8 MiB; the
              broker's peak RSS against queued.max.request.bytes (256 MiB) + 100 MB.
  recovery    1 GiB in one partition, then kill -9: the restart's time and the bytes recovery
              read, once after the periodic flush ran (only the unsynced tail is read) and once
              before it could (the whole active segment).
  index       2 GiB over 4 partitions in 64 MiB segments, written in 4 KiB batches (the densest
              index the default index interval makes): index entries per GB of log, and the
              heap they take now against keeping them all on the heap.

Prints a summary, writes results.jsonl and summary.md. Standard library only; reuses the
scenario's broker and tool plumbing (bench/scenario.py).
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import Sluice, log, rss_kb, run_tool  # noqa: E402

E2E_RATE = "10000"
# The clients that make the background work (the other producer, the admin client, the cold
# consumer) run at the lowest priority: on a two-core machine their own CPU would otherwise be
# measured as the broker's stall. The broker's work for them is not niced.
BACKGROUND = ["nice", "-n", "19"]
# The summaries this driver reads are the brokers' last log lines; a 1,000-partition churn logs
# a line per partition, so the cap of the standard scenario is too small here.
scenario.LOG_CAP_BYTES = 64 << 20


def summary_line(log_path, pattern):
    """The last match of `pattern` in a broker's log, as a tuple of ints, or None."""
    try:
        text = open(log_path, errors="replace").read()
    except OSError:
        return None
    found = re.findall(pattern, text)
    if not found:
        return None
    last = found[-1]
    return tuple(int(x) for x in (last if isinstance(last, tuple) else (last,)))


def evict(paths):
    """Drops the files' pages from the page cache (they are clean: written and synced)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        except OSError:
            pass
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


class Engine:
    def __init__(self, args):
        self.args = args
        self.tools = os.path.join(args.build_dir, "bench")
        self.bin = os.path.join(args.build_dir, "sluice")
        self.out = args.out
        self.work = args.work_dir
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        self.results = []
        self.file = open(os.path.join(self.out, "results.jsonl"), "w")
        self.live = []
        self.seq = 0
        self.quick = args.quick

    def tool(self, name):
        return os.path.join(self.tools, name)

    def record(self, phase, case, result):
        row = {"phase": phase, "case": case}
        row.update(result)
        self.results.append(row)
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        brief = {k: v for k, v in row.items() if k not in ("phase", "case", "tool", "mode", "topic")
                 and not isinstance(v, (dict, list))}
        log(f"  {phase:10} {case:28} {json.dumps(brief)[:240]}")

    def broker(self, name, overrides=(), binary=None):
        self.seq += 1
        data = os.path.join(self.work, f"{name}-{self.seq}")
        shutil.rmtree(data, ignore_errors=True)
        logp = os.path.join(self.out, "logs", f"{name}-{self.seq}.log")
        b = Sluice(binary or self.bin, data, logp, overrides)
        b.data = data
        b.log_path = logp
        self.live.append(b)
        return b

    def stop(self, b):
        rec = b.stop()
        self.live.remove(b)
        return rec

    def load(self, b, mode, *args, timeout=300, background=False):
        cmd = BACKGROUND if background else []
        cmd = cmd + [self.tool("sluice-load"), mode, "--brokers", b.bootstrap, "--broker-pid",
               str(b.pid), "--timeout-s", str(timeout)] + list(args)
        return run_tool(cmd, timeout + 30, os.path.join(self.out, "logs", "clients.log"))

    def e2e(self, b, seconds):
        return self.load(b, "e2e", "--topic", "bench-e2e", "--rate", E2E_RATE, "--duration-s",
                         str(seconds), "--warmup-s", "2", "--size", "100", "--partitions", "4",
                         "--acks", "1", "--linger-ms", "0", timeout=seconds + 60)

    # --- stalls ---------------------------------------------------------------------------------

    def stalls(self, label, binary):
        seconds = 5 if self.quick else 15
        cold_messages = 131072 if self.quick else 1048576  # x 1 KiB: 128 MiB / 1 GiB
        b = self.broker(f"stalls-{label}", binary=binary)
        try:
            # The cold topic first (one partition), then everything about it evicted.
            self.load(b, "admin", "--topic", "cold", "--create", "1")
            r = self.load(b, "produce", "--topic", "cold", "--messages", str(cold_messages),
                          "--size", "1024", "--partitions", "1", "--acks", "1")
            self.record("stalls", f"{label} prepare cold", r)
            self.record("stalls", f"{label} quiet", self.e2e(b, seconds))

            # Another producer writing 10,000 x 1 KiB per second: first into 1 GiB segments (the
            # cost of the load alone, for comparison), then rolling a 1 MiB segment ten times a
            # second.
            for case, topic, configs in (("busy, no rolls", "busy", ""),
                                         ("rolling", "roll", "segment.bytes=1048576")):
                create = ["--topic", topic, "--create", "1"]
                if configs:
                    create += ["--configs", configs]
                self.record("stalls", f"{label} create {topic} topic",
                            self.load(b, "admin", *create))
                bg = subprocess.Popen(BACKGROUND + [self.tool("sluice-load"), "e2e", "--brokers",
                                                    b.bootstrap,
                                       "--topic", topic, "--rate", "10000", "--duration-s",
                                       str(seconds + 6), "--warmup-s", "1", "--size", "1000",
                                       "--partitions", "1", "--acks", "1", "--linger-ms", "0",
                                       "--timeout-s", str(seconds + 60)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                time.sleep(2)
                self.record("stalls", f"{label} {case}", self.e2e(b, seconds))
                bg.wait(seconds + 90)
                segments = len(glob.glob(os.path.join(b.data, f"{topic}-0", "*.log")))
                self.record("stalls", f"{label} {case}: background producer",
                            {"segments": segments})

            # A 1,000-partition topic created and deleted, over and over, while e2e runs.
            stop = threading.Event()
            cycles = []

            def churn():
                while not stop.is_set() and len(cycles) < 20:
                    c = self.load(b, "admin", "--topic", "churn", "--create", "1000", timeout=120,
                                  background=True)
                    d = self.load(b, "admin", "--topic", "churn", "--delete", timeout=120,
                                  background=True)
                    cycles.append((c.get("elapsed_s"), d.get("elapsed_s"),
                                   c.get("error") or d.get("error")))

            t = threading.Thread(target=churn)
            t.start()
            time.sleep(0.5)
            res = self.e2e(b, seconds)
            stop.set()
            t.join(300)
            res["create_delete_cycles"] = len(cycles)
            res["create_s"] = [c[0] for c in cycles]
            res["delete_s"] = [c[1] for c in cycles]
            res["churn_errors"] = [c[2] for c in cycles if c[2]]
            self.record("stalls", f"{label} create/delete 1000", res)

            # A consumer catching up on 1 GiB that is no longer in the page cache.
            evict(glob.glob(os.path.join(b.data, "cold-*", "*")))
            bg = subprocess.Popen(BACKGROUND + [self.tool("sluice-load"), "consume", "--brokers",
                                                b.bootstrap,
                                   "--topic", "cold", "--timeout-s", "300"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            res = self.e2e(b, seconds)
            out, _ = bg.communicate(timeout=400)
            lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
            res["cold_consumer"] = json.loads(lines[-1]) if lines else {"error": "no result"}
            self.record("stalls", f"{label} cold consumer", res)
        finally:
            rec = self.stop(b)
            cold = summary_line(b.log_path, r"reads: (\d+) fetch rounds warmed cold data")
            rec["cold_fetch_rounds"] = cold[0] if cold else None
            self.record("stalls", f"{label} stop", rec)
            shutil.rmtree(b.data, ignore_errors=True)

    # --- durability -----------------------------------------------------------------------------

    def durability(self):
        reps = 1 if self.quick else 3
        messages = "40000" if self.quick else "200000"
        for rep in range(1, reps + 1):
            order = [("sync", ()), ("no-sync", ("log.flush.on.ack=never",))]
            if rep % 2 == 0:
                order.reverse()
            for label, overrides in order:
                b = self.broker(f"durability-{label}", overrides)
                try:
                    res = self.load(b, "produce", "--topic", "durable", "--messages", messages,
                                    "--size", "1024", "--partitions", "4", "--acks", "all")
                finally:
                    rec = self.stop(b)
                s = summary_line(b.log_path, r"durability: (\d+) fsyncs released (\d+) durability "
                                             r"waits; (\d+) acks=all batches")
                if s and res.get("elapsed_s"):
                    res["fsyncs"], res["durability_waits"], res["acks_all_batches"] = s
                    res["fsyncs_per_s"] = s[0] / res["elapsed_s"]
                    res["batches_per_fsync"] = s[2] / s[0] if s[0] else None
                res["rep"] = rep
                self.record("durability", label, res)
                shutil.rmtree(b.data, ignore_errors=True)

    # --- memory ---------------------------------------------------------------------------------

    def memory(self):
        conns, reqs = ("50", "4") if self.quick else ("200", "8")
        b = self.broker("memory", ("message.max.bytes=16777216", "num.partitions=8",
                                   "log.segment.bytes=1073741824"))
        try:
            self.record("memory", "idle", {"rss_kb": rss_kb(b.pid)})
            cmd = [self.tool("sluice-flood"), "--brokers", b.bootstrap, "--topic", "flood",
                   "--connections", conns, "--requests", reqs, "--request-bytes", "8MiB",
                   "--partitions", "8", "--broker-pid", str(b.pid), "--timeout-s", "900"]
            # The topic first, so that no request meets a topic being created.
            self.load(b, "admin", "--topic", "flood", "--create", "8")
            res = run_tool(cmd, 960, os.path.join(self.out, "logs", "clients.log"))
            res["cap_kb"] = 268435456 // 1024
            res["target_kb"] = res["cap_kb"] + 100 * 1000 * 1000 // 1024
            self.record("memory", f"{conns}x{reqs}x8MiB", res)
        finally:
            self.record("memory", "stop", self.stop(b))
            shutil.rmtree(b.data, ignore_errors=True)

    # --- recovery -------------------------------------------------------------------------------

    def recovery(self):
        gib = 1 if not self.quick else 0.25
        messages = str(int(gib * 1048576))
        for label, interval, wait in (("after the periodic flush", "5000", 7),
                                      ("before any flush", "3600000", 0)):
            # One segment for everything: no roll's flush moves the recovery point.
            b = self.broker("recovery", (f"log.flush.offset.checkpoint.interval.ms={interval}",
                                         "log.segment.bytes=2147483647"))
            try:
                self.load(b, "admin", "--topic", "big", "--create", "1")
                self.load(b, "produce", "--topic", "big", "--messages", messages, "--size", "1024",
                          "--partitions", "1", "--acks", "1")
                time.sleep(wait)
                # The tail that no flush covered.
                self.load(b, "produce", "--topic", "big", "--messages", "32768", "--size", "1024",
                          "--partitions", "1", "--acks", "1")
                os.kill(b.pid, signal.SIGKILL)
                b.proc.wait()
                b.proc = None
                self.live.remove(b)
                data_bytes = scenario.dir_bytes(b.data)
                # Restart on the same data directory: time to listening, what recovery read.
                start = time.monotonic()
                again = Sluice(self.bin, b.data, b.log_path + ".restart")
                ready = time.monotonic() - start
                self.live.append(again)
                self.stop(again)
                checked = summary_line(b.log_path + ".restart",
                                       r"big-0: recovered \d+\.log: checked (\d+) bytes from byte "
                                       r"(\d+) of (\d+)")
                self.record("recovery", label, {
                    "data_bytes": data_bytes, "restart_to_listening_s": ready,
                    "recovery_checked_bytes": checked[0] if checked else None,
                    "recovery_started_at_byte": checked[1] if checked else None,
                    "segment_bytes": checked[2] if checked else None})
            finally:
                for x in list(self.live):
                    self.stop(x)
                shutil.rmtree(b.data, ignore_errors=True)

    # --- index memory ---------------------------------------------------------------------------

    def index(self):
        messages = "262144" if self.quick else "2097152"
        b = self.broker("index", ("log.segment.bytes=67108864",))
        try:
            # Batches of 4 KiB: an index entry per batch, about one per log.index.interval.bytes
            # (4 KiB), the densest index the default settings make. Large batches (librdkafka's
            # default) make one entry per batch and a far sparser index.
            self.load(b, "produce", "--topic", "idx", "--messages", messages, "--size", "1024",
                      "--partitions", "4", "--acks", "1", "--batch-size", "4096",
                      "--linger-ms", "5")
        finally:
            self.stop(b)
        heap_running = summary_line(b.log_path, r"(\d+) bytes of index entries on the heap")
        again = Sluice(self.bin, b.data, b.log_path + ".restart")
        self.live.append(again)
        self.stop(again)
        heap_loaded = summary_line(b.log_path + ".restart",
                                   r"(\d+) bytes of index entries on the heap")
        log_bytes = sum(os.path.getsize(p) for p in glob.glob(os.path.join(b.data, "idx-*", "*.log")))
        offset_entries = sum(os.path.getsize(p) // 8
                             for p in glob.glob(os.path.join(b.data, "idx-*", "*.index")))
        time_entries = sum(os.path.getsize(p) // 12
                           for p in glob.glob(os.path.join(b.data, "idx-*", "*.timeindex")))
        gb = log_bytes / 1e9
        # Before: every entry on the heap (8 bytes an offset entry, 16 a time entry with padding).
        before = offset_entries * 8 + time_entries * 16
        self.record("index", "2 GiB in 64 MiB segments", {
            "log_gb": gb, "offset_entries_per_gb": offset_entries / gb,
            "time_entries_per_gb": time_entries / gb,
            "heap_bytes_all_entries_per_gb": before / gb,
            "heap_bytes_running_per_gb": heap_running[0] / gb if heap_running else None,
            "heap_bytes_after_restart_per_gb": heap_loaded[0] / gb if heap_loaded else None})
        shutil.rmtree(b.data, ignore_errors=True)

    def run(self):
        phases = self.args.phases.split(",")
        start = time.monotonic()
        if "stalls" in phases:
            log("== stalls")
            self.stalls("sluice", None)
            if self.args.baseline_bin:
                self.stalls("baseline", self.args.baseline_bin)
        if "durability" in phases:
            log("== durability")
            self.durability()
        if "memory" in phases:
            log("== memory")
            self.memory()
        if "recovery" in phases:
            log("== recovery")
            self.recovery()
        if "index" in phases:
            log("== index")
            self.index()
        text = report(self.results, time.monotonic() - start)
        with open(os.path.join(self.out, "summary.md"), "w") as f:
            f.write(text + "\n")
        print(text)


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def report(results, elapsed):
    out = [f"# Engine benchmarks ({elapsed:.0f} s)", ""]
    stalls = [r for r in results if r["phase"] == "stalls" and "lat_p99_ms" in r
              and r.get("mode") == "e2e"]
    if stalls:
        out += ["## Stalls: e2e at 10,000 msgs/s (100 B, acks=1)", "",
                "| broker, case | p50 ms | p99 ms | p99.9 ms | max ms | p99 / quiet | target |",
                "|---|---|---|---|---|---|---|"]
        quiet = {r["case"].split()[0]: r["lat_p99_ms"] for r in stalls if r["case"].endswith("quiet")}
        for r in stalls:
            who = r["case"].split()[0]
            ratio = r["lat_p99_ms"] / quiet[who] if quiet.get(who) else None
            ok = ratio is not None and ratio <= 2 and r["lat_p99_ms"] < 5
            out.append(f"| {r['case']} | {fmt(r.get('lat_p50_ms'))} | {fmt(r.get('lat_p99_ms'))} | "
                       f"{fmt(r.get('lat_p999_ms'))} | {fmt(r.get('lat_max_ms'))} | "
                       f"{fmt(ratio)} | {'met' if ok else 'missed'} |")
        out.append("")
    dur = [r for r in results if r["phase"] == "durability"]
    if dur:
        out += ["## Durability cost: 1 KiB, acks=all, 4 partitions", "",
                "| case | msgs/s (median) | MB/s | fsyncs/s | batches per fsync |",
                "|---|---|---|---|---|"]
        med = {}
        for label in ("sync", "no-sync"):
            rows = [r for r in dur if r["case"] == label and r.get("msgs_per_s")]
            if not rows:
                continue
            m = statistics.median(r["msgs_per_s"] for r in rows)
            med[label] = m
            fps = [r.get("fsyncs_per_s") for r in rows if r.get("fsyncs_per_s") is not None]
            bpf = [r.get("batches_per_fsync") for r in rows if r.get("batches_per_fsync")]
            out.append(f"| {label} | {fmt(m)} | {fmt(m * 1024 / 1e6)} | "
                       f"{fmt(statistics.median(fps)) if fps else '-'} | "
                       f"{fmt(statistics.median(bpf)) if bpf else '-'} |")
        if med.get("sync") and med.get("no-sync"):
            ratio = med["sync"] / med["no-sync"]
            out += ["", f"sync / no-sync: {ratio:.2f} (target >= 0.7: "
                        f"{'met' if ratio >= 0.7 else 'missed'})"]
        out.append("")
    mem = [r for r in results if r["phase"] == "memory" and "answered" in r]
    for r in mem:
        ok = (r.get("broker_peak_rss_kb", 1 << 60) < r["target_kb"] and r["dropped_connections"] == 0
              and r["answered"] == r["connections"] * r["requests_per_connection"])
        out += ["## Bounded memory (sluice-flood)", "",
                f"{r['connections']} connections x {r['requests_per_connection']} pipelined "
                f"Produce of {r['request_bytes'] / 2**20:.0f} MiB = {r['offered_gb']:.1f} GB offered "
                f"in {r['elapsed_s']:.1f} s: {r['answered']} answered ({r['failed']} with an error), "
                f"{r['dropped_connections']} connections dropped; broker peak RSS "
                f"{r['broker_peak_rss_kb'] / 1024:.0f} MiB (VmHWM {r['broker_hwm_kb'] / 1024:.0f} MiB) "
                f"against the target {r['target_kb'] / 1024:.0f} MiB: {'met' if ok else 'missed'}", ""]
    rec = [r for r in results if r["phase"] == "recovery"]
    if rec:
        out += ["## Restart after kill -9", "",
                "| case | data | restart to listening s | recovery read | started at byte |",
                "|---|---|---|---|---|"]
        for r in rec:
            out.append(f"| {r['case']} | {fmt(r['data_bytes'] / 1e9)} GB | "
                       f"{fmt(r['restart_to_listening_s'])} | "
                       f"{fmt((r.get('recovery_checked_bytes') or 0) / 1e6)} MB | "
                       f"{fmt(r.get('recovery_started_at_byte'))} |")
        out.append("")
    idx = [r for r in results if r["phase"] == "index"]
    for r in idx:
        out += ["## Index memory", "",
                f"{r['log_gb']:.2f} GB of log: {r['offset_entries_per_gb']:,.0f} offset and "
                f"{r['time_entries_per_gb']:,.0f} time index entries per GB. All on the heap they "
                f"would take {r['heap_bytes_all_entries_per_gb'] / 1e6:.2f} MB per GB of log; now "
                f"{fmt((r['heap_bytes_running_per_gb'] or 0) / 1e3)} KB per GB while writing and "
                f"{fmt((r['heap_bytes_after_restart_per_gb'] or 0) / 1e3)} KB per GB after a restart "
                f"(the active segments' entries only).", ""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--phases", default="stalls,durability,memory,recovery,index")
    ap.add_argument("--baseline-bin", default="",
                    help="another broker binary to run the stall phase against, side by side")
    args = ap.parse_args()
    engine = Engine(args)
    scenario.stop_on_signal(engine.live)
    engine.run()


if __name__ == "__main__":
    main()
