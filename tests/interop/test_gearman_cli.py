"""libgearman's ``gearman`` tool as worker and client, on gearpy-server and (same asserts) gearmand."""

from __future__ import annotations

import subprocess

import pytest

from gearpy.protocol import PacketType

from support.external import require_tool

pytestmark = pytest.mark.interop

T = PacketType


def run(argv: list[str], stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture
def gearman():
    return require_tool("gearman")


def hp(server) -> list[str]:
    return ["-h", server.host, "-p", str(server.port)]


def start_worker(procs, gearman, server, fn: str, *cmd: str, count: int | None = None):
    argv = [gearman, "-w", *hp(server), "-f", fn]
    if count is not None:
        argv += ["-c", str(count)]
    return procs([*argv, "--", *cmd])


def wait_registered(session, server, fn: bytes, workers: int = 1) -> None:
    a = session(server)
    a.wait_admin(b"status\n", fn + b"\t0\t0\t%d\n" % workers)


def test_worker_and_foreground_client(gearman_server, gearman, procs, session):
    w = start_worker(procs, gearman, gearman_server, "up", "tr", "a-z", "A-Z", count=2)
    wait_registered(session, gearman_server, b"up")
    r = run([gearman, *hp(gearman_server), "-f", "up"], stdin=b"hello world")
    assert (r.returncode, r.stdout) == (0, b"HELLO WORLD"), r.stderr
    r = run([gearman, *hp(gearman_server), "-f", "up", "-u", "myuniq"], stdin=b"second")
    assert (r.returncode, r.stdout) == (0, b"SECOND"), r.stderr
    assert w.wait(timeout=30) == 0  # -c 2: exits after two jobs


def test_several_jobs_per_call(gearman_server, gearman, procs, session):
    start_worker(procs, gearman, gearman_server, "up", "tr", "a-z", "A-Z")
    wait_registered(session, gearman_server, b"up")
    r = run([gearman, *hp(gearman_server), "-f", "up", "abc", "def", "ghi"])
    assert r.returncode == 0, r.stderr
    assert sorted([r.stdout[i : i + 3] for i in range(0, 9, 3)]) == [b"ABC", b"DEF", b"GHI"]
    # one job per line, newline kept (-n) or stripped (-N)
    r = run([gearman, *hp(gearman_server), "-f", "up", "-N"], stdin=b"x1\ny2\n")
    assert r.returncode == 0 and r.stdout in (b"X1Y2", b"Y2X1"), r
    r = run([gearman, *hp(gearman_server), "-f", "up", "-n"], stdin=b"x1\ny2\n")
    assert r.returncode == 0 and sorted(r.stdout.splitlines()) == [b"X1", b"Y2"], r


def test_failing_worker_command(gearman_server, gearman, procs, session):
    start_worker(procs, gearman, gearman_server, "fails", "false")
    wait_registered(session, gearman_server, b"fails")
    r = run([gearman, *hp(gearman_server), "-f", "fails"], stdin=b"x")
    assert r.returncode == 1
    assert b"Job failed" in r.stderr
    # the worker survives the failure and the job is gone
    a = session(gearman_server)
    assert a.admin(b"status\n") == b"fails\t0\t0\t1\n.\n"


def test_background_priorities_and_unique(gearman_server, gearman, session):
    base = [gearman, *hp(gearman_server), "-f", "bg"]
    for flags, data in (
        (["-b"], "n1"),
        (["-b", "-I"], "h1"),
        (["-b", "-L"], "l1"),
        (["-b", "-u", "myuniq", "-s"], None),
    ):
        r = run(base + flags + ([data] if data else []))
        assert (r.returncode, r.stdout) == (0, b""), r.stderr
    a = session(gearman_server)
    assert a.admin(b"prioritystatus\n") == b"bg\t1\t2\t1\t0\n.\n"
    assert b"\nmyuniq\n" in b"\n" + a.admin(b"show unique jobs\n")
    w = session(gearman_server)
    w.send(T.CAN_DO, b"bg")
    got = [w.call(T.GRAB_JOB_UNIQ)[0].args for _ in range(4)]
    payloads = [args[3] for args in got]
    assert payloads[0] == b"h1" and payloads[-1] == b"l1"
    assert sorted(payloads[1:3]) == [b"", b"n1"]
    assert (b"myuniq", b"") in [(args[2], args[3]) for args in got]


@pytest.mark.parametrize("flag,expected", [("-N", [b"l1", b"l2"]), ("-n", [b"l1\n", b"l2\n"])])
def test_background_lines(gearman_server, gearman, session, flag, expected):
    r = run([gearman, *hp(gearman_server), "-f", "lines", "-b", flag], stdin=b"l1\nl2\n")
    assert r.returncode == 0, r.stderr
    w = session(gearman_server)
    w.send(T.CAN_DO, b"lines")
    assert sorted(w.call(T.GRAB_JOB)[0].args[2] for _ in range(2)) == expected
    assert w.call(T.GRAB_JOB)[0].kind == T.NO_JOB


def test_queue_full_is_reported_with_status_zero(gearman_server, gearman, session):
    a = session(gearman_server)
    assert a.admin(b"create function capped\r\n") == b"OK\r\n"
    assert a.admin(b"maxqueue capped 1\n") == b"OK\r\n"
    base = [gearman, *hp(gearman_server), "-f", "capped", "-b"]
    assert run(base + ["one"]).returncode == 0
    r = run(base + ["two"])
    assert r.returncode == 0  # gearman's exit status ignores server errors (as with gearmand)
    assert b"QUEUE_ERROR" in r.stderr
    assert a.admin(b"status\n") == b"capped\t1\t0\t0\n.\n"


def test_worker_sends_data_per_line(gearman_server, gearman, procs, session):
    start_worker(procs, gearman, gearman_server, "lines", "printf", "a\\nb\\n")
    # gearman -w -n: one WORK_DATA per output line
    procs_argv = [gearman, "-w", *hp(gearman_server), "-f", "lines2", "-n", "--", "printf", "a\\nb\\n"]
    procs(procs_argv)
    wait_registered(session, gearman_server, b"lines")
    wait_registered(session, gearman_server, b"lines2")
    c = session(gearman_server)
    c.send(T.SUBMIT_JOB, b"lines2", b"", b"in")
    pkts = []
    for _ in range(500):
        if pkts and pkts[-1].kind in (T.WORK_COMPLETE, T.WORK_FAIL):
            break
        pkts += [p for p in c.call(T.ECHO_REQ, b"") if p.kind != T.ECHO_RES]
    kinds = [p.kind for p in pkts]
    assert kinds[0] == T.JOB_CREATED and kinds[-1] == T.WORK_COMPLETE
    data = [p.args[1] for p in pkts if p.kind == T.WORK_DATA]
    assert data and data[0] == b"a\n"
    r = run([gearman, *hp(gearman_server), "-f", "lines"], stdin=b"x")
    assert (r.returncode, r.stdout) == (0, b"a\nb\n")
