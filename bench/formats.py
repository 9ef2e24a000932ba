#!/usr/bin/env python3
"""A format conversion (issue 16): a ~10 MB scikit-learn model to ONNX, through modelreg and by hand.

    formats.py setup   PYTHON WORKDIR                  fits the model with the runtime's PYTHON; writes WORKDIR/model.pkl; prints its size
    formats.py convert BASE_URL KEY WORKDIR            uploads model.pkl as a new version (the server runs with
                                                       --no-convert-on-upload), then times from the first
                                                       `download?format=onnx` (which queues the conversion) to the
                                                       200 that serves it, polling every 20 ms; prints seconds
    formats.py by-hand PYTHON WORKDIR                  the same work by hand in the same runtime: a fresh Python
                                                       loads the pickle, converts it with skl2onnx, and checks the
                                                       ONNX with onnxruntime against the original on 100 rows; prints seconds

The difference is modelreg's cost: the job's queueing, copying the original into the job's folder,
containment, the probe of the runtime's packages, storing the artifact durably and committing its row.
"""

import http.client
import json
import subprocess
import sys
import time
import uuid

FIT = r"""
import pickle, sys, numpy as np
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(5)
X = rng.normal(size=(4000, 20))
y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
model = RandomForestClassifier(n_estimators=180, random_state=0).fit(X, y)
pickle.dump(model, open(sys.argv[1], "wb"))
"""

BY_HAND = r"""
import pickle, sys, numpy as np, onnxruntime as ort, skl2onnx
from skl2onnx.common.data_types import FloatTensorType
model = pickle.load(open(sys.argv[1], "rb"))
n = model.n_features_in_
onx = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, n]))], options={id(model): {"zipmap": False}})
open(sys.argv[2], "wb").write(onx.SerializeToString())
X = np.random.default_rng(1).normal(size=(100, n)).astype("float32")
s = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
label, proba = s.run(None, {"input": X})
expected = model.predict_proba(X)
top = np.sort(expected, axis=1)
decided = top[:, -1] - top[:, -2] > 4e-4  # a 30-30 vote may go either way in float32
assert np.abs(proba - expected).max() < 1e-4 and (label == model.predict(X))[decided].all()
"""


def setup(python, workdir):
    path = f"{workdir}/model.pkl"
    subprocess.run([python, "-c", FIT, path], check=True)
    import os

    print(os.path.getsize(path))


def call(conn, key, method, path, body=None, headers=None):
    h = {"Authorization": f"Bearer {key}", **(headers or {})}
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    return r.status, r.read()


def convert(base, key, workdir):
    host, port = base.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    status, body = call(conn, key, "POST", "/api/v1/models", json.dumps({"name": f"bench-{uuid.uuid4().hex[:8]}", "framework": "sklearn"}),
                        {"Content-Type": "application/json"})
    assert status == 201, body
    model = json.loads(body)["id"]
    boundary = uuid.uuid4().hex
    data = open(f"{workdir}/model.pkl", "rb").read()
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.pkl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, body = call(conn, key, "POST", f"/api/v1/models/{model}/versions/upload", form,
                        {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 201, body
    path = f"/api/v1/models/{model}/versions/1/download?format=onnx"
    started = time.monotonic()
    while True:
        status, body = call(conn, key, "GET", path)
        if status == 200:
            break
        message = json.loads(body).get("message", "")
        assert " is queued; " in message or " is running; " in message, body
        time.sleep(0.02)
    print(f"{time.monotonic() - started:.3f}")


def by_hand(python, workdir):
    started = time.monotonic()
    subprocess.run([python, "-c", BY_HAND, f"{workdir}/model.pkl", f"{workdir}/by-hand.onnx"], check=True)
    print(f"{time.monotonic() - started:.3f}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"setup": setup, "convert": convert, "by-hand": by_hand}[command](*args)
