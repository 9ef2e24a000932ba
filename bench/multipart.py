#!/usr/bin/env python3
"""Multipart parsing throughput (issue 29: was a unit test printing MB/s nobody read).

Uploads the same amount of binary and of CRLF-heavy text content as one
multipart file part through the Octomil upload route of a release modelreg,
and copies the same files with `cat file > copy` in the same round, as the
floor. Text-heavy content is the parser's worst case (a CR every 40 bytes and
"--" lines, each a candidate boundary); binary is its common case. Info rows
only, no targets: stdout gets a Markdown table, nothing is written to
BENCHMARKS.md.

    bench/multipart.py                                   # 256 MiB per upload, 3 rounds
    BENCH_MULTIPART_SIZE=64 BENCH_RUNS=1 bench/multipart.py
    BENCH_MODELREG_BIN=/path/to/modelreg bench/multipart.py

Standard library only. Uses the loopback port 18440 and a temp directory under
/tmp (twice the size, plus the server's copy) that it removes at the end.
"""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_MODELREG_BIN") or os.path.join(ROOT, "target/release/modelreg")
MIB = 1 << 20
SIZE = int(os.environ.get("BENCH_MULTIPART_SIZE", "256")) * MIB
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PORT = 18440


def block(kind):
    """1 MiB of content: random bytes, or text with CRLF every 40 bytes and "--" lines."""
    if kind == "binary":
        return os.urandom(MIB)
    return bytes(
        13 if i % 40 == 38 else 10 if i % 40 == 39 else 45 if (i % 40 < 2 and i % 400 == 0) else 97 + i % 26
        for i in range(MIB)
    )


def write_file(path, kind):
    """SIZE bytes of `kind`; a fresh first KiB each round, so that no upload is a blob the store already has."""
    body = block(kind)
    with open(path, "wb") as f:
        f.write(os.urandom(1024) if kind == "binary" else uuid.uuid4().hex.encode() * 32)
        f.write(body[1024:])
        for _ in range(SIZE // MIB - 1):
            f.write(body)


def upload(key, model, path):
    """Seconds from the first byte sent to the 201 of a multipart upload of `path`."""
    boundary = "----modelregbench" + uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.pt"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    start = time.perf_counter()
    conn.putrequest("POST", f"/api/v1/models/{model}/versions/upload")
    conn.putheader("Authorization", f"Bearer {key}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + os.path.getsize(path) + len(tail)))
    conn.endheaders()
    conn.send(head)
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            conn.send(chunk)
    conn.send(tail)
    reply = conn.getresponse()
    text = reply.read()
    secs = time.perf_counter() - start
    conn.close()
    if reply.status != 201:
        sys.exit(f"upload answered {reply.status}: {text[:500]!r}")
    return secs


def cat(path, copy):
    start = time.perf_counter()
    with open(copy, "wb") as out:
        subprocess.run(["cat", path], stdout=out, check=True)
    secs = time.perf_counter() - start
    os.remove(copy)
    return secs


def main():
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="modelreg-bench-multipart-")
    data = os.path.join(work, "data")
    server = subprocess.Popen(
        [BIN, "serve", "--bind", f"127.0.0.1:{PORT}", "--data-dir", data],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "server.log"), "wb"),
    )
    try:
        key_file = os.path.join(data, "admin.key")
        deadline = time.time() + 30
        while not os.path.exists(key_file) or not open(key_file).read().strip():
            if server.poll() is not None or time.time() > deadline:
                sys.exit("modelreg did not start: " + open(os.path.join(work, "server.log")).read())
            time.sleep(0.05)
        key = open(key_file).read().strip()
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
                conn.request("POST", "/api/v1/models", json.dumps({"framework": "pytorch"}),
                             {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                reply = conn.getresponse()
                model = json.loads(reply.read())["id"]
                break
            except (ConnectionError, OSError):
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        samples = {"binary": [], "text": [], "cat": []}
        for _ in range(RUNS):
            for kind in ("binary", "text"):
                path = os.path.join(work, kind)
                write_file(path, kind)
                samples["cat"].append(cat(path, path + ".copy"))
                samples[kind].append(upload(key, model, path))
                os.remove(path)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in samples.items()}
    rate = {k: SIZE / v / 1e6 for k, v in med.items()}
    print(f"multipart parsing throughput, {SIZE // MIB} MiB per upload, median of {RUNS} round(s), {os.path.basename(BIN)}")
    print()
    print("| measurement | MB/s | vs floor | |")
    print("|---|---|---|---|")
    print(f"| `cat file > copy` of the same files (floor: page cache, no fsync) | {rate['cat']:,.0f} | 1.00x | info |")
    for kind, what in (("binary", "binary content"), ("text", "CRLF-heavy text (a CR every 40 bytes)")):
        print(f"| Octomil multipart upload, {what} | {rate[kind]:,.0f} | {med[kind] / med['cat']:.2f}x | info |")
    print(f"| … text upload time / binary upload time | | {med['text'] / med['binary']:.2f}x | info |")


if __name__ == "__main__":
    main()
