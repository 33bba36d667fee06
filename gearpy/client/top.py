"""``gearpy-client top``: a refreshing view of what the servers are doing.

What people do today with ``watch gearadmin --status``, with more in it: per function the queued
jobs by priority, running jobs, workers and how fast the queue grows or shrinks; then the worker
connections. Built only on the admin protocol, so it works against gearmand too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gearpy.client.admin import Admin


@dataclass
class FunctionRow:
    server: str
    function: str
    high: int
    normal: int
    low: int
    running: int
    workers: int

    @property
    def queued(self) -> int:
        return self.high + self.normal + self.low


@dataclass
class Snapshot:
    taken: float
    functions: list[FunctionRow] = field(default_factory=list)
    #: (server, fd, ip, client id, functions) of connections that registered functions
    workers: list[tuple[str, int, str, str, tuple[str, ...]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def take_snapshot(servers: Sequence[str], admin_factory: Callable[[str], Admin] = Admin) -> Snapshot:
    """Read ``status``, ``prioritystatus`` and ``workers`` from every server (errors are kept)."""
    snap = Snapshot(time.monotonic())
    for server in servers:
        try:
            with admin_factory(server) as admin:
                running = {s.function: s for s in admin.status()}
                for p in admin.prioritystatus():
                    st = running.get(p.function)
                    snap.functions.append(
                        FunctionRow(
                            server, p.function, p.high, p.normal, p.low, st.running if st else 0, p.workers
                        )
                    )
                for w in admin.workers():
                    if w.functions:
                        snap.workers.append((server, w.fd, w.ip, w.client_id, w.functions))
        except Exception as exc:  # one bad server must not blank the whole view
            snap.errors.append(f"{server}: {exc}")
    return snap


def render(snap: Snapshot, previous: Snapshot | None = None, width: int = 120) -> str:
    """The view as text: a function table, a worker table, then errors."""
    rates: dict[tuple[str, str], float] = {}
    if previous is not None and snap.taken > previous.taken:
        before = {(r.server, r.function): r.queued for r in previous.functions}
        dt = snap.taken - previous.taken
        for r in snap.functions:
            if (r.server, r.function) in before:
                rates[(r.server, r.function)] = (r.queued - before[(r.server, r.function)]) / dt
    rows = [("SERVER", "FUNCTION", "HIGH", "NORMAL", "LOW", "RUNNING", "WORKERS", "QUEUE/s")]
    for r in sorted(snap.functions, key=lambda r: (-(r.queued + r.running), r.server, r.function)):
        rate = rates.get((r.server, r.function))
        rows.append(
            (
                r.server,
                r.function,
                str(r.high),
                str(r.normal),
                str(r.low),
                str(r.running),
                str(r.workers),
                "-" if rate is None else f"{rate:+.1f}",
            )
        )
    lines = [time.strftime("gearpy top  %Y-%m-%d %H:%M:%S"), ""]
    lines += _table(rows)
    lines += ["", f"{len(snap.workers)} worker connection(s)"]
    wrows = [("SERVER", "FD", "IP", "ID", "FUNCTIONS")]
    for server, fd, ip, cid, fns in snap.workers:
        wrows.append((server, str(fd), ip, cid, " ".join(fns)))
    lines += _table(wrows)
    lines += [f"error: {e}" for e in snap.errors]
    return "\n".join(line[:width] for line in lines)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
