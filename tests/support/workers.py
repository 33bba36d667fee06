"""Workers that do not use gearpy's worker runtime, and helpers for the processes tests start.

* :class:`RawWorker` - a worker in a thread of the test process, scripted per job (what WORK_*
  packets to send), for client tests that need exact server-side events.
* :func:`start_raw_worker` - ``rawworker.py`` as a subprocess (one JSON log line per job event),
  for fault tests that kill, stop and restart workers; :func:`worker_log` reads its log.
* :func:`stop_procs`, :func:`pid_alive`, :func:`rss_kib` - process bookkeeping.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gearpy.protocol import PacketType

from support.raw import Address, PacketConn

T = PacketType
RAW_WORKER = Path(__file__).resolve().parent / "rawworker.py"


class RawWorker:
    """A minimal worker over a plain socket, using only gearpy.protocol.

    ``script(worker, handle, payload)`` runs for each job and sends whatever WORK_* packets the test
    wants through :meth:`send`. Runs in a daemon thread; every read is bounded by a timeout.
    """

    def __init__(
        self, address: tuple[str, int], function: bytes, script: Callable[[RawWorker, bytes, bytes], Any]
    ) -> None:
        self.sock = socket.create_connection(address, timeout=60)
        self.conn = PacketConn(self.sock)
        self.function = function
        self.script = script
        self.jobs: list[tuple[bytes, bytes, bytes]] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.send(T.CAN_DO, function)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, kind: PacketType, *args: bytes) -> None:
        self.conn.send(kind, *args)

    def _run(self) -> None:
        read = self.conn.read
        try:
            while not self.stop.is_set():
                self.send(T.GRAB_JOB_UNIQ)
                p = read()
                while p.kind == T.NOOP:
                    p = read()
                if p.kind == T.NO_JOB:
                    self.send(T.PRE_SLEEP)
                    while read().kind != T.NOOP:
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


def start_raw_worker(
    server: Address, log: Path, *functions: str, reconnect: bool = False, no_sleep: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``rawworker.py`` for ``functions`` against ``server``, logging each job to ``log``."""
    argv = [sys.executable, str(RAW_WORKER), "--port", str(server.port), "--log", str(log)]
    for f in functions:
        argv += ["-f", f]
    if reconnect:
        argv.append("--reconnect")
    if no_sleep:
        argv.append("--no-sleep")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL)


def worker_log(log: Path) -> list[dict[str, Any]]:
    """The JSON records a ``rawworker.py`` wrote so far (none if it has not started a job)."""
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stop_procs(*procs: subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever still runs and reap everything."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
