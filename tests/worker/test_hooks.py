"""Worker hooks, observed from outside: a user hook in a real ``gearpy-worker`` process serving a real
gearpy-server, the built-in recycling hook across two servers, and the embedding API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gearpy.client import submit
from gearpy.errors import JobException, JobFailed
from gearpy.worker.config import EXIT_IMPORT, EXIT_OK, EXIT_RECYCLED

from support.waits import function_status, wait_for_worker, wait_until

TIMEOUT = 20.0

HOOKS = r"""
import json
import os
from pathlib import Path

from gearpy.worker import Hook

LOG = Path(os.environ["WTEST_DIR"]) / "hooks.jsonl"


def record(*event):
    with LOG.open("a") as f:
        f.write(json.dumps(event) + "\n")


class Recorder(Hook):
    def on_start(self, worker):
        record("start", worker.client_id, worker.jobs_done)

    def before_job(self, worker, job):
        record("before", job.function, job.payload.decode(), worker.jobs_running)

    def on_failure(self, worker, job, outcome, seconds):
        record("failure", job.function, outcome.kind, outcome.reason)

    def after_job(self, worker, job, outcome, seconds):
        record("after", job.function, outcome.kind, seconds >= 0, worker.jobs_done)
        if job.payload == b"recycle-me":
            worker.stop("recycle")

    def on_stop(self, worker, exit_code):
        record("stop", exit_code, worker.stop_reason)


class Broken(Hook):
    def before_job(self, worker, job):
        raise RuntimeError("hook bug")

    def after_job(self, worker, job, outcome, seconds):
        raise RuntimeError("hook bug")


NOT_A_HOOK = 42
"""


@pytest.fixture
def hooks_module(workdir: Path) -> Path:
    (workdir / "whooks.py").write_text(HOOKS)
    return workdir / "hooks.jsonl"


def events(path: Path) -> list[list[object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_user_hook_sees_every_job_and_the_stop(gearpy_server, start_worker, hooks_module):
    worker = start_worker(
        "-s", gearpy_server.address, "--client-id", "hooked", "--hook", "whooks:Recorder", "wtasks"
    )
    wait_for_worker(gearpy_server, "upper")
    servers = [gearpy_server.address]
    assert submit("upper", b"a", servers=servers, timeout=TIMEOUT) == b"A"
    with pytest.raises(JobFailed):
        submit("refuse", b"r", servers=servers, timeout=TIMEOUT)
    with pytest.raises(JobException):
        submit("boom", b"b", servers=servers, timeout=TIMEOUT)
    # The client has its outcome before after_job ran (the reply goes first): wait for the hook.
    wait_until(lambda: len(events(hooks_module)) == 9, "the hook to record three jobs")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == EXIT_OK
    assert events(hooks_module) == [
        ["start", "hooked", 0],
        ["before", "upper", "a", 1],
        ["after", "upper", "complete", True, 1],
        ["before", "refuse", "r", 1],
        ["failure", "refuse", "fail", "not today"],
        ["after", "refuse", "fail", True, 2],
        ["before", "boom", "b", 1],
        ["failure", "boom", "exception", "ValueError: bad input b"],
        ["after", "boom", "exception", True, 3],
        ["stop", 0, "signal SIGTERM"],
    ]


def test_a_hook_can_recycle_the_worker(gearpy_server, start_worker, hooks_module):
    worker = start_worker("-s", gearpy_server.address, "--hook", "whooks:Recorder", "wtasks")
    wait_for_worker(gearpy_server, "upper")
    assert submit("upper", b"recycle-me", servers=[gearpy_server.address], timeout=TIMEOUT) == b"RECYCLE-ME"
    assert worker.wait() == EXIT_RECYCLED
    assert events(hooks_module)[-1] == ["stop", EXIT_RECYCLED, "recycle"]


def test_a_failing_hook_is_logged_and_never_fails_the_job(gearpy_server, start_worker, hooks_module):
    worker = start_worker(
        "-s", gearpy_server.address, "--hook", "whooks:Broken", "--hook", "whooks:Recorder", "wtasks"
    )
    wait_for_worker(gearpy_server, "upper")
    assert submit("upper", b"still works", servers=[gearpy_server.address], timeout=TIMEOUT) == b"STILL WORKS"
    # The hook after the broken one still ran.
    wait_until(lambda: ["after", "upper", "complete", True, 1] in events(hooks_module), "the second hook")
    log = worker.log()
    assert "worker hook Broken.before_job raised; ignored" in log
    assert "worker hook Broken.after_job raised; ignored" in log


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("whooks:NOT_A_HOOK", "whooks:NOT_A_HOOK is not a worker hook"),
        ("whooks", "--hook whooks: name the hook as MODULE:ATTR"),
        ("whooks:Missing", "whooks has no attribute 'Missing'"),
        ("no_such_hooks:X", "cannot import no_such_hooks: ModuleNotFoundError"),
    ],
)
def test_bad_hook_is_one_line_and_exit_3(workdir, hooks_module, spec, needle):
    out = subprocess.run(
        [sys.executable, "-m", "gearpy.worker", "--hook", spec, "wtasks"],
        cwd=workdir,
        env={"WTEST_DIR": str(workdir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == EXIT_IMPORT, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gearpy-worker: {needle}"), out.stderr


def test_max_jobs_is_exact_across_servers_and_concurrency(gearpy_server, gearmand_server, start_worker):
    """The recycling hook counts grabs in flight: with 4 slots and 2 servers the worker still takes
    exactly --max-jobs jobs."""
    for server in (gearpy_server, gearmand_server):
        for i in range(3):
            submit("upper", f"q{i}".encode(), background=True, servers=[server.address], timeout=TIMEOUT)
    worker = start_worker(
        "-s", gearpy_server.address, "-s", gearmand_server.address, "--max-jobs", "2", "-c", "4", "wtasks"
    )
    assert worker.wait() == EXIT_RECYCLED
    assert "job 2 of --max-jobs 2 taken; recycling after it" in worker.log()

    def left() -> int | None:
        counts = [function_status(s, "upper") for s in (gearpy_server, gearmand_server)]
        if any(c is None or c[1] for c in counts):  # still running somewhere
            return None
        return sum(c[0] for c in counts if c is not None)

    wait_until(lambda: left() == 4, "four of the six jobs still queued")


EMBEDDED = r"""
import json
import sys

from gevent import monkey

monkey.patch_all()

from gearpy.worker import Hook, Worker, task


@task
def double(job, payload):
    return payload * 2


class StopAfterOne(Hook):
    def __init__(self):
        self.seen = []

    def after_job(self, worker, job, outcome, seconds):
        self.seen.append([job.function, outcome.kind, outcome.data.decode()])
        worker.stop("done")

    def on_stop(self, worker, exit_code):
        print(json.dumps({"seen": self.seen, "code": exit_code, "reason": worker.stop_reason}), flush=True)


hook = StopAfterOne()
sys.exit(Worker([double], servers=[sys.argv[1]], hooks=[hook]).run(install_signal_handlers=False))
"""


def test_embedded_worker_with_hooks(gearpy_server, workdir):
    script = workdir / "embedded.py"
    script.write_text(EMBEDDED)
    proc = subprocess.Popen(
        [sys.executable, str(script), gearpy_server.address],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_worker(gearpy_server, "double")
        assert submit("double", b"ab", servers=[gearpy_server.address], timeout=TIMEOUT) == b"abab"
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == EXIT_OK
    assert json.loads(out) == {"seen": [["double", "complete", "abab"]], "code": EXIT_OK, "reason": "done"}
