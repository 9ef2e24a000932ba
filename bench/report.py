#!/usr/bin/env python3
"""Turns bench/run's raw samples into the table, and rewrites BENCHMARKS.md.

The raw file has one sample a line: NAME<TAB>ROUND<TAB>VALUE. A figure is the
median over rounds; a ratio is the median of the per-round ratios (both sides
measured in the same round, minutes apart at most), so that load from other
work on the machine cancels out as far as it can.

BENCHMARKS.md is rewritten from the top down to its "## Notes" heading; the
notes (hand-written analysis) are kept as they are.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
from collections import defaultdict

NOTES_HEADING = "## Notes"


def load(path):
    samples = defaultdict(dict)
    with open(path) as f:
        for line in f:
            name, rnd, value = line.rstrip("\n").split("\t")
            # Several samples in one "round" (cold starts) get distinct keys.
            key = rnd if rnd not in samples[name] else f"{rnd}.{len(samples[name])}"
            samples[name][key] = float(value)
    return samples


class Figures:
    def __init__(self, samples):
        self.s = samples

    def has(self, name):
        return name in self.s and self.s[name]

    def med(self, name):
        # nan for a figure not measured (BENCH_NO_MLFLOW): its rows are left out
        return statistics.median(self.s[name].values()) if self.has(name) else float("nan")

    def ratio(self, a, b, fn=None):
        """Median over rounds of a/b; b may be a function of the round."""
        ratios = []
        for rnd, va in self.s.get(a, {}).items():
            vb = fn(rnd) if fn else self.s[b].get(rnd)
            if vb:
                ratios.append(va / vb)
        return statistics.median(ratios) if ratios else float("nan")

    def per_round(self, name, rnd):
        return self.s[name].get(rnd)


def fmt(value, unit):
    if value is None:
        return "–"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MB/s":
        return f"{value:,.0f} MB/s"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "x":
        return f"{value:.2f}×"
    return f"{value} {unit}"


def build_rows(f, ops_mr, ops_ml, big_bytes):
    rows = []  # (section, measurement, modelreg, baseline, ratio, target, met)
    mb = big_bytes / 1e6

    def row(section, what, ours, base, ratio, target, met):
        rows.append((section, what, ours, base, ratio, target, met))

    # --- uploads
    sec = "Upload 1 GiB"
    up = f.med("upload.modelreg")
    r = f.ratio("upload.modelreg", "hash.sha256sum")
    row(sec, "Octomil upload (curl -F) vs `sha256sum` of the file", fmt(up, "s"), fmt(f.med("hash.sha256sum"), "s") + " sha256sum",
        fmt(r, "x"), "≤ 1.30×", r <= 1.3)
    strict = lambda rnd: max(f.per_round("hash.openssl", rnd), f.per_round("write.cat_fsync", rnd))
    r = f.ratio("upload.modelreg", None, strict)
    strict_med = statistics.median(strict(k) for k in f.s["hash.openssl"])
    row(sec, "… vs the strict limit: max(`openssl dgst -sha256` (SHA-NI), `cat > copy && sync copy`)", fmt(up, "s"),
        f"{fmt(strict_med, 's')} (openssl {fmt(f.med('hash.openssl'), 's')}, cat+fsync {fmt(f.med('write.cat_fsync'), 's')})",
        fmt(r, "x"), "≤ 1.20× (issue 14)", r <= 1.2)
    r = f.ratio("upload.modelreg", "write.cat")
    row(sec, "… vs `cat file > copy` (page cache, no fsync)", fmt(up, "s"), fmt(f.med("write.cat"), "s"), fmt(r, "x"), "info", None)
    r = f.ratio("upload.modelreg", "upload.mlflow")
    row(sec, "… vs MLflow artifact upload (curl -T to mlflow-artifacts)", fmt(up, "s"), fmt(f.med("upload.mlflow"), "s") + " MLflow",
        fmt(r, "x"), "< 1× (faster)", r < 1)

    # --- downloads
    sec = "Download 1 GiB"
    dl = f.med("download.modelreg") / 1e6
    r = f.ratio("download.modelreg", "download.nginx")
    row(sec, "Octomil download (curl, one connection) vs nginx static file", fmt(dl, "MB/s"),
        fmt(f.med("download.nginx") / 1e6, "MB/s") + " nginx", fmt(r, "x"), "≥ 1.00× (issue 14)", r >= 1.0)
    r = f.ratio("download.modelreg", "download.mlflow")
    row(sec, "… vs MLflow artifact download", fmt(dl, "MB/s"), fmt(f.med("download.mlflow") / 1e6, "MB/s") + " MLflow",
        fmt(r, "x"), "> 1× (faster)", r > 1)
    rg = f.med("range.modelreg.mbps")
    r = f.ratio("range.modelreg.mbps", "range.nginx.mbps")
    row(sec, "Random 1 MiB `Range` reads, keep-alive, 4 connections (wrk) vs nginx", fmt(rg, "MB/s"),
        fmt(f.med("range.nginx.mbps"), "MB/s") + " nginx", fmt(r, "x"), "≥ 0.90×", r >= 0.9)
    r = f.ratio("range.modelreg.mbps", "range.mlflow.mbps")
    row(sec, "… vs MLflow", fmt(rg, "MB/s"), fmt(f.med("range.mlflow.mbps"), "MB/s") + " MLflow", fmt(r, "x"), "> 1× (faster)", r > 1)

    # --- CPU per transfer: robust to the machine's load, unlike wall time
    sec = "CPU per 1 GiB"
    if f.has("cpu.upload.modelreg"):
        ours = f.med("cpu.upload.modelreg")
        if f.has("cpu.upload.mlflow"):
            row(sec, "server CPU (user+sys) for one upload vs MLflow's", fmt(ours, "s"), fmt(f.med("cpu.upload.mlflow"), "s") + " MLflow",
                fmt(f.ratio("cpu.upload.modelreg", "cpu.upload.mlflow"), "x"), "info", None)
        else:
            row(sec, "server CPU (user+sys) for one upload", fmt(ours, "s"), "", "", "info", None)
        ours = f.med("cpu.download.modelreg")
        r = f.ratio("cpu.download.modelreg", "cpu.download.nginx")
        row(sec, "server CPU for one download vs nginx's (sendfile on both)", fmt(ours, "s"), fmt(f.med("cpu.download.nginx"), "s") + " nginx",
            fmt(r, "x"), "≤ 1.50× (issue 14)", r <= 1.5)
        row(sec, "… vs MLflow's", fmt(ours, "s"), fmt(f.med("cpu.download.mlflow"), "s") + " MLflow",
            fmt(f.ratio("cpu.download.modelreg", "cpu.download.mlflow"), "x"), "info", None)

    # --- memory
    sec = "Memory"
    peak = f.med("rss.modelreg.concurrent") / 1024
    ml = f.med("rss.mlflow") / 1024
    row(sec, "Peak server RSS (VmHWM), 8 uploads + 8 downloads of 1 GiB at once", fmt(peak, "MiB"),
        fmt(ml, "MiB") + " MLflow (sum over its processes, whole run)" if f.has("rss.mlflow") else "",
        f"{ml / peak:,.0f}× less" if f.has("rss.mlflow") else "", "≤ 64 MiB", peak <= 64)
    row(sec, "… peak RSS over the single-transfer rounds", fmt(f.med("rss.modelreg.transfers") / 1024, "MiB"), "", "", "info", None)
    c_mr, c_ml = f.med("concurrent.modelreg.seconds"), f.med("concurrent.mlflow.seconds")
    row(sec, "… wall time of those 16 transfers", fmt(c_mr, "s"), fmt(c_ml, "s") + " MLflow", fmt(c_mr / c_ml, "x"),
        "< 1× (faster)", c_mr < c_ml)

    # --- metadata
    sec = "Metadata"
    floor = f"nginx static {fmt(f.med('floor.c1.p50_ms'), 'ms')} / {fmt(f.med('floor.c1.p99_ms'), 'ms')}"
    for op, label, ml_name in (("get", "GET one model", "registered-models/get"), ("list", "list page (limit 20)", "registered-models/search")):
        r = f.ratio(f"{op}.1k.c8.rps", f"{op}.mlflow.c8.rps")
        row(sec, f"{label}, 1k models: req/s at 8 connections vs MLflow `{ml_name}`", fmt(f.med(f"{op}.1k.c8.rps"), "req/s"),
            fmt(f.med(f"{op}.mlflow.c8.rps"), "req/s") + " MLflow", fmt(r, "x"), "≥ 20×", r >= 20)
        row(sec, f"{label}, 1k models: p50 / p99 at 1 connection", f"{f.med(f'{op}.1k.c1.p50_ms'):.2f} / {f.med(f'{op}.1k.c1.p99_ms'):.2f} ms",
            f"{f.med(f'{op}.mlflow.c1.p50_ms'):.2f} / {f.med(f'{op}.mlflow.c1.p99_ms'):.2f} ms MLflow", "", "info", None)
        p50, p99 = f.med(f"{op}.1m.c1.p50_ms"), f.med(f"{op}.1m.c1.p99_ms")
        row(sec, f"{label}, 1M models: p50 / p99 at 1 connection (baseline: the same-size static file from nginx, same round)",
            f"{p50:.2f} / {p99:.2f} ms", floor, fmt(f.ratio(f"{op}.1m.c1.p99_ms", "floor.c1.p99_ms"), "x") + " (p99)", "p99 ≤ 5 ms", p99 <= 5)
        row(sec, f"{label}, 1M models: req/s and p99 at 8 connections", f"{f.med(f'{op}.1m.c8.rps'):,.0f} req/s, p99 {f.med(f'{op}.1m.c8.p99_ms'):.2f} ms",
            f"nginx static {f.med('floor.c8.rps'):,.0f} req/s, p99 {f.med('floor.c8.p99_ms'):.2f} ms", "", "info", None)
    r = f.ratio("list.1m.c1.p50_ms", "list.1k.c1.p50_ms")
    row(sec, "list page p50 at 1M ÷ at 1k, same round (independent of size)", fmt(f.med("list.1m.c1.p50_ms"), "ms"),
        fmt(f.med("list.1k.c1.p50_ms"), "ms") + " at 1k", fmt(r, "x"), "≤ 1.5×", r <= 1.5)
    for size, label in (("1k", "1k"), ("1m", "1M")):
        r = f.ratio(f"list.{size}.c1.p50_ms", f"get.{size}.c1.p50_ms")
        row(sec, f"list page (limit 20) p50 vs a single model GET p50, {label} models, 1 connection, same round",
            fmt(f.med(f"list.{size}.c1.p50_ms"), "ms"), fmt(f.med(f"get.{size}.c1.p50_ms"), "ms") + " GET", fmt(r, "x"),
            "≤ 2× (issue 14)", r <= 2)
    if f.has("fsync.4k"):
        row(sec, "the disk's floor under a create: write 4 KiB + fsync, p50", fmt(f.med("fsync.4k"), "ms"), "", "", "info", None)
    for op, label in (("create_model", "create a model"), ("create_version", "create a version (4 KiB file)"),
                      ("get", "get a model"), ("search", "list / search first page")):
        if op not in ops_ml:
            continue
        ours, theirs = ops_mr[op]["p50_ms"], ops_ml[op]["p50_ms"]
        row(sec, f"one client, one call at a time: {label}, p50", fmt(ours, "ms"), fmt(theirs, "ms") + " MLflow",
            fmt(theirs / ours, "x") + " faster", "≥ 20×", theirs / ours >= 20)

    # --- issue 14: closer to the limit
    sec = "Limits"
    if f.has("packets.per_response"):
        per = f.med("packets.per_response")
        row(sec, f"socket sends per small answer (a model GET, {f.med('packets.body_bytes'):.0f}-byte body, keep-alive; "
            "strace -c on the server)", f"{per:.2f}", "1 (head and body in one write)", "", "1 (issue 14)", per <= 1.0)
    if f.has("files.create"):
        r = f.ratio("files.create", "files.tar_in")
        row(sec, "DataRobot version of 1,000 files × 4 KiB: create (multipart POST to 201, every blob fsynced) vs "
            "`tar -x` of the same folder into the page cache", fmt(f.med("files.create"), "s"),
            fmt(f.med("files.tar_in"), "s") + " tar -x", fmt(r, "x"), "≤ 2× (issue 14)", r <= 2)
        r = f.ratio("files.download", "files.tar_out")
        row(sec, "… its zip download vs `tar -c` of the folder out of the page cache (into a pipe)",
            fmt(f.med("files.download"), "s"), fmt(f.med("files.tar_out"), "s") + " tar -c", fmt(r, "x"), "≤ 2× (issue 14)", r <= 2)
    if f.has("writers.c1"):
        c1, c8 = f.med("writers.c1"), f.med("writers.c8")
        r = f.ratio("writers.c8", "writers.c1")
        row(sec, "model creates per second (Octomil POST), 8 concurrent keep-alive clients vs 1, same round",
            fmt(c8, "req/s"), fmt(c1, "req/s") + " with 1 client", fmt(r, "x"), "info", None)
        if f.has("fsync.round"):
            floor = f.med("fsync.round")
            per = lambda name: statistics.median(1000 / v / f.s["fsync.round"][r] for r, v in f.s[name].items() if r in f.s["fsync.round"])
            row(sec, "… time per committed create vs the disk's floor in the same round (write 4 KiB + fsync, p50 of 50), "
                "1 client / 8 clients", f"{1000 / c1:.2f} / {1000 / c8:.2f} ms", fmt(floor, "ms") + " floor",
                f"{per('writers.c1'):.2f}× / {per('writers.c8'):.2f}×", "info", None)

    # --- cold start
    sec = "Cold start"
    e = f.med("cold.empty")
    row(sec, "exec → first 200 on /healthz, empty registry", fmt(e, "ms"), "", "", "≤ 50 ms", e <= 50)
    m = f.med("cold.meta1m")
    row(sec, "… 1M-model registry", fmt(m, "ms"), "", "", "info", None)
    if f.has("cold.mlflow"):
        c = f.med("cold.mlflow")
        row(sec, "… vs MLflow (`mlflow server`, database already created) to /health", fmt(e, "ms"), fmt(c, "ms") + " MLflow",
            f"{c / e:,.0f}× faster", "info", None)

    # --- compute (issue 9)
    if f.has("compute.test"):
        sec = "Compute"
        t = f.med("compute.test")
        r = f.ratio("compute.test", "compute.floor")
        row(sec, "A custom model test on DRUM (4 checks, 1,000 rows × 5 features), POST to verdict, vs the floor: "
            "one `drum server` start plus the same requests", fmt(t, "s"), fmt(f.med("compute.floor"), "s") + " floor",
            fmt(r, "x"), "info", None)
    if f.has("compute.fi"):
        sec = "Compute"
        t = f.med("compute.fi")
        r = f.ratio("compute.fi", "compute.fi_naive")
        row(sec, "Feature impact, 20 features × 2,500 rows, POST to result: one scoring pass on one warm DRUM server vs "
            "the naive way, one cold `drum score` per permuted copy (21 runs)", fmt(t, "s"), fmt(f.med("compute.fi_naive"), "s") + " naive",
            fmt(r, "x"), "< 1× (faster)", r < 1)

    # --- format conversions (issue 16)
    if f.has("formats.convert"):
        sec = "Formats"
        t = f.med("formats.convert")
        r = f.ratio("formats.convert", "formats.by_hand")
        size = f.med("formats.size") / 1e6
        row(sec, f"A {size:.1f} MB scikit-learn random forest to ONNX, converted and verified with onnxruntime on 100 rows: "
            "first `download?format=onnx` to the 200 that serves it, vs the same by hand (a fresh Python: skl2onnx, "
            "then onnxruntime against the original) in the same runtime", fmt(t, "s"), fmt(f.med("formats.by_hand"), "s") + " by hand",
            fmt(r, "x"), "info", None)
    return rows


def table(rows):
    out = ["| | measurement | modelreg | baseline | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for section, what, ours, base, ratio, target, met in rows:
        mark = "–" if met is None else ("yes" if met else "**NO**")
        out.append(f"| {section} | {what} | {ours} | {base} | {ratio} | {target} | {mark} |")
    return "\n".join(out)


def sh(cmd):
    """A command's output (stdout, else stderr), trailing blanks removed."""
    try:
        done = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
    except Exception as e:  # a missing tool is not fatal for a report
        return f"({e})"
    return (done.stdout.rstrip() or done.stderr.rstrip())


def machine(measured):
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    return "\n".join([
        f"- CPU: {cpu}, `nproc` = {os.cpu_count()}; SHA extensions: {'yes' if 'sha_ni' in open('/proc/cpuinfo').read() else 'no'}",
        f"- Kernel: {platform.system()} {platform.release()} ({platform.machine()})",
        "- Memory (`free -h`):\n\n```\n" + sh("free -h") + "\n```",
        "- Disk under /tmp (`df -h /tmp`): " + sh("df -h /tmp | tail -1"),
        "- Software: " + ", ".join([
            f"modelreg built from {measured} (" + sh("rustc --version") + ")",
            sh("nginx -v 2>&1"),
            sh("wrk -v 2>&1 | head -1 | cut -d' ' -f1-2"),
            sh("curl --version | head -1 | cut -d' ' -f1-2"),
            sh("sha256sum --version | head -1"),
            sh("openssl version | cut -d' ' -f1-2"),
            "Python " + platform.python_version(),
        ]),
    ])


COMMANDS = """\
All of it is `bench/run` (helpers beside it: `ops.py`, `seed.py`, `coldstart.py`, `wrk.lua`, `report.py`).
Servers listen on 127.0.0.1 only; files live in a temp directory under /tmp.

- modelreg: `target/release/modelreg --data-dir DIR serve --bind 127.0.0.1:18420` (default workers), a fresh
  data directory per transfer round so each upload stores new content.
- nginx: Debian's, `worker_processes auto; sendfile on; tcp_nopush on; access_log off`, serving the same file.
- MLflow: `mlflow server --backend-store-uri sqlite:///DIR/mlflow.db --serve-artifacts --artifacts-destination DIR/art`
  (its defaults: 4 uvicorn workers), in `bench/.venv`.
- Upload: `curl -F file=@big.bin -F format=pytorch …/api/v1/models/ID/versions/upload` (time_total);
  MLflow: `curl -T big.bin …/api/2.0/mlflow-artifacts/artifacts/EXP/RUN/artifacts/big.bin`.
  Baselines in the same round: `sha256sum big.bin`, `openssl dgst -sha256 big.bin`, `cat big.bin > copy`,
  `cat big.bin > copy && sync copy`. The file is in the page cache throughout.
- Download: `curl -o /dev/null` (speed_download) from modelreg's download route, nginx and MLflow's artifact route.
- Range: `wrk -t1 -c4 -d3s -s bench/wrk.lua` with a random 1 MiB-aligned `Range: bytes=…` per request, keep-alive.
- Peak RSS: `VmHWM` from /proc/PID/status (summed over every process of the server) after 8 `curl -F` uploads and
  8 downloads of the 1 GiB file run at once against a fresh server.
- Metadata: `wrk -t1 -c1` (latency) and `wrk -t1 -c8` (throughput), 3 s each, with the key in an
  `Authorization` header (bench/wrk.lua), on `GET /api/v1/models/ID` (a model with one version) and
  `GET /api/v1/models?limit=20`; MLflow: `registered-models/get?name=…` and `registered-models/search?max_results=20`.
  The registry is seeded straight into SQLite by `bench/seed.py` (1k, then 1M models in one team).
  `ops.py … latency 100`: each operation 100 times in a row over one keep-alive connection (Python http.client).
- Cold start: `bench/coldstart.py` execs the server and polls `GET /healthz` over raw sockets until the first 200.
- Compute: `bench/drumtest.py` times a custom model test from its POST to its verdict (polling every 20 ms), and, in the
  same round, the floor: the same model's `drum server` started directly, sent the requests the checks send, and stopped.
  Feature impact is timed from its POST to the first 200 of its GET; the naive baseline runs `drum score` once for the
  sample and once per feature with that column shuffled."""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--ops-modelreg", required=True)
    ap.add_argument("--ops-mlflow", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--elapsed", type=int, required=True)
    ap.add_argument("--load-before", required=True)
    ap.add_argument("--load-after", required=True)
    ap.add_argument("--measured", required=True, help="what binary was measured (commit)")
    ap.add_argument("--mlflow-version", required=True)
    ap.add_argument("--mlflow-models", required=True)
    ap.add_argument("--big-bytes", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-mlflow", action="store_true", help="MLflow, compute and formats were not measured")
    a = ap.parse_args()

    f = Figures(load(a.raw))
    ops_mr = json.load(open(a.ops_modelreg))
    ops_ml = json.load(open(a.ops_mlflow))
    rows = build_rows(f, ops_mr, ops_ml, a.big_bytes)
    if a.no_mlflow:
        rows = [r for r in rows if "nan" not in r[3] + r[4] and r[0] not in ("Compute", "Formats")]
    tbl = table(rows)
    print(tbl)
    missed = [r for r in rows if r[6] is False]
    print(f"\n{len([r for r in rows if r[6]])} targets met, {len(missed)} missed; bench/run took {a.elapsed // 60} min {a.elapsed % 60} s")
    if a.no_write:
        return

    notes = f"{NOTES_HEADING}\n\n(none yet)\n"
    if os.path.exists(a.out):
        text = open(a.out).read()
        if NOTES_HEADING in text:
            notes = text[text.index(NOTES_HEADING):]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mlflow_line = (
        "Run with BENCH_NO_MLFLOW=1: MLflow, compute (DRUM) and formats were not measured, and their rows are left out."
        if a.no_mlflow else f"MLflow {a.mlflow_version}, {a.mlflow_models} registered models for its metadata figures.")
    doc = f"""# Benchmarks

modelreg against the physical limit of this machine and against MLflow's model registry, side by side.
Produced by `bench/run` (not part of `cargo test`); run it again to refresh everything above the notes.

## Latest run

{now}: {a.runs} rounds per measurement, bench/run took {a.elapsed // 60} min {a.elapsed % 60} s. Load average
(1/5/15 min) {a.load_before} before and {a.load_after} after: the machine is shared, so absolute figures move
between runs; the ratios compare figures measured side by side in the same round.
{mlflow_line}

## Machine

{machine(a.measured)}

## Results

Medians over the rounds. A ratio is modelreg ÷ baseline, the median of the per-round ratios: below 1 is
better for times, above 1 for throughputs; the rows marked "faster" and "less" show baseline ÷ modelreg.
"met" compares with the target from issue 6, or from the issue named beside it; "info" rows have no target.

{tbl}

## Commands

{COMMANDS}

{notes}"""
    with open(a.out, "w") as out:
        out.write(doc)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
