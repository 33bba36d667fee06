"""Helpers and fixtures of the reliability tests (issue #16): network faults, store outages, a fleet.

Every test runs real ``gearpy-server`` processes, real ``gearpy-worker`` processes serving
``tests/support/jobtasks.py`` (one JSON line per run in a job log), real clients, and the real
MariaDB / PostgreSQL / Redis of the machine, with :class:`faultproxy.FaultProxy` as the network in
between. Servers run with a short keepalive (:data:`FAST_KEEPALIVE`: a silent peer is dropped
after 1 + 1 x 2 = 3 s) so that the waits stay short; the defaults (120 s) are documented.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from gearpy.testing import ServerProcess, gearpy_server_argv

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tests" / "support" / "jobtasks.py"
#: idle 1 s, then 2 probes 1 s apart: a silent peer is dropped ~3 s after it fell silent.
FAST_KEEPALIVE = ("--keepalive-idle", "1", "--keepalive-interval", "1", "--keepalive-count", "2")
DETECT_S = 3


def admin(address: tuple[str, int], command: bytes, timeout: float = 5.0) -> list[str]:
    """One admin command; the lines of its answer without the final '.'."""
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(command + b"\n")
        buf = b""
        while not (buf == b".\n" or buf.endswith(b"\n.\n")):
            data = s.recv(65536)
            if not data:
                break
            buf += data
    return [line for line in buf.decode().splitlines() if line != "."]


def connections(server: ServerProcess) -> int:
    """Connections the server holds, not counting the one asking."""
    return len(admin((server.host, server.port), b"workers")) - 1


def status(server: ServerProcess, function: str = "record") -> tuple[int, int, int]:
    """(total, running, workers) of ``function`` on ``server``."""
    for line in admin((server.host, server.port), b"status"):
        parts = line.split("\t")
        if parts[0] == function:
            return int(parts[1]), int(parts[2]), int(parts[3])
    return 0, 0, 0


class JobLog:
    """The runs the workers logged: ``runs(job_id)`` -> the ``done`` records of that job."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def ids(self, op: str = "done") -> list[str]:
        return [r["payload"].rsplit(":", 1)[1] for r in self.records() if r["op"] == op]

    def runs(self, job_id: str, op: str = "done") -> list[dict]:
        return [r for r in self.records() if r["op"] == op and r["payload"].rsplit(":", 1)[1] == job_id]


@pytest.fixture
def joblog(tmp_path: Path) -> JobLog:
    return JobLog(tmp_path / "jobs.jsonl")


@pytest.fixture
def proxy() -> Iterator[Callable[[int], FaultProxy]]:
    """``proxy(port)``: a started :class:`FaultProxy` in front of ``port``, stopped after the test."""
    made: list[FaultProxy] = []

    def make(port: int) -> FaultProxy:
        p = FaultProxy(port).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``server(*flags)``: a gearpy-server with :data:`FAST_KEEPALIVE`; its log must hold no traceback."""
    made: list[ServerProcess] = []

    def make(*args: str, port: int | None = None) -> ServerProcess:
        log = tmp_path / f"server-{len(made)}.log"
        argv = gearpy_server_argv(*FAST_KEEPALIVE, "--verbose", "INFO", *args)
        srv = ServerProcess(argv, port=port, log_path=log).start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()
        assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
def worker(tmp_path: Path, joblog: JobLog) -> Iterator[Callable[..., subprocess.Popen]]:
    """``worker(*addresses, concurrency=1, key=None)``: a gearpy-worker serving ``record`` (or
    ``KEY-record``) on every address."""
    procs: list[subprocess.Popen] = []

    def start(*addresses: str, concurrency: int = 1, key: str | None = None) -> subprocess.Popen:
        argv = [sys.executable, "-m", "gearpy.worker", str(TASKS), "--concurrency", str(concurrency)]
        argv += ["--shutdown-timeout", "2"] + (["--key", key] if key else [])
        for address in addresses:
            argv += ["-s", address]
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")
        env = {**os.environ, "GEARPY_JOBLOG": str(joblog.path)}
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
