#!/usr/bin/env python3
"""Issue 11's mixed load: keep-alive readers, large uploads, crawling uploads
and a slowloris flood at once, while a probe in its own process measures
/healthz and a model GET from fresh connections.

    bench/hostile.py BIN [--scale 1.0] [--write BENCHMARKS.md]

At --scale 1: 500 keep-alive connections of mixed GETs (each waits 0.25-0.75 s
between requests), 16 concurrent 100 MiB uploads, 8 uploads of 16 KiB sent at
1 KiB/s, 600 slowloris connections from one address (127.0.0.2) that send a
partial head and a header line every 5 s and reconnect when closed. The load
comes from 20 other loopback addresses (25 readers each), as 20 client
machines would. Lower --scale scales every count and the upload size.

Passes when every request that should succeed did (keep-alive GETs 200, uploads
201, probe answers 200) and the probe's p99 is under 1 s for both routes.
Standard library only.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from sections import write_section

BOUNDARY = "----modelregbench0d1b2c3"


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def start_server(binary, data, extra):
    proc = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", data] + extra,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    for line in proc.stderr:
        m = re.search(r"listening on http://(\S+)", line)
        if m:
            host, port = m.group(1).rsplit(":", 1)
            # keep draining the access log so the server never blocks on it
            import threading
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(port)
    raise SystemExit("the server did not start")


def blocking_request(port, method, path, key, body=b"", ctype="application/json", source="127.0.0.1", timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n"
    if body:
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    status = int(out[9:12]) if len(out) >= 12 else 0
    return status, out.split(b"\r\n\r\n", 1)[-1]


class Stats:
    def __init__(self):
        self.reads_ok = 0
        self.reads_failed = 0
        self.uploads_ok = 0
        self.uploads_failed = 0
        self.crawls_ok = 0
        self.crawls_failed = 0
        self.loris_admitted_closed = 0
        self.loris_refused = 0
        self.loris_connects = 0
        self.errors = []


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    length = int(m.group(1)) if m else 0
    if length:
        await reader.readexactly(length)
    return status


def multipart_parts(filename):
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail


async def upload(port, key, model, source, payload, prefix, stats, crawl=False):
    head, tail = multipart_parts("m.pt")
    length = len(head) + len(prefix) + len(payload) + len(tail)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writer.write((f"POST /api/v1/models/{model}/versions/upload HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {key}\r\nConnection: close\r\n"
                      f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n").encode())
        writer.write(head + prefix)
        view = memoryview(payload)
        step = 1024 if crawl else 256 * 1024
        for at in range(0, len(view), step):
            writer.write(view[at:at + step])
            await writer.drain()
            if crawl:
                await asyncio.sleep(1.0)
        writer.write(tail)
        await writer.drain()
        status = await asyncio.wait_for(read_response(reader), 120)
        writer.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
        status = 0
        stats.errors.append(f"upload: {e!r}")
    ok = status == 201
    if crawl:
        stats.crawls_ok += ok
        stats.crawls_failed += not ok
    else:
        stats.uploads_ok += ok
        stats.uploads_failed += not ok
    if not ok and status:
        stats.errors.append(f"upload: status {status}")


async def load(port, key, models, scale, stop_floor, stats):
    n_readers = max(1, int(500 * scale))
    n_uploads = max(1, int(16 * scale))
    n_crawls = max(1, int(8 * scale))
    n_loris = max(1, int(600 * scale))
    upload_size = max(1 << 20, int(100 * 1024 * 1024 * scale))
    crawl_size = 16 * 1024
    payload = os.urandom(upload_size)
    crawl_payload = os.urandom(crawl_size)
    started = time.time()
    model = models[0]
    paths = ["/healthz", "/api/v1/models?limit=20", f"/api/v1/models/{model}",
             f"/api/v1/models/{model}/versions/1/download", "/v1/models?limit=20"]
    sources = [f"127.0.0.{10 + i}" for i in range(20)]
    box = {"stop": started + 3600}  # set when the uploads are done

    readers = [asyncio.create_task(keepalive_reader_dyn(port, key, sources[i % 20], paths, box, stats, i)) for i in range(n_readers)]
    loris = [asyncio.create_task(slowloris_dyn(port, box, stats)) for _ in range(n_loris)]
    await asyncio.sleep(2)  # the readers and the flood are in place
    t_up = time.time()
    ups = [asyncio.create_task(upload(port, key, models[1 + i % (len(models) - 1)], sources[i % 20], payload,
                                      i.to_bytes(16, "big"), stats)) for i in range(n_uploads)]
    crawls = [asyncio.create_task(upload(port, key, models[1 + i % (len(models) - 1)], sources[(i + 7) % 20],
                                         crawl_payload, (1000 + i).to_bytes(16, "big"), stats, crawl=True))
              for i in range(n_crawls)]
    await asyncio.gather(*ups)
    upload_window = (t_up, time.time())
    upload_secs = time.time() - t_up
    await asyncio.gather(*crawls)
    box["stop"] = max(time.time(), started + stop_floor)
    await asyncio.gather(*readers, *loris)
    return {
        "readers": n_readers, "uploads": n_uploads, "crawls": n_crawls, "loris": n_loris,
        "upload_mib": upload_size / (1 << 20), "upload_secs": upload_secs, "upload_window": upload_window,
        "duration": time.time() - started,
    }


async def keepalive_reader_dyn(port, key, source, paths, box, stats, seed):
    import random
    rnd = random.Random(seed)
    await asyncio.sleep(rnd.uniform(0, 1.0))
    while time.time() < box["stop"]:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0), limit=1 << 20)
            while time.time() < box["stop"]:
                path = rnd.choice(paths)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
                await writer.drain()
                status = await asyncio.wait_for(read_response(reader), 60)
                if status == 200:
                    stats.reads_ok += 1
                else:
                    stats.reads_failed += 1
                    stats.errors.append(f"GET {path}: {status}")
                await asyncio.sleep(rnd.uniform(0.25, 0.75))
            writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            stats.reads_failed += 1
            stats.errors.append(f"reader: {e!r}")
            await asyncio.sleep(0.5)


async def slowloris_dyn(port, box, stats):
    import random
    await asyncio.sleep(random.uniform(0, 1.0))
    while time.time() < box["stop"]:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            stats.loris_connects += 1
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            while time.time() < box["stop"]:
                try:
                    data = await asyncio.wait_for(reader.read(4096), 5)
                except asyncio.TimeoutError:
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                    continue
                if data.startswith(b"HTTP/1.1 503"):
                    stats.loris_refused += 1
                elif data:
                    stats.loris_admitted_closed += 1
                break
            writer.close()
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        await asyncio.sleep(1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--min-seconds", type=float, default=30.0)
    ap.add_argument("--write", help="BENCHMARKS.md to put the figures in")
    args = ap.parse_args()

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory(prefix="modelreg-hostile.") as data:
        proc, port = start_server(args.binary, data, ["--max-connections", "1024"])
        try:
            key = open(os.path.join(data, "admin.key")).read().strip()
            models = []
            for i in range(5):
                status, body = blocking_request(port, "POST", "/api/v1/models", key, json.dumps({"framework": "pytorch"}).encode())
                assert status == 201, (status, body)
                models.append(json.loads(body)["id"])
            payload = os.urandom(256 * 1024)
            head, tail = multipart_parts("seed.pt")
            status, body = blocking_request(port, "POST", f"/api/v1/models/{models[0]}/versions/upload", key,
                                            head + payload + tail, f"multipart/form-data; boundary={BOUNDARY}")
            assert status == 201, (status, body)

            stats = Stats()
            queue = multiprocessing.Queue()
            # the probe runs until told to stop through its deadline; started first
            stop_box = multiprocessing.Value("d", time.time() + 3600)
            p = multiprocessing.Process(target=probe_until, args=(port, key, models[0], stop_box, queue))
            p.start()
            shape = asyncio.run(load(port, key, models, args.scale, args.min_seconds, stats))
            stop_box.value = time.time()
            lat, probe_failures = queue.get(timeout=120)
            p.join()
            with open(f"/proc/{proc.pid}/status") as f:
                status_lines = f.read()
            peak_rss = int(re.search(r"VmHWM:\s+(\d+)", status_lines).group(1)) // 1024
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    t0, t1 = shape["upload_window"]
    during = [took for name in ("healthz", "model") for (at, took) in lat[name] if t0 <= at <= t1]
    h = [took for _, took in lat["healthz"]]
    m = [took for _, took in lat["model"]]
    failed = stats.reads_failed + stats.uploads_failed + stats.crawls_failed + probe_failures
    ok = failed == 0 and percentile(h, 99) < 1.0 and percentile(m, 99) < 1.0
    lines = [
        "### Hostile and slow clients at once (issue 11)",
        "",
        f"`bench/run hostile` (bench/hostile.py, scale {args.scale:g}), run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"on {os.cpu_count()} cores shared with other work; `serve --max-connections 1024`, other flags default.",
        f"Load for {shape['duration']:.0f} s: {shape['readers']} keep-alive connections of mixed GETs (health, lists, "
        f"a model, a 256 KiB download; 0.25-0.75 s between requests) from 20 addresses, {shape['uploads']} concurrent "
        f"{shape['upload_mib']:.0f} MiB uploads (done in {shape['upload_secs']:.1f} s), {shape['crawls']} uploads of 16 KiB at "
        f"1 KiB/s, {shape['loris']} slowloris connections from one address. The probe is a process of its own: "
        "a fresh connection per request, from a third address.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| `/healthz` from a fresh connection: p50 / p99 / max | {percentile(h, 50)*1000:.1f} / {percentile(h, 99)*1000:.1f} / {max(h)*1000:.1f} ms ({len(h)} requests) |",
        f"| model GET from a fresh connection: p50 / p99 / max | {percentile(m, 50)*1000:.1f} / {percentile(m, 99)*1000:.1f} / {max(m)*1000:.1f} ms ({len(m)} requests) |",
        f"| both, while the {shape['uploads']} large uploads ran: p50 / p99 / max | {percentile(during, 50)*1000:.1f} / {percentile(during, 99)*1000:.1f} / {max(during or [float('nan')])*1000:.1f} ms ({len(during)} requests) |",
        f"| keep-alive GETs answered 200 / failed | {stats.reads_ok} / {stats.reads_failed} |",
        f"| large uploads 201 / failed | {stats.uploads_ok} / {stats.uploads_failed} |",
        f"| crawling uploads 201 / failed | {stats.crawls_ok} / {stats.crawls_failed} |",
        f"| probe requests failed | {probe_failures} |",
        f"| server's peak resident memory (a thread and a SQLite connection per busy connection) | {peak_rss} MiB |",
        f"| slowloris connections made / refused 503 at once / admitted then cut (408) | {stats.loris_connects} / {stats.loris_refused} / {stats.loris_admitted_closed} |",
        f"| verdict (p99 < 1 s for both, nothing failed) | {'pass' if ok else 'FAIL'} |",
    ]
    if stats.errors:
        lines += ["", "First errors: " + "; ".join(stats.errors[:5])]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "hostile", text)
    sys.exit(0 if ok else 1)


def probe_until(port, key, model, stop_box, queue):
    lat = {"healthz": [], "model": []}
    failures = 0
    paths = [("healthz", "/healthz"), ("model", f"/api/v1/models/{model}")]
    i = 0
    while time.time() < stop_box.value:
        name, path = paths[i % 2]
        i += 1
        t0 = time.perf_counter()
        try:
            status, _ = blocking_request(port, "GET", path, key, source="127.0.0.3", timeout=30)
        except OSError:
            status = 0
        took = time.perf_counter() - t0
        if status != 200:
            failures += 1
        lat[name].append((time.time(), took))
        time.sleep(0.05)
    queue.put((lat, failures))


if __name__ == "__main__":
    main()
