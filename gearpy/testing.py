"""A pytest plugin with live Gearman servers on ephemeral loopback ports.

Registered through the ``pytest11`` entry point, so users of gearpy get it too. Fixtures:

* ``gearpy_server`` - a real ``gearpy-server`` process (function scope).
* ``gearmand_server`` - the real gearmand (Debian ``gearman-job-server``), for differential and
  compatibility tests.
* ``gearman_server`` - parametrized over both, for behaviour that must hold on either.
* ``gearpy_client`` - a :class:`gearpy.client.Client` connected to ``gearpy_server``.
* ``gearpy_worker`` - a factory: ``gearpy_worker("myapp.tasks", "--concurrency", "4")`` starts
  ``gearpy-worker`` against ``gearpy_server`` and stops it after the test.

External tools (gearmand, gearman, gearadmin, php) are looked up with :func:`require_tool`. On a
developer's machine a missing tool skips the test; with ``GEARPY_REQUIRE_EXTERNAL=1`` (CI sets it)
every skip becomes a failure, so nothing is silently untested.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "GEARPY_REQUIRE_EXTERNAL"


def external_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Return the path of an external program, or skip (fail under CI) when it is missing."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        msg = f"external tool {name!r} is not installed"
        if external_required():
            pytest.fail(msg + f" ({REQUIRE_ENV} is set)")
        pytest.skip(msg)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout} s")


class ServerProcess:
    """A Gearman server subprocess on 127.0.0.1 with a fixed port across restarts."""

    def __init__(self, argv_factory, port: int | None = None, log_path: Path | None = None) -> None:
        self._argv_factory = argv_factory
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="gearpy-server-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, extra_args: Sequence[str] = ()) -> ServerProcess:
        argv = list(self._argv_factory(self.port)) + list(extra_args)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_for_port(self.host, self.port, proc=self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self, extra_args: Sequence[str] = ()) -> ServerProcess:
        self.stop()
        return self.start(extra_args)


def gearpy_server_argv(*args: str):
    """argv factory for ``gearpy-server`` run from this interpreter (no PATH lookup needed)."""

    def factory(port: int) -> list[str]:
        return [sys.executable, "-m", "gearpy.server", "--listen", "127.0.0.1", "--port", str(port), *args]

    return factory


def gearmand_argv(tmpdir: Path, *args: str):
    gearmand = require_tool("gearmand")

    def factory(port: int) -> list[str]:
        return [
            gearmand,
            "--listen=127.0.0.1",
            f"--port={port}",
            "--log-file=stderr",
            f"--pid-file={tmpdir / f'gearmand-{port}.pid'}",
            "--threads=0",
            *args,
        ]

    return factory


@pytest.fixture
def gearpy_server() -> Iterator[ServerProcess]:
    """A live gearpy-server process on an ephemeral loopback port."""
    server = ServerProcess(gearpy_server_argv()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gearmand_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A live gearmand (the reference implementation) on an ephemeral loopback port."""
    server = ServerProcess(gearmand_argv(tmp_path)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["gearpy", "gearmand"])
def gearman_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A live server of each kind: behaviour tested with it must hold on gearpy and on gearmand."""
    if request.param == "gearpy":
        server = ServerProcess(gearpy_server_argv())
    else:
        server = ServerProcess(gearmand_argv(tmp_path))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gearpy_client(gearpy_server: ServerProcess):
    """A gearpy Client connected to the live ``gearpy_server``."""
    from gearpy.client import Client

    client = Client([gearpy_server.address])
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def gearpy_worker(gearpy_server: ServerProcess, tmp_path: Path):
    """Start ``gearpy-worker`` subprocesses against ``gearpy_server``: ``gearpy_worker(*args)``."""
    procs: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gearpy.worker", "-s", gearpy_server.address, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM a child process, SIGKILL it if it has not exited 15 s later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # pragma: no cover - exercised in CI
    """Under GEARPY_REQUIRE_EXTERNAL, a skipped test is reported as failed."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and external_required() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under {REQUIRE_ENV}=1: {report.longrepr}"
