#!/usr/bin/env python
"""Chaos soak (reliability.md §6 T8, on one box): mixed load while servers, workers, clients and
the network between them fail.

NOT part of the default test run. What it does:

1. Starts ``--fleet`` (default 1) ``gearpy-server`` processes, each with its own durable store:
   SQLite files in a temp dir, or, with ``--store mysql|postgres|redis``, its own table / key
   prefix on the machine's MariaDB / PostgreSQL / Redis (dropped at the end).
2. With ``--net-faults``, every client and worker connection to server *i* goes through fault proxy
   *i* (``tests/support/faultproxy.py``), and each server reaches a network store through a proxy
   of its own; the servers run with short keepalive (``--keepalive-idle 2 --keepalive-interval 1
   --keepalive-count 3``: a silent peer is dropped after ~5 s) and the store with
   ``commit_timeout=3``.
3. Starts ``--workers`` ``gearpy-worker`` processes (``tests/support/jobtasks.py``, connected to
   every server) that log every execution (one ``write()`` per line, before WORK_COMPLETE).
4. Starts ``--clients`` client processes (this script, ``client`` mode) submitting through
   :class:`gearpy.client.Client` over every server (crc32 of the unique picks the server; failover
   to the next): background, ``--fg-ratio`` of them foreground, each with a unique id carried in
   the unique key and the payload, logging ``attempt``, ``ack`` (JOB_CREATED), ``error`` (an ERROR
   reply: not created), ``indeterminate`` (timeout or lost connection before the answer), and the
   outcome of foreground jobs.
5. A seeded nemesis, every Exp(``--fault-interval``) s: SIGKILL a server and restart it on the same
   store; SIGKILL a worker (a new one replaces it); SIGSTOP a worker for 0.5-3 s; SIGKILL a
   client; and with ``--net-faults``: blackhole a server's links (all or half of them) for 1-10 s,
   200 ms of latency for 2-8 s, a slow link (20 KB/s) for 2-8 s, RST of every link, half-open
   links, and blackhole or reset of a server's store link.
6. After ``--duration`` s: stops clients and faults, heals the network, makes sure every server and
   worker runs, and drains until ``status`` shows nothing queued or running anywhere and nothing
   new ran for 5 s.

Report (JSON, and one line): submitted, acknowledged (background), executed, lost (acknowledged
background jobs never executed: must be 0), unexpected (executed, never submitted: must be 0),
duplicated (executed more than once: allowed, at-least-once), indeterminate, recovered
(indeterminate but executed), errors (refused with an ERROR), foreground outcomes, faults injected.
Exit status 0 when lost == unexpected == 0 and the queues drained.

    python scripts/soak.py --duration 600
    python scripts/soak.py --duration 900 --fleet 3 --net-faults --store postgres
    python scripts/soak.py --duration 60 --workers 3 --clients 3 --fault-interval 2 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's helpers (tests/support)

from gearpy.testing import ServerProcess, gearpy_server_argv  # noqa: E402

from support.faultproxy import FaultProxy  # noqa: E402
from support.stores import make_service  # noqa: E402

TASKS = ROOT / "tests" / "support" / "jobtasks.py"
FUNCTION = "record"
#: Server flags under --net-faults: a silent peer is dropped after 2 + 1 * 3 = 5 s.
FAST_KEEPALIVE = ["--keepalive-idle", "2", "--keepalive-interval", "1", "--keepalive-count", "3"]


# ---------------------------------------------------------------------------- client mode


def client_main(servers: list[str], prefix: str, log_path: str, fg_ratio: float, seed: int) -> int:
    """Submit jobs forever through gearpy's Client; log every attempt and outcome (one write per line)."""
    from gearpy.client import Client
    from gearpy.errors import GearpyError, JobFailed, JobOutcomeUnknown, ServerError

    rng = random.Random(seed)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(**rec) -> None:
        os.write(fd, (json.dumps(rec) + "\n").encode())

    client = Client(servers, timeout=10, connect_timeout=2)
    n = 0
    while True:
        n += 1
        job_id = f"{prefix}-{n}"
        fg = rng.random() < fg_ratio
        work = rng.choice([0, 0, 0.01, 0.05, 0.2])
        payload = f"sleep:{work}:{job_id}".encode()
        priority = "normal" if fg else rng.choice(["normal", "high", "low"])
        log(op="attempt", id=job_id, fg=fg)
        try:
            job = client.submit(FUNCTION, payload, background=not fg, priority=priority, unique=job_id)
        except ServerError as exc:
            log(op="error", id=job_id, fg=fg, reply=str(exc))
            time.sleep(0.05)
            continue
        except GearpyError as exc:
            log(op="indeterminate", id=job_id, fg=fg, why=type(exc).__name__)
            time.sleep(0.05)
            continue
        log(op="ack", id=job_id, fg=fg, server=job.server)
        if fg:
            try:
                job.result(60)
                log(op="fg_done", id=job_id)
            except JobFailed:
                log(op="fg_fail", id=job_id)
            except (JobOutcomeUnknown, GearpyError) as exc:
                log(op="fg_unknown", id=job_id, why=type(exc).__name__)


# ---------------------------------------------------------------------------- orchestration


def read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line cut by SIGKILL mid-write (never seen with one write per line)
    return out


def status_of(server: ServerProcess) -> tuple[int, int] | None:
    """(total, running) for the soak function, or None when the server does not answer."""
    try:
        with socket.create_connection((server.host, server.port), timeout=2) as s:
            s.sendall(b"status\n")
            buf = b""
            while not (buf == b".\n" or buf.endswith(b"\n.\n")):
                data = s.recv(65536)
                if not data:
                    return None
                buf += data
    except OSError:
        return None
    for line in buf.decode().splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == FUNCTION:
            return int(parts[1]), int(parts[2])
    return 0, 0


class Store:
    """The durable store of one server (``tests/support/stores.py``), through a proxy under
    --net-faults; its table / key prefix is dropped at the end."""

    def __init__(self, kind: str, index: int, workdir: Path, net_faults: bool) -> None:
        self.service = make_service(kind, workdir / f"store-{index}")
        self.proxy = FaultProxy(self.service.port).start() if net_faults and kind != "sqlite" else None
        self.url = self.service.url_for(self.proxy.port if self.proxy else None)
        if self.proxy is not None:
            self.url += "&commit_timeout=3&connect_timeout=2"

    def rows_left(self) -> int | None:
        if self.service.kind != "sqlite":
            return None
        import sqlite3

        db = sqlite3.connect(self.url[len("sqlite://") :].split("?")[0])
        try:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            return sum(db.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables)
        finally:
            db.close()

    def cleanup(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.service.cleanup()


class Soak:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.rng = random.Random(a.seed)
        self.dir = Path(tempfile.mkdtemp(prefix="gearpy-soak-"))
        self.stores = [Store(a.store, i, self.dir, a.net_faults) for i in range(a.fleet)]
        extra = FAST_KEEPALIVE if a.net_faults else []
        self.servers = [
            ServerProcess(gearpy_server_argv("-q", st.url, *extra), log_path=self.dir / f"server-{i}.log")
            for i, st in enumerate(self.stores)
        ]
        #: what clients and workers connect to: the servers, or proxies in front of them
        self.fronts = [FaultProxy(sv.port) if a.net_faults else None for sv in self.servers]
        self.addresses = [
            px.address if px is not None else sv.address
            for px, sv in zip(self.fronts, self.servers, strict=True)
        ]
        self.workers: list[subprocess.Popen] = []
        self.clients: list[subprocess.Popen] = []
        self.n_clients = 0
        self.faults: Counter[str] = Counter()
        self.timeline: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self.worker_log = self.dir / "workers.jsonl"

    def note(self, what: str) -> None:
        self.timeline.append((round(time.monotonic() - self.t0, 2), what))
        self.faults[what.split()[0]] += 1
        if self.a.verbose:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {what}", flush=True)

    def start_worker(self) -> None:
        argv = [sys.executable, "-m", "gearpy.worker", str(TASKS), "--concurrency", "2"]
        argv += ["--log-level", "WARNING", "--shutdown-timeout", "5"]
        for address in self.addresses:
            argv += ["-s", address]
        log = open(self.dir / "workers.log", "ab")
        env = {**os.environ, "GEARPY_JOBLOG": str(self.worker_log)}
        self.workers.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env))
        log.close()

    def start_client(self) -> None:
        self.n_clients += 1
        argv = [sys.executable, __file__, "client", "--servers", ",".join(self.addresses)]
        argv += ["--prefix", f"c{self.n_clients}", "--log", str(self.dir / f"client-{self.n_clients}.jsonl")]
        argv += ["--fg-ratio", str(self.a.fg_ratio), "--seed", str(self.rng.randrange(2**32))]
        log = open(self.dir / "clients.log", "ab")
        self.clients.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log))
        log.close()

    def fault(self) -> None:
        kinds = {"server": 2, "worker": 3, "stop": 2, "client": 1}
        if self.a.net_faults:
            kinds.update(blackhole=3, delay=1, slow=1, reset=2, half_open=1)
            if self.a.store != "sqlite":
                kinds.update(store_blackhole=1, store_reset=1)
        kind = self.rng.choices(list(kinds), list(kinds.values()))[0]
        i = self.rng.randrange(len(self.servers))
        if kind == "server":
            self.servers[i].kill()
            self.note(f"server_kill {i}")
            time.sleep(self.rng.uniform(0.2, 3))
            self.servers[i].start()
        elif kind == "worker":
            victim = self.rng.choice(self.workers)
            victim.kill()
            victim.wait()
            self.workers.remove(victim)
            self.note(f"worker_kill {victim.pid}")
            self.start_worker()
        elif kind == "stop":
            victim = self.rng.choice(self.workers)
            victim.send_signal(signal.SIGSTOP)
            self.note(f"worker_stop {victim.pid}")
            time.sleep(self.rng.uniform(0.5, 3))
            victim.send_signal(signal.SIGCONT)
        elif kind == "client":
            victim = self.rng.choice(self.clients)
            victim.kill()
            victim.wait()
            self.clients.remove(victim)
            self.note(f"client_kill {victim.pid}")
            self.start_client()
        else:
            self.net_fault(kind, i)

    def net_fault(self, kind: str, i: int) -> None:
        front = self.fronts[i]
        assert front is not None
        if kind.startswith("store_"):
            proxy = self.stores[i].proxy
            assert proxy is not None
            if kind == "store_reset":
                proxy.reset()
                self.note(f"store_reset {i}")
                return
            span = self.rng.uniform(1, 10)
            proxy.blackhole()
            self.note(f"store_blackhole {i} {span:.1f}s")
            time.sleep(span)
            proxy.heal()
            return
        if kind == "reset":
            front.reset()
            self.note(f"reset {i}")
            return
        if kind == "half_open":
            links = front.links
            if links:
                self.rng.choice(links).half_open(keep=self.rng.choice(["client", "upstream"]))
            self.note(f"half_open {i}")
            return
        span = self.rng.uniform(1, 10) if kind == "blackhole" else self.rng.uniform(2, 8)
        if kind == "blackhole" and self.rng.random() < 0.5:
            links = front.links
            victims = self.rng.sample(links, len(links) // 2)
            for link in victims:
                link.blackhole()
            self.note(f"blackhole_half {i} {span:.1f}s")
            time.sleep(span)
            for link in victims:
                link.heal()
            return
        if kind == "blackhole":
            front.blackhole()
        elif kind == "delay":
            front.delay(0.2)
        else:
            front.slow(20_000)
        self.note(f"{kind} {i} {span:.1f}s")
        time.sleep(span)
        front.heal()

    def run(self) -> dict:
        a = self.a
        for server in self.servers:
            server.start()
        for front in self.fronts:
            if front is not None:
                front.start()
        for _ in range(a.workers):
            self.start_worker()
        for _ in range(a.clients):
            self.start_client()
        end = self.t0 + a.duration
        try:
            while time.monotonic() < end:
                time.sleep(min(self.rng.expovariate(1 / a.fault_interval), max(0, end - time.monotonic())))
                if time.monotonic() >= end:
                    break
                self.fault()
        finally:
            for c in self.clients:
                c.kill()
                c.wait()
        t_drain = time.monotonic()
        try:
            drained = self.drain()
        finally:
            for w in self.workers:
                w.kill()
                w.wait()
            for server in self.servers:
                server.stop()
            for front in self.fronts:
                if front is not None:
                    front.stop()
        report = self.report(drained)
        report["drain_s"] = round(time.monotonic() - t_drain, 1)
        rows = [st.rows_left() for st in self.stores]
        report["rows_left_in_store"] = None if None in rows else sum(r or 0 for r in rows)
        if not a.keep_stores:
            for st in self.stores:
                st.cleanup()
        return report

    def drain(self) -> bool:
        """Heal, restart what is down, run until nothing is queued or running anywhere and nothing
        new ran for 5 s. Gives up only when no job has run for ``--drain-timeout`` s (a stall),
        however long a backlog takes: a backlog is not a loss.
        """
        for proxy in [*self.fronts, *(st.proxy for st in self.stores)]:
            if proxy is not None:
                proxy.heal()
        for server in self.servers:
            if server.proc is None or server.proc.poll() is not None:
                server.start()
        for w in self.workers:
            w.send_signal(signal.SIGCONT)
        last_size, progress_at = -1, time.monotonic()
        while time.monotonic() - progress_at < self.a.drain_timeout:
            size = self.worker_log.stat().st_size if self.worker_log.exists() else 0
            if size != last_size:
                last_size, progress_at = size, time.monotonic()
            idle = all(status_of(server) == (0, 0) for server in self.servers)
            if idle and time.monotonic() - progress_at >= 5:
                return True
            time.sleep(0.5)
        return False

    def report(self, drained: bool) -> dict:
        attempted, acked_bg, indeterminate, refused = set(), set(), set(), set()
        fg: Counter[str] = Counter()
        for path in self.dir.glob("client-*.jsonl"):
            for rec in read_jsonl(path):
                op, jid = rec["op"], rec["id"]
                if op == "attempt":
                    attempted.add(jid)
                    if rec["fg"]:
                        fg["submitted"] += 1
                elif op == "ack" and not rec["fg"]:
                    acked_bg.add(jid)
                elif op == "indeterminate":
                    indeterminate.add(jid)
                    if rec["fg"]:
                        fg["indeterminate"] += 1
                elif op in ("fg_done", "fg_fail", "fg_unknown"):
                    fg[op[3:]] += 1
                elif op == "error":
                    refused.add(jid)
                    fg["errors" if rec["fg"] else "bg_errors"] += 1
        executed: Counter[str] = Counter()
        for rec in read_jsonl(self.worker_log):
            if rec["op"] == "done":
                executed[rec["payload"].rsplit(":", 1)[1]] += 1
        lost = sorted(acked_bg - executed.keys())
        unexpected = sorted(executed.keys() - attempted)
        duplicated = {k: v for k, v in executed.items() if v > 1}
        return {
            "seed": self.a.seed,
            "duration_s": self.a.duration,
            "fleet": self.a.fleet,
            "store": self.a.store,
            "net_faults": self.a.net_faults,
            "submitted": len(attempted),
            "acknowledged_background": len(acked_bg),
            "indeterminate": len(indeterminate),
            "refused_with_error": len(refused),
            "executed_distinct": len(executed),
            "executions": sum(executed.values()),
            "lost": len(lost),
            "lost_ids": lost[:20],
            "unexpected": len(unexpected),
            "unexpected_ids": unexpected[:20],
            "duplicated": len(duplicated),
            "duplicate_executions": sum(v - 1 for v in duplicated.values()),
            "recovered": len(indeterminate & executed.keys()),
            "refused_but_executed": len(refused & executed.keys()),
            "foreground": dict(fg),
            "faults": dict(self.faults),
            "drained": drained,
            "workdir": str(self.dir),
            "server_tracebacks": sum(server.log().count("Traceback") for server in self.servers),
        }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        p = argparse.ArgumentParser(prog="soak.py client")
        p.add_argument("--servers", required=True)
        p.add_argument("--prefix", required=True)
        p.add_argument("--log", required=True)
        p.add_argument("--fg-ratio", type=float, default=0.2)
        p.add_argument("--seed", type=int, default=0)
        c = p.parse_args(argv[1:])
        return client_main(c.servers.split(","), c.prefix, c.log, c.fg_ratio, c.seed)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60, help="seconds of load and faults [60]")
    p.add_argument("--fleet", type=int, default=1, help="number of servers, each with its own store [1]")
    p.add_argument("--store", choices=["sqlite", "mysql", "postgres", "redis"], default="sqlite")
    p.add_argument("--net-faults", action="store_true", help="fault proxies in front of servers and stores")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--fg-ratio", type=float, default=0.2, help="share of foreground submits [0.2]")
    p.add_argument("--fault-interval", type=float, default=5.0, help="mean seconds between faults [5]")
    p.add_argument("--drain-timeout", type=float, default=90, help="give up after N s with no progress [90]")
    p.add_argument("--keep-stores", action="store_true", help="do not drop the database tables / keys")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--verbose", "-v", action="store_true", help="print each fault as it happens")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = random.randrange(2**32)
    report = Soak(a).run()
    print(json.dumps(report, indent=2))
    ok = report["lost"] == 0 and report["unexpected"] == 0 and report["drained"]
    print(
        f"soak {'PASS' if ok else 'FAIL'}: submitted={report['submitted']} "
        f"acknowledged={report['acknowledged_background']} executed={report['executed_distinct']} "
        f"lost={report['lost']} duplicated={report['duplicated']} "
        f"indeterminate={report['indeterminate']} unexpected={report['unexpected']} "
        f"faults={sum(report['faults'].values())}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
