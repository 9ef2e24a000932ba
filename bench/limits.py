#!/usr/bin/env python3
"""Issue 14's measurements that need more than curl and wrk (standard-library Python).

    limits.py files-round URL KEY DIR            one round: 1,000 new files of 4 KiB (random bytes) in DIR/<new>/src
                                                 (and its src.tar; nothing is removed: the caller removes DIR at the
                                                 end); a DataRobot version of them created and downloaded
                                                 as a zip, beside tar of the same folder into and out of the page
                                                 cache; prints "name<TAB>seconds" lines
    limits.py writers URL KEY CLIENTS SECONDS    model creates per second with CLIENTS concurrent keep-alive clients
    limits.py packets PID URL KEY COUNT          socket writes per small response: strace on the server while
                                                 COUNT GETs of a model go over one keep-alive connection

All times are wall seconds from the client's side; the baselines run in the same round, right beside.
"""

import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import uuid

FILES = 1000
FILE_SIZE = 4096


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=300)


def call(conn, key, method, path, body=None, ctype=None, expect=(200, 201, 202)):
    headers = {"Authorization": f"Bearer {key}"}
    if ctype:
        headers["Content-Type"] = ctype
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status not in expect:
        raise SystemExit(f"{method} {path} -> {response.status}: {data[:300]!r}")
    return data


def files_setup(root):
    # Nothing is removed until the run ends (bench/run removes DIR): on an ext4 without a journal
    # (this machine's), creating a file skips over every inode freed in the last minutes, so a
    # removal just before either timing would tax that side alone.
    src = os.path.join(root, "src")
    os.makedirs(src)
    for i in range(FILES):
        with open(os.path.join(src, f"f{i:04}.bin"), "wb") as f:
            f.write(os.urandom(FILE_SIZE))
    subprocess.run(["tar", "-cf", os.path.join(root, "src.tar"), "-C", src, "."], check=True)


def environment(conn, key):
    """A DataRobot execution environment with one version: a version must name one."""
    env = json.loads(call(conn, key, "POST", "/api/v2/executionEnvironments/",
                          json.dumps({"name": "bench", "programmingLanguage": "python"}).encode(), "application/json"))["id"]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w:gz") as tar:
        info = tarfile.TarInfo("Dockerfile")
        dockerfile = b"FROM python:3.11-slim\n"
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="label"\r\n\r\nv1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="dockerContext"; filename="c.tar.gz"\r\n\r\n').encode()
    body += context.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    call(conn, key, "POST", f"/api/v2/executionEnvironments/{env}/versions/", body, f"multipart/form-data; boundary={boundary}")
    return env


def multipart_body(src, env):
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="baseEnvironmentId"\r\n\r\n{env}\r\n'.encode()]
    for name in sorted(os.listdir(src)):
        with open(os.path.join(src, name), "rb") as f:
            content = f.read()
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="filePath"\r\n\r\n{name}\r\n'.encode())
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def files_round(url, key, root):
    # New content every round, so each round stores 1,000 new blobs (not a deduplicated re-upload),
    # in new folders.
    root = os.path.join(root, uuid.uuid4().hex)
    files_setup(root)
    src = os.path.join(root, "src")
    conn = connect(url)
    body, ctype = multipart_body(src, environment(conn, key))
    model = json.loads(call(conn, key, "POST", "/api/v2/customModels/",
                            json.dumps({"name": f"files-{uuid.uuid4().hex[:8]}", "targetType": "Regression",
                                        "targetName": "y"}).encode(), "application/json"))["id"]
    # Baseline 1: the folder written into the page cache (tar extracting it, no fsync).
    dst = os.path.join(root, "dst")
    os.makedirs(dst)
    tar_in, _ = timed(lambda: subprocess.run(["tar", "-xf", os.path.join(root, "src.tar"), "-C", dst], check=True))
    create, data = timed(lambda: call(conn, key, "POST", f"/api/v2/customModels/{model}/versions/", body, ctype))
    version = json.loads(data)
    if len(version.get("items", [])) != FILES:
        raise SystemExit(f"the version has {len(version.get('items', []))} files, not {FILES}")
    # Baseline 2: the folder read out of the page cache into an archive stream (cat, so tar
    # cannot see /dev/null and skip the reading).
    tar_out, _ = timed(lambda: subprocess.run(f"tar -cf - -C '{src}' . | cat > /dev/null", shell=True, check=True))
    download, zipped = timed(lambda: call(conn, key, "GET", f"/api/v2/customModels/{model}/versions/{version['id']}/download/"))
    if len(zipped) < FILES * FILE_SIZE:
        raise SystemExit(f"the zip has {len(zipped)} bytes")
    for name, value in (("files.create", create), ("files.tar_in", tar_in), ("files.download", download), ("files.tar_out", tar_out)):
        print(f"{name}\t{value:.4f}")


def writers(url, key, clients, seconds):
    done = [0] * clients
    failures = []
    start = threading.Barrier(clients + 1)
    stop = time.perf_counter() + 3600

    def work(i):
        conn = connect(url)
        body = json.dumps({"framework": "pytorch", "description": "bench"}).encode()
        start.wait()
        try:
            while time.perf_counter() < stop:
                call(conn, key, "POST", "/api/v1/models", body, "application/json", expect=(201,))
                done[i] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"a writer failed: {failures[0]}")
    print(f"{sum(done) / elapsed:.1f}")


def packets(pid, url, key, count):
    """Socket sends per small answer, counted by strace on every thread of the server."""
    out = f"/tmp/modelreg-strace.{os.getpid()}"
    conn = connect(url)
    model = json.loads(call(conn, key, "POST", "/api/v1/models", json.dumps({"framework": "pytorch"}).encode(),
                            "application/json"))["id"]
    strace = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-e", "trace=sendto,sendmsg,write,writev,sendfile",
                               "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attach to every thread
    conn = connect(url)
    sizes = []
    for _ in range(count):
        sizes.append(len(call(conn, key, "GET", f"/api/v1/models/{model}")))
    conn.close()
    time.sleep(0.3)
    strace.send_signal(signal.SIGINT)
    strace.wait()
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if m:
                calls[m.group(2)] = int(m.group(1))
    os.unlink(out)
    sends = calls.get("sendto", 0) + calls.get("sendmsg", 0) + calls.get("writev", 0)
    # `write` is stderr (logs) on this server, never a socket: reported, not counted
    print(json.dumps({"requests": count, "socket_sends": sends, "writes": calls.get("write", 0),
                      "per_response": sends / count, "body_bytes": sorted(sizes)[len(sizes) // 2]}))


def main():
    cmd = sys.argv[1]
    if cmd == "files-setup":
        files_setup(sys.argv[2])
    elif cmd == "files-round":
        files_round(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "writers":
        writers(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "packets":
        packets(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
