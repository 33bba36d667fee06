"""The worker's exact packet sequence, checked against a scripted fake server on a raw socket.

connect → SET_CLIENT_ID, CAN_DO / CAN_DO_TIMEOUT (ms) → GRAB_JOB_UNIQ → NO_JOB → PRE_SLEEP → NOOP →
GRAB_JOB_UNIQ → JOB_ASSIGN_UNIQ → WORK_* ; after the server drops the connection the worker comes
back and registers again.
"""

from __future__ import annotations

import socket

from gearpy.protocol import PacketType
from gearpy.worker.tasks import SERVER_TIMEOUT_GRACE_MS

from support.raw import PacketConn

T = PacketType
WAIT = 20.0


class FakeServer:
    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(WAIT)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"

    def accept(self) -> Conn:
        sock, _ = self.listener.accept()
        sock.settimeout(WAIT)
        return Conn(sock)


class Conn(PacketConn):
    """The fake server's side of one worker connection: packets one at a time, responses out."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, request=False)

    def registration(self) -> dict[bytes, bytes | None]:
        hello = self.expect(T.SET_CLIENT_ID)
        assert hello.args == (b"wire-test",)
        abilities: dict[bytes, bytes | None] = {}
        while True:
            pkt = self.read()
            if pkt.kind == T.CAN_DO:
                abilities[pkt.args[0]] = None
            elif pkt.kind == T.CAN_DO_TIMEOUT:
                abilities[pkt.args[0]] = pkt.args[1]
            else:
                assert pkt.kind == T.GRAB_JOB_UNIQ, pkt
                return abilities


def test_packet_sequence_and_reregistration(start_worker):
    fake = FakeServer()
    start_worker(
        "-s",
        fake.address,
        "--key",
        "k",
        "--client-id",
        "wire-test",
        "-f",
        "upper",
        "-f",
        "too_slow",
        "wtasks",
    )
    conn = fake.accept()
    assert conn.registration() == {
        b"k-upper": None,
        b"k-too_slow": str(500 + SERVER_TIMEOUT_GRACE_MS).encode(),
    }
    conn.send(T.NO_JOB)
    conn.expect(T.PRE_SLEEP)
    conn.send(T.NOOP)
    conn.expect(T.GRAB_JOB_UNIQ)
    conn.send(T.JOB_ASSIGN_UNIQ, b"H:fake:1", b"k-upper", b"uniq", b"abc")
    assert conn.expect(T.WORK_STATUS).args == (b"H:fake:1", b"1", b"2")
    assert conn.expect(T.WORK_COMPLETE).args == (b"H:fake:1", b"ABC")
    # concurrency 1: the next grab comes only after the job finished
    conn.expect(T.GRAB_JOB_UNIQ)
    conn.send(T.NO_JOB)
    conn.expect(T.PRE_SLEEP)

    # The server goes away; the worker reconnects and registers everything again.
    conn.sock.close()
    again = fake.accept()
    assert set(again.registration()) == {b"k-upper", b"k-too_slow"}
    again.send(T.NO_JOB)
    again.expect(T.PRE_SLEEP)
