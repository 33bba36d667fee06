"""Every configured limit has a clear answer, over real sockets to a real ``gearpy-server``.

Each test starts its own server with the limit set small, provokes it from one connection and
checks (a) what that connection gets (an ERROR, or a close), (b) that a bystander connection
keeps working, and (c) where memory is at stake, that the server's RSS stays bounded.
"""

from __future__ import annotations

import socket
import time

import pytest

from gearpy.protocol import Packet, encode_request

from support.raw import (
    T,
    admin,
    closed_by_server,
    connect,
    echo_ok,
    header,
    read_packets,
    served_connections,
    status,
)
from support.waits import wait_until
from support.workers import rss_kib, start_raw_worker, stop_procs, worker_log

MiB = 1024 * 1024


def test_packet_above_max_packet_size_is_refused_before_allocation(make_server):
    server = make_server("--max-packet-size", str(MiB))
    bystander = connect(server)
    echo_ok(bystander)
    # exactly at the limit is accepted
    body = b"a" * MiB
    bystander.sendall(encode_request(T.ECHO_REQ, body))
    assert read_packets(bystander, 1)[0].args == (body,)
    before = rss_kib(server.proc.pid)
    for size in (MiB + 1, 512 * MiB, 0xFFFFFFFF):
        s = connect(server)
        s.sendall(header(T.ECHO_REQ, size) + b"x" * 1000)
        assert closed_by_server(s), f"a {size}-byte header did not close the connection"
        s.close()
    grown = rss_kib(server.proc.pid) - before
    assert grown < 4 * 1024, f"RSS grew by {grown} KiB after oversized headers"
    echo_ok(bystander)
    bystander.close()


def test_unique_longer_than_64_bytes_is_refused(make_server):
    server = make_server()
    s = connect(server)
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"f", b"u" * 65, b"x"))
    [err] = read_packets(s, 1)
    assert err == Packet(T.ERROR, (b"ARGUMENT_TOO_LARGE", b"Unique value too large"), False)
    echo_ok(s)  # the connection stays usable
    assert status(server).get("f", (0, 0, 0))[0] == 0  # and nothing was created
    s.close()


def test_admin_line_longer_than_8_KiB_closes_the_connection(make_server):
    server = make_server()
    bystander = connect(server)
    ok = connect(server)
    ok.sendall(b"x" * 8000 + b"\n")  # long but within the limit: an answer, not a close
    reply = ok.recv(65536)
    assert reply.startswith(b"ERR UNKNOWN_COMMAND"), reply[:80]
    echo_ok(ok)
    bad = connect(server)
    bad.sendall(b"s" * (8 * 1024 + 1))
    assert closed_by_server(bad)
    echo_ok(bystander)
    for s in (ok, bad, bystander):
        s.close()


def _flood_without_reading(sock: socket.socket, make_packet, total: int) -> tuple[int, bool]:
    """Send packets without ever reading; return (bytes sent, whether the server cut us off)."""
    sock.settimeout(3.0)
    sent = 0
    while sent < total:
        data = make_packet(sent)
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return sent, True
        except TimeoutError:
            # The server stopped reading us (back-pressure): also bounded. Did it close us?
            return sent, closed_by_server(sock, 5.0)
        sent += len(data)
    return sent, closed_by_server(sock, 2.0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["echo", "foreground-jobs"])
def test_client_that_never_reads_is_disconnected(make_server, tmp_path, kind):
    # Replies a peer leaves unread are bounded by --max-output-buffer; the jobs it queues are
    # bounded by --max-queued-bytes (a separate limit, set low here so both are exercised).
    server = make_server("--max-output-buffer", str(MiB), "--max-queued-bytes", str(16 * MiB))
    procs = []
    if kind == "foreground-jobs":
        procs.append(start_raw_worker(server, tmp_path / "w.log", "f"))
        wait_until(lambda: status(server).get("f", (0, 0, 0))[2] == 1, "worker registered", timeout=10)
    bystander = connect(server)
    echo_ok(bystander)
    before = rss_kib(server.proc.pid)
    chunk = b"z" * (64 * 1024)
    if kind == "echo":

        def make(_n):
            return encode_request(T.ECHO_REQ, chunk)
    else:

        def make(n):
            return encode_request(T.SUBMIT_JOB, b"f", b"", chunk)

    s = connect(server)
    # 128 MiB of replies would be queued if nothing stopped it
    sent, cut = _flood_without_reading(s, make, 128 * MiB)
    grown = rss_kib(server.proc.pid) - before
    s.close()
    try:
        assert grown < 48 * 1024, f"server RSS grew by {grown // 1024} MiB for a client that never reads"
        if kind == "echo":
            # 128 MiB of echoes cannot all fit in socket buffers: the peer must be cut off.
            assert cut, f"server kept the connection after {sent // MiB} MiB of unread replies"
        # With jobs, --max-queued-bytes refuses most submits (small ERROR replies), so the unread
        # output may fit in the kernel's socket buffers: bounded memory is what must hold.
        echo_ok(bystander)
    finally:
        stop_procs(*procs)
        bystander.close()


def test_max_connections_refuses_the_next_one(make_server):
    server = make_server("--max-connections", "5")
    held = served_connections(server, 5)
    extra = connect(server)
    try:
        extra.sendall(encode_request(T.ECHO_REQ, b"x"))
    except OSError:
        pass
    assert closed_by_server(extra), "the 6th connection was served"
    extra.close()
    for s in held:
        echo_ok(s)  # the admitted ones are unaffected
    held.pop().close()

    def a_slot_is_free():
        try:
            echo_ok(server)
        except (AssertionError, OSError):
            return False
        return True

    wait_until(a_slot_is_free, "a connection slot to be reused", timeout=5)
    for s in held:
        s.close()


@pytest.mark.slow
@pytest.mark.parametrize("partial", [header(T.ECHO_REQ, 10)[:6], header(T.ECHO_REQ, 10) + b"abc", b"stat"])
def test_packet_timeout_closes_a_half_sent_packet(make_server, partial):
    server = make_server("--packet-timeout", "1")
    idle = connect(server)
    half = connect(server)
    half.sendall(partial)
    t0 = time.monotonic()
    assert closed_by_server(half, 10.0), "a half-sent packet was kept open"
    assert time.monotonic() - t0 >= 0.5  # closed by the timeout, not on arrival
    # a connection with nothing buffered is idle, not late: it stays open
    echo_ok(idle)
    half.close()
    idle.close()


@pytest.mark.slow
def test_packet_timeout_bounds_a_drip_fed_packet(make_server):
    server = make_server("--packet-timeout", "1")
    s = connect(server)
    data = header(T.ECHO_REQ, 1000) + b"y" * 1000
    closed = False
    for i in range(12):  # 6 s of drip: six times the timeout
        try:
            s.sendall(data[i : i + 1])
        except OSError:
            closed = True
            break
        time.sleep(0.5)
    # The server must have closed it during the drip (at ~1 s), not 1 s after the last byte.
    closed = closed or closed_by_server(s, 0.2)
    s.close()
    assert closed, "a packet drip-fed for 6 s was never timed out (--packet-timeout 1)"


def test_status_empty_after_limit_violations(make_server):
    """Refused input never leaves a half-created job or function behind."""
    server = make_server("--max-packet-size", "1024")
    s = connect(server)
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"g", b"", b"p" * 2000))
    assert closed_by_server(s)
    s.close()
    assert "g" not in status(server)
    assert admin(server, b"show jobs") == b".\n"


def test_max_queued_bytes_refuses_submits_and_loses_nothing(make_server, tmp_path):
    server = make_server("--max-queued-bytes", str(MiB))
    s = connect(server)
    payloads = [b"%03d:" % i + b"q" * (100 * 1024) for i in range(30)]  # ~3 MiB offered
    accepted, refused = [], []
    for p in payloads:
        s.sendall(encode_request(T.SUBMIT_JOB_BG, b"f", b"", p))
        [reply] = read_packets(s, 1)
        if reply.kind == T.JOB_CREATED:
            accepted.append(p)
        else:
            assert reply.kind == T.ERROR and reply.args[0] == b"QUEUE_ERROR", reply
            refused.append(p)
    assert accepted and refused, (len(accepted), len(refused))
    assert len(accepted) * len(payloads[0]) <= MiB + len(payloads[0])
    assert status(server)["f"][0] == len(accepted)
    echo_ok(s)  # a refusal keeps the connection
    log = tmp_path / "w.log"
    w = start_raw_worker(server, log, "f")
    try:
        wait_until(lambda: status(server)["f"][:2] == (0, 0), "the accepted jobs to run", timeout=20)
        ran = [r["payload"][:3] for r in worker_log(log) if r["op"] == "done"]
        assert sorted(ran) == sorted(p[:3].decode() for p in accepted)  # each once, none refused
        # memory was given back: submits are accepted again
        s.sendall(encode_request(T.SUBMIT_JOB_BG, b"f", b"", payloads[0]))
        assert read_packets(s, 1)[0].kind == T.JOB_CREATED
    finally:
        stop_procs(w)
        s.close()
