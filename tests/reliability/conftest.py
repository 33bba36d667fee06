"""Reliability round 2 (issue #16): network faults, store outages and a fleet, with real processes.

Every test runs real ``gearpy-server`` processes, real ``gearpy-worker`` processes serving
``tests/support/jobtasks.py`` (one JSON line per run in a job log), real clients, and the real
MariaDB / PostgreSQL / Redis of the machine (``service_of``), with the ``fault_proxy`` fixture
(:class:`support.faultproxy.FaultProxy`) as the network in between (helpers:
``support/reliability.py``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gearpy.testing import ServerProcess, gearpy_server_argv, start_worker_process

from support.reliability import FAST_KEEPALIVE, TASKS, JobLog


@pytest.fixture
def joblog(tmp_path: Path) -> JobLog:
    return JobLog(tmp_path / "jobs.jsonl")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``server(*flags)``: a gearpy-server with FAST_KEEPALIVE and INFO logs (connections are
    logged); its log must hold no traceback."""
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
def worker(tmp_path: Path, joblog: JobLog) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``worker(*addresses, concurrency=1, key=None)``: a gearpy-worker serving ``record`` (or
    ``KEY-record``) on every address."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*addresses: str, concurrency: int = 1, key: str | None = None) -> subprocess.Popen[bytes]:
        args = [str(TASKS), "--concurrency", str(concurrency), "--shutdown-timeout", "2"]
        args += ["--key", key] if key else []
        for address in addresses:
            args += ["-s", address]
        log = tmp_path / f"worker-{len(procs)}.log"
        proc = start_worker_process(args, log, {"GEARPY_JOBLOG": str(joblog.path)})
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
