"""Raw-socket protocol helpers: talk to a server in bytes, with :mod:`gearpy.protocol` only.

Tests that check what a server says on the wire (gearpy or gearmand) must not go through the
client library under test. Every read here is bounded by a timeout, so a silent server fails the
test instead of hanging it.

* one-shot functions on a socket: :func:`connect`, :func:`read_packets`, :func:`echo_ok`,
  :func:`read_until_close`, :func:`closed_by_server`, :func:`admin_line`, :func:`exchange`;
* one-shot functions on a server: :func:`admin`, :func:`status`;
* :class:`Session` - a connection that collects replies up to an ECHO barrier, for scripted scenarios;
* :class:`PacketConn` - one packet at a time, for scripted fake peers (a fake server, a raw worker).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Protocol

from gearpy.protocol import Decoder, Packet, PacketType, encode, encode_request

T = PacketType
TIMEOUT = 10.0
REQ = b"\x00REQ"


class Address(Protocol):
    """Anything with a host and a port (:class:`gearpy.testing.ServerProcess`)."""

    host: str
    port: int


def connect(server: Address, timeout: float = TIMEOUT) -> socket.socket:
    """A TCP connection to ``server`` with Nagle off (each packet leaves at once)."""
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def header(kind: int, size: int, magic: bytes = REQ) -> bytes:
    """A packet header announcing ``size`` body bytes (for hand-made, possibly broken packets)."""
    return magic + struct.pack(">II", kind, size)


def read_packets(sock: socket.socket, n: int, timeout: float = TIMEOUT) -> list[object]:
    """Read at least ``n`` events (packets or admin lines); fail after ``timeout`` or on a close."""
    dec = Decoder(max_packet_size=1 << 30)
    out: list[object] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"got {out!r}, wanted {n} events"
        sock.settimeout(left)
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError(f"connection closed after {out!r}, wanted {n} events")
        dec.feed(data)
        out.extend(dec.events())
    return out


def exchange(sock: socket.socket, *packets: bytes, replies: int) -> list[object]:
    """Send ``packets`` in one write and read ``replies`` events."""
    sock.sendall(b"".join(packets))
    return read_packets(sock, replies)


def echo(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    """ECHO round trip on an open (possibly TLS) socket; returns what came back."""
    sock.sendall(encode_request(T.ECHO_REQ, payload))
    [p] = read_packets(sock, 1)
    assert isinstance(p, Packet) and p.kind == T.ECHO_RES, p
    return p.args[0]


def echo_ok(server_or_sock: Address | socket.socket, payload: bytes = b"ping") -> None:
    """Assert the server still answers an ECHO (on this socket, or on a new connection)."""
    s = server_or_sock if isinstance(server_or_sock, socket.socket) else connect(server_or_sock)
    try:
        s.sendall(encode_request(T.ECHO_REQ, payload))
        [p] = read_packets(s, 1)
        assert p == Packet(T.ECHO_RES, (payload,), False), p
    finally:
        if s is not server_or_sock:
            s.close()


def served_connections(server: Address, n: int) -> list[socket.socket]:
    """``n`` connections, each answered before the next is opened.

    One at a time: a server counts a connection from its accept, so the start-up probe's must have
    been seen closed before the ``n``-th arrives (it has once a later connection was answered).
    """
    held = []
    for _ in range(n):
        held.append(connect(server))
        echo_ok(held[-1])
    return held


def read_until_close(s: socket.socket) -> bytes | None:
    """All bytes up to the server's close; None if it did not close within the socket's timeout."""
    got = b""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return got
            got += data
    except (ConnectionResetError, BrokenPipeError):
        return got
    except TimeoutError:
        return None


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``timeout``, reading all it sends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
    return False


def admin_line(sock: socket.socket, line: bytes) -> bytes:
    """Send an admin command on an open socket; return the reply up to its first newline (or close)."""
    sock.sendall(line)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def admin(server: Address, line: bytes, timeout: float = 5.0, multi: bool = True) -> bytes:
    """Send one admin command on a new connection; return its reply (up to ``.\\n`` when ``multi``)."""
    with connect(server, timeout) as s:
        s.sendall(line + b"\n")
        buf = b""
        deadline = time.monotonic() + timeout
        while not (buf.endswith(b"\n") and (not multi or buf == b".\n" or buf.endswith(b"\n.\n"))):
            assert time.monotonic() < deadline, buf
            data = s.recv(65536)
            assert data, buf
            buf += data
        return buf


def status(server: Address) -> dict[str, tuple[int, int, int]]:
    """``status`` as {function: (total, running, workers)}."""
    out = {}
    for line in admin(server, b"status").decode().splitlines():
        if line == ".":
            break
        name, total, running, workers = line.split("\t")
        out[name] = (int(total), int(running), int(workers))
    return out


class Session:
    """One raw TCP connection speaking bytes, with an ECHO barrier to collect replies.

    :meth:`call` / :meth:`sync` return every packet the server sent before it answered the barrier,
    so a scenario sees exactly the replies its requests caused, in order, on gearpy and on gearmand.
    """

    _marks = 0

    def __init__(self, server: Address, timeout: float = TIMEOUT) -> None:
        self.sock = connect(server, timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, kind: int, *args: bytes) -> None:
        self.sock.sendall(encode_request(kind, *args))

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed by server; unread {self.buf!r}")
        self.buf += data

    def sync(self) -> list[Packet]:
        """Everything the server sent before answering an ECHO barrier (the barrier excluded)."""
        Session._marks += 1
        mark = b"barrier-%d" % Session._marks
        self.send(T.ECHO_REQ, mark)
        end = encode(T.ECHO_RES, mark)
        while end not in self.buf:
            self._recv()
        head, _, self.buf = self.buf.partition(end)
        d = Decoder()
        d.feed(head)
        events: list[Packet] = list(d.events())  # type: ignore[arg-type]
        assert d.buffered == 0, head
        return events

    def call(self, kind: int, *args: bytes) -> list[Packet]:
        """Send one packet; return every packet received before the ECHO barrier."""
        self.send(kind, *args)
        return self.sync()

    def admin(self, line: bytes) -> bytes:
        """Send one admin line; return the whole reply (listings up to their ``.`` line)."""
        self.sock.sendall(line)
        while True:
            if self.buf.startswith((b"OK", b"ERR")) and b"\n" in self.buf:
                reply, _, self.buf = self.buf.partition(b"\n")
                return reply + b"\n"
            if self.buf.startswith(b".\n"):
                self.buf = self.buf[2:]
                return b".\n"
            if b"\n.\n" in self.buf:
                reply, _, self.buf = self.buf.partition(b"\n.\n")
                return reply + b"\n.\n"
            self._recv()

    def wait_admin(self, line: bytes, needle: bytes, tries: int = 200) -> bytes:
        """Repeat an admin command until its reply contains ``needle`` (bounded: ``tries`` x 50 ms)."""
        reply = b""
        for _ in range(tries):
            reply = self.admin(line)
            if needle in reply:
                return reply
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never appeared in the reply to {line!r}: {reply!r}")

    def closed_by_server(self) -> bool:
        """True when the server closes the connection (recv gives b"") within the timeout."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


class PacketConn:
    """A socket read one packet at a time, for scripted fake peers (fake servers, raw workers)."""

    def __init__(self, sock: socket.socket, *, request: bool = True) -> None:
        self.sock = sock
        self.decoder = Decoder(allow_admin=False)
        self._encode = encode_request if request else encode

    def read(self) -> Packet:
        """The next packet; fails (ConnectionError) if the peer closes first."""
        while True:
            ev = self.decoder.next_event()
            if ev is not None:
                return ev  # type: ignore[return-value]
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("peer closed the connection")
            self.decoder.feed(data)

    def expect(self, kind: PacketType) -> Packet:
        pkt = self.read()
        assert pkt.kind == kind, pkt
        return pkt

    def send(self, kind: PacketType, *args: bytes) -> None:
        """Send a request (``request=True``, as a client or worker) or a response (as a server)."""
        self.sock.sendall(self._encode(kind, *args))
