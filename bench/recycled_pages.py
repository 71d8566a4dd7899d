#!/usr/bin/env python3
"""Produce cost on recycled against untouched page-cache memory: one standalone broker, started
the way bench/cluster.py starts its brokers, and N produce cases of M x 1 KiB at acks=1 (each to
a fresh 6-partition topic), printing msgs/s and the broker's CPU seconds per case. Run it once
right after deleting a few GB of files and once without, to see what a case costs on pages freed
moments before (see docs/PERFORMANCE.md, "Replicated produce again").

  python3 bench/recycled_pages.py --build-dir build [--cases 3] [--messages 500000]
          [--work-dir DIR]

Every process it starts it stops by PID; its data directory is deleted at the end."""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import PARTITIONS, SIZE, Proc, cpu_s  # noqa: E402
from scenario import free_port, run_tool  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--messages", type=int, default=500000)
    ap.add_argument("--work-dir", default=None)
    args = ap.parse_args()
    tools = os.path.join(args.build_dir, "bench")
    work = tempfile.mkdtemp(prefix="sluice-recycled.", dir=args.work_dir)
    clients_log = os.path.join(work, "clients.log")
    port = free_port()
    broker = Proc("single", [os.path.join(args.build_dir, "sluice"),
                             "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                             "--override", f"log.dirs={os.path.join(work, 'data')}"],
                  os.path.join(work, "broker.log"))
    try:
        if not broker.wait_for_line("listening on PLAINTEXT://", 60):
            raise RuntimeError("the broker did not start; see " + broker.log_path)
        address = f"127.0.0.1:{port}"
        for case in range(1, args.cases + 1):
            topic = f"recycled-{case}"
            created = run_tool([os.path.join(tools, "sluice-clusterprobe"), "create",
                                "--brokers", address, "--topic", topic,
                                "--partitions", str(PARTITIONS)], 90, clients_log)
            if "error" in created:
                raise RuntimeError(f"creating {topic}: {created['error']}")
            before = cpu_s(broker.pid)
            r = run_tool([os.path.join(tools, "sluice-load"), "produce", "--brokers", address,
                          "--topic", topic, "--messages", str(args.messages),
                          "--size", str(SIZE), "--partitions", str(PARTITIONS), "--acks", "1",
                          "--broker-pid", str(broker.pid), "--timeout-s", "300"], 330,
                         clients_log)
            after = cpu_s(broker.pid)
            print(f"case {case}: {r.get('msgs_per_s', r.get('error'))} msgs/s, "
                  f"broker CPU {after - before:.2f} s", flush=True)
            time.sleep(0.2)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
