"""The fleet page: other job servers (``--http-peers``), gearpy or gearmand, read over the admin protocol.

Each peer is asked ``version``, ``status`` and ``workers`` on one plaintext connection, in gevent's
thread pool with blocking stdlib sockets (the server process is not monkey-patched), at most once
every :data:`REFRESH` seconds however many dashboards poll, with a short timeout so that a dead
peer shows as down instead of holding the page. The server does not import the client package,
so the few lines of admin protocol needed here are read here.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent

from gearpy.config import parse_server_address

REFRESH = 2.0
TIMEOUT = 2.0
#: Largest admin reply read from a peer (a listing of many functions fits easily).
MAX_REPLY = 4 * 1024 * 1024


class _AdminReader:
    """Line-oriented reads of admin replies from one socket, bounded in size."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> str:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_REPLY:
                raise OSError("admin reply too long")
            data = self.sock.recv(65536)
            if not data:
                raise OSError("connection closed by the server")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def listing(self) -> list[str]:
        lines: list[str] = []
        while (line := self.line()) != ".":
            if line.startswith("ERR ") and not lines:
                raise OSError(line)
            lines.append(line)
        return lines


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def read_peer(address: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """One peer's state as the dashboard shows it; ``up`` False with the reason when unreachable."""
    try:
        host, port = parse_server_address(address)
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"version\nstatus\nworkers\n")
            reader = _AdminReader(sock)
            version = reader.line()
            status = [line.split("\t") for line in reader.listing()]
            conns = [line.partition(" :")[2].split() for line in reader.listing()]
    except Exception as exc:  # any failure means "down", with its reason shown
        return {"address": address, "up": False, "error": str(exc) or type(exc).__name__}
    functions: list[dict[str, Any]] = [
        {"name": p[0], "total": _int(p[1]), "running": _int(p[2]), "workers": _int(p[3])}
        for p in status
        if len(p) >= 4
    ]
    return {
        "address": address,
        "up": True,
        "version": version[3:] if version.startswith("OK ") else version,
        "connections": len(conns),
        "workers": sum(1 for c in conns if c),
        "queued": sum(f["total"] - f["running"] for f in functions),
        "running": sum(f["running"] for f in functions),
        "functions": functions,
    }


class Fleet:
    """Cached reads of the peers named at start-up."""

    def __init__(self, peers: list[str]) -> None:
        self.peers = peers
        self._cache: tuple[float, list[dict[str, Any]]] = (0.0, [])

    def read(self) -> list[dict[str, Any]]:
        at, cached = self._cache
        if time.monotonic() - at < REFRESH:
            return cached
        pool = gevent.get_hub().threadpool
        results = [pool.spawn(read_peer, p) for p in self.peers]
        out = [r.get() for r in results]
        self._cache = (time.monotonic(), out)
        return out
