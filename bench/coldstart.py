#!/usr/bin/env python3
"""Cold start: time from exec to the first 200 on GET /healthz.

    coldstart.py RUNS PORT PATH -- COMMAND...

Starts COMMAND (which must listen on 127.0.0.1:PORT), polls PATH over
raw sockets as fast as it can (a connect to a closed port fails in
microseconds), records the time of the first 200, stops the server with
SIGTERM and waits for it. Prints one time in milliseconds per run.
"""

import os
import signal
import socket
import subprocess
import sys
import time


def first_200(port: int, path: str, started: float, deadline_s: float = 300.0) -> float:
    request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path.encode()
    while time.perf_counter() - started < deadline_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(request)
                head = s.recv(64)
                if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"):
                    return time.perf_counter() - started
        except OSError:
            pass
    raise SystemExit(f"no 200 on {path} within {deadline_s}s")


def main() -> None:
    runs, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    command = sys.argv[sys.argv.index("--") + 1:]
    for _ in range(runs):
        started = time.perf_counter()
        # Its own session, so that stopping it stops every process it started.
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            elapsed = first_200(port, path, started)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        print(f"{elapsed * 1000:.2f}")
        sys.stdout.flush()
        # Let the port leave TIME_WAIT trouble behind (SO_REUSEADDR covers it,
        # but a short pause keeps the runs independent).
        time.sleep(0.05)


if __name__ == "__main__":
    main()
