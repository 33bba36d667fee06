#!/usr/bin/env python
"""Chaos soak (reliability.md §6 T8, on one box): mixed load while servers, workers and clients die.

NOT part of the default test run. What it does:

1. Starts ``python -m gearpy.server -q sqlite:///<tmp>/soak.db`` on a loopback port.
2. Starts ``--workers`` raw-socket worker processes (``tests/support/rawworker.py
   --reconnect``) that log every execution (one ``write()`` per line, before WORK_COMPLETE).
3. Starts ``--clients`` client processes (this script, ``client`` mode) submitting jobs over raw
   sockets: background (``--fg-ratio`` of them foreground), every job with a unique id carried in
   the unique key and the payload, and logging ``attempt``, ``ack`` (JOB_CREATED), ``error``,
   ``indeterminate`` (connection lost before the ack), and for foreground jobs the outcome.
4. A seeded nemesis, every Exp(``--fault-interval``) s: SIGKILL the server and restart it on the
   same store; SIGKILL a worker (a new one replaces it); SIGSTOP a worker for 0.5-3 s then SIGCONT;
   SIGKILL a client (a new one replaces it).
5. After ``--duration`` s: stops clients and faults, makes sure the server and workers run, and
   drains until ``status`` shows nothing queued or running and nothing new ran for 5 s.

Report (JSON, and one line per figure): submitted, acknowledged (background), executed, lost
(acknowledged background jobs never executed: must be 0), unexpected (executed, never submitted:
must be 0), duplicated (executed more than once: allowed, at-least-once), recovered
(indeterminate but executed), foreground outcomes, faults injected. Exit status 0 when
lost == unexpected == 0.

    python scripts/soak.py --duration 600
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

from gearpy.protocol import Decoder, PacketType, encode_request
from gearpy.testing import ServerProcess, gearpy_server_argv

T = PacketType
ROOT = Path(__file__).resolve().parents[1]
RAW_WORKER = ROOT / "tests" / "support" / "rawworker.py"
FUNCTION = b"soak"
BG_KINDS = [T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_LOW_BG]


# ---------------------------------------------------------------------------- client mode


def client_main(port: int, prefix: str, log_path: str, fg_ratio: float, seed: int) -> int:
    """Submit jobs forever; log every attempt and outcome (one write per line)."""
    rng = random.Random(seed)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(**rec) -> None:
        os.write(fd, (json.dumps(rec) + "\n").encode())

    n = 0
    sock = None
    dec = Decoder(allow_admin=False)

    def read(timeout: float):
        sock.settimeout(timeout)
        while True:
            ev = dec.next_event()
            if ev is not None:
                return ev
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            dec.feed(data)

    while True:
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                dec = Decoder(allow_admin=False)
            except OSError:
                sock = None
                time.sleep(0.1)
                continue
        n += 1
        job_id = f"{prefix}-{n}"
        fg = rng.random() < fg_ratio
        work = rng.choice([0, 0, 0.01, 0.05, 0.2])
        payload = f"sleep:{work}:{job_id}".encode()
        kind = T.SUBMIT_JOB if fg else rng.choice(BG_KINDS)
        log(op="attempt", id=job_id, fg=fg)
        try:
            sock.sendall(encode_request(kind, FUNCTION, job_id.encode(), payload))
            ev = read(10)
            if ev.kind == T.JOB_CREATED:
                log(op="ack", id=job_id, fg=fg)
            else:
                log(op="error", id=job_id, fg=fg, reply=repr(ev))
                continue
            if fg:
                handle = ev.args[0]
                while True:
                    ev = read(60)
                    if ev.args and ev.args[0] == handle and ev.kind in (T.WORK_COMPLETE, T.WORK_FAIL):
                        log(op="fg_" + ("done" if ev.kind == T.WORK_COMPLETE else "fail"), id=job_id)
                        break
        except (OSError, ConnectionError):
            log(op="indeterminate", id=job_id, fg=fg)
            try:
                sock.close()
            except OSError:
                pass
            sock = None
            time.sleep(0.05)


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
        if len(parts) == 4 and parts[0] == FUNCTION.decode():
            return int(parts[1]), int(parts[2])
    return 0, 0


class Soak:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.rng = random.Random(a.seed)
        self.dir = Path(tempfile.mkdtemp(prefix="gearpy-soak-"))
        self.url = a.url or f"sqlite:///{self.dir / 'soak.db'}"
        self.server = ServerProcess(gearpy_server_argv("-q", self.url), log_path=self.dir / "server.log")
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

    def start_worker(self) -> None:
        argv = [sys.executable, str(RAW_WORKER), "--port", str(self.server.port), "-f", FUNCTION.decode()]
        argv += ["--log", str(self.worker_log), "--reconnect"]
        self.workers.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))

    def start_client(self) -> None:
        self.n_clients += 1
        argv = [sys.executable, __file__, "client", "--port", str(self.server.port)]
        argv += ["--prefix", f"c{self.n_clients}", "--log", str(self.dir / f"client-{self.n_clients}.jsonl")]
        argv += ["--fg-ratio", str(self.a.fg_ratio), "--seed", str(self.rng.randrange(2**32))]
        self.clients.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))

    def fault(self) -> None:
        kind = self.rng.choices(["server", "worker", "stop", "client"], [2, 3, 2, 2])[0]
        if kind == "server":
            self.server.kill()
            self.note("server_kill")
            time.sleep(self.rng.uniform(0, 1))
            self.server.start()
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
        else:
            victim = self.rng.choice(self.clients)
            victim.kill()
            victim.wait()
            self.clients.remove(victim)
            self.note(f"client_kill {victim.pid}")
            self.start_client()

    def run(self) -> dict:
        a = self.a
        self.server.start()
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
                if a.verbose:
                    print(f"[{time.monotonic() - self.t0:7.1f}s] {self.timeline[-1][1]}", flush=True)
        finally:
            for c in self.clients:
                c.kill()
                c.wait()
        t_drain = time.monotonic()
        drained = self.drain()
        for w in self.workers:
            w.kill()
            w.wait()
        self.server.stop()
        report = self.report(drained)
        report["drain_s"] = round(time.monotonic() - t_drain, 1)
        report["rows_left_in_store"] = self.rows_left()
        return report

    def drain(self) -> bool:
        """Run until nothing is queued or running and nothing new ran for 5 s.

        Gives up only when no job has run for ``--drain-timeout`` s (a stall), however long a
        backlog takes: a backlog is not a loss.
        """
        if self.server.proc is None or self.server.proc.poll() is not None:
            self.server.start()
        for w in self.workers:
            w.send_signal(signal.SIGCONT)
        last_size, progress_at = -1, time.monotonic()
        while time.monotonic() - progress_at < self.a.drain_timeout:
            size = self.worker_log.stat().st_size if self.worker_log.exists() else 0
            if size != last_size:
                last_size, progress_at = size, time.monotonic()
            if status_of(self.server) == (0, 0) and time.monotonic() - progress_at >= 5:
                return True
            time.sleep(0.5)
        return False

    def rows_left(self) -> int | None:
        if not self.url.startswith("sqlite:///"):
            return None
        import sqlite3

        db = sqlite3.connect(self.url[len("sqlite:///") :])
        try:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            return sum(db.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables)
        finally:
            db.close()

    def report(self, drained: bool) -> dict:
        attempted, acked_bg, indeterminate = set(), set(), set()
        fg = Counter()
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
                elif op in ("fg_done", "fg_fail"):
                    fg[op[3:]] += 1
                elif op == "error":
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
            "store": self.url,
            "submitted": len(attempted),
            "acknowledged_background": len(acked_bg),
            "indeterminate": len(indeterminate),
            "executed_distinct": len(executed),
            "executions": sum(executed.values()),
            "lost": len(lost),
            "lost_ids": lost[:20],
            "unexpected": len(unexpected),
            "unexpected_ids": unexpected[:20],
            "duplicated": len(duplicated),
            "duplicate_executions": sum(v - 1 for v in duplicated.values()),
            "recovered": len(indeterminate & executed.keys()),
            "foreground": dict(fg),
            "faults": dict(self.faults),
            "drained": drained,
            "workdir": str(self.dir),
            "server_tracebacks": self.server.log().count("Traceback"),
        }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        p = argparse.ArgumentParser(prog="soak.py client")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--prefix", required=True)
        p.add_argument("--log", required=True)
        p.add_argument("--fg-ratio", type=float, default=0.2)
        p.add_argument("--seed", type=int, default=0)
        c = p.parse_args(argv[1:])
        return client_main(c.port, c.prefix, c.log, c.fg_ratio, c.seed)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60, help="seconds of load and faults [60]")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--fg-ratio", type=float, default=0.2, help="share of foreground submits [0.2]")
    p.add_argument("--fault-interval", type=float, default=5.0, help="mean seconds between faults [5]")
    p.add_argument("--drain-timeout", type=float, default=60, help="give up after N s with no progress [60]")
    p.add_argument("--url", help="queue store URL [sqlite in a temp dir]")
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
        f"lost={report['lost']} unexpected={report['unexpected']} duplicated={report['duplicated']} "
        f"faults={sum(report['faults'].values())}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
