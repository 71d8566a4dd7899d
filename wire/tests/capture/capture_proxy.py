#!/usr/bin/env python3
"""Captures Kafka request and response frames from real client traffic as golden vectors.

A TCP proxy sits between the clients and a sluice broker. Each request frame (client to broker)
and the response frame with the same correlation id (broker to client) are written, whole (int32
size prefix, header, body), as hex files named the way Tansu names its captures:

    <api>_<request|response>_v<N>_<NNN>.hex      e.g. produce_request_v7_000.hex

A request and its response share <NNN>, numbered per API and version. The files are checked by
wire/tests/captured_test.cc. Both modes need only python3's standard library:

  capture_proxy.py --broker build/sluice --out wire/tests/captured
      Re-captures the committed set: starts the broker behind the proxy (advertised listener =
      the proxy, so metadata never sends the client around it), runs the kcat steps in SCENARIO,
      keeps a few pairs per step, replaces the .hex files in --out and stops the broker.

  capture_proxy.py --upstream 127.0.0.1:9092 --listen 19092 --out /tmp/captured [--limit 2]
      A plain proxy until SIGINT or SIGTERM, keeping at most --limit pairs per API and version. The broker
      must advertise the proxy's address, or the client will bypass it after bootstrap.

Requests that get no response (Produce with acks=0) are not written. This is a test tool, not
part of the broker: it trusts the broker's framing and stops relaying a connection on any error.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "schema"))
FILE_RE = re.compile(r"^[a-z_]+_(request|response)_v\d+_\d{3}\.hex$")
TOPIC = "captured"


def api_names(schema_dir):
    """API key -> snake_case name ("ApiVersions" -> "api_versions"), from the Kafka specs."""
    names = {}
    for entry in sorted(os.listdir(schema_dir)):
        if not entry.endswith("Request.json"):
            continue
        with open(os.path.join(schema_dir, entry), encoding="utf-8") as f:
            # The specs carry // comments, which JSON does not allow.
            text = "\n".join(l for l in f if not l.lstrip().startswith("//"))
        spec = json.loads(text)
        if spec.get("type") != "request":
            continue
        name = spec["name"][: -len("Request")]
        names[spec["apiKey"]] = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return names


def to_hex_lines(frame):
    """32 bytes per line; from_hex in wire/tests/test_util.h ignores the newlines."""
    h = frame.hex()
    return "".join(h[i : i + 64] + "\n" for i in range(0, len(h), 64))


class Recorder:
    """Pairs requests with responses and writes the pairs the current quota allows.

    quota: API key -> how many pairs to keep per version of that API, counted from the last
    set_quota() call. A pair whose request repeats a kept one (correlation id aside) is skipped
    without counting. Thread-safe: every connection's two relay threads call in.
    """

    def __init__(self, out_dir, names, verbose=False):
        self.out_dir = out_dir
        self.verbose = verbose
        self.names = names
        self.lock = threading.Lock()
        self.quota = {}
        self.used = {}
        self.next_index = {}
        self.kept_requests = set()
        self.written = []

    def set_quota(self, quota):
        with self.lock:
            self.quota = dict(quota)
            self.used = {}

    def request(self, pending, frame):
        if len(frame) < 12:
            return
        key = int.from_bytes(frame[4:6], "big", signed=True)
        version = int.from_bytes(frame[6:8], "big", signed=True)
        correlation_id = int.from_bytes(frame[8:12], "big", signed=True)
        with self.lock:
            pending[correlation_id] = (key, version, frame)

    def response(self, pending, frame):
        if len(frame) < 8:
            return
        correlation_id = int.from_bytes(frame[4:8], "big", signed=True)
        with self.lock:
            entry = pending.pop(correlation_id, None)
            if entry is None:
                return
            key, version, request = entry
            if self.verbose:
                print("capture:   %s v%d: %d + %d bytes: %s" % (
                    self.names.get(key, key), version, len(request), len(frame),
                    request[12:].hex()[:120]), file=sys.stderr)
            kept = self.used.get((key, version), 0)
            # A request equal to a kept one but for its correlation id adds nothing.
            same = request[:8] + request[12:]
            if kept >= self.quota.get(key, 0) or same in self.kept_requests:
                return
            self.kept_requests.add(same)
            self.used[(key, version)] = kept + 1
            index = self.next_index.get((key, version), 0)
            self.next_index[(key, version)] = index + 1
            name = self.names.get(key, "api%d" % key)
            for kind, data in (("request", request), ("response", frame)):
                file_name = "%s_%s_v%d_%03d.hex" % (name, kind, version, index)
                with open(os.path.join(self.out_dir, file_name), "w", encoding="ascii") as f:
                    f.write(to_hex_lines(data))
                self.written.append(file_name)


def relay(src, dst, on_frame):
    """Copies src to dst, handing each complete size-prefixed frame to on_frame before it is
    forwarded, so a request is registered before its response can come back."""
    buffer = b""
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 4:
                size = int.from_bytes(buffer[:4], "big", signed=True)
                if size < 0 or len(buffer) < 4 + size:
                    break
                on_frame(buffer[: 4 + size])
                buffer = buffer[4 + size :]
            dst.sendall(chunk)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Proxy:
    def __init__(self, recorder, listen_port=0):
        self.recorder = recorder
        self.upstream = None
        self.listener = socket.create_server(("127.0.0.1", listen_port))
        self.port = self.listener.getsockname()[1]

    def serve_forever(self):
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            pending = {}
            for src, dst, on in (
                (client, broker, lambda f, p=pending: self.recorder.request(p, f)),
                (broker, client, lambda f, p=pending: self.recorder.response(p, f)),
            ):
                threading.Thread(target=relay, args=(src, dst, on), daemon=True).start()

    def close(self):
        self.listener.close()


# (what it shows, kcat arguments after -b, stdin, {API key: pairs per version}, seconds or None).
# A step with a time limit is one that never finishes on its own; it is stopped after that long.
# "{ts}" is replaced by a timestamp (ms) taken between the first and the second Produce.
PRODUCE, FETCH, LIST_OFFSETS, METADATA, FIND_COORDINATOR, API_VERSIONS = 0, 1, 2, 3, 10, 18
LINGER = ["-X", "linger.ms=100"]


def compressible(codec, lines):
    return "".join("%s-%d %s\n" % (codec, i, (codec + " ") * 12) for i in range(1, lines + 1))


SCENARIO = [
    ("produce: keys and headers, uncompressed",
     ["-P", "-t", TOPIC, "-K", ":", "-H", "trace=t1", "-H", "origin=kcat"] + LINGER,
     "k1:v1\nk2:v2\n", {API_VERSIONS: 1, PRODUCE: 1}, None),
    # librdkafka sends a batch uncompressed when compressing does not make it smaller, so these
    # values repeat themselves.
    ("produce gzip", ["-P", "-t", TOPIC, "-z", "gzip"] + LINGER, compressible("gzip", 2),
     {PRODUCE: 1}, None),
    ("produce snappy", ["-P", "-t", TOPIC, "-z", "snappy"] + LINGER, compressible("snappy", 1),
     {PRODUCE: 1}, None),
    ("produce lz4", ["-P", "-t", TOPIC, "-z", "lz4"] + LINGER, compressible("lz4", 1),
     {PRODUCE: 1}, None),
    ("produce zstd", ["-P", "-t", TOPIC, "-z", "zstd"] + LINGER, compressible("zstd", 1),
     {PRODUCE: 1}, None),
    # librdkafka first asks for brokers only (no topics), then for all topics (null).
    ("metadata: brokers only, then all topics", ["-L"], None, {METADATA: 2}, None),
    ("metadata, one topic", ["-L", "-t", TOPIC], None, {METADATA: 1}, None),
    ("consume from the beginning to the end",
     ["-C", "-t", TOPIC, "-p", "0", "-o", "beginning", "-e"], None,
     {LIST_OFFSETS: 1, FETCH: 2}, None),
    ("consume the last two", ["-C", "-t", TOPIC, "-p", "0", "-o", "-2", "-e"], None,
     {LIST_OFFSETS: 1}, None),
    ("offset by timestamp", ["-Q", "-t", TOPIC + ":0:{ts}"], None, {LIST_OFFSETS: 1}, None),
    ("group consumer: FindCoordinator (JoinGroup is not served, so it is stopped)",
     ["-G", "captured-group", TOPIC], None, {FIND_COORDINATOR: 1}, 3.0),
]


def start_broker(binary, proxy_port, log_dir):
    broker = subprocess.Popen(
        [binary, "--override", "listeners=PLAINTEXT://127.0.0.1:0",
         "--override", "advertised.listeners=PLAINTEXT://127.0.0.1:%d" % proxy_port,
         "--override", "log.dirs=" + log_dir],
        stderr=subprocess.PIPE, text=True)
    # Its first lines, until it reports its port or exits.
    for line in broker.stderr:
        m = re.search(r"listening on PLAINTEXT://127\.0\.0\.1:(\d+)", line)
        if m:
            # Keep draining stderr so the broker never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in broker.stderr], daemon=True).start()
            return broker, int(m.group(1))
    broker.kill()
    sys.exit("capture_proxy: the broker did not report its port")


def run_scenario(args, names):
    kcat = shutil.which(args.kcat) or sys.exit("capture_proxy: %s not found" % args.kcat)
    os.makedirs(args.out, exist_ok=True)
    for entry in os.listdir(args.out):
        if FILE_RE.match(entry):
            os.remove(os.path.join(args.out, entry))
    recorder = Recorder(args.out, names, args.verbose)
    proxy = Proxy(recorder)
    with tempfile.TemporaryDirectory(prefix="sluice-capture-") as log_dir:
        broker, broker_port = start_broker(args.broker, proxy.port, log_dir)
        proxy.upstream = ("127.0.0.1", broker_port)
        proxy.serve_forever()
        ts = None
        try:
            for what, kcat_args, stdin, quota, limit in SCENARIO:
                recorder.set_quota(quota)
                kcat_args = [a.replace("{ts}", str(ts)) for a in kcat_args]
                cmd = [kcat, "-b", "127.0.0.1:%d" % proxy.port] + kcat_args
                print("capture: %s: %s" % (what, " ".join(cmd[1:])), file=sys.stderr)
                try:
                    subprocess.run(cmd, input=stdin, text=True, timeout=limit or 30,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   check=limit is None)
                except subprocess.TimeoutExpired:
                    if limit is None:
                        raise
                # Let the last responses through before the quota changes.
                time.sleep(0.3)
                if ts is None:
                    ts = int(time.time() * 1000)
                    time.sleep(0.01)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
            proxy.close()
    for name in sorted(recorder.written):
        print(name)


def run_proxy(args, names):
    host, _, port = args.upstream.rpartition(":")
    os.makedirs(args.out, exist_ok=True)
    recorder = Recorder(args.out, names, args.verbose)
    recorder.set_quota({key: args.limit for key in names})
    proxy = Proxy(recorder, args.listen)
    proxy.upstream = (host or "127.0.0.1", int(port))
    print("capture: proxy on 127.0.0.1:%d -> %s, writing to %s" % (proxy.port, args.upstream,
                                                                  args.out), file=sys.stderr)
    proxy.serve_forever()
    # Set explicitly: a shell starts background jobs with SIGINT ignored.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    proxy.close()
    for name in sorted(recorder.written):
        print(name)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for the .hex files")
    p.add_argument("--broker", help="sluice binary: run the capture scenario")
    p.add_argument("--kcat", default="kcat")
    p.add_argument("--upstream", help="host:port of a running broker: plain proxy mode")
    p.add_argument("--listen", type=int, default=0, help="proxy port (plain proxy mode)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every pair to stderr")
    p.add_argument("--limit", type=int, default=2, help="pairs per API version (proxy mode)")
    args = p.parse_args()
    names = api_names(SCHEMA_DIR)
    if args.broker:
        run_scenario(args, names)
    elif args.upstream:
        run_proxy(args, names)
    else:
        p.error("give --broker or --upstream")


if __name__ == "__main__":
    main()
