"""Run gearpy-server and gearmand side by side on the same loads and report the ratios.

    python benchmarks/run.py                 # every shape, 3 rounds, interleaved
    python benchmarks/run.py --quick         # smaller loads (a smoke run)
    python benchmarks/run.py --shapes bg,fg_pipelined --rounds 5

Three servers per shape: gearmand, gearpy forced pure (GEARPY_PURE_PYTHON=1) and gearpy as
installed (accelerated when `pip install .` compiled the hot path; the table's heading line says
what each gearpy ran). Each round starts fresh servers on loopback ports and plays each shape against
all three in turn, so drift of a noisy machine hits them alike. Medians over rounds are reported with
the ratios gearpy/gearmand (for latency, CPU and memory lower is better). Prints a Markdown table to
paste into BENCHMARKS.md, and marks metrics whose rounds spread widely.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen) -> None:
    for _ in range(500):
        if proc.poll() is not None:
            raise RuntimeError("server exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("server did not listen")


#: The servers compared, in table order: gearmand, then gearpy forced pure, then gearpy as installed.
KINDS = ("gearmand", "gearpy-pure", "gearpy")
HEADINGS = {"gearmand": "gearmand", "gearpy-pure": "gearpy pure", "gearpy": "gearpy accelerated"}


def gearpy_env(kind: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GEARPY_PURE_PYTHON"}
    if kind == "gearpy-pure":
        env["GEARPY_PURE_PYTHON"] = "1"
    return env


def gearpy_mode(kind: str) -> str:
    """What ``gearpy-server --version`` says about the hot path for this kind."""
    out = subprocess.run(
        [sys.executable, "-m", "gearpy.server", "--version"],
        env=gearpy_env(kind),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.rstrip().rsplit("hot path: ", 1)[-1][:-1]


def start_gearpy(port: int, extra: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gearpy.server",
            "--listen",
            "127.0.0.1",
            "--port",
            str(port),
            "--verbose",
            "ERROR",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    wait_port(port, p)
    return p


def start_gearmand(port: int, tmp: str, extra: list[str]) -> subprocess.Popen:
    gearmand = shutil.which("gearmand") or "/usr/sbin/gearmand"
    p = subprocess.Popen(
        [
            gearmand,
            "--listen=127.0.0.1",
            f"--port={port}",
            "--log-file=none",
            f"--pid-file={tmp}/gearmand-{port}.pid",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, p)
    return p


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


SHAPES = {
    # name: (description, function(port, pid, quick) -> Result, metric key, higher is better)
    "bg": "background submits, 2 clients pipelining (jobs/s)",
    "fg_pipelined": "foreground echo jobs, 2 pipelining clients, 4 workers (jobs/s)",
    "fg_many": "foreground, 8 clients one job at a time, 8 workers (jobs/s)",
    "latency": "single client round trip, 1 worker (p50/p99 us)",
    "memory": "server memory per queued 64-byte background job (bytes)",
    "durable": "durable background submits: gearpy sqlite vs gearmand libsqlite3 (jobs/s)",
    "idle": "10,000 idle connections: server memory per connection (bytes), ECHO p50 meanwhile (us)",
    "drain": "1M queued jobs drained by 4 workers: rate of the first and last tenth (jobs/s)",
}


def play(shape: str, port: int, pid: int, quick: bool) -> dict:
    k = 0.1 if quick else 1.0
    if shape == "bg":
        r = loadgen.shape_background(port, pid, 2, int(100_000 * k), 1000)
        return {"rate": r.rate, "cpu_us": r.extra["server_cpu_us_per_job"]}
    if shape == "fg_pipelined":
        r = loadgen.shape_foreground(port, pid, 2, 4, int(50_000 * k), 100)
        return {"rate": r.rate, "cpu_us": r.extra["server_cpu_us_per_job"]}
    if shape == "fg_many":
        r = loadgen.shape_foreground(port, pid, 8, 8, int(5_000 * k), 1, function=b"bench_many")
        return {"rate": r.rate, "cpu_us": r.extra["server_cpu_us_per_job"]}
    if shape == "latency":
        r = loadgen.shape_foreground(
            port, pid, 1, 1, int(5_000 * k), 1, function=b"bench_lat", latencies=True
        )
        return {"p50_us": r.extra["p50_us"], "p99_us": r.extra["p99_us"]}
    if shape == "memory":
        r = loadgen.shape_memory(port, pid, int(1_000_000 * k))
        return {"bytes_per_job": r.extra["bytes_per_job"]}
    if shape == "idle":
        r = loadgen.shape_idle(port, pid, int(10_000 * k))
        return {"bytes_per_conn": r.extra["bytes_per_conn"], "echo_p50_us": r.extra["echo_p50_us"]}
    if shape == "drain":
        r = loadgen.shape_drain(port, pid, int(1_000_000 * k), 4)
        return {k2: r.extra[k2] for k2 in ("first_tenth_jobs_s", "last_tenth_jobs_s", "last_over_first")}
    if shape == "durable":
        r = loadgen.shape_background(port, pid, 4, int(5_000 * k), 500, function=b"bench_durable")
        return {"rate": r.rate}
    raise ValueError(shape)


#: Metrics that describe a shape rather than rank the servers (1.0 = no slowdown while draining).
NO_WINNER = {"last_over_first"}
LOWER_IS_BETTER = {"cpu_us", "p50_us", "p99_us", "bytes_per_job", "bytes_per_conn", "echo_p50_us"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    modes = {kind: gearpy_mode(kind) for kind in ("gearpy-pure", "gearpy")}
    if not modes["gearpy"].startswith("compiled"):
        print(f"warning: gearpy is not accelerated here ({modes['gearpy']})", file=sys.stderr)
    results: dict[tuple[str, str], list[dict]] = {}
    tmp = tempfile.mkdtemp(prefix="gearpy-bench-")
    for rnd in range(args.rounds):
        for shape in shapes:
            kinds = (*KINDS, "gearpy-memory") if shape == "durable" else KINDS
            for kind in kinds:
                port = free_port()
                db = os.path.join(tmp, f"{kind}-{rnd}-{shape}.db")
                if kind == "gearmand":
                    extra = ["-q", "libsqlite3", f"--libsqlite3-db={db}"] if shape == "durable" else []
                    proc = start_gearmand(port, tmp, extra)
                elif kind == "gearpy-memory":
                    proc = start_gearpy(port, [], gearpy_env("gearpy"))
                else:
                    extra = ["-q", f"sqlite:///{db}"] if shape == "durable" else []
                    proc = start_gearpy(port, extra, gearpy_env(kind))
                try:
                    res = play(shape, port, proc.pid, args.quick)
                finally:
                    stop(proc)
                results.setdefault((shape, kind), []).append(res)
                print(
                    f"round {rnd + 1} {shape:13s} {kind:12s} "
                    + " ".join(f"{k}={v:,.1f}" for k, v in res.items()),
                    file=sys.stderr,
                    flush=True,
                )
    cpu = platform.processor() or platform.machine()
    print(
        f"\nMachine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; rounds: {args.rounds}{' (quick)' if args.quick else ''}; "
        f"gearpy pure: {modes['gearpy-pure']}; gearpy accelerated: {modes['gearpy']}\n"
    )
    print(
        "| shape | metric | gearmand | gearpy pure | gearpy accelerated "
        "| pure/gearmand | accelerated/gearmand | best |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for shape in shapes:
        series = {kind: results[(shape, kind)] for kind in KINDS}
        for metric in series["gearmand"][0]:
            med = {kind: statistics.median(r[metric] for r in rs) for kind, rs in series.items()}
            noisy = {kind: _noisy([r[metric] for r in rs]) for kind, rs in series.items()}
            base = med["gearmand"]
            ratios = [
                (f"{med[k] / base:.2f}x" if base else "inf")
                + (" (noisy)" if noisy[k] or noisy["gearmand"] else "")
                for k in ("gearpy-pure", "gearpy")
            ]
            if metric in NO_WINNER:
                best = "-"
            else:
                pick = min if metric in LOWER_IS_BETTER else max
                best = HEADINGS[pick(KINDS, key=lambda k: med[k])]
            cells = " | ".join(f"{med[k]:,.1f}" for k in KINDS)
            print(f"| {SHAPES[shape]} | {metric} | {cells} | {' | '.join(ratios)} | {best} |")
    if ("durable", "gearpy-memory") in results:
        a = statistics.median(r["rate"] for r in results[("durable", "gearpy")])
        m = statistics.median(r["rate"] for r in results[("durable", "gearpy-memory")])
        print(
            f"\nSame durable load on gearpy's memory queue (accelerated): {m:,.1f} jobs/s; "
            f"SQLite costs {a / m:.2f}x of it."
        )


def _noisy(vals: list[float]) -> bool:
    """Rounds that spread by more than 25% of their median."""
    mid = statistics.median(vals)
    return len(vals) > 1 and bool(mid) and (max(vals) - min(vals)) / mid > 0.25


if __name__ == "__main__":
    main()
