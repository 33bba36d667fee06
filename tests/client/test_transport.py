"""gearpy.transport over real sockets: the one socket-error mapping and the one keepalive set-up."""

from __future__ import annotations

import socket

import pytest

from gearpy.client import Admin
from gearpy.errors import GearpyConnectionError, GearpyTimeoutError
from gearpy.testing import free_port
from gearpy.transport import PacketConnection, connect_tcp, enable_keepalive, map_socket_errors


@pytest.fixture
def listener():
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)
    yield srv
    srv.close()


def test_refused_connect_maps_to_connection_error_keeping_the_cause():
    port = free_port()
    with pytest.raises(GearpyConnectionError) as info:
        connect_tcp(("127.0.0.1", port), timeout=5)
    assert str(info.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_read_timeout_keeps_the_packet_connection_open(listener):
    conn = PacketConnection(listener.getsockname(), connect_timeout=5)
    conn.connect()
    peer, _ = listener.accept()
    try:
        with pytest.raises(GearpyTimeoutError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.05 s"):
            conn.read_packet(timeout=0.05)
        assert conn.connected  # the framing is intact: the caller may wait again
        peer.close()
        with pytest.raises(GearpyConnectionError, match="closed by the server"):
            conn.read_packet(timeout=5)
        assert not conn.connected
    finally:
        conn.close()
        peer.close()


def test_admin_timeout_drops_the_connection(listener):
    host, port = listener.getsockname()
    admin = Admin(f"{host}:{port}", timeout=0.1)
    try:
        with pytest.raises(GearpyTimeoutError, match=f"no admin reply from {host}:{port} in time"):
            admin.version()  # the peer accepts (backlog) but never answers
        assert admin._sock is None  # a late reply must not answer the next command
    finally:
        admin.close()


def test_map_socket_errors_rules():
    closed: list[str] = []
    with pytest.raises(GearpyConnectionError, match="^link lost: Broken pipe$") as info:
        with map_socket_errors("link lost", close=lambda: closed.append("x")):
            raise BrokenPipeError(32, "Broken pipe")
    assert isinstance(info.value.__cause__, BrokenPipeError) and closed == ["x"]
    with pytest.raises(GearpyTimeoutError, match="^slow$"):
        with map_socket_errors(
            "link lost", timeout="slow", close=lambda: closed.append("t"), close_on_timeout=False
        ):
            raise TimeoutError("timed out")
    assert closed == ["x"]
    # Without a timeout text a timeout is a connection failure like any other.
    with pytest.raises(GearpyConnectionError, match="^cannot connect to h:1: timed out$"):
        with map_socket_errors("cannot connect to h:1"):
            raise TimeoutError("timed out")
    with pytest.raises(ValueError):  # not a socket error: untouched
        with map_socket_errors("link lost"):
            raise ValueError("bug")


def test_enable_keepalive_sets_the_options(listener):
    with socket.create_connection(listener.getsockname(), timeout=5) as sock:
        enable_keepalive(sock, idle=33, interval=7, count=4)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 33
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # the same budget for data waiting for an ACK
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == (33 + 7 * 4) * 1000
        enable_keepalive(sock, idle=0, interval=0, count=0)  # <= 0 keeps what is set
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 33


def test_packet_connection_keepalive_is_opt_in(listener):
    for keepalive in (False, True):
        conn = PacketConnection(listener.getsockname(), connect_timeout=5, keepalive=keepalive)
        conn.connect()
        try:
            assert conn.sock is not None
            assert bool(conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)) is keepalive
        finally:
            conn.close()
