"""Abuse a live server: every bad input gets gearmand's answer or a clean close, nothing else.

A bystander connection opened before the abuse must keep working throughout (ECHO round trip
after each case), and gearpy's log must never show a traceback.
"""

from __future__ import annotations

import random
import socket

import pytest

from gearpy.protocol import Decoder, Packet, PacketType, encode, encode_request

from support.raw import connect, echo_ok, header, read_packets, read_until_close

T = PacketType


# Cases where gearmand and gearpy both close without a word (reference §4.21).
CLOSE_BOTH = {
    "bad-magic": header(T.ECHO_REQ, 0, b"\x00REX"),
    "garbage-binary": b"\x00\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5",
    "type-0": header(0, 0),
    "type-43": header(43, 0),
    "type-1000": header(1000, 0),
    "six-token-admin-line": b"status a b c d e\n",
    "over-long-admin-line": b"s" * 9000,
}

# Cases where gearpy closes and gearmand does something worse (waits for 4 GiB; reads past the
# declared body looking for the missing NUL).
CLOSE_GEARPY = {
    "missing-nul": header(T.SUBMIT_JOB, 4) + b"func",
    "missing-nul-then-more": header(T.WORK_STATUS, 5) + b"H:x:1" + encode_request(T.ECHO_REQ, b"\x00x\x00"),
    "res-magic-garbage-body": header(T.STATUS_RES, 2, b"\x00RES") + b"ab",
}


@pytest.fixture
def bystander(gearpy_server):
    s = connect(gearpy_server)
    echo_ok(s)
    yield s
    echo_ok(s)
    s.close()
    assert "Traceback" not in gearpy_server.log(), gearpy_server.log()


@pytest.mark.parametrize("name", list(CLOSE_BOTH))
def test_silent_close_on_either_server(gearman_server, name):
    keep = connect(gearman_server)
    echo_ok(keep)
    s = connect(gearman_server)
    s.sendall(CLOSE_BOTH[name])
    assert read_until_close(s) == b""
    s.close()
    echo_ok(keep)
    keep.close()


@pytest.mark.parametrize("name", list(CLOSE_BOTH) + list(CLOSE_GEARPY))
def test_gearpy_closes_cleanly(gearpy_server, bystander, name):
    data = CLOSE_BOTH.get(name) or CLOSE_GEARPY[name]
    s = connect(gearpy_server)
    s.sendall(data)
    assert read_until_close(s) == b""
    s.close()
    echo_ok(bystander)
    # and the server still takes new connections
    fresh = connect(gearpy_server)
    echo_ok(fresh)
    fresh.close()


def test_oversized_packet_gets_an_error_then_a_close(gearpy_server, bystander):
    """gearmand waits for the 4 GiB; gearpy refuses it at the header, says why, and closes."""
    s = connect(gearpy_server)
    s.sendall(header(T.ECHO_REQ, 0xFFFFFFFF))
    data = read_until_close(s)
    s.close()
    dec = Decoder()
    dec.feed(data)
    [err] = list(dec.events())
    assert err.kind == T.ERROR and err.args[0] == b"ARGUMENT_TOO_LARGE"
    assert b"exceeds" in err.args[1]
    assert "exceeds" in gearpy_server.log()


@pytest.mark.slow
def test_answers_that_keep_the_connection(gearpy_server, bystander):
    s = connect(gearpy_server)
    s.sendall(encode(T.ECHO_REQ, b"x"))  # \0RES magic
    s.sendall(header(5, 0))
    s.sendall(encode_request(T.SUBMIT_JOB_SCHED, b"f", b"", b"1", b"2", b"3", b"4", b"5", b"x"))
    s.sendall(b"status\ta\n")  # tab is not a separator: one unknown word
    events = read_packets(s, 4)
    assert events[:3] == [
        Packet(T.ERROR, (b"INVALID_MAGIC", b"Request magic expected"), False),
        Packet(T.ERROR, (b"INVALID_COMMAND", b"Command not expected"), False),
        Packet(T.ERROR, (b"INVALID_COMMAND", b"Command not expected"), False),
    ]
    # the admin reply, read back through the same decoder as a text line
    assert (events[3].line, events[3].crlf) == (b"ERR UNKNOWN_COMMAND Unknown+server+commandstatus\ta", True)
    echo_ok(s)
    echo_ok(bystander)
    s.close()


@pytest.mark.slow
def test_truncated_packet_then_disconnect(gearpy_server, bystander):
    for cut in (1, 5, 11, 12, 20):
        s = connect(gearpy_server)
        s.sendall(encode_request(T.SUBMIT_JOB, b"f", b"u%d" % cut, b"payload-bytes")[:cut])
        s.close()
        echo_ok(bystander)
    # nothing half-received was turned into a job
    bystander.sendall(b"status\n")
    assert bystander.recv(1024) == b".\n"


@pytest.mark.slow
def test_disconnect_mid_job_and_mid_admin(gearpy_server, bystander):
    w = connect(gearpy_server)
    w.sendall(encode_request(T.CAN_DO, b"f"))
    c = connect(gearpy_server)
    c.sendall(encode_request(T.SUBMIT_JOB, b"f", b"", b"x"))
    assert read_packets(c, 1)[0].kind == T.JOB_CREATED
    w.sendall(encode_request(T.GRAB_JOB))
    assert read_packets(w, 1)[0].kind == T.JOB_ASSIGN
    c.close()  # client leaves while the job runs
    w.sendall(encode_request(T.WORK_DATA, b"H", b"x")[:15])  # and the worker dies mid-packet
    w.close()
    a = connect(gearpy_server)
    a.sendall(b"stat")
    a.close()
    echo_ok(bystander)


@pytest.mark.slow
def test_random_garbage_connections(gearpy_server, bystander):
    rng = random.Random(4730)
    for i in range(40):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        if i % 2:
            blob = b"\x00REQ" + blob  # get past the magic more often
        s = connect(gearpy_server)
        s.sendall(blob)
        s.shutdown(socket.SHUT_WR)
        # whatever it answers, the server must end the exchange (EOF from us or a close)
        assert read_until_close(s) is not None
        s.close()
    echo_ok(bystander)


@pytest.mark.slow
def test_bystander_unaffected_by_large_valid_packet(gearpy_server, bystander):
    s = connect(gearpy_server)
    body = b"z" * (2 * 1024 * 1024)
    s.sendall(encode_request(T.ECHO_REQ, body))
    got = b""
    want = encode(T.ECHO_RES, body)
    while len(got) < len(want):
        data = s.recv(1 << 20)
        assert data
        got += data
    assert got == want
    echo_ok(bystander)
    s.close()
