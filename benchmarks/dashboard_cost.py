"""What an open, refreshing dashboard costs the foreground job path (issue #15: at most 5%).

    python benchmarks/dashboard_cost.py              # 3 rounds
    python benchmarks/dashboard_cost.py --rounds 5 --jobs 50000

Two gearpy-servers run side by side: one without ``--http``, one with it. Each round plays the
benchmark's foreground shape (``fg_pipelined``: 2 pipelining clients, 4 workers, raw sockets)
against: the server without ``--http``; the one with it and no dashboard open; and the one with
it while "dashboards" poll it. A dashboard is modelled by the requests its pages make (every
2 s), four of them at once, one per page (overview, functions, workers, jobs), so the cost is
the server's; a browser's own CPU belongs to the operator's machine. Medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
from run import free_port, start_gearpy, stop, wait_port  # noqa: E402

PAGES = ("/api/v1/overview", "/api/v1/functions", "/api/v1/workers", "/api/v1/jobs?limit=50")


def dashboard_proc(http_port: int, path: str, stop_at: float) -> None:
    """One open dashboard page: its session request, then its data every 2 s."""
    base = f"http://127.0.0.1:{http_port}"
    urllib.request.urlopen(base + "/api/v1/session", timeout=10).read()
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        json.loads(urllib.request.urlopen(base + path, timeout=10).read())
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))


def fg(port: int, pid: int, jobs: int) -> tuple[float, float]:
    """Foreground jobs/s, and the server's CPU microseconds per job (less sensitive to a busy machine)."""
    r = loadgen.shape_foreground(port, pid, 2, 4, jobs // 2, 100)
    return r.rate, r.extra["server_cpu_us_per_job"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=100_000, help="foreground jobs per measurement")
    args = ap.parse_args()
    plain_port, http_gear_port, http_port = free_port(), free_port(), free_port()
    plain = start_gearpy(plain_port, [])
    with_http = start_gearpy(http_gear_port, ["--http", f"127.0.0.1:{http_port}"])
    names = ("no --http", "--http, closed", "--http, 4 pages open")
    rates: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    try:
        wait_port(plain_port, plain)
        wait_port(http_gear_port, with_http)
        wait_port(http_port, with_http)
        for i in range(args.rounds):
            for name, (port, pid) in (
                (names[0], (plain_port, plain.pid)),
                (names[1], (http_gear_port, with_http.pid)),
            ):
                rate, us = fg(port, pid, args.jobs)
                rates[name].append(rate)
                cpu[name].append(us)
            stop_at = time.monotonic() + 600
            pollers = [
                mp.Process(target=dashboard_proc, args=(http_port, p, stop_at), daemon=True) for p in PAGES
            ]
            for p in pollers:
                p.start()
            time.sleep(0.5)
            rate, us = fg(http_gear_port, with_http.pid, args.jobs)
            rates[names[2]].append(rate)
            cpu[names[2]].append(us)
            for p in pollers:
                p.kill()
                p.join()
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()), flush=True)
    finally:
        stop(plain)
        stop(with_http)
    base = statistics.median(rates[names[1]])
    base_cpu = statistics.median(cpu[names[1]])
    print("\n| Server | jobs/s (median) | rounds | vs closed | server CPU µs/job (median) | vs closed |")
    print("|---|---|---|---|---|---|")
    for name in names:
        med, med_cpu = statistics.median(rates[name]), statistics.median(cpu[name])
        shown = " / ".join(f"{v:,.0f}" for v in rates[name])
        ratio, cpu_ratio = med / base, med_cpu / base_cpu
        print(f"| {name} | {med:,.0f} | {shown} | {ratio:.3f}x | {med_cpu:.1f} | {cpu_ratio:.3f}x |")


if __name__ == "__main__":
    main()
