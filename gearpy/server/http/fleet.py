"""The fleet page: other job servers (``--http-peers``), gearpy or gearmand, read over the admin protocol.

Each peer is asked ``version``, ``status`` and ``workers`` with the blocking admin client in
gevent's thread pool (the server process is not monkey-patched), at most once every
:data:`REFRESH` seconds however many dashboards poll, with a short timeout so a dead peer shows
as down instead of holding the page.
"""

from __future__ import annotations

import time
from typing import Any

import gevent

from gearpy.client.admin import Admin

REFRESH = 2.0
TIMEOUT = 2.0


def read_peer(address: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """One peer's state as the dashboard shows it; ``up`` False with the reason when unreachable."""
    try:
        with Admin(address, timeout=timeout) as admin:
            version = admin.version()
            status = admin.status()
            conns = admin.workers()
    except Exception as exc:  # any failure means "down", with its reason shown
        return {"address": address, "up": False, "error": str(exc) or type(exc).__name__}
    functions = [
        {"name": s.function, "total": s.total, "running": s.running, "workers": s.workers} for s in status
    ]
    return {
        "address": address,
        "up": True,
        "version": version,
        "connections": len(conns),
        "workers": sum(1 for c in conns if c.functions),
        "queued": sum(s.total - s.running for s in status),
        "running": sum(s.running for s in status),
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
