"""``gearadmin`` with every option against gearpy-server, compared with gearmand on the same state."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gearpy.protocol import PacketType
from gearpy.testing import ServerProcess

from support.external import require_tool
from support.servers import server_of

pytestmark = pytest.mark.interop

T = PacketType
ARGS = ("--job-handle-prefix=H:adm", "--verbose=INFO")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, ServerProcess]]:
    started = {
        "gearpy": server_of("gearpy", tmp_path, *ARGS).start(),
        "gearmand": server_of("gearmand", tmp_path, *ARGS).start(),
    }
    try:
        yield started
    finally:
        for s in started.values():
            s.stop()
    assert "Traceback" not in started["gearpy"].log()


def build_state(server: ServerProcess, session) -> None:
    """The same connections, registrations and jobs on either server."""
    w = session(server)
    w.send(T.SET_CLIENT_ID, b"wk")
    w.send(T.CAN_DO, b"alpha")
    w.send(T.CAN_DO, b"beta")
    c = session(server)
    assert c.call(T.SUBMIT_JOB_BG, b"alpha", b"u1", b"a")[0].args == (b"H:adm:1",)
    assert c.call(T.SUBMIT_JOB_HIGH_BG, b"beta", b"u2", b"b")[0].args == (b"H:adm:2",)
    assert c.call(T.SUBMIT_JOB_LOW_BG, b"gamma", b"", b"c")[0].args == (b"H:adm:3",)
    c.call(T.SUBMIT_JOB_BG, b"alpha", b"u4", b"d")
    # A second worker runs beta's job. (Grabbing on "wk" would differ on purpose: gearpy's round
    # robin, always on as in gearmand 2.0, reorders that connection's registrations in `workers`.)
    runner = session(server)
    runner.send(T.CAN_DO, b"beta")
    assert runner.call(T.GRAB_JOB)[0].args[0] == b"H:adm:2"


def gearadmin(server: ServerProcess, *opts: str) -> tuple[int, str, str]:
    tool = require_tool("gearadmin")
    r = subprocess.run(
        [tool, "-h", server.host, "-p", str(server.port), *opts], capture_output=True, timeout=30
    )
    out = r.stdout.decode()
    out = re.sub(r"(?m)^\d+ (127\.0\.0\.1)", r"FD \1", out)  # workers: socket numbers differ
    return r.returncode, out, r.stderr.decode()


def both(servers, *opts: str) -> tuple[int, str, str]:
    ours = gearadmin(servers["gearpy"], *opts)
    theirs = gearadmin(servers["gearmand"], *opts)
    assert ours == theirs, opts
    return ours


@pytest.fixture
def state(servers, session):
    for s in servers.values():
        build_state(s, session)
    return servers


def test_status(state):
    rc, out, err = both(state, "--status")
    assert rc == 0 and err == ""
    assert sorted(out.splitlines()) == [".", "alpha\t2\t0\t1", "beta\t1\t1\t2", "gamma\t1\t0\t0"]


def test_priority_status(state):
    _, out, _ = both(state, "--priority-status")
    assert sorted(out.splitlines()) == [".", "alpha\t0\t2\t0\t1", "beta\t0\t0\t0\t2", "gamma\t0\t0\t1\t0"]


def test_workers(state):
    _, out, _ = both(state, "--workers")
    assert out == (
        "FD 127.0.0.1 - :\n"  # gearadmin itself
        "FD 127.0.0.1 - : beta\n"
        "FD 127.0.0.1 - :\n"
        "FD 127.0.0.1 wk : beta alpha\n"
        ".\n"
    )


def test_show_jobs_and_unique_jobs(state):
    _, jobs, _ = both(state, "--show-jobs")
    assert sorted(jobs.splitlines()) == [
        ".",
        "H:adm:1\t0\t0\t1",
        "H:adm:2\t0\t0\t1",
        "H:adm:3\t0\t0\t1",
        "H:adm:4\t0\t0\t1",
    ]
    _, uniq, _ = both(state, "--show-unique-jobs")
    assert sorted(uniq.splitlines()) == ["", ".", "u1", "u2", "u4"]


def test_version_verbose_getpid(state):
    ours = gearadmin(state["gearpy"], "--server-version")
    theirs = gearadmin(state["gearmand"], "--server-version")
    assert theirs[1].startswith("1.1.20")
    assert ours[0] == 0 and re.fullmatch(r"\S+\n", ours[1]) and ours[1] != theirs[1]  # value only
    assert both(state, "--server-verbose") == (0, "INFO\n", "")
    for name, server in state.items():
        rc, out, _ = gearadmin(server, "--getpid")
        assert (rc, out) == (0, f"{server.proc.pid}\n"), name


def test_cancel_job(state):
    assert both(state, "--cancel-job", "H:adm:1") == (0, "OK\n", "")
    rc, out, err = both(state, "--cancel-job", "H:adm:99")
    assert rc == 0 and "UNKNOWN_JOB" in err
    _, jobs, _ = both(state, "--show-jobs")
    assert "H:adm:1\t0\t1\t0\n" in jobs  # kept in memory, flagged ignored, no longer queued


def test_create_and_drop_function(state):
    assert both(state, "--create-function", "newf") == (0, "OK\n", "")
    _, out, _ = both(state, "--status")
    assert "newf\t0\t0\t0\n" in out
    assert both(state, "--drop-function", "newf") == (0, "OK\n", "")
    _, out, _ = both(state, "--status")
    assert "newf" not in out
    rc, out, err = both(state, "--drop-function", "nosuch")
    assert (rc, out) == (0, "") and "function not found" in err
    rc, out, err = both(state, "--drop-function", "beta")  # a worker can do it
    assert rc == 0 and "still connected workers" in err


def test_all_options_at_once_in_gearadmins_fixed_order(state):
    opts = [
        "--status",
        "--server-verbose",
        "--workers",
        "--priority-status",
        "--show-jobs",
        "--show-unique-jobs",
        "--create-function",
        "zeta",
        "--getpid",
    ]
    ours = gearadmin(state["gearpy"], *opts)
    theirs = gearadmin(state["gearmand"], *opts)
    strip_pid = [(rc, re.sub(r"^\d+\n", "PID\n", out), err) for rc, out, err in (ours, theirs)]
    assert strip_pid[0] == strip_pid[1]
    assert strip_pid[0][1].startswith("PID\nOK\n")  # getpid, then create function, ...
    assert "\nzeta\t0\t0\t0\n" in strip_pid[0][1]  # created before the listings were taken
