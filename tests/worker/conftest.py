"""Helpers for worker tests: a task module on disk and ``gearpy-worker`` subprocesses.

Jobs that must be "in the middle" use files instead of sleeps: the ``hold`` task writes
``started-<pid>-<payload>`` into ``$WTEST_DIR`` and waits until ``release`` exists there, so a test
acts exactly while the job runs and no assertion depends on timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.waits import WAIT

TASKS = r"""
import os
import time
from pathlib import Path

from gearpy.worker import Fail, task

DIR = Path(os.environ["WTEST_DIR"])


@task
def upper(job, payload):
    job.progress(1, 2)
    return payload.upper()


@task(codec="json")
def add(job, p):
    return {"sum": p["a"] + p["b"]}


@task(name="events", codec="json")
def with_events(job, p):
    job.progress(1, 3)
    job.data({"chunk": 1})
    job.warning("careful")
    job.progress(3, 3)
    return {"function": job.function, "unique": job.unique, "raw": job.payload.decode(), "got": p}


@task
def boom(job, payload):
    raise ValueError("bad input " + payload.decode())


@task
def refuse(job, payload):
    raise Fail("not today")


@task(retries=2, backoff=0.01, backoff_max=0.02)
def flaky(job, payload):
    if job.attempt < 2:
        raise RuntimeError(f"attempt {job.attempt}")
    return f"ok after {job.attempt} retries".encode()


@task(timeout=0.5)
def too_slow(job, payload):
    (DIR / f"slow-started-{os.getpid()}").write_text("x")
    time.sleep(60)
    return b"never"


@task
def whoami(job, payload):
    return f"{os.environ.get('WTEST_NAME', '?')}:{os.getpid()}".encode()


@task
def hold(job, payload):
    (DIR / f"started-{os.getpid()}-{payload.decode()}").write_text("x")
    deadline = time.monotonic() + 60
    while not (DIR / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return f"done:{payload.decode()}:{os.getpid()}".encode()
"""


class WorkerProcess:
    """``python -m gearpy.worker`` as a subprocess, with its log in a file."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = workdir / f"worker-{time.monotonic_ns()}.log"
        full_env = dict(os.environ, WTEST_DIR=str(workdir), PYTHONPATH=str(workdir), **(env or {}))
        full_env.pop("GEARPY_REQUIRE_EXTERNAL", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gearpy.worker", "--log-level", "DEBUG", *args],
                cwd=workdir,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit within {timeout} s; log:\n{self.log()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "wtasks.py").write_text(TASKS)
    return tmp_path


@pytest.fixture
def start_worker(workdir: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``gearpy-worker`` subprocesses in ``workdir``; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        w = WorkerProcess(workdir, list(args), env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
