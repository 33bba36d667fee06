"""A gearpy-worker task module for reliability tests and ``scripts/soak.py``: every run is logged.

``gearpy-worker tests/support/jobtasks.py`` serves ``record`` (and ``KEY-record`` with ``--key``).
The payload says what to do: ``sleep:S:ID`` sleeps S seconds, anything else returns at once; the
result is ``done:`` + payload. Before the job starts and before its result is sent, one JSON line
``{"op": "start"|"done", "payload", "pid", "handle"}`` is appended to the file named by
``GEARPY_JOBLOG`` with a single ``write()`` (the line survives a SIGKILL right after), the same
format as ``tests/robustness/rawworker.py``.
"""

from __future__ import annotations

import json
import os
import time

from gearpy.worker import task

_fd: int | None = None


def _log(op: str, job, payload: bytes) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["GEARPY_JOBLOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rec = {"op": op, "payload": payload.decode("utf-8", "replace"), "pid": os.getpid(), "handle": job.handle}
    rec["t"] = time.time()
    os.write(_fd, (json.dumps(rec) + "\n").encode())


@task
def record(job, payload: bytes) -> bytes:
    """Log, maybe sleep (``sleep:S:...``), log again, return ``done:`` + payload."""
    _log("start", job, payload)
    if payload.startswith(b"sleep:"):
        time.sleep(float(payload.split(b":")[1]))
    _log("done", job, payload)
    return b"done:" + payload
