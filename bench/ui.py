#!/usr/bin/env python3
"""The web UI's first page over a large registry, in headless Chromium.

    bench/ui.py [MODELREG_BIN] [N]      # N models (default 1,000,000)

Seeds a fresh data directory with N models (bench/seed.py), serves it, signs
in through the page, then loads the model list RUNS times (default 7,
BENCH_RUNS) from a fresh page load each time and prints, as JSON, the median
and worst of:

- first_page_ms: navigation start to the first page of rows in the DOM (the
  page's own clock: performance.now() when the list rendered);
- list_ms: the list's request to its rendered rows (what the UI records);
- api_ms: the /ui/api/models request alone, from Python (no browser);
- api_search_miss_ms, api_door_miss_ms, api_framework_miss_ms: a search, a
  door filter and a framework filter that match nothing, the worst case (a
  walk over every model).

Needs chromium and chromedriver (Debian: chromium, chromium-driver). Uses
loopback ports 18440 (modelreg) and 18441 (chromedriver). Not part of
bench/run: it measures the UI, not the API against its baselines.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
PORT, DRIVER_PORT = 18440, 18441
RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def wait(what, probe, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"gave up waiting for {what}")


def serve(binary, data):
    proc = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{PORT}", "--data-dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait("modelreg", lambda: http("GET", f"http://127.0.0.1:{PORT}/healthz"))
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(BENCH, "..", "target", "release", "modelreg")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    work = tempfile.mkdtemp(prefix="modelreg-ui-bench-")
    driver = None
    server = None
    try:
        data = os.path.join(work, "data")
        stop(serve(binary, data))
        key = open(os.path.join(data, "admin.key")).read().strip()
        t0 = time.monotonic()
        subprocess.run([sys.executable, os.path.join(BENCH, "seed.py"), data, str(count)], check=True, stdout=subprocess.DEVNULL)
        seed_s = time.monotonic() - t0
        server = serve(binary, data)
        base = f"http://127.0.0.1:{PORT}"

        api = []
        for _ in range(RUNS):
            t = time.perf_counter()
            page = http("GET", f"{base}/ui/api/models?limit=50", headers={"Authorization": f"Bearer {key}"})
            api.append((time.perf_counter() - t) * 1000)
            assert len(page["items"]) == 50, page

        # The worst cases, for the record: a search or a door that matches
        # nothing walks every model of the team (no full-text index).
        worst = {}
        for name, query in [("api_search_miss_ms", "q=no-such-text"), ("api_door_miss_ms", "origin=datarobot"),
                            ("api_framework_miss_ms", "framework=onnx")]:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                http("GET", f"{base}/ui/api/models?limit=50&{query}", headers={"Authorization": f"Bearer {key}"})
                times.append((time.perf_counter() - t) * 1000)
            worst[name] = round(statistics.median(times), 1)

        driver = subprocess.Popen(["chromedriver", f"--port={DRIVER_PORT}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wd = f"http://127.0.0.1:{DRIVER_PORT}"
        wait("chromedriver", lambda: http("GET", f"{wd}/status")["value"]["ready"])
        profile = os.path.join(work, "profile")
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800", f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": shutil.which("chromium") or "chromium", "args": args}}}}
        session = http("POST", f"{wd}/session", caps)["value"]["sessionId"]
        s = f"{wd}/session/{session}"

        def js(script):
            return http("POST", f"{s}/execute/sync", {"script": script, "args": []})["value"]

        http("POST", f"{s}/url", {"url": f"{base}/"})
        js(f"sessionStorage.setItem('modelreg.key', {json.dumps(key)})")
        first, listed = [], []
        for _ in range(RUNS):
            http("POST", f"{s}/url", {"url": f"{base}/?r={time.time()}#/"})
            got = wait("the first page of rows", lambda: js(
                "const rows = document.querySelectorAll('#models tbody tr').length;"
                "return rows === 50 && document.body.dataset.listMs ? [performance.now(), Number(document.body.dataset.listMs)] : null"))
            # performance.now() at the check is an upper bound of when the rows
            # appeared; the UI's own record (list_ms) is exact for the list part.
            first.append(got[0])
            listed.append(got[1])
        http("DELETE", s)
        summary = lambda xs: {"median": round(statistics.median(xs), 1), "max": round(max(xs), 1)}
        print(json.dumps({"models": count, "seed_seconds": round(seed_s, 1), "runs": RUNS,
                          "first_page_ms": summary(first), "list_ms": summary(listed), "api_ms": summary(api), **worst}))
    finally:
        if driver:
            driver.terminate()
            driver.wait()
        if server:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
