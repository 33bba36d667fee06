"""ServerCore.receive: the connection layer's one call per read (decode, apply, say why to close)."""

from __future__ import annotations

import struct

from gearpy.protocol import REQ, Decoder, PacketType, encode_request
from gearpy.server.core import ServerCore
from gearpy.server.state import Conn

from support.schedulers import FakeScheduler

T = PacketType


def _core() -> tuple[ServerCore, Conn, Decoder]:
    core = ServerCore(scheduler=FakeScheduler(), handle_prefix=b"H:test")
    conn = Conn(1)
    core.connect(conn)
    return core, conn, Decoder(max_packet_size=1024)


def _replies(conn: Conn) -> list:
    d = Decoder()
    d.feed(conn.take_output())
    return list(d.events())


def test_every_complete_event_of_a_read_is_applied_and_a_partial_one_waits():
    core, conn, dec = _core()
    submit = encode_request(T.SUBMIT_JOB_BG, b"fn", b"", b"x")
    data = submit * 3 + b"status\n" + submit[:5]
    assert core.receive(conn, dec, data) == (4, None)
    replies = _replies(conn)
    assert [p.kind for p in replies[:3]] == [T.JOB_CREATED] * 3
    assert len(core.jobs) == 3
    assert core.receive(conn, dec, submit[5:]) == (1, None)
    assert len(core.jobs) == 4 and not conn.closing


def test_a_packet_above_the_limit_is_answered_then_the_connection_closes():
    core, conn, dec = _core()
    n, reason = core.receive(conn, dec, REQ + struct.pack(">II", T.SUBMIT_JOB_BG, 4096) + b"fn\x00\x00")
    assert n == 0 and reason == "closed: packet body of 4096 bytes exceeds limit of 1024"
    assert conn.closing
    [error] = _replies(conn)
    assert error.kind == T.ERROR and error.args[0] == b"ARGUMENT_TOO_LARGE"


def test_bad_magic_closes_without_a_reply_and_stops_at_it():
    core, conn, dec = _core()
    ok = encode_request(T.SUBMIT_JOB_BG, b"fn", b"", b"x")
    n, reason = core.receive(conn, dec, ok + b"\x00REX" + struct.pack(">II", 7, 0) + ok)
    assert n == 1 and reason is not None and reason.startswith("protocol error: bad magic")
    assert conn.closing and len(core.jobs) == 1


def test_the_kept_admin_connection_answers_admin_lines_and_closes_on_a_binary_packet():
    core, conn, dec = _core()
    conn.admin_only = True
    assert core.receive(conn, dec, b"version\n") == (1, None)
    assert conn.take_output().startswith(b"OK ")
    n, reason = core.receive(conn, dec, encode_request(T.CAN_DO, b"fn"))
    assert reason == "closed: binary packet on the connection kept for a loopback admin"
    assert conn.closing and b"fn" not in core.functions


def test_an_idle_connection_keeps_no_reference_to_its_last_payload():
    core, conn, dec = _core()
    core.receive(conn, dec, encode_request(T.SUBMIT_JOB_BG, b"fn", b"", b"p" * 500))
    assert dec.args == ()
