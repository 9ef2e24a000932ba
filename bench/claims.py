#!/usr/bin/env python3
"""Job claims against the backlog (issue 23: "job claims per second with 100k
queued, flat in the backlog").

A registry is seeded, straight into its SQLite file, with BACKLOG queued jobs
of a kind this server does not run (standing for compute jobs waiting behind
busy slots, or for another node's lane) spread over 4 teams, plus DRAIN jobs
of the bookkeeping lane (`machine-event`) that name no event, so that their
handler fails at once: what the server's runner then does per job is a
claim, a lookup and a finish. The time to drain those
DRAIN jobs is measured with a small backlog and with a large one, in the
same round; a claim that scans the backlog shows as a falling rate.

    bench/claims.py                                # BACKLOG 100000 and 1000, 3 rounds
    BENCH_CLAIMS_BACKLOG=20000 BENCH_RUNS=1 bench/claims.py

Standard library only; the release binary (target/release/modelreg), loopback
port 18460, a temp directory under /tmp. Prints a Markdown table and
rewrites the `claims` section of BENCHMARKS.md (BENCH_NO_WRITE=1: print only).
"""

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sections import publish, targets_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_MODELREG_BIN") or os.path.join(ROOT, "target/release/modelreg")
BACKLOG = int(os.environ.get("BENCH_CLAIMS_BACKLOG", "100000"))
SMALL = 1000
DRAIN = int(os.environ.get("BENCH_CLAIMS_DRAIN", "1000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PORT = 18460
PAST = "2026-01-01T00:00:00.000Z"


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def seed(data, backlog):
    subprocess.run([BIN, "--data-dir", data, "init"], check=True, capture_output=True)
    for i in range(3):
        subprocess.run([BIN, "--data-dir", data, "teams", "add", f"team-{i}"], check=True, capture_output=True)
    db = sqlite3.connect(os.path.join(data, "modelreg.db"))
    teams = [row[0] for row in db.execute("SELECT id FROM teams ORDER BY id")]
    rows = []
    for i in range(backlog):
        rows.append((str(uuid.uuid4()), teams[i % len(teams)], "waiting-elsewhere", "queued", PAST, PAST))
    for i in range(DRAIN):
        rows.append((str(uuid.uuid4()), teams[i % len(teams)], "machine-event", "queued", PAST, PAST))
    with db:
        db.executemany(
            "INSERT INTO jobs (id, team_id, kind, state, input, run_after, created_at) VALUES (?, ?, ?, ?, '{\"eventId\": \"none\"}', ?, ?)",
            rows,
        )
    db.close()


def drain_seconds(data):
    """Starts the server and times it through the DRAIN bookkeeping jobs."""
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data, "--bind", f"127.0.0.1:{PORT}", "--python", "/nonexistent",
                             "--gc-interval", "off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = sqlite3.connect(os.path.join(data, "modelreg.db"), timeout=30)
    try:
        started = time.perf_counter()
        deadline = started + 600
        while True:
            left = db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'machine-event' AND state IN ('queued', 'running')").fetchone()[0]
            if left == 0:
                return time.perf_counter() - started
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise SystemExit(f"the server did not drain the jobs ({left} left)")
            time.sleep(0.02)
    finally:
        db.close()
        proc.kill()
        proc.wait()


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: cargo build --release")
    samples = {"small": [], "large": []}
    for rnd in range(1, RUNS + 1):
        for name, backlog in (("small", SMALL), ("large", BACKLOG)):
            work = tempfile.mkdtemp(prefix="modelreg-claims.")
            try:
                data = os.path.join(work, "data")
                log(f"round {rnd}: {backlog} queued compute jobs, {DRAIN} to drain")
                seed(data, backlog)
                samples[name].append(DRAIN / drain_seconds(data))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    small, large = statistics.median(samples["small"]), statistics.median(samples["large"])
    ratio = statistics.median(l / s for l, s in zip(samples["large"], samples["small"]))
    rows = [
        (f"jobs claimed and finished per second, {BACKLOG:,} other jobs queued (bookkeeping lane, {DRAIN:,} jobs)",
         f"{large:,.0f}/s", f"{small:,.0f}/s with {SMALL:,} queued", f"{ratio:.2f}×", "≥ 300/s, flat in the backlog",
         large >= 300 and ratio >= 0.8),
    ]
    table = targets_table(rows)
    heading = f"### Job claims (bench/claims.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {RUNS} rounds, SQLite)"
    publish(ROOT, "claims", heading, table, samples)


if __name__ == "__main__":
    main()
