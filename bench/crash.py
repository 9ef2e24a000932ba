#!/usr/bin/env python3
"""Crash injection (issue 11): kill -9 the server at random moments while
uploads and creates run through all three dialects, again and again, then
check that nothing acknowledged was lost.

    bench/crash.py BIN [--kills 110] [--seed 11] [--write BENCHMARKS.md]

Each round starts `modelreg serve` on the same data directory, runs six
writers (two Octomil version uploaders of 1 KiB-4 MiB, a Paperspace model
creator, a DataRobot custom model creator, a DataRobot dataset uploader and a
second Octomil uploader on other models) and kills the server with SIGKILL
after a random 0.1-1.2 s. A write counts as acknowledged when its success
answer was read in full. At the end: every acknowledged upload downloads with
its sha256, every acknowledged create reads back, each model's versions are
numbered 1..n with no gap, no upload temp file is left after a restart, and
`modelreg verify` is clean. Repeatable: --seed fixes the kill moments and sizes
(the machine's timing still varies). Standard library only.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from sections import write_section

BOUNDARY = "----modelregcrash7f3e"


def start(binary, data):
    proc = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", data, "--machine-delay-ms", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = re.search(r"listening on http://\S+:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(m.group(1))
    raise SystemExit("the server did not start: " + str(proc.wait()))


def call(port, key, method, path, body=None, ctype="application/json", timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = ctype
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def multipart(filename, payload):
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{BOUNDARY}--\r\n".encode()


MP = f"multipart/form-data; boundary={BOUNDARY}"


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.versions = {}      # (model, number) -> sha256
        self.paperspace = []
        self.datarobot = []
        self.datasets = []
        self.attempts = 0
        self.unacknowledged = 0


def writer(kind, port, key, models, ledger, rnd, stop):
    while not stop.is_set():
        with ledger.lock:
            ledger.attempts += 1
        try:
            if kind == "octomil":
                model = rnd.choice(models)
                payload = rnd.randbytes(rnd.randint(1024, 4 << 20))
                status, body = call(port, key, "POST", f"/api/v1/models/{model}/versions/upload", multipart("m.pt", payload), MP)
                if status == 201:
                    v = json.loads(body)
                    with ledger.lock:
                        ledger.versions[(model, v["version"])] = hashlib.sha256(payload).hexdigest()
                    continue
            elif kind == "paperspace":
                status, body = call(port, key, "POST", "/v1/models",
                                    json.dumps({"name": f"p{rnd.random()}", "modelType": "Tensorflow", "url": "s3://b/m"}).encode())
                if status == 200:
                    with ledger.lock:
                        ledger.paperspace.append(json.loads(body)["id"])
                    continue
            elif kind == "datarobot":
                status, body = call(port, key, "POST", "/api/v2/customModels/",
                                    json.dumps({"name": f"d{rnd.random()}", "targetType": "Regression", "targetName": "y"}).encode())
                if status == 201:
                    with ledger.lock:
                        ledger.datarobot.append(json.loads(body)["id"])
                    continue
            elif kind == "dataset":
                rows = "a,b\n" + "".join(f"{i},{rnd.random()}\n" for i in range(rnd.randint(1, 20000)))
                status, body = call(port, key, "POST", "/api/v2/datasets/fromFile/", multipart("d.csv", rows.encode()), MP)
                if status == 202:
                    with ledger.lock:
                        ledger.datasets.append(json.loads(body)["catalogId"])
                    continue
            if stop.is_set():
                return
            raise RuntimeError(f"{kind}: unexpected {status}: {body[:200]!r}")
        except (OSError, http.client.HTTPException):
            # the server died under us: this write was never acknowledged
            with ledger.lock:
                ledger.unacknowledged += 1
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--kills", type=int, default=110)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--write")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    ledger = Ledger()
    began = time.time()
    temp_left_max = 0
    with tempfile.TemporaryDirectory(prefix="modelreg-crash.") as data:
        proc, port = start(args.binary, data)
        key = open(os.path.join(data, "admin.key")).read().strip()
        models = []
        for _ in range(4):
            status, body = call(port, key, "POST", "/api/v1/models", json.dumps({"framework": "pytorch"}).encode())
            assert status == 201, body
            models.append(json.loads(body)["id"])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for kill in range(args.kills):
            proc, port = start(args.binary, data)
            tmp = os.path.join(data, "blobs", "tmp")
            # what a crash left was swept when serve started
            temp_left_max = max(temp_left_max, len([f for f in os.listdir(tmp) if f.endswith(".part")]))
            stop = threading.Event()
            kinds = ["octomil", "octomil", "paperspace", "datarobot", "dataset", "octomil"]
            threads = [threading.Thread(target=writer, args=(k, port, key, models, ledger, random.Random(rnd.random()), stop))
                       for k in kinds]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.1, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            for t in threads:
                t.join()
            if (kill + 1) % 10 == 0:
                print(f"{kill + 1} kills, {len(ledger.versions)} uploads acknowledged", file=sys.stderr)

        # the final check, on a server that is not killed
        proc, port = start(args.binary, data)
        temp_after = len([f for f in os.listdir(os.path.join(data, "blobs", "tmp")) if f.endswith(".part")])
        missing, wrong, gaps = [], [], []
        for (model, number), sha in sorted(ledger.versions.items()):
            status, body = call(port, key, "GET", f"/api/v1/models/{model}/versions/{number}/download", timeout=120)
            if status != 200:
                missing.append(f"octomil {model} v{number}: {status}")
            elif hashlib.sha256(body).hexdigest() != sha:
                wrong.append(f"octomil {model} v{number}")
        versions_total = 0
        for model in models:
            status, body = call(port, key, "GET", f"/api/v1/models/{model}")
            numbers = [v["version"] for v in json.loads(body)["versions"]]
            versions_total += len(numbers)
            if numbers != list(range(1, len(numbers) + 1)):
                gaps.append(f"{model}: {numbers}")
        for pid in ledger.paperspace:
            if call(port, key, "GET", f"/v1/models/{pid}")[0] != 200:
                missing.append(f"paperspace {pid}")
        for did in ledger.datarobot:
            if call(port, key, "GET", f"/api/v2/customModels/{did}/")[0] != 200:
                missing.append(f"datarobot model {did}")
        for cid in ledger.datasets:
            if call(port, key, "GET", f"/api/v2/datasets/{cid}/")[0] != 200:
                missing.append(f"datarobot dataset {cid}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        verify = subprocess.run([args.binary, "--data-dir", data, "verify"], capture_output=True, text=True)

    acknowledged = len(ledger.versions) + len(ledger.paperspace) + len(ledger.datarobot) + len(ledger.datasets)
    ok = not missing and not wrong and not gaps and verify.returncode == 0 and temp_after == 0 and temp_left_max == 0
    lines = [
        "### Crash injection (issue 11)",
        "",
        f"`bench/run crash` (bench/crash.py --kills {args.kills} --seed {args.seed}), run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.time() - began:.0f} s: each round starts `serve` on "
        "the same data directory, runs six writers (three Octomil version uploaders of 1 KiB-4 MiB, a Paperspace "
        "model creator, a DataRobot custom model creator, a DataRobot dataset uploader) and sends SIGKILL after "
        "0.1-1.2 s; then a last start checks every acknowledged write.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| kill -9 | {args.kills} |",
        f"| writes attempted / cut by a kill (never acknowledged) | {ledger.attempts} / {ledger.unacknowledged} |",
        f"| acknowledged: Octomil versions / Paperspace models / DataRobot models / DataRobot datasets | "
        f"{len(ledger.versions)} / {len(ledger.paperspace)} / {len(ledger.datarobot)} / {len(ledger.datasets)} |",
        f"| acknowledged writes missing after restart | {len(missing)} |",
        f"| uploads whose sha256 differs | {len(wrong)} |",
        f"| models with a gap in their version numbers ({versions_total} versions on {len(models)} models) | {len(gaps)} |",
        f"| upload temp files left right after a start (its sweep done): most in any round / after the last | {temp_left_max} / {temp_after} |",
        f"| `modelreg verify` | {'clean' if verify.returncode == 0 else 'PROBLEMS: ' + verify.stdout[-300:]} |",
        f"| verdict | {'pass' if ok else 'FAIL'} |",
    ]
    if missing or wrong or gaps:
        lines += ["", "First problems: " + "; ".join((missing + wrong + gaps)[:5])]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "crash", text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
