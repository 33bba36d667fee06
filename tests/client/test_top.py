"""``gearpy-client top`` against live servers (it only uses the admin protocol)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from gearpy.client.top import FunctionRow, Snapshot, render
from gearpy.protocol import Decoder, PacketType, encode_request

T = PacketType


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gearpy.client", *args], capture_output=True, text=True, timeout=30
    )


def _setup(server) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=5)
    s.sendall(encode_request(T.SET_CLIENT_ID, b"resizer-1") + encode_request(T.CAN_DO, b"resize"))
    s.sendall(encode_request(T.SUBMIT_JOB_HIGH_BG, b"resize", b"", b"a"))
    s.sendall(encode_request(T.SUBMIT_JOB_LOW_BG, b"resize", b"", b"b"))
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"resize", b"", b"c"))
    dec = Decoder()
    seen = 0
    while seen < 3:
        dec.feed(s.recv(4096))
        seen += sum(1 for e in dec.events() if e.kind == T.JOB_CREATED)
    return s


def test_top_once_shows_queues_by_priority_and_workers(gearman_server):
    with _setup(gearman_server):
        out = _run("-s", gearman_server.address, "top", "--once")
        assert out.returncode == 0, out.stderr
        line = next(li for li in out.stdout.splitlines() if " resize " in li)
        assert line.split()[1:7] == ["resize", "1", "1", "1", "0", "1"]
        assert "resizer-1" in out.stdout
        js = _run("-s", gearman_server.address, "--json", "top", "--once")
        data = json.loads(js.stdout)
        row = next(r for r in data["functions"] if r["function"] == "resize")
        assert (row["high"], row["normal"], row["low"], row["workers"]) == (1, 1, 1, 1)


def test_top_unreachable_server_is_one_line_exit_3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = _run("-s", f"127.0.0.1:{port}", "top", "--once")
    assert out.returncode == 3
    assert out.stderr.strip().count("\n") == 0 and "cannot connect" in out.stderr
    assert out.stdout == ""


def test_render_reports_queue_rate_between_snapshots():
    before = Snapshot(10.0, [FunctionRow("s", "f", 0, 10, 0, 0, 1)])
    after = Snapshot(12.0, [FunctionRow("s", "f", 0, 4, 0, 1, 1)])
    text = render(after, before)
    assert "-3.0" in text  # 10 queued -> 4 queued in 2 s


def test_status_shows_live_servers_when_one_is_down(gearpy_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    with _setup(gearpy_server):
        out = _run("-s", gearpy_server.address, "-s", dead, "status")
    assert out.returncode == 3  # some server could not be reached...
    assert f"cannot connect to {dead}" in out.stderr
    assert " resize " in out.stdout  # ...but the live one is still shown
