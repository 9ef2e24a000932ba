#!/usr/bin/env python3
"""Webhooks and a dead receiver (issue 24: "a dead receiver not delaying
uploads (measured)").

One server; in each round, UPLOADS small Octomil uploads are timed with no
webhook (the baseline), then again with DEAD webhooks whose receiver accepts
the connection and never answers (each attempt waits the whole
--webhook-timeout). In the same round, another team's webhook to a receiver
that answers at once is timed from the change (a model deleted) to the
delivery's arrival, while the dead receivers hold their deliveries.

    bench/webhooks.py                    # 3 rounds
    BENCH_RUNS=1 BENCH_WEBHOOK_UPLOADS=50 bench/webhooks.py

Standard library only; the release binary (target/release/modelreg),
loopback ports, a temp directory under /tmp. Prints a Markdown table and
rewrites the `webhooks` section of BENCHMARKS.md (BENCH_NO_WRITE=1: print only).
"""

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sections import publish, targets_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_MODELREG_BIN") or os.path.join(ROOT, "target/release/modelreg")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
UPLOADS = int(os.environ.get("BENCH_WEBHOOK_UPLOADS", "200"))
DEAD = 5
PORT = 18470


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def blackhole():
    """A receiver that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    held = []

    def accept():
        while True:
            conn, _ = listener.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


def prompt_receiver():
    """A receiver that answers 204 at once and notes when each event came."""
    arrivals = {}

    class Handler(__import__("http.server").server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrivals[json.loads(body)["model"]["name"]] = time.perf_counter()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = __import__("http.server").server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook", arrivals


class Client:
    def __init__(self, key):
        self.key = key

    def call(self, method, path, body=None, content_type="application/json"):
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        headers = {"Authorization": f"Bearer {self.key}"}
        if body is not None:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def json(self, method, path, value):
        return self.call(method, path, json.dumps(value).encode())

    def upload(self, model, payload):
        boundary = "benchboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.pt\"\r\n\r\n").encode() + payload + \
            f"\r\n--{boundary}--\r\n".encode()
        started = time.perf_counter()
        self.call("POST", f"/api/v1/models/{model}/versions/upload", body, f"multipart/form-data; boundary={boundary}")
        return time.perf_counter() - started


def cli(data, *args):
    out = subprocess.run([BIN, "--data-dir", data, "--json", *args], check=True, capture_output=True)
    return json.loads(out.stdout) if out.stdout.strip() else None


def timed_uploads(client, model, tag):
    return [client.upload(model, f"{tag} {i}".encode() * 64) for i in range(UPLOADS)]


def p(samples, q):
    return statistics.quantiles(samples, n=100)[q - 1] * 1000


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: cargo build --release")
    work = tempfile.mkdtemp(prefix="modelreg-webhooks.")
    data = os.path.join(work, "data")
    subprocess.run([BIN, "--data-dir", data, "init"], check=True, capture_output=True)
    admin = open(os.path.join(data, "admin.key")).read().strip()
    cli(data, "teams", "add", "others")
    cli(data, "users", "add", "olga", "--team", "others", "--admin")
    other = cli(data, "keys", "create", "--user", "olga")["secret"]
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data, "--bind", f"127.0.0.1:{PORT}", "--gc-interval", "off",
                             "--webhook-timeout", "5s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = {"upload_p50_none": [], "upload_p50_dead": [], "upload_p99_none": [], "upload_p99_dead": [], "other_team_ms": []}
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        ours, theirs = Client(admin), Client(other)
        prompt_url, arrivals = prompt_receiver()
        theirs.json("POST", "/api/modelreg/v1/webhooks", {"url": prompt_url, "secret": "bench-secret", "events": ["model.deleted"]})
        for rnd in range(1, RUNS + 1):
            log(f"round {rnd}: {UPLOADS} uploads without webhooks, then with {DEAD} dead receivers")
            model = ours.json("POST", "/api/v1/models", {"name": f"bench-{rnd}"})["id"]
            base = timed_uploads(ours, model, "base")
            hooks = [ours.json("POST", "/api/modelreg/v1/webhooks",
                               {"url": blackhole(), "secret": "bench-secret", "events": ["version.created"]})["id"] for _ in range(DEAD)]
            dead = timed_uploads(ours, model, "dead")
            # Another team's event while the dead receivers hold their deliveries.
            name = f"theirs-{rnd}"
            victim = theirs.json("POST", "/api/v1/models", {"name": name})["id"]
            changed = time.perf_counter()
            theirs.call("DELETE", f"/api/v1/models/{victim}")
            while name not in arrivals and time.perf_counter() - changed < 60:
                time.sleep(0.005)
            if name not in arrivals:
                raise SystemExit("the other team's delivery never arrived")
            samples["other_team_ms"].append((arrivals[name] - changed) * 1000)
            for hook in hooks:
                ours.call("DELETE", f"/api/modelreg/v1/webhooks/{hook}")
            samples["upload_p50_none"].append(statistics.median(base) * 1000)
            samples["upload_p50_dead"].append(statistics.median(dead) * 1000)
            samples["upload_p99_none"].append(p(base, 99))
            samples["upload_p99_dead"].append(p(dead, 99))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio50 = statistics.median(d / b for d, b in zip(samples["upload_p50_dead"], samples["upload_p50_none"]))
    ratio99 = statistics.median(d / b for d, b in zip(samples["upload_p99_dead"], samples["upload_p99_none"]))
    rows = [
        (f"upload p50 with {DEAD} dead webhook receivers (small files, {UPLOADS} a round)", f"{med['upload_p50_dead']:.2f} ms",
         f"{med['upload_p50_none']:.2f} ms without webhooks", f"{ratio50:.2f}×", "≤ 1.2×", ratio50 <= 1.2),
        (f"upload p99 with {DEAD} dead webhook receivers", f"{med['upload_p99_dead']:.2f} ms",
         f"{med['upload_p99_none']:.2f} ms without webhooks", f"{ratio99:.2f}×", "≤ 1.5×", ratio99 <= 1.5),
        ("another team's delivery, change to arrival, while the dead receivers hold theirs", f"{med['other_team_ms']:.0f} ms",
         "5,000 ms: one --webhook-timeout", "", "< 1,000 ms", med["other_team_ms"] < 1000),
    ]
    table = targets_table(rows)
    heading = f"### Webhooks and dead receivers (bench/webhooks.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {RUNS} rounds)"
    publish(ROOT, "webhooks", heading, table, samples)


if __name__ == "__main__":
    main()
