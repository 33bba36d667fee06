"""gearpy-worker and gearpy-server agree on CAN_DO_TIMEOUT's unit (issue #17, item 3).

A task's ``timeout`` is enforced by the worker itself; the value announced with CAN_DO_TIMEOUT is
the server's backstop for code the worker cannot interrupt (CPU-bound code that never yields to
gevent). The worker announces it in the unit the server reads (``can_do_timeout_unit``, one shared
setting): with a server in ``s`` mode, announcing milliseconds made the backstop 1000x too long.
"""

from __future__ import annotations

import time

import pytest

from gearpy.client import Client
from gearpy.errors import JobFailed
from gearpy.worker import task

from support.waits import wait_for_worker

BUSY = r"""
import time

from gearpy.worker import task


@task(timeout=1)
def busy(job, payload):
    # CPU-bound: never yields, so the worker's own gevent timeout cannot interrupt it.
    end = time.monotonic() + 10
    while time.monotonic() < end:
        pass
    return b"finished"


@task
def quick(job, payload):
    return b"quick"
"""


@pytest.mark.parametrize("unit", ["ms", "s"])
@pytest.mark.slow
def test_backstop_fires_in_both_units(unit, workdir, start_worker, make_server, monkeypatch):
    (workdir / "wbusy.py").write_text(BUSY)
    # One setting for both programs, as an operator sets it (here: the shared environment).
    monkeypatch.setenv("GEARPY_CAN_DO_TIMEOUT_UNIT", unit)
    server = make_server()
    worker = start_worker("-s", server.address, "wbusy", env={"GEARPY_CAN_DO_TIMEOUT_UNIT": unit})
    wait_for_worker(server.address, "busy")
    with Client([server.address]) as client:
        start = time.monotonic()
        with pytest.raises(JobFailed):
            client.submit("busy", b"").result(60)
        elapsed = time.monotonic() - start
        # Backstop: 1 s timeout + 2 s grace = 3 s; the task itself would run 10 s.
        assert 2.0 <= elapsed < 7.0, (unit, elapsed)
        # The worker's own late answer is dropped by the server; the worker serves on.
        assert client.submit("quick", b"").result(60) == b"quick"
    assert "the job had already timed out" in server.log(), worker.log()


def test_announced_timeout_rounds_up_to_whole_seconds():
    @task(timeout=1.2, retries=1, backoff=0.5, backoff_max=0.5)
    def t(job, payload):
        return payload

    assert t.server_timeout_ms == 2 * 1200 + 500 + 2000
    assert t.announced_timeout("ms") == 4900
    assert t.announced_timeout("s") == 5

    @task
    def untimed(job, payload):
        return payload

    assert untimed.announced_timeout("s") is None


@pytest.mark.slow
def test_worker_reads_the_unit_like_the_server(tmp_path):
    """The shared config file's top-level key (and GEARPY_CAN_DO_TIMEOUT_UNIT) reach both programs."""
    import os
    import subprocess
    import sys

    shared = tmp_path / "gearpy.yaml"
    shared.write_text("can_do_timeout_unit: s\n")
    for program in ("gearpy.worker", "gearpy.server"):
        out = subprocess.run(
            [sys.executable, "-m", program, "--config", str(shared), "--print-config"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "can_do_timeout_unit: s\n" in out.stdout, (program, out.stderr)
    bad = subprocess.run(
        [sys.executable, "-m", "gearpy.worker", "--print-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GEARPY_CAN_DO_TIMEOUT_UNIT": "hours"},
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "gearpy-worker: can_do_timeout_unit: 'hours' is not ms or s"
