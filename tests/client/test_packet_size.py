"""Oversized payloads: refused before sending, or reported as the server's ERROR (issue 17 item 2).

A payload above the client's ``max_packet_size`` (default: the server's 64 MiB) is refused before a
byte is sent, with one clear line and the usage exit code. When the server's limit is lower than
ours, its ``ERROR ARGUMENT_TOO_LARGE`` is read before the connection is reported, instead of the
"connection reset" the client saw while still writing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gearpy.client import Admin, Client
from gearpy.client.config import ClientConfig
from gearpy.errors import PacketTooBig, RefusedByServer, ServerError
from gearpy.protocol import DEFAULT_MAX_PACKET_SIZE
from gearpy.testing import ServerProcess, gearpy_server_argv

#: Well above the socket buffers, so the server resets the connection while we are still writing.
LARGE = 30 * 1024 * 1024


def client_cli(server: ServerProcess, *args: str, stdin: bytes, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "gearpy.client", "-s", server.address, *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def functions_on(server: ServerProcess) -> set[str]:
    with Admin(server.address, timeout=10) as admin:
        return {line.function for line in admin.status()}


@pytest.fixture
def small_limit_server(tmp_path):
    server = ServerProcess(gearpy_server_argv("--max-packet-size", "1048576"), log_path=tmp_path / "s.log")
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(180)
def test_cli_refuses_a_70mb_payload_before_sending(gearpy_server):
    payload = b"x" * 70_000_000
    assert len(payload) > DEFAULT_MAX_PACKET_SIZE
    out = client_cli(gearpy_server, "submit", "--background", "bigfn", "-", stdin=payload)
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "max_packet_size 67108864" in err and "SUBMIT_JOB_BG" in err
    assert "bigfn" not in functions_on(gearpy_server)  # nothing reached the server


@pytest.mark.timeout(180)
def test_cli_reports_the_servers_argument_too_large(small_limit_server):
    out = client_cli(small_limit_server, "submit", "--background", "bigfn", "-", stdin=b"y" * LARGE)
    err = out.stderr.decode()
    assert "ARGUMENT_TOO_LARGE" in err, err
    assert "reset" not in err.lower()
    assert out.returncode == 1, err  # the server refused the request (documented exit 1)
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.timeout(180)
def test_client_limit_from_the_environment(gearpy_server):
    out = client_cli(
        gearpy_server,
        "submit",
        "--background",
        "envfn",
        "-",
        stdin=b"z" * 2000,
        env={"GEARPY_MAX_PACKET_SIZE": "1000"},
    )
    assert out.returncode == 2, out.stderr
    assert b"max_packet_size 1000" in out.stderr


def test_library_refuses_before_sending(gearpy_server):
    config = ClientConfig(servers=[gearpy_server.address], max_packet_size=1024)
    with Client(config=config) as client:
        with pytest.raises(PacketTooBig, match="SUBMIT_JOB body of 1031 bytes exceeds max_packet_size 1024"):
            client.submit("libfn", b"p" * 1024, timeout=10)  # "libfn" NUL "" NUL payload
        with pytest.raises(PacketTooBig):  # a batch is refused whole: nothing of it is sent
            client.submit_many([("libfn", b"ok"), ("libfn", b"p" * 2000)], background=True)
        assert client.submit("libfn", b"p" * 1000, background=True, timeout=10).handle
    with Admin(gearpy_server.address) as admin:
        assert {s.function: s.total for s in admin.status()}["libfn"] == 1


@pytest.mark.timeout(180)
def test_library_reads_the_servers_error(small_limit_server):
    with Client([small_limit_server.address]) as client:
        with pytest.raises(ServerError) as info:
            client.submit("libfn", b"q" * LARGE, background=True, timeout=60)
        assert isinstance(info.value, RefusedByServer)
        assert info.value.code == "ARGUMENT_TOO_LARGE"
        # The connection is gone, but the client reconnects for the next request.
        assert client.submit("libfn", b"small", background=True, timeout=10).handle
