#!/usr/bin/env python3
"""The registry's records on PostgreSQL beside SQLite (issue 23), in one run:

- GET p99 and list p50 at MODELS models (100,000), the same registry on both
  engines (seeded into SQLite, then moved with `modelreg db migrate`, which
  is timed too);
- job claims per second with BACKLOG (100,000) other jobs queued, and with
  1,000, on both engines (as bench/claims.py does for SQLite);
- GET throughput of two servers on one PostgreSQL database behind nginx,
  beside one server behind the same nginx.

    bench/postgres.py
    BENCH_PG_MODELS=20000 BENCH_CLAIMS_BACKLOG=20000 BENCH_RUNS=1 BENCH_NO_WRITE=1 bench/postgres.py

Needs PostgreSQL's server programs (Debian's `postgresql`), nginx and wrk.
A throwaway cluster is made with initdb in a temp directory (as the
unprivileged user `modelreg-pg` when run as root, as the tests do), on
loopback. Medians of BENCH_RUNS rounds; each row's baseline is measured in
the same round. Rewrites the `postgres` section of BENCHMARKS.md unless
BENCH_NO_WRITE is set.
"""

import glob
import os
import re
import shutil
import socket
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
MODELS = int(os.environ.get("BENCH_PG_MODELS", "100000"))
BACKLOG = int(os.environ.get("BENCH_CLAIMS_BACKLOG", "100000"))
SMALL = 1000
DRAIN = int(os.environ.get("BENCH_CLAIMS_DRAIN", "1000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WRK_SECONDS = os.environ.get("BENCH_WRK_SECONDS", "5")
PAST = "2026-01-01T00:00:00.000Z"
PG_USER = "modelreg-pg"


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("no PostgreSQL server programs (apt-get install postgresql)")
    return os.path.dirname(found[-1])


class Postgres:
    """A cluster of its own in a temp directory, on a loopback port."""

    def __init__(self, work):
        self.bin = pg_bin()
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            if subprocess.run(["id", PG_USER], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", PG_USER], check=True)
            shutil.chown(self.dir, PG_USER)
            os.chmod(work, 0o755)
            self.as_user = ["runuser", "-u", PG_USER, "--"]
        data = os.path.join(self.dir, "data")
        subprocess.run(self.as_user + [f"{self.bin}/initdb", "-D", data, "-A", "trust", "-U", "modelreg", "--no-sync"],
                       check=True, capture_output=True)
        self.proc = subprocess.Popen(self.as_user + [f"{self.bin}/postgres", "-D", data, "-p", str(self.port),
                                                     "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
                                                     "-c", "max_connections=200"],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "pg.log"), "w"))
        deadline = time.time() + 30
        while subprocess.run([f"{self.bin}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True).returncode:
            if time.time() > deadline:
                raise SystemExit("PostgreSQL did not start")
            time.sleep(0.1)

    def create(self, name):
        self.psql("postgres", f"CREATE DATABASE {name}")
        return f"postgres://modelreg@127.0.0.1:{self.port}/{name}"

    def psql(self, db, sql):
        return subprocess.run([f"{self.bin}/psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(self.port), "-U", "modelreg",
                               "-d", db, "-c", sql], check=True, capture_output=True, text=True).stdout.strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def modelreg(*args, **kw):
    return subprocess.run([BIN, *args], check=True, capture_output=True, **kw)


class Server:
    def __init__(self, data, database=None, extra=()):
        self.port = free_port()
        args = [BIN, "--data-dir", data]
        if database:
            args += ["--database", database]
        args += ["serve", "--bind", f"127.0.0.1:{self.port}", "--gc-interval", "off", "--python", "/nonexistent",
                 "--machine-delay-ms", "0", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "listening on http://" in line:
                break
        else:
            raise SystemExit("modelreg did not start")
        # keep draining its log so it never blocks on a full pipe
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stderr, stdout=subprocess.DEVNULL)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.drain.wait()


def wrk(url, key, connections=8):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{WRK_SECONDS}s", "--latency",
                          "-H", f"Authorization: Bearer {key}", url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")

    def ms(pct):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"p50": ms(50), "p99": ms(99), "rps": rps}


def nginx(work, ports):
    port = free_port()
    d = tempfile.mkdtemp(dir=work, prefix="nginx.")
    servers = "".join(f"server 127.0.0.1:{p};" for p in ports)
    conf = (f"daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log; worker_rlimit_nofile 4096;\n"
            f"events {{ worker_connections 2048; }}\nhttp {{ access_log off; upstream modelreg {{ {servers} keepalive 64; }}\n"
            f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://modelreg; proxy_http_version 1.1;"
            f" proxy_set_header Connection \"\"; }} }} }}\n")
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    proc = subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d], stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.time() > deadline:
                raise SystemExit("nginx did not listen")
            time.sleep(0.05)


def seed_jobs(data, backlog):
    db = sqlite3.connect(os.path.join(data, "modelreg.db"))
    teams = [row[0] for row in db.execute("SELECT id FROM teams ORDER BY id")]
    rows = [(str(uuid.uuid4()), teams[i % len(teams)], "waiting-elsewhere", "queued", PAST, PAST) for i in range(backlog)]
    rows += [(str(uuid.uuid4()), teams[i % len(teams)], "machine-event", "queued", PAST, PAST) for i in range(DRAIN)]
    with db:
        db.executemany("INSERT INTO jobs (id, team_id, kind, state, input, run_after, created_at) "
                       "VALUES (?, ?, ?, ?, '{\"eventId\": \"none\"}', ?, ?)", rows)
    db.close()


def drain_rate(data, count_left, database=None):
    server = Server(data, database)
    try:
        started = time.perf_counter()
        while count_left() > 0:
            if time.perf_counter() - started > 600:
                raise SystemExit("the jobs did not drain")
            time.sleep(0.02)
        return DRAIN / (time.perf_counter() - started)
    finally:
        server.stop()


def claims_round(work, pg, backlog, rnd):
    """Claims per second on SQLite and on PostgreSQL, one backlog."""
    data = os.path.join(work, f"claims-{backlog}-{rnd}")
    modelreg("--data-dir", data, "init")
    for i in range(3):
        modelreg("--data-dir", data, "teams", "add", f"team-{i}")
    seed_jobs(data, backlog)
    url = pg.create(f"claims_{backlog}_{rnd}")
    modelreg("--data-dir", data, "db", "migrate", "--to", url)
    left_sql = "SELECT COUNT(*) FROM jobs WHERE kind = 'machine-event' AND state IN ('queued', 'running')"
    db = sqlite3.connect(os.path.join(data, "modelreg.db"), timeout=30)
    sqlite_rate = drain_rate(data, lambda: db.execute(left_sql).fetchone()[0])
    db.close()
    name = url.rsplit("/", 1)[1]
    pg_rate = drain_rate(data, lambda: int(pg.psql(name, left_sql)), database=url)
    shutil.rmtree(data, ignore_errors=True)
    return sqlite_rate, pg_rate


def main():
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing")
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: cargo build --release")
    work = tempfile.mkdtemp(prefix="modelreg-pg-bench.")
    pg = Postgres(work)
    s = {k: [] for k in ("get_sqlite", "get_pg", "list_sqlite", "list_pg", "one", "two", "claims_sqlite", "claims_pg",
                         "claims_sqlite_small", "claims_pg_small", "migrate")}
    try:
        data = os.path.join(work, "registry")
        modelreg("--data-dir", data, "init")
        key = open(os.path.join(data, "admin.key")).read().strip()
        log(f"seeding {MODELS:,} models")
        middle = subprocess.run([sys.executable, os.path.join(ROOT, "bench/seed.py"), data, str(MODELS)],
                                check=True, capture_output=True, text=True).stdout.strip()
        url = pg.create("registry")
        started = time.perf_counter()
        modelreg("--data-dir", data, "db", "migrate", "--to", url)
        s["migrate"].append(time.perf_counter() - started)
        for rnd in range(1, RUNS + 1):
            log(f"round {rnd}: GET and list on each engine")
            for engine, database in (("sqlite", None), ("pg", url)):
                server = Server(data, database)
                base = f"http://127.0.0.1:{server.port}/api/v1/models"
                s[f"get_{engine}"].append(wrk(f"{base}/{middle}", key)["p99"])
                s[f"list_{engine}"].append(wrk(f"{base}?limit=20", key)["p50"])
                server.stop()
            log(f"round {rnd}: one server and two behind nginx, on PostgreSQL")
            servers = [Server(data, url), Server(data, url)]
            for n, key_name in ((1, "one"), (2, "two")):
                proxy, port = nginx(work, [srv.port for srv in servers[:n]])
                s[key_name].append(wrk(f"http://127.0.0.1:{port}/api/v1/models/{middle}", key, connections=32)["rps"])
                proxy.kill()
                proxy.wait()
            for srv in servers:
                srv.stop()
            log(f"round {rnd}: claims with {BACKLOG:,} and {SMALL:,} queued")
            a, b = claims_round(work, pg, BACKLOG, rnd)
            s["claims_sqlite"].append(a)
            s["claims_pg"].append(b)
            a, b = claims_round(work, pg, SMALL, rnd)
            s["claims_sqlite_small"].append(a)
            s["claims_pg_small"].append(b)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in s.items() if v}
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(s[a], s[b]))
    rows = [
        (f"GET one model p99, {MODELS:,} models, PostgreSQL", f"{med['get_pg']:.2f} ms", f"{med['get_sqlite']:.2f} ms on SQLite",
         f"{ratio('get_pg', 'get_sqlite'):.2f}×", "within 3×", ratio("get_pg", "get_sqlite") <= 3),
        (f"list p50 (limit 20), {MODELS:,} models, PostgreSQL", f"{med['list_pg']:.2f} ms", f"{med['list_sqlite']:.2f} ms on SQLite",
         f"{ratio('list_pg', 'list_sqlite'):.2f}×", "within 3×", ratio("list_pg", "list_sqlite") <= 3),
        (f"jobs claimed and finished per second, {BACKLOG:,} queued, PostgreSQL", f"{med['claims_pg']:,.0f}/s",
         f"{med['claims_pg_small']:,.0f}/s with {SMALL:,} queued", f"{ratio('claims_pg', 'claims_pg_small'):.2f}×",
         "≥ 300/s, flat in the backlog", med["claims_pg"] >= 300 and ratio("claims_pg", "claims_pg_small") >= 0.8),
        (f"jobs claimed and finished per second, {BACKLOG:,} queued, SQLite", f"{med['claims_sqlite']:,.0f}/s",
         f"{med['claims_sqlite_small']:,.0f}/s with {SMALL:,} queued", f"{ratio('claims_sqlite', 'claims_sqlite_small'):.2f}×",
         "≥ 300/s, flat in the backlog", med["claims_sqlite"] >= 300 and ratio("claims_sqlite", "claims_sqlite_small") >= 0.8),
        ("GET throughput, two servers on one PostgreSQL behind nginx", f"{med['two']:,.0f}/s", f"{med['one']:,.0f}/s with one server",
         f"{ratio('two', 'one'):.2f}×", "(figure)", True),
        (f"db migrate of {MODELS:,} models into PostgreSQL", f"{med['migrate']:.1f} s", "", "", "(figure)", True),
    ]
    table = targets_table(rows)
    cores = os.cpu_count()
    heading = (f"### PostgreSQL beside SQLite (bench/postgres.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
               f"{RUNS} rounds, {cores} cores shared by PostgreSQL, the servers, nginx and wrk)")
    publish(ROOT, "postgres", heading, table, s)


if __name__ == "__main__":
    main()
