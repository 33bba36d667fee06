"""Helpers of the network, store-link and fleet tests (``tests/reliability``, issue #16).

Servers there run with :data:`FAST_KEEPALIVE` (a silent peer is dropped after 1 + 1 x 2 = 3 s) so
that the waits stay short; the defaults (60 + 10 x 6 = 120 s) are documented in the guide. Workers
serve ``record`` from :data:`TASKS`, which logs every run in a JSON-lines file read by
:class:`JobLog`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gearpy.testing import ServerProcess

from support.raw import admin, status
from support.workers import worker_log

TASKS = Path(__file__).resolve().parent / "jobtasks.py"
#: idle 1 s, then 2 probes 1 s apart: a silent peer is dropped ~3 s after it fell silent.
FAST_KEEPALIVE = ("--keepalive-idle", "1", "--keepalive-interval", "1", "--keepalive-count", "2")
DETECT_S = 3


def connections(server: ServerProcess) -> int:
    """Connections the server holds, not counting the one asking (the ``workers`` listing)."""
    lines = admin(server, b"workers").decode().splitlines()
    return len([line for line in lines if line != "."]) - 1


def fn_status(server: ServerProcess, function: str = "record") -> tuple[int, int, int]:
    """(total, running, workers) of ``function`` on ``server``; zeros when it is unknown."""
    return status(server).get(function, (0, 0, 0))


class JobLog:
    """The runs :data:`TASKS` logged: ``runs(job_id)`` -> the ``done`` records of that job."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        return worker_log(self.path)

    def ids(self, op: str = "done") -> list[str]:
        return [r["payload"].rsplit(":", 1)[1] for r in self.records() if r["op"] == op]

    def runs(self, job_id: str, op: str = "done") -> list[dict[str, Any]]:
        return [r for r in self.records() if r["op"] == op and r["payload"].rsplit(":", 1)[1] == job_id]
