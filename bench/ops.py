#!/usr/bin/env python3
"""Registry operations, one at a time, against modelreg or an MLflow server.

    ops.py modelreg BASE_URL KEY setup  N         create N models (8 clients); print one id
    ops.py modelreg BASE_URL KEY latency COUNT    time each operation COUNT times
    ops.py mlflow   BASE_URL -   setup  N         register N models; print one name
    ops.py mlflow   BASE_URL -   latency COUNT
    ops.py KIND     BASE_URL KEY one              create one model with one version; print its id or name
    ops.py mlflow   BASE_URL -   artifact-url     create a run; print where to PUT/GET a file
    ops.py fsync    DIR COUNT                     the disk's own cost: ms to write 4 KiB and fsync, COUNT times

`latency` prints one JSON line: for each operation (create a model, create a
version holding a 4 KiB file, get the model, list/search the first page) the
median and p99 milliseconds over COUNT sequential calls on one keep-alive
connection. Both sides are driven the same way: the same client, the same
file, one request after another, so the numbers compare server work.
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse
import uuid

SMALL_FILE = bytes(range(256)) * 16  # 4 KiB


class Client:
    def __init__(self, base: str, key: str | None):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port
        self.key = key
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(self, method: str, path: str, body=None, headers=None, expect=(200, 201)):
        headers = dict(headers or {})
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt == 2:
                    raise
        if response.status not in expect:
            raise SystemExit(f"{method} {path} -> {response.status}: {data[:500]!r}")
        return json.loads(data) if data and response.getheader("Content-Type", "").startswith("application/json") else data


def multipart(fields: dict, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    out.append(content)
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class Modelreg:
    def __init__(self, base: str, key: str):
        self.c = Client(base, key)

    def create_model(self) -> str:
        return self.c.request("POST", "/api/v1/models", {"framework": "pytorch", "description": "bench"})["id"]

    def create_version(self, model_id: str) -> None:
        body, ctype = multipart({"format": "pytorch"}, "model.pt", SMALL_FILE)
        self.c.request("POST", f"/api/v1/models/{model_id}/versions/upload", body, {"Content-Type": ctype})

    def get(self, model_id: str) -> None:
        self.c.request("GET", f"/api/v1/models/{model_id}")

    def search(self) -> None:
        self.c.request("GET", "/api/v1/models?limit=20")


class Mlflow:
    API = "/api/2.0/mlflow"

    def __init__(self, base: str):
        self.c = Client(base, None)
        self._run = None

    def run(self) -> tuple[str, str]:
        """An experiment and a run to hold artifacts: (experiment_id, run_id)."""
        if self._run is None:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            exp = self.c.request("POST", f"{self.API}/experiments/create", {"name": name})["experiment_id"]
            run = self.c.request("POST", f"{self.API}/runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]
            self._run = (exp, run)
        return self._run

    def artifact_path(self, name: str) -> str:
        exp, run = self.run()
        return f"{exp}/{run}/artifacts/{name}"

    def create_model(self) -> str:
        name = f"model-{uuid.uuid4().hex}"
        self.c.request("POST", f"{self.API}/registered-models/create", {"name": name, "description": "bench"})
        return name

    def create_version(self, name: str) -> None:
        # MLflow's two steps: store the file as a run artifact, then register
        # a version whose source points at it.
        path = self.artifact_path(f"{name}/model.pt")
        self.c.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{path}", SMALL_FILE,
                       {"Content-Type": "application/octet-stream"})
        exp, run = self.run()
        self.c.request("POST", f"{self.API}/model-versions/create",
                       {"name": name, "source": f"mlflow-artifacts:/{path}", "run_id": run})

    def get(self, name: str) -> None:
        self.c.request("GET", f"{self.API}/registered-models/get?name={urllib.parse.quote(name)}")

    def search(self) -> None:
        self.c.request("GET", f"{self.API}/registered-models/search?max_results=20")


def timed(fn, count: int) -> dict:
    times = []
    for _ in range(count):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)}


def fsync_probe(directory: str, count: int) -> None:
    """What one durable write costs on this disk: the floor under any create
    that must be on disk before it is acknowledged."""
    import os

    path = os.path.join(directory, "fsync-probe")
    with open(path, "wb") as f:
        for _ in range(count):
            t = time.perf_counter()
            f.write(SMALL_FILE)
            f.flush()
            os.fsync(f.fileno())
            print(f"{(time.perf_counter() - t) * 1000:.3f}")
    os.remove(path)


def main() -> None:
    if sys.argv[1] == "fsync":
        return fsync_probe(sys.argv[2], int(sys.argv[3]))
    kind, base, key, action = sys.argv[1:5]
    arg = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    side = Modelreg(base, key) if kind == "modelreg" else Mlflow(base)
    if action == "setup":
        # Eight clients at once, each on its own connection, to seed quickly.
        from concurrent.futures import ThreadPoolExecutor

        def create(n: int) -> list:
            one = Modelreg(base, key) if kind == "modelreg" else Mlflow(base)
            return [one.create_model() for _ in range(n)]

        with ThreadPoolExecutor(8) as pool:
            ids = [i for batch in pool.map(create, [arg // 8 + (1 if j < arg % 8 else 0) for j in range(8)]) for i in batch]
        print(ids[len(ids) // 2])
    elif action == "one":
        model = side.create_model()
        side.create_version(model)
        print(model)
    elif action == "artifact-url":
        print(f"{base}/api/2.0/mlflow-artifacts/artifacts/{side.artifact_path('big.bin')}")
    elif action == "latency":
        created = []
        result = {"create_model": timed(lambda: created.append(side.create_model()), arg)}
        pending = iter(created)
        result["create_version"] = timed(lambda: side.create_version(next(pending)), arg)
        target = created[len(created) // 2]
        result["get"] = timed(lambda: side.get(target), arg)
        result["search"] = timed(side.search, arg)
        print(json.dumps(result))
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main()
