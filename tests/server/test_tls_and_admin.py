"""TLS on the Gearman port, admin-command ACLs, and the metrics endpoint, on live servers."""

from __future__ import annotations

import socket
import ssl
import urllib.request

import pytest

from gearpy.protocol import PacketType, encode_request
from gearpy.testing import ServerProcess, free_port, gearpy_server_argv

from support.pki import client_context
from support.raw import admin_line, echo, exchange, read_packets

T = PacketType


@pytest.fixture
def tls_server(tls_args):
    """TLS server whose mutating admin commands are limited to the ops certificate."""
    server = ServerProcess(
        gearpy_server_argv(
            *tls_args("--admin-allow", "cert:CN=ops", "--verbose", "INFO", "--handshake-timeout", "2")
        )
    ).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_tls_client_with_certificate_is_served(tls_server, pki):
    ctx = client_context(pki.ca, pki.client_cert, pki.client_key)
    with socket.create_connection((tls_server.host, tls_server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert echo(tls, b"x" * 100_000) == b"x" * 100_000


@pytest.mark.slow
def test_plaintext_and_wrong_certificates_are_refused_while_others_are_served(tls_server, pki):
    good_ctx = client_context(pki.ca, pki.client_cert, pki.client_key)
    addr = (tls_server.host, tls_server.port)
    with (
        socket.create_connection(addr, timeout=5) as raw,
        good_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as good,
    ):
        assert echo(good) == b"ping"
        # Plaintext Gearman on the TLS port: no answer, the connection is closed.
        with socket.create_connection(addr, timeout=5) as plain:
            plain.sendall(encode_request(T.ECHO_REQ, b"hello"))
            try:
                data = plain.recv(4096)
            except ConnectionResetError:
                data = b""
            assert T.ECHO_RES.to_bytes(4, "big") not in data
        # A client certificate from another CA: handshake refused.
        rogue = client_context(pki.ca, pki.rogue_cert, pki.rogue_key)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with socket.create_connection(addr, timeout=5) as raw2:
                with rogue.wrap_socket(raw2, server_hostname="127.0.0.1") as tls:
                    echo(tls)
        # No client certificate at all: refused too.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with socket.create_connection(addr, timeout=5) as raw3:
                with client_context(pki.ca).wrap_socket(raw3, server_hostname="127.0.0.1") as tls:
                    echo(tls)
        # A client that verifies the server with the wrong CA refuses the server.
        with pytest.raises(ssl.SSLCertVerificationError):
            with socket.create_connection(addr, timeout=5) as raw4:
                client_context(pki.rogue_ca).wrap_socket(raw4, server_hostname="127.0.0.1")
        # The good connection was never disturbed.
        assert echo(good, b"still here") == b"still here"
    assert "Traceback" not in tls_server.log()


def test_server_context_requires_tls_1_2_and_client_certificates(pki):
    from gearpy.server.config import ServerConfig
    from gearpy.server.tls import make_server_ssl_context

    cfg = ServerConfig(ssl=True, ssl_certificate=str(pki.server_cert), ssl_key=str(pki.server_key))
    ctx = make_server_ssl_context(cfg)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE  # no CA given: like gearmand, clients are not asked
    cfg.ssl_ca_file = str(pki.ca)
    assert make_server_ssl_context(cfg).verify_mode == ssl.CERT_REQUIRED


@pytest.mark.slow
def test_ssl_without_certificate_is_a_clear_startup_error():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "gearpy.server", "--ssl", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode != 0
    assert "--ssl needs --ssl-certificate and --ssl-key" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_mutating_admin_commands_follow_the_certificate_acl(tls_server, pki):
    ops = client_context(pki.ca, pki.client_cert, pki.client_key)
    addr = (tls_server.host, tls_server.port)
    with (
        socket.create_connection(addr, timeout=5) as raw,
        ops.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        assert admin_line(s, b"create function reports\r\n") == b"OK\r\n"
        assert admin_line(s, b"status\r\n") == b"reports\t0\t0\t0\n.\n"
    assert "admin create" in tls_server.log()


def test_admin_acl_by_address_refuses_others():
    # Only 10.0.0.0/8 may mutate: our loopback connection may read but not change anything.
    server = ServerProcess(gearpy_server_argv("--admin-allow", "10.0.0.0/8")).start()
    try:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            assert admin_line(s, b"create function f\n").startswith(b"ERR PERMISSION_DENIED")
            assert admin_line(s, b"status\n") == b".\n"
            assert admin_line(s, b"version\n").startswith(b"OK ")
    finally:
        server.stop()


def test_metrics_endpoint_reports_gearman_gauges_and_health():
    mport = free_port()
    server = ServerProcess(gearpy_server_argv("--metrics", f"127.0.0.1:{mport}")).start()
    try:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(encode_request(T.CAN_DO, b"resize"))
            s.sendall(encode_request(T.SUBMIT_JOB_HIGH_BG, b"resize", b"", b"img"))
            read_packets(s, 1)  # JOB_CREATED: the job is queued
            body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        assert "gearman_up 1.0" in body
        assert 'gearman_jobs{function="resize"} 1.0' in body
        assert 'gearman_jobs_waiting{function="resize",priority="high"} 1.0' in body
        assert 'gearman_workers{function="resize"} 1.0' in body
        assert 'gearpy_jobs_submitted_total{background="true",priority="high"} 1.0' in body
        for name in (
            "gearpy_received_bytes_total",
            "gearpy_packets_received_total",
            "gearpy_job_queue_wait_seconds_bucket",
            "gearpy_store_commit_seconds_bucket",
        ):
            assert name in body
        health = urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=5)
        assert health.status == 200 and health.read() == b"ok\n"
    finally:
        server.stop()
    # Metrics are opt-in: without --metrics nothing listens there.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", mport), timeout=1)


def test_function_acl_by_certificate_subject_matches_whole_names(pki, tls_args, tmp_path):
    acl = tmp_path / "acl.yml"
    acl.write_text('"CN=ops": {register: "resize", invoke: "resize"}\n"*": {}\n')
    server = ServerProcess(gearpy_server_argv(*tls_args("--acl-file", str(acl)))).start()
    try:
        ctx = client_context(pki.ca, pki.client_cert, pki.client_key)
        with socket.create_connection((server.host, server.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                replies = exchange(
                    s,
                    encode_request(T.CAN_DO, b"resize"),
                    encode_request(T.CAN_DO, b"resize_all"),  # a prefix is not the whole name
                    encode_request(T.SUBMIT_JOB_BG, b"resize", b"", b"x"),
                    encode_request(T.SUBMIT_JOB_BG, b"resize_all", b"", b"x"),
                    replies=3,
                )
        kinds = [(p.kind, p.args[0]) for p in replies]
        assert kinds[0] == (T.ERROR, b"PERMISSION_DENIED")  # CAN_DO resize_all
        assert kinds[1][0] == T.JOB_CREATED  # submit resize
        assert kinds[2] == (T.ERROR, b"PERMISSION_DENIED")  # submit resize_all
    finally:
        server.stop()


def test_function_acl_default_entry_applies_to_plaintext_peers(tmp_path):
    acl = tmp_path / "acl.yml"
    acl.write_text('"*": {invoke: "public_.*"}\n')
    server = ServerProcess(gearpy_server_argv("--acl-file", str(acl))).start()
    try:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            replies = exchange(
                s,
                encode_request(T.SUBMIT_JOB_BG, b"public_report", b"", b"x"),
                encode_request(T.SUBMIT_JOB_BG, b"private", b"", b"x"),
                encode_request(T.CAN_DO, b"public_report"),
                replies=3,
            )
        assert [p.kind for p in replies] == [T.JOB_CREATED, T.ERROR, T.ERROR]
    finally:
        server.stop()
