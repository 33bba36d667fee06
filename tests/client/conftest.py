"""Workers for client tests: real ``gearman -w`` workers and a scriptable raw-socket worker."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from gearpy.testing import ServerProcess

from support.external import require_tool
from support.waits import wait_for_worker
from support.workers import RawWorker


@pytest.fixture
def gearman_worker() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``gearman -w -f FUNCTION -- CMD...`` against a server; killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []
    tool = require_tool("gearman")

    def start(server: ServerProcess, function: str, *cmd: str) -> subprocess.Popen[bytes]:
        argv = [tool, "-w", "-h", server.host, "-p", str(server.port), "-f", function]
        if cmd:
            argv += ["--", *cmd]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_for_worker(server, function, timeout=10.0)
        return proc

    yield start
    for p in procs:
        p.kill()
        p.wait(10)


@pytest.fixture
def raw_worker() -> Iterator[Callable[..., RawWorker]]:
    """``raw_worker(server, function, script)``: a :class:`support.workers.RawWorker`, closed afterwards."""
    workers: list[RawWorker] = []

    def start(server: ServerProcess, function: str, script: Callable[..., object]) -> RawWorker:
        w = RawWorker((server.host, server.port), function.encode(), script)
        workers.append(w)
        wait_for_worker(server, function, timeout=10.0)
        return w

    yield start
    for w in workers:
        w.close()
