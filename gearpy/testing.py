"""A pytest plugin with live Gearman servers on ephemeral loopback ports.

Registered through the ``pytest11`` entry point, so users of gearpy get it too. Fixtures:

* ``gearpy_server`` - a real ``gearpy-server`` process (function scope).
* ``gearpy_client`` - a :class:`gearpy.client.Client` connected to ``gearpy_server``.
* ``gearpy_worker`` - a factory: ``gearpy_worker("myapp.tasks", "--concurrency", "4")`` starts
  ``gearpy-worker`` against ``gearpy_server`` and stops it after the test.

For servers with other flags, build your own: ``ServerProcess(gearpy_server_argv("--port-flag",
...)).start()``; :func:`free_port` and :func:`wait_for_port` help with anything else that listens.
gearpy's own test suite adds gearmand fixtures and CI rules in its ``tests/`` directory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gearpy.client import Client

ArgvFactory = Callable[[int], Sequence[str]]
"""Builds a server's command line for the port it must listen on."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts connections on ``host:port``; fail early if ``proc`` exits."""
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

    def __init__(
        self, argv_factory: ArgvFactory, port: int | None = None, log_path: Path | None = None
    ) -> None:
        self._argv_factory = argv_factory
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="gearpy-server-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

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


def gearpy_server_argv(*args: str) -> ArgvFactory:
    """argv factory for ``gearpy-server`` run from this interpreter (no PATH lookup needed)."""

    def factory(port: int) -> list[str]:
        return [sys.executable, "-m", "gearpy.server", "--listen", "127.0.0.1", "--port", str(port), *args]

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
def gearpy_client(gearpy_server: ServerProcess) -> Iterator[Client]:
    """A gearpy Client connected to the live ``gearpy_server``."""
    client = Client([gearpy_server.address])
    try:
        yield client
    finally:
        client.close()


def start_worker_process(
    args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``gearpy-worker ARGS`` from this interpreter, its output in ``log_path``, ``env`` added."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gearpy.worker", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )


@pytest.fixture
def gearpy_worker(
    gearpy_server: ServerProcess, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``gearpy-worker`` subprocesses against ``gearpy_server``: ``gearpy_worker(*args)``."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker-{len(procs)}.log"
        proc = start_worker_process(["-s", gearpy_server.address, *args], log, env)
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
