"""``gearpy-client`` as a process: output, streaming, JSON, and the documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gearpy.protocol import PacketType
from gearpy.testing import free_port

T = PacketType


def run(server, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    servers = ["-s", server.address] if server is not None else []
    return subprocess.run(
        [sys.executable, "-m", "gearpy.client", *servers, *args],
        capture_output=True,
        input=input,
        timeout=60,
    )


def test_submit_prints_result(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    p = run(gearman_server, "submit", "upper", "hello", "--timeout", "20")
    assert (p.returncode, p.stdout) == (0, b"HELLO\n"), p.stderr
    p = run(gearman_server, "submit", "upper", "-", input=b"from stdin")
    assert (p.returncode, p.stdout) == (0, b"FROM STDIN\n"), p.stderr
    p = run(gearman_server, "--json", "submit", "upper", "j", "--priority", "high")
    assert p.returncode == 0 and json.loads(p.stdout)["result"] == "J"


def test_submit_failure_exit_1(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "broken", "false")
    p = run(gearman_server, "submit", "broken", "x")
    assert p.returncode == 1
    assert b"failed" in p.stderr and b"Traceback" not in p.stderr


@pytest.mark.slow
def test_submit_streams_work_data(gearman_server, raw_worker):
    def script(w, handle, payload):
        w.send(T.WORK_DATA, handle, b"part1,")
        w.send(T.WORK_WARNING, handle, b"hmm")
        w.send(T.WORK_DATA, handle, b"part2,")
        w.send(T.WORK_COMPLETE, handle, b"done")

    raw_worker(gearman_server, "stream", script)
    p = run(gearman_server, "submit", "stream", "x")
    assert p.returncode == 0
    assert p.stdout == b"part1,part2,done\n"
    assert b"warning: hmm" in p.stderr


@pytest.mark.slow
def test_background_batch_status_and_jobs(gearman_server):
    p = run(gearman_server, "submit", "--background", "--unique", "u9", "--key", "k", "queued", "x")
    handle = p.stdout.decode().strip()
    assert p.returncode == 0 and handle
    p = run(gearman_server, "--json", "job-status", handle)
    assert p.returncode == 0 and json.loads(p.stdout)["known"] is True
    p = run(gearman_server, "submit", "--batch", "-", "--background", "queued", input=b"a\nb\nc\n")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.split()) == 3
    p = run(gearman_server, "--json", "status")
    rows = {r["function"]: r for r in json.loads(p.stdout)}
    assert rows["queued"]["total"] == 3 and rows["k-queued"]["total"] == 1
    p = run(gearman_server, "status")
    assert p.returncode == 0 and b"FUNCTION" in p.stdout and b"k-queued" in p.stdout
    p = run(gearman_server, "jobs")
    assert handle.encode() in p.stdout
    p = run(gearman_server, "cancel", handle)
    assert p.returncode == 0
    p = run(gearman_server, "cancel", "H:none:1")
    assert p.returncode == 1 and b"UNKNOWN_JOB" in p.stderr


def test_batch_foreground_results_in_order(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    lines = b"".join(f"line{i}\n".encode() for i in range(20))
    p = run(gearman_server, "submit", "--batch", "-", "upper", "--timeout", "30", input=lines)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == [f"LINE{i}" for i in range(20)]


def test_admin_commands(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    p = run(gearman_server, "workers")
    assert p.returncode == 0 and b"upper" in p.stdout
    p = run(gearman_server, "--json", "version")
    assert json.loads(p.stdout)[0]["version"]
    p = run(gearman_server, "maxqueue", "upper", "5")
    assert (p.returncode, p.stdout) == (0, b"OK\n")
    p = run(gearman_server, "ping")
    assert p.returncode == 0 and p.stdout.startswith(gearman_server.address.encode()) and b" ms" in p.stdout


def test_cannot_connect_exit_3():
    port = free_port()
    for args in (["submit", "f", "x"], ["status"], ["ping"]):
        p = subprocess.run(
            [sys.executable, "-m", "gearpy.client", "-s", f"127.0.0.1:{port}", *args],
            capture_output=True,
            timeout=60,
        )
        assert p.returncode == 3
        assert p.stderr == f"gearpy-client: cannot connect to 127.0.0.1:{port}: Connection refused\n".encode()


def test_usage_exit_2_and_help_documents_exit_codes():
    p = run(None, "submit", "--priority", "urgent", "f")
    assert p.returncode == 2 and b"Traceback" not in p.stderr
    p = run(None, "--help")
    assert p.returncode == 0
    assert b"cannot connect" in p.stdout and b"3" in p.stdout
    p = run(None, "submit", "--when", "99", "f", "x")  # foreground + when: a usage error
    assert p.returncode == 2
