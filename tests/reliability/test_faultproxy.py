"""The fault proxy itself does what the reliability tests rely on (tests/support/faultproxy.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from support.faultproxy import FaultProxy


@pytest.fixture
def echo() -> Iterator[tuple[int, list[socket.socket]]]:
    """An echo server on loopback: (port, its accepted sockets)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

            def pump(conn: socket.socket = conn) -> None:
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                except OSError:
                    pass

            threading.Thread(target=pump, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], accepted
    listener.close()
    for conn in accepted:
        conn.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            break
        buf += data
    return buf


def test_delay_and_slow_link(echo) -> None:
    port, _ = echo
    with FaultProxy(port).start() as proxy:
        c = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        c.sendall(b"x")
        assert recv_exactly(c, 1) == b"x"
        proxy.delay(0.3)
        started = time.monotonic()
        c.sendall(b"y")
        assert recv_exactly(c, 1) == b"y"
        assert time.monotonic() - started >= 0.6  # 0.3 s each way
        proxy.heal()
        proxy.slow(20_000, direction="up")
        started = time.monotonic()
        c.sendall(b"z" * 10_000)
        assert recv_exactly(c, 10_000) == b"z" * 10_000
        assert time.monotonic() - started >= 0.4  # 10 kB at 20 kB/s


@pytest.mark.slow
def test_blackhole_is_invisible_to_tcp_and_heals(echo) -> None:
    """No ACK during a blackhole: the peer's keepalive gives up, as across a dead network."""
    port, accepted = echo
    with FaultProxy(port).start() as proxy:
        kept = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        probed = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        proxy.wait_links(2)
        probed.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL):
            probed.setsockopt(socket.IPPROTO_TCP, opt, 1)
        probed.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
        proxy.blackhole()
        kept.sendall(b"held")
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # ETIMEDOUT: the probes went unanswered
            probed.settimeout(15)
            probed.recv(10)
        assert 2 <= time.monotonic() - started < 10
        with pytest.raises(OSError):  # new connections get no SYN-ACK
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
        proxy.heal()
        assert recv_exactly(kept, 4) == b"held"  # retransmitted once the link is back


@pytest.mark.slow
def test_reset_mid_packet_and_half_open(echo) -> None:
    port, accepted = echo
    with FaultProxy(port).start() as proxy:
        c = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        [link] = proxy.wait_links(1)
        link.reset(after=3)
        c.sendall(b"abcdef")
        with pytest.raises(ConnectionResetError):
            while c.recv(10):
                pass
        time.sleep(0.2)
        assert link.forwarded["up"] == 3  # exactly 3 bytes went through before the RST
        d = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        [link] = proxy.wait_links(1)
        link.half_open(keep="client")
        d.sendall(b"anyone?")
        with pytest.raises(TimeoutError):  # the client's end stays open and silent
            d.recv(10)
