#!/usr/bin/env python3
"""Blobs on S3 (issue 22): modelreg against the same Garage node reached directly.

Each round, side by side on one Garage node started here (loopback ports
18900-18903, no fsync: Garage's default):

  put      a 1 GiB file PUT to modelreg's signed upload URL (streamed into a
           multipart upload, hashed, copied to its address)  vs  the same
           size PUT straight to Garage by curl (SigV4, unsigned payload)
  get      a 1 GiB download through modelreg (streaming mode)  vs  a GET
           straight from Garage by curl
  redirect the same download from a server with --s3-redirect on (curl -L:
           one extra round trip, then Garage serves it)
  files    a DataRobot version of 1,000 files x 4 KiB created on an S3
           registry and on a local one, beside `tar -x` of the same folder
           (bench/limits.py files-round)

and once: the server's peak RSS (VmHWM) over 8 concurrent 1 GiB uploads.
Random content (Garage compresses what it can). Medians over rounds;
ratios are medians of per-round ratios. Prints a Markdown table and
rewrites the `s3` section of BENCHMARKS.md (BENCH_NO_WRITE=1: print only).

    bench/s3.py                       # 1 GiB, 3 rounds; builds nothing: needs target/release/modelreg
    BENCH_S3_SIZE=256 BENCH_RUNS=1 BENCH_NO_WRITE=1 bench/s3.py
    BENCH_MODELREG_BIN=… MODELREG_GARAGE=… bench/s3.py

Standard library, curl and a garage binary (as .ci/run finds or installs
it). Files live in a temp directory under /tmp (about twice the size, plus
Garage's data), removed at the end.
"""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sections import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_MODELREG_BIN") or os.path.join(ROOT, "target/release/modelreg")
MIB = 1 << 20
SIZE = int(os.environ.get("BENCH_S3_SIZE", "1024")) * MIB
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CONCURRENT = 8
S3_PORT, RPC_PORT, ADMIN_PORT = 18900, 18901, 18903
STREAM_PORT, REDIRECT_PORT, LOCAL_PORT, RSS_PORT = 18441, 18442, 18443, 18444
KEY_ID = "GK" + "b3" * 12
SECRET = "5e" * 32
REGION = "garage"
ENDPOINT = f"http://127.0.0.1:{S3_PORT}"
S3_ENV = {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}

CHILDREN = []


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def garage_binary():
    for candidate in (os.environ.get("MODELREG_GARAGE"), shutil.which("garage"),
                      os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "bin/garage"),
                      os.path.expanduser("~/.cache/modelreg-ci/garage/bin/garage")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("no garage binary: .ci/run installs one (cargo install --locked garage --version 2.5.0)")


def start_garage(work):
    garage = garage_binary()
    conf = os.path.join(work, "garage.toml")
    with open(conf, "w") as f:
        f.write(f"""metadata_dir = "{work}/garage-meta"
data_dir = "{work}/garage-data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{RPC_PORT}"
rpc_public_addr = "127.0.0.1:{RPC_PORT}"
rpc_secret = "{os.urandom(32).hex()}"
[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{S3_PORT}"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:{ADMIN_PORT}"
admin_token = "{os.urandom(16).hex()}"
""")
    env = dict(os.environ, NO_COLOR="1")
    CHILDREN.append(subprocess.Popen([garage, "-c", conf, "server"], stdout=open(os.path.join(work, "garage.log"), "w"),
                                     stderr=subprocess.STDOUT, env=env))
    cli = lambda *args: subprocess.run([garage, "-c", conf, *args], check=True, capture_output=True, text=True, env=env).stdout
    deadline = time.time() + 30
    while True:
        try:
            node = cli("node", "id", "-q").strip().split("@")[0]
            break
        except subprocess.CalledProcessError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    cli("layout", "assign", "-z", "dc1", "-c", "10G", node)
    cli("layout", "apply", "--version", "1")
    cli("key", "import", "--yes", "-n", "bench", KEY_ID, SECRET)
    cli("bucket", "create", "bench")
    cli("bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench")


def start_modelreg(data, port, *args, s3=True):
    env = dict(os.environ, **(S3_ENV if s3 else {}))
    log_file = open(data + ".log", "w")
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data, "--bind", f"127.0.0.1:{port}", *args],
                            stdout=subprocess.DEVNULL, stderr=log_file, env=env)
    CHILDREN.append(proc)
    deadline = time.time() + 30
    while "listening on" not in open(data + ".log").read():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"modelreg on {port} did not start:\n{open(data + '.log').read()}")
        time.sleep(0.05)
    with open(os.path.join(data, "admin.key")) as f:
        return proc, f"http://127.0.0.1:{port}", f.read().strip()


def call(url, key, method, path, body=None, ctype=None):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    headers = {"Authorization": f"Bearer {key}"}
    if ctype:
        headers["Content-Type"] = ctype
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    data = reply.read()
    if reply.status >= 300:
        raise SystemExit(f"{method} {path}: {reply.status} {data[:300]!r}")
    return json.loads(data) if data else None


def form(fields):
    return urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"


def push(url, key, model, path, version):
    """The Octomil SDK's push: upload-url, a raw PUT (timed), confirm-upload."""
    signed = call(url, key, "POST", f"/api/v1/models/{model}/versions/upload-url",
                  *form({"version": version, "filename": "model.pt"}))
    seconds = curl(["-T", path, signed["upload_url"]])
    call(url, key, "POST", f"/api/v1/models/{model}/versions/confirm-upload",
         *form({"version": version, "storage_key": signed["storage_key"]}))
    return seconds


def curl(args):
    out = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{time_total}", *args],
                         check=True, capture_output=True, text=True).stdout
    return float(out)


def garage_curl(args):
    return curl(["--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", f"{KEY_ID}:{SECRET}",
                 "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", *args])


def make_file(path, size):
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))


def mark(path, tag):
    """New content for each upload: its first 16 bytes name it."""
    with open(path, "r+b") as f:
        f.write(tag.encode()[:16].ljust(16, b"."))


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))


def concurrent_uploads(url, key, model, path):
    """CONCURRENT pushes at once, each of different content (its thread's tag
    ahead of the file): the server holds them all at the same time."""
    errors = []

    def one(i):
        try:
            signed = call(url, key, "POST", f"/api/v1/models/{model}/versions/upload-url",
                          *form({"version": f"c{i}", "filename": "model.pt"}))
            u = urllib.parse.urlparse(signed["upload_url"])
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
            tag = f"thread {i} {uuid.uuid4().hex}".encode()[:16].ljust(16, b".")
            conn.putrequest("PUT", u.path)
            conn.putheader("Content-Length", str(SIZE))
            conn.endheaders()
            conn.send(tag)
            with open(path, "rb") as f:
                f.seek(len(tag))
                while chunk := f.read(MIB):
                    conn.send(chunk)
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                errors.append(f"upload {i}: {reply.status}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"upload {i}: {e}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("; ".join(errors))


def files_round(url, key, work):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench/limits.py"), "files-round", url, key, work],
                         check=True, capture_output=True, text=True).stdout
    return dict((name, float(value)) for name, value in (line.split("\t") for line in out.splitlines()))


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: cargo build --release")
    work = tempfile.mkdtemp(prefix="modelreg-s3-bench.")
    samples = {}
    add = lambda name, value: samples.setdefault(name, []).append(value)
    try:
        start_garage(work)
        stream, stream_url, stream_key = start_modelreg(os.path.join(work, "stream"), STREAM_PORT, "--blob-store", "s3://bench/stream")
        _, redirect_url, redirect_key = start_modelreg(os.path.join(work, "redirect"), REDIRECT_PORT, "--blob-store", "s3://bench/redirect", "--s3-redirect", "on")
        _, local_url, local_key = start_modelreg(os.path.join(work, "local"), LOCAL_PORT, s3=False)
        for name, url, key in (("s3", stream_url, stream_key), ("redirect", redirect_url, redirect_key)):
            call(url, key, "POST", "/api/v1/models", json.dumps({"name": "big", "framework": "pytorch"}).encode(), "application/json")
        # the small-file rounds first, before gigabytes of writeback make the disk's timings
        files_dir = os.path.join(work, "files")
        for rnd in range(1, RUNS + 1):
            log(f"1,000 files, round {rnd}/{RUNS}")
            os.makedirs(files_dir)
            subprocess.run(["sync"], check=True)
            local = files_round(local_url, local_key, files_dir)
            s3 = files_round(stream_url, stream_key, files_dir)
            add("files.local", local["files.create"])
            add("files.tar_in", local["files.tar_in"])
            add("files.s3", s3["files.create"])
            add("files.s3_tar_in", s3["files.tar_in"])
            shutil.rmtree(files_dir)
        big = os.path.join(work, "big.bin")
        log(f"writing {SIZE // MIB} MiB of random bytes")
        make_file(big, SIZE)
        for rnd in range(1, RUNS + 1):
            log(f"{SIZE // MIB} MiB, round {rnd}/{RUNS}")
            mark(big, f"direct {rnd}")
            add("put.garage", garage_curl(["-T", big, f"{ENDPOINT}/bench/direct/{rnd}.bin"]))
            mark(big, f"modelreg {rnd}")
            add("put.modelreg", push(stream_url, stream_key, "big", big, f"1.{rnd}"))
            add("get.garage", garage_curl([f"{ENDPOINT}/bench/direct/{rnd}.bin"]))
            add("get.modelreg", curl(["-H", f"Authorization: Bearer {stream_key}", f"{stream_url}/api/v1/models/big/versions/{rnd}/download"]))
            mark(big, f"redirect {rnd}")
            push(redirect_url, redirect_key, "big", big, f"1.{rnd}")
            add("get.redirect", curl(["-L", "-H", f"Authorization: Bearer {redirect_key}", f"{redirect_url}/api/v1/models/big/versions/{rnd}/download"]))
        log(f"{CONCURRENT} concurrent {SIZE // MIB} MiB uploads")
        rss_proc, rss_url, rss_key = start_modelreg(os.path.join(work, "rss"), RSS_PORT, "--blob-store", "s3://bench/rss")
        call(rss_url, rss_key, "POST", "/api/v1/models", json.dumps({"name": "many", "framework": "pytorch"}).encode(), "application/json")
        idle = peak_rss_kib(rss_proc.pid)
        concurrent_uploads(rss_url, rss_key, "many", big)
        add("rss.idle", idle / 1024)
        add("rss.peak", peak_rss_kib(rss_proc.pid) / 1024)
    finally:
        for proc in CHILDREN:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = lambda name: statistics.median(samples[name])
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(samples[a], samples[b]))
    gib = SIZE / (1 << 30)
    put_r = ratio("put.garage", "put.modelreg")
    get_r = ratio("get.garage", "get.modelreg")
    extra_ms = statistics.median((r - g) * 1000 for r, g in zip(samples["get.redirect"], samples["get.garage"]))
    files_r = ratio("files.local", "files.tar_in")
    files_s3_r = ratio("files.s3", "files.s3_tar_in")
    rows = [
        (f"{gib:g} GiB upload through modelreg (signed PUT, streamed to a multipart upload) vs a PUT straight to Garage",
         f"{SIZE / MIB / med('put.modelreg'):.0f} MiB/s", f"{SIZE / MIB / med('put.garage'):.0f} MiB/s direct",
         f"{put_r:.2f}× the throughput", "≥ 0.8×", put_r >= 0.8),
        (f"{gib:g} GiB download through modelreg (streaming) vs a GET straight from Garage",
         f"{SIZE / MIB / med('get.modelreg'):.0f} MiB/s", f"{SIZE / MIB / med('get.garage'):.0f} MiB/s direct",
         f"{get_r:.2f}× the throughput", "≥ 0.9×", get_r >= 0.9),
        (f"… the same from a server with `--s3-redirect on` (307, then Garage)",
         f"{med('get.redirect'):.2f} s", f"{med('get.garage'):.2f} s direct", f"+{extra_ms:.0f} ms", "one extra round trip", None),
        (f"peak RSS over {CONCURRENT} concurrent {gib:g} GiB uploads to S3",
         f"{med('rss.peak'):.0f} MiB", f"{med('rss.idle'):.0f} MiB idle", "", "≤ 256 MiB", med("rss.peak") <= 256),
        ("DataRobot version of 1,000 files × 4 KiB, create, local registry, vs `tar -x` of the folder",
         f"{med('files.local'):.3f} s", f"{med('files.tar_in'):.3f} s tar -x", f"{files_r:.2f}×", "≤ 2×", files_r <= 2),
        ("… the same on an S3 registry (small files live in the database either way)",
         f"{med('files.s3'):.3f} s", f"{med('files.s3_tar_in'):.3f} s tar -x", f"{files_s3_r:.2f}×", "info", None),
    ]
    met = lambda m: "–" if m is None else ("yes" if m else "**NO**")
    table = ["| what | modelreg | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    table += [f"| {w} | {o} | {b} | {r} | {t} | {met(m)} |" for w, o, b, r, t, m in rows]
    head = (f"### Blobs on S3 (bench/s3.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {RUNS} rounds, "
            f"Garage 2.5.0 on loopback, one node without fsync)")
    text = "\n".join([head, "", *table])
    print(text)
    print("\nraw: " + json.dumps(samples), file=sys.stderr)
    if not os.environ.get("BENCH_NO_WRITE"):
        write_section(os.path.join(ROOT, "BENCHMARKS.md"), "s3", text)


if __name__ == "__main__":
    main()
