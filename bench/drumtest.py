#!/usr/bin/env python3
"""A custom model test on DRUM, against its floor.

    drumtest.py setup  BASE_URL KEY WORKDIR            an environment, a model, a version, a dataset; prints their ids (JSON)
    drumtest.py test   BASE_URL KEY IDS_JSON           POST customModelTests/ and wait for the verdict; prints seconds
    drumtest.py floor  PYTHON WORKDIR PORT             the same model's `drum server`: start, the test's requests, stop; prints seconds
    drumtest.py fi-setup  BASE_URL KEY WORKDIR         a 20-feature model with 2,500 rows of training data; prints ids (JSON)
    drumtest.py fi        BASE_URL KEY IDS_JSON        feature impact through modelreg (one scoring pass); prints seconds
    drumtest.py fi-naive  PYTHON WORKDIR               the naive way: one `drum score` per permuted feature (and the baseline); prints seconds

The floor is what any test of this model must spend: one DRUM start (until
`GET /` answers) and the requests modelreg's checks send: the whole dataset
(errorCheck), every feature blanked in the first 100 rows in one request
(nullValueImputation), 50 rows one at a time (sideEffects), and a last
`GET /` (longRunningService). The test's time over it is modelreg's cost:
queueing the job, writing the files, containment, the checks' bookkeeping.
"""

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

ROWS = 1000
FEATURES = ["x1", "x2", "x3", "x4", "x5"]
MODEL = b"""import pandas as pd

def load_model(code_dir):
    return {"w": [0.5, -1.0, 2.0, 0.25, 1.5]}

def score(data, model, **kwargs):
    data = data.fillna(0)
    cols = ["x1", "x2", "x3", "x4", "x5"]
    return pd.DataFrame({"Predictions": sum(data[c] * w for c, w in zip(cols, model["w"]))})
"""


def dataset_csv():
    lines = [",".join(FEATURES + ["y"])]
    for i in range(ROWS):
        xs = [(i * (k + 3)) % 17 / 4 for k in range(len(FEATURES))]
        lines.append(",".join(f"{x:g}" for x in xs + [sum(xs)]))
    return ("\n".join(lines) + "\n").encode()


class Client:
    def __init__(self, base, key):
        host, port = base.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.key = key

    def call(self, method, path, body=None, content_type=None, expect=(200, 201, 202)):
        headers = {"Authorization": f"Bearer {self.key}"}
        if content_type:
            headers["Content-Type"] = content_type
        if isinstance(body, dict):
            body, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status not in expect:
            raise SystemExit(f"{method} {path}: {r.status} {data[:500]!r}")
        return json.loads(data) if data else None

    def multipart(self, path, fields, files):
        boundary = uuid.uuid4().hex
        out = io.BytesIO()
        for name, value in fields:
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, filename, data in files:
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n\r\n'.encode())
            out.write(data + b"\r\n")
        out.write(f"--{boundary}--\r\n".encode())
        return self.call("POST", path, out.getvalue(), f"multipart/form-data; boundary={boundary}")


def setup(base, key, workdir):
    c = Client(base, key)
    api = "/api/v2"
    env = c.call("POST", f"{api}/executionEnvironments/", {"name": "bench", "programmingLanguage": "python"})["id"]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w:gz") as tar:
        info = tarfile.TarInfo("Dockerfile")
        dockerfile = b"FROM python:3.11-slim\n"
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    c.multipart(f"{api}/executionEnvironments/{env}/versions/", [("label", "v1")], [("dockerContext", "c.tar.gz", context.getvalue())])
    model = c.call("POST", f"{api}/customModels/", {"name": "bench", "targetType": "Regression", "targetName": "y"})["id"]
    version = c.multipart(f"{api}/customModels/{model}/versions/", [("baseEnvironmentId", env), ("filePath", "custom.py")], [("file", "custom.py", MODEL)])
    for _ in range(600):
        if c.call("GET", f"{api}/executionEnvironments/{env}/")["latestVersion"]["buildStatus"] in ("success", "failed"):
            break
        time.sleep(0.05)
    csv = dataset_csv()
    dataset = c.multipart(f"{api}/datasets/fromFile/", [], [("file", "bench.csv", csv)])["catalogId"]
    for _ in range(600):
        if c.call("GET", f"{api}/datasets/{dataset}/")["processingState"] != "RUNNING":
            break
        time.sleep(0.05)
    os.makedirs(os.path.join(workdir, "code"), exist_ok=True)
    with open(os.path.join(workdir, "code", "custom.py"), "wb") as f:
        f.write(MODEL)
    with open(os.path.join(workdir, "data.csv"), "wb") as f:
        f.write(csv)
    print(json.dumps({"model": model, "version": version["id"], "dataset": dataset}))


def test(base, key, ids):
    ids = json.loads(ids)
    c = Client(base, key)
    started = time.monotonic()
    c.call("POST", "/api/v2/customModelTests/", {"customModelId": ids["model"], "customModelVersionId": ids["version"], "datasetId": ids["dataset"]})
    listed = c.call("GET", f"/api/v2/customModelTests/?customModelId={ids['model']}&limit=1")["data"][0]
    while True:
        t = c.call("GET", f"/api/v2/customModelTests/{listed['id']}/")
        if t["overallStatus"] not in ("in_progress", "queued"):
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    if t["overallStatus"] != "succeeded":
        raise SystemExit(f"the test did not succeed: {json.dumps(t['testingStatus'])}")
    print(f"{elapsed:.3f}")


FI_FEATURES = [f"f{i}" for i in range(20)]
FI_ROWS = 2500
FI_MODEL = b"""import pandas as pd

def load_model(code_dir):
    return {}

def score(data, model, **kwargs):
    x = data.fillna(0)
    return pd.DataFrame({"Predictions": sum((i + 1) * x[f"f{i}"] for i in range(20))})
"""


def fi_csv():
    lines = [",".join(FI_FEATURES + ["y"])]
    for r in range(FI_ROWS):
        xs = [((r * (7 + 2 * k)) % 101) / 10 for k in range(len(FI_FEATURES))]
        lines.append(",".join(f"{x:g}" for x in xs) + f",{sum((i + 1) * x for i, x in enumerate(xs)):g}")
    return ("\n".join(lines) + "\n").encode()


def fi_setup(base, key, workdir):
    c = Client(base, key)
    api = "/api/v2"
    env = c.call("GET", f"{api}/executionEnvironments/?limit=1")["data"][0]["id"]
    model = c.call("POST", f"{api}/customModels/", {"name": "bench-fi", "targetType": "Regression", "targetName": "y"})["id"]
    version = c.multipart(f"{api}/customModels/{model}/versions/", [("baseEnvironmentId", env), ("filePath", "custom.py")], [("file", "custom.py", FI_MODEL)])
    csv = fi_csv()
    dataset = c.multipart(f"{api}/datasets/fromFile/", [], [("file", "fi.csv", csv)])["catalogId"]
    for _ in range(600):
        if c.call("GET", f"{api}/datasets/{dataset}/")["processingState"] != "RUNNING":
            break
        time.sleep(0.05)
    c.call("PATCH", f"{api}/customModels/{model}/trainingData/", {"datasetId": dataset})
    os.makedirs(os.path.join(workdir, "fi-code"), exist_ok=True)
    with open(os.path.join(workdir, "fi-code", "custom.py"), "wb") as f:
        f.write(FI_MODEL)
    with open(os.path.join(workdir, "fi.csv"), "wb") as f:
        f.write(csv)
    print(json.dumps({"model": model, "version": version["id"]}))


def fi(base, key, ids):
    ids = json.loads(ids)
    c = Client(base, key)
    path = f"/api/v2/customModels/{ids['model']}/versions/{ids['version']}/featureImpact/"
    started = time.monotonic()
    c.call("POST", path, {})
    while True:
        c.conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        r = c.conn.getresponse()
        body = r.read()
        if r.status == 200:
            break
        if r.status != 422:
            raise SystemExit(f"feature impact failed: {r.status} {body[:300]!r}")
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    top = json.loads(body)["featureImpacts"][0]["featureName"]
    if top != "f19":
        raise SystemExit(f"the strongest feature should be f19, not {top}")
    print(f"{elapsed:.3f}")


def fi_naive(python, workdir):
    """Permutation importance with one cold `drum score` per copy: the
    baseline, then each feature shuffled (the same work, no warm server)."""
    import random
    with open(os.path.join(workdir, "fi.csv")) as f:
        lines = f.read().splitlines()
    header = lines[0].split(",")[:-1]
    rows = [line.split(",")[:-1] for line in lines[1:]]
    home = tempfile.mkdtemp(prefix="drumnaive-")
    rng = random.Random(7)
    started = time.monotonic()
    for k in range(-1, len(header)):
        copy = [list(r) for r in rows]
        if k >= 0:
            column = [r[k] for r in rows]
            rng.shuffle(column)
            for r, v in zip(copy, column):
                r[k] = v
        inp, out = os.path.join(home, "in.csv"), os.path.join(home, "out.csv")
        with open(inp, "wb") as f:
            f.write(csv_of(header, copy))
        subprocess.run(
            [python, "-m", "datarobot_drum.drum.main", "score", "--code-dir", os.path.join(workdir, "fi-code"),
             "--input", inp, "--output", out, "--target-type", "regression"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HOME": home},
        )
    print(f"{time.monotonic() - started:.3f}")


def csv_of(header, rows):
    return ("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n").encode()


def floor(python, workdir, port):
    with open(os.path.join(workdir, "data.csv")) as f:
        lines = f.read().splitlines()
    header = lines[0].split(",")[:-1]
    rows = [line.split(",")[:-1] for line in lines[1:]]
    sample = rows[:100]
    variants = [[("" if j == k else v) for j, v in enumerate(r)] for k in range(len(header)) for r in sample]
    home = tempfile.mkdtemp(prefix="drumfloor-")
    started = time.monotonic()
    server = subprocess.Popen(
        [python, "-m", "datarobot_drum.drum.entry_point", "server", "--code-dir", os.path.join(workdir, "code"),
         "--address", f"127.0.0.1:{port}", "--target-type", "regression"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env={**os.environ, "HOME": home},
    )
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None:
                raise SystemExit("drum server exited before it answered")
            time.sleep(0.02)

        def predict(body):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            c.request("POST", "/predict/", body=body, headers={"Content-Type": "text/csv"})
            r = c.getresponse()
            data = r.read()
            assert r.status == 200, data[:300]

        predict(csv_of(header, rows))
        predict(csv_of(header, variants))
        for r in rows[:50]:
            predict(csv_of(header, [r]))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/")
        c.getresponse().read()
        elapsed = time.monotonic() - started
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    print(f"{elapsed:.3f}")


def main():
    mode, *args = sys.argv[1:]
    {
        "setup": setup,
        "test": test,
        "floor": lambda p, w, port: floor(p, w, int(port)),
        "fi-setup": fi_setup,
        "fi": fi,
        "fi-naive": fi_naive,
    }[mode](*args)


if __name__ == "__main__":
    main()
