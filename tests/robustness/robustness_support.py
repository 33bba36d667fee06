"""Helpers shared by the robustness tests: raw sockets, packet reads, RSS, worker processes.

Imported by the test modules through ``conftest.py`` (which puts this directory on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from polling import wait_until  # noqa: F401 - re-exported for the robustness tests

from gearpy.protocol import Decoder, Packet, PacketType, encode_request

T = PacketType
HERE = Path(__file__).resolve().parent
RAW_WORKER = HERE / "rawworker.py"


def connect(server, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_packets(sock: socket.socket, n: int, timeout: float = 5.0) -> list:
    """Read exactly ``n`` events (packets or admin lines) or fail after ``timeout``."""
    dec = Decoder(max_packet_size=1 << 30)
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"got {out!r}, wanted {n} events"
        sock.settimeout(left)
        data = sock.recv(1 << 20)
        assert data, f"connection closed after {out!r}"
        dec.feed(data)
        out.extend(dec.events())
    return out


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``timeout``, reading all it sends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
    return False


def echo_ok(server_or_sock, payload: bytes = b"ping") -> None:
    s = server_or_sock if isinstance(server_or_sock, socket.socket) else connect(server_or_sock)
    try:
        s.sendall(encode_request(T.ECHO_REQ, payload))
        [p] = read_packets(s, 1)
        assert p == Packet(T.ECHO_RES, (payload,), False), p
    finally:
        if s is not server_or_sock:
            s.close()


def admin(server, line: bytes, timeout: float = 5.0, multi: bool = True) -> bytes:
    """Send one admin command; return its reply (up to ``.\\n`` when ``multi``, else one line)."""
    with connect(server, timeout) as s:
        s.sendall(line + b"\n")
        buf = b""
        deadline = time.monotonic() + timeout
        while not (buf.endswith(b"\n") and (not multi or buf == b".\n" or buf.endswith(b"\n.\n"))):
            assert time.monotonic() < deadline, buf
            data = s.recv(65536)
            assert data, buf
            buf += data
        return buf


def status(server) -> dict[str, tuple[int, int, int]]:
    """``status`` as {function: (total, running, workers)}."""
    out = {}
    for line in admin(server, b"status").decode().splitlines():
        if line == ".":
            break
        name, total, running, workers = line.split("\t")
        out[name] = (int(total), int(running), int(workers))
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")




def start_worker(
    server, log: Path, *functions: str, reconnect: bool = False, no_sleep: bool = False
) -> subprocess.Popen:
    argv = [sys.executable, str(RAW_WORKER), "--port", str(server.port), "--log", str(log)]
    for f in functions:
        argv += ["-f", f]
    if reconnect:
        argv.append("--reconnect")
    if no_sleep:
        argv.append("--no-sleep")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL)


def worker_log(log: Path) -> list[dict]:
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stop_procs(*procs: subprocess.Popen) -> None:
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
