"""The examples in examples/ run as their docstrings say, end to end against a live gearpy-server.

A worker subprocess serves examples/report_worker.py under a workers key, examples/webapp.py runs as
its own process and submits a background report over HTTP, and examples/poll_status.py follows the
handle until the job is done. Every wait is bounded; nothing asserts on timing.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gearpy.testing import free_port, stop_process

from support.waits import wait_for_worker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = "atom1"
WAIT = 60.0


def read_line(proc: subprocess.Popen, timeout: float = WAIT) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"no output from {proc.args} within {timeout} s")
    finally:
        sel.close()
    return proc.stdout.readline().decode()


def http(method: str, url: str, body: dict | bytes | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def webapp(gearpy_server):
    env = {**os.environ, "GEARPY_SERVERS": gearpy_server.address, "GEARPY_WORKERS_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "webapp.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        line = read_line(proc)
        assert line.startswith("serving on http://127.0.0.1:"), line
        yield line.split()[-1].rstrip("/")
    finally:
        stop_process(proc)


def poll_status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "poll_status.py"), *args],
        capture_output=True,
        text=True,
        timeout=WAIT + 30,
    )


@pytest.mark.slow
def test_webapp_worker_and_poll_status(gearpy_server, gearpy_worker, webapp, tmp_path):
    gearpy_worker("--key", KEY, str(EXAMPLES / "report_worker.py"), env={"REPORT_DIR": str(tmp_path)})
    wait_for_worker(gearpy_server.address, f"{KEY}-generate_report", timeout=WAIT)

    status, reply = http(
        "POST", f"{webapp}/reports", {"repository": "Archives of Ontario", "rows": 20, "delay": 0.05}
    )
    assert status == 202, reply
    handle = reply["handle"]
    assert handle.startswith("H:")

    done = poll_status("-s", gearpy_server.address, "--interval", "0.1", "--timeout", str(WAIT), handle)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == f"{handle} done"
    for line in lines[:-1]:  # whatever states were seen on the way are well-formed
        state = line[len(handle) + 1 :]
        assert line.startswith(handle + " ") and (
            state in ("queued", "running") or state.startswith("running ")
        ), line

    report = tmp_path / f"report-{handle.replace(':', '_')}.csv"
    rows = report.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "reference,title,repository" and len(rows) == 21
    assert rows[-1] == "ARC-00020,Item 20,Archives of Ontario"

    status, reply = http("GET", f"{webapp}/reports/{handle}")
    assert status == 200 and reply["known"] is False, reply


def test_webapp_rejects_bad_requests(webapp):
    assert http("POST", f"{webapp}/reports", b"not json")[0] == 400
    assert http("POST", f"{webapp}/reports", {"rows": 3})[0] == 400
    assert http("GET", f"{webapp}/nowhere")[0] == 404


@pytest.mark.slow
def test_poll_status_exit_codes(gearpy_server):
    # A handle no server knows is reported done at once (finished jobs are forgotten too).
    gone = poll_status("-s", gearpy_server.address, "H:nowhere:1")
    assert (gone.returncode, gone.stdout) == (0, "H:nowhere:1 done\n")
    unreachable = poll_status("-s", f"127.0.0.1:{free_port()}", "H:nowhere:1")
    assert unreachable.returncode == 3 and unreachable.stderr.startswith("poll_status: ")
