"""gearpy-client as a process: the exact line and exit code of each case of issue #13 (items 3, 8-12)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from gearpy import _accel, exitcodes
from gearpy.protocol import PacketType
from gearpy.testing import free_port

T = PacketType
CLIENT = [sys.executable, "-m", "gearpy.client"]


def run(*args: str, input: bytes | None = None, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GEARPY_")}
    full_env.update(env or {})
    return subprocess.run([*CLIENT, *args], capture_output=True, input=input, timeout=60, env=full_env)


def test_port_outside_1_65535_is_a_usage_error():
    p = run("-s", "127.0.0.1:99999", "status")
    assert p.returncode == exitcodes.USAGE
    assert p.stderr == (
        b"gearpy-client: Invalid value for '-s' / '--server': port 99999 is out of range (1-65535) "
        b"in server address '127.0.0.1:99999'\n"
    )


def test_global_options_also_after_the_subcommand(gearpy_server):
    p = run("submit", "-s", gearpy_server.address, "--json", "-b", "later", "x")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["handle"].startswith("H:")
    p = run("status", "--json", "-s", gearpy_server.address)
    assert p.returncode == 0, p.stderr
    assert [r["function"] for r in json.loads(p.stdout)] == ["later"]


def test_version_on_all_three_commands():
    for prog, module in (
        ("gearpy-client", "client"),
        ("gearpy-server", "server"),
        ("gearpy-worker", "worker"),
    ):
        out = subprocess.run([sys.executable, "-m", f"gearpy.{module}", "--version"], capture_output=True)
        # The server also names its hot path (issue #12): compiled or pure, as this install runs it.
        detail = f" (hot path: {_accel.mode()})" if prog == "gearpy-server" else ""
        assert (out.returncode, out.stdout) == (0, f"{prog} 0.1.0{detail}\n".encode())


@pytest.mark.slow
def test_submit_timeout_says_queued_prints_handle_and_no_worker(gearpy_server):
    p = run("-s", gearpy_server.address, "submit", "--timeout", "2", "noworker", "hello")
    assert p.returncode == exitcodes.FAILURE
    handle = p.stdout.decode().strip()
    assert re.fullmatch(r"H:[^:]+:\d+", handle), p.stdout
    assert p.stderr.decode() == (
        f"gearpy-client: job {handle} still queued on {gearpy_server.address} after 2 s "
        "(no worker can do 'noworker')\n"
    )


@pytest.mark.slow
def test_submit_timeout_says_running_and_how_many_workers(gearpy_server, raw_worker):
    raw_worker(gearpy_server, "slow", lambda w, handle, payload: None)  # grabs the job, never answers
    p = run("-s", gearpy_server.address, "--json", "submit", "--timeout", "2", "slow", "x")
    assert p.returncode == exitcodes.FAILURE
    shown = json.loads(p.stdout)
    assert (shown["state"], shown["workers"]) == ("running", 1)
    assert p.stderr.decode() == (
        f"gearpy-client: job {shown['handle']} still running on {gearpy_server.address} after 2 s "
        "(1 worker(s) can do 'slow')\n"
    )


def test_job_status_of_an_unknown_handle_says_so_and_exits_1(gearpy_server):
    p = run("-s", gearpy_server.address, "job-status", "garbage")
    assert (p.returncode, p.stdout) == (exitcodes.FAILURE, b"")
    assert (
        p.stderr
        == (
            f"gearpy-client: job garbage is unknown to {gearpy_server.address} "
            "(finished, cancelled or never created)\n"
        ).encode()
    )
    handle = run("-s", gearpy_server.address, "submit", "-b", "queued_fn", "x").stdout.decode().strip()
    p = run("-s", gearpy_server.address, "job-status", handle)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split("\n")[1].split() == [handle, "queued", "0/0"]


def test_json_codec_payload_that_is_not_json():
    p = run("-s", f"127.0.0.1:{free_port()}", "submit", "--codec", "json", "add", "not json")
    assert p.returncode == exitcodes.USAGE
    assert (
        p.stderr == b"gearpy-client: payload is not valid JSON: Expecting value: line 1 column 1 (char 0)\n"
    )


def test_streamed_work_data_is_one_chunk_per_line(gearpy_server, raw_worker):
    def script(w, handle, payload):
        w.send(T.WORK_DATA, handle, b"row 1")
        w.send(T.WORK_DATA, handle, b"row 2\n")  # already a line: no second newline
        w.send(T.WORK_COMPLETE, handle, b"total 2")

    raw_worker(gearpy_server, "rows", script)
    p = run("-s", gearpy_server.address, "submit", "rows", "x")
    assert (p.returncode, p.stdout) == (0, b"row 1\nrow 2\ntotal 2\n"), p.stderr


def test_ctrl_c_exits_130():
    # A server that accepts but never answers: the client waits for JOB_CREATED until interrupted.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        proc = subprocess.Popen(
            [*CLIENT, "-s", f"127.0.0.1:{s.getsockname()[1]}", "submit", "f", "x"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        conn, _ = s.accept()  # the client is connected and waiting
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        conn.close()
    assert proc.returncode == exitcodes.INTERRUPTED
    assert err.endswith(b"gearpy-client: interrupted\n") and b"Traceback" not in err


def test_top_quits_on_q_and_shows_the_hint(gearpy_server):
    proc = subprocess.Popen(
        [*CLIENT, "-s", gearpy_server.address, "top", "-n", "0.2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)
    assert proc.poll() is None  # refreshing until asked to stop
    assert proc.stdin is not None
    proc.stdin.write(b"q")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.rstrip().endswith(b"press q to quit")


def test_cancel_and_top_use_tls_and_cancel_tries_the_next_server(tls_server, tls_client_args):
    submitted = run("-s", tls_server.address, *tls_client_args, "submit", "-b", "tls_cancel", "x")
    assert submitted.returncode == 0, submitted.stderr
    handle = submitted.stdout.decode().strip()
    top = run("-s", tls_server.address, *tls_client_args, "top", "--once")
    assert top.returncode == 0, top.stderr
    assert any(
        line.split()[1:4] == ["tls_cancel", "0", "1"] for line in top.stdout.decode().splitlines()[3:4]
    )
    down = f"127.0.0.1:{free_port()}"
    p = run("-s", down, "-s", tls_server.address, *tls_client_args, "cancel", handle)
    assert (p.returncode, p.stdout) == (0, f"cancelled {handle}\n".encode()), p.stderr
    p = run("-s", down, "-s", tls_server.address, *tls_client_args, "cancel", "H:nosuch:99")
    assert p.returncode == exitcodes.FAILURE
    assert (
        p.stderr
        == (
            f"gearpy-client: cannot cancel H:nosuch:99: cannot connect to {down}: Connection refused; "
            f"{tls_server.address}: UNKNOWN_JOB\n"
        ).encode()
    )
    p = run("-s", down, "cancel", handle)
    assert p.returncode == exitcodes.UNREACHABLE
    assert (
        p.stderr
        == f"gearpy-client: cannot cancel {handle}: cannot connect to {down}: Connection refused\n".encode()
    )


@pytest.mark.parametrize("command", [[], ["submit"], ["status"], ["top"]])
def test_help_shows_defaults_exit_codes_and_environment(command):
    p = run(*command, "--help")
    assert p.returncode == 0
    text = p.stdout.decode()
    assert "``" not in text and "\\b" not in text
    assert "Exit codes:\n    0    success" in text and "3    cannot connect to a server" in text
    assert "130  interrupted by Ctrl-C (SIGINT)" in text
    assert "Environment: every setting is also a variable (GEARPY_" in text
    assert "GEARPY_CODEC," in " ".join(text.split())
    options = text.split("Options:")[1].split("\n\n")[0]
    entries = re.split(r"\n  (?=-)", options.strip())
    for entry in entries:
        if entry.startswith(("-h, --help", "-V, --version")):
            continue
        assert "[default: " in " ".join(entry.split()), entry
