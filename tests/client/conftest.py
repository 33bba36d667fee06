"""Helpers for client tests: real ``gearman -w`` workers and a scriptable raw-socket worker."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gearpy.client import Admin
from gearpy.protocol import Decoder, Packet, PacketType, encode_request
from gearpy.testing import ServerProcess, require_tool

T = PacketType


def wait_for_worker(address: str, function: str, count: int = 1, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``function`` has ``count`` registered workers on the server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Admin(address, timeout=5) as admin:
            if any(f.function == function and f.workers >= count for f in admin.status()):
                return
        time.sleep(0.02)
    raise AssertionError(f"no worker for {function} on {address} after {timeout} s")


@pytest.fixture
def gearman_worker() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``gearman -w -f FUNCTION -- CMD...`` against a server; killed at teardown."""
    procs: list[subprocess.Popen] = []
    tool = require_tool("gearman")

    def start(server: ServerProcess, function: str, *cmd: str) -> subprocess.Popen:
        argv = [tool, "-w", "-h", server.host, "-p", str(server.port), "-f", function]
        if cmd:
            argv += ["--", *cmd]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_for_worker(server.address, function)
        return proc

    yield start
    for p in procs:
        p.kill()
        p.wait(10)


class RawWorker:
    """A minimal worker over a plain socket, using only gearpy.protocol.

    ``script(worker, handle, payload)`` runs for each job and sends whatever WORK_* packets the test
    wants through :meth:`send`. Runs in a daemon thread; every read is bounded by a timeout.
    """

    def __init__(self, address: tuple[str, int], function: bytes, script: Callable) -> None:
        self.sock = socket.create_connection(address, timeout=60)
        self.decoder = Decoder(allow_admin=False)
        self.function = function
        self.script = script
        self.jobs: list[tuple[bytes, bytes, bytes]] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.sock.sendall(encode_request(T.CAN_DO, function))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, kind: PacketType, *args: bytes) -> None:
        self.sock.sendall(encode_request(kind, *args))

    def _read(self) -> Packet:
        while True:
            ev = self.decoder.next_event()
            if ev is not None:
                return ev  # type: ignore[return-value]
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            self.decoder.feed(data)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.send(T.GRAB_JOB_UNIQ)
                p = self._read()
                while p.kind == T.NOOP:
                    p = self._read()
                if p.kind == T.NO_JOB:
                    self.send(T.PRE_SLEEP)
                    while self._read().kind != T.NOOP:
                        pass
                    continue
                if p.kind == T.JOB_ASSIGN_UNIQ:
                    handle, _func, unique, payload = p.args
                    self.jobs.append((handle, unique, payload))
                    self.script(self, handle, payload)
        except (OSError, ConnectionError) as exc:
            if not self.stop.is_set():
                self.error = exc
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


@pytest.fixture
def raw_worker() -> Iterator[Callable[..., RawWorker]]:
    workers: list[RawWorker] = []

    def start(server: ServerProcess, function: str, script: Callable) -> RawWorker:
        w = RawWorker((server.host, server.port), function.encode(), script)
        workers.append(w)
        wait_for_worker(server.address, function)
        return w

    yield start
    for w in workers:
        w.close()
