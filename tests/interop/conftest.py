"""Helpers for driving the real third-party tools against live servers."""

from __future__ import annotations

import socket
import time

import pytest

from gearpy.protocol import Decoder, PacketType, encode, encode_request
from gearpy.testing import ServerProcess

T = PacketType
TIMEOUT = 10.0


class Raw:
    """A raw protocol connection used to set up and inspect server state."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, kind: int, *args: bytes) -> None:
        self.sock.sendall(encode_request(kind, *args))

    def call(self, kind: int, *args: bytes) -> list:
        """Send a packet, return every packet received before an ECHO barrier."""
        self.send(kind, *args)
        self.send(T.ECHO_REQ, b"barrier")
        end = encode(T.ECHO_RES, b"barrier")
        while end not in self.buf:
            data = self.sock.recv(65536)
            assert data, "server closed"
            self.buf += data
        head, _, self.buf = self.buf.partition(end)
        d = Decoder()
        d.feed(head)
        return list(d.events())

    def admin(self, line: bytes) -> bytes:
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
            data = self.sock.recv(65536)
            assert data, "server closed"
            self.buf += data

    def wait_admin(self, line: bytes, needle: bytes, tries: int = 200) -> bytes:
        for _ in range(tries):
            reply = self.admin(line)
            if needle in reply:
                return reply
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never appeared in the reply to {line!r}: {reply!r}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw():
    opened: list[Raw] = []

    def factory(server: ServerProcess) -> Raw:
        r = Raw(server)
        opened.append(r)
        return r

    yield factory
    for r in opened:
        r.close()

