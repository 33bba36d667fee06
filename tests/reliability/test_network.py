"""The network between clients, workers and the server fails: partitions, half-open links, resets.

What must hold (issue #16): a client whose link goes dark mid-submit gets the outcome-unknown
error when its timeout fires, the job runs at most once, and the server frees the connection
within its keepalive budget; a worker whose link goes dark mid-job is noticed within that budget,
its job is requeued once, and its late result is dropped when the link comes back.
"""

from __future__ import annotations

import re
import socket
import time
import zlib

import pytest

from gearpy.client import Client, submit
from gearpy.errors import GearpyTimeoutError, JobOutcomeUnknown, OutcomeUnknownTimeout
from gearpy.protocol import Decoder, PacketType, encode_request

from support.faultproxy import DOWN, UP
from support.reliability import DETECT_S, connections, fn_status
from support.waits import wait_until

T = PacketType
pytestmark = pytest.mark.slow


def _timed_out_connections(log: str) -> int:
    return len(re.findall(r"connection \d+ from \S+ Connection timed out", log))


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "request-lost"])
def test_client_blackholed_mid_submit(server, worker, fault_proxy, joblog, reached) -> None:
    srv = server()
    worker(srv.address)
    wait_until(lambda: fn_status(srv)[2] == 1, "the worker", 20)
    baseline = connections(srv)
    front = fault_proxy(srv.port)
    # The partition starts just after the submit reached the server (its answer is swallowed),
    # or just before (the submit itself is swallowed).
    if reached:
        front.blackhole(after=0, counting=DOWN)
    else:
        front.blackhole(after=0, counting=UP)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownTimeout) as info:
        submit("record", b"sleep:0:job-1", servers=[front.address], timeout=2)
    took = time.monotonic() - started
    assert isinstance(info.value, JobOutcomeUnknown) and isinstance(info.value, GearpyTimeoutError)
    assert 2 <= took < 2 + 3, took
    # The server drops the dead client's connection within its keepalive budget (3 s here).
    wait_until(lambda: connections(srv) == baseline, "the server to free the connection", DETECT_S + 10)
    assert _timed_out_connections(srv.log()) == 1
    time.sleep(1)
    runs = len(joblog.runs("job-1"))
    assert runs == (1 if reached else 0)  # at most once; and only if the submit got there
    assert fn_status(srv)[:2] == (0, 0)


def _read_packets(sock: socket.socket, dec: Decoder, timeout: float, until=lambda packets: False) -> list:
    """Every packet that arrives within ``timeout`` seconds, or until ``until(packets)`` holds."""
    out: list = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and not until(out):
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        dec.feed(data)
        out += list(dec.events())
    return out


def test_worker_blackholed_mid_job_is_requeued_once_and_late_result_dropped(
    server, worker, fault_proxy, joblog
) -> None:
    srv = server()
    front = fault_proxy(srv.port)
    first = worker(front.address)
    wait_until(lambda: fn_status(srv)[2] == 1, "the first worker", 20)
    client = socket.create_connection((srv.host, srv.port), timeout=10)
    dec = Decoder(allow_admin=False)
    client.sendall(encode_request(T.SUBMIT_JOB, b"record", b"job-w", b"sleep:4:job-w"))
    [created] = _read_packets(client, dec, 5, until=len)
    assert created.kind == T.JOB_CREATED
    handle = created.args[0]
    wait_until(lambda: joblog.runs("job-w", "start"), "the first worker to start the job", 10)
    front.blackhole()
    cut = time.monotonic()
    second = worker(srv.address)
    # The server notices the silent worker within its keepalive budget and requeues the job once.
    wait_until(lambda: _timed_out_connections(srv.log()), "the server to drop the worker", DETECT_S + 10)
    noticed = time.monotonic() - cut
    assert noticed < DETECT_S + 10, noticed
    wait_until(lambda: len(joblog.runs("job-w", "start")) == 2, "the job to be requeued", 20)
    packets = _read_packets(client, dec, 20, until=lambda ps: any(p.kind == T.WORK_COMPLETE for p in ps))
    packets += _read_packets(client, dec, 1)
    completes = [p for p in packets if p.kind == T.WORK_COMPLETE]
    assert [p.args for p in completes] == [(handle, b"done:sleep:4:job-w")]
    # The first worker finished too, but its result sits in the dead link. Bring the link back:
    wait_until(lambda: len(joblog.runs("job-w")) == 2, "the first worker to finish", 15)
    front.heal()
    late = _read_packets(client, dec, 3)
    assert [p for p in late if p.args[:1] == (handle,)] == []  # the late result was dropped
    starts = joblog.runs("job-w", "start")
    assert [r["pid"] for r in starts] == [first.pid, second.pid]  # requeued exactly once
    assert fn_status(srv)[:2] == (0, 0)
    # The first worker finds its connection gone and serves again on a new one.
    wait_until(lambda: fn_status(srv)[2] == 2, "the first worker to reconnect", 70)
    client.close()


def test_half_open_client_connection_is_freed(server, fault_proxy) -> None:
    """The server's side of a half-open link (the client host vanished) is dropped in time."""
    srv = server()
    baseline = connections(srv)
    front = fault_proxy(srv.port)
    conns = [socket.create_connection(("127.0.0.1", front.port), timeout=5) for _ in range(3)]
    front.wait_links(3)
    wait_until(lambda: connections(srv) == baseline + 3, "three connections", 10)
    front.half_open(keep="upstream")  # the clients are told (RST), the server's ends go silent
    for c in conns:
        with pytest.raises(OSError):
            c.sendall(b"x" * 100)
            c.recv(10)
    wait_until(lambda: connections(srv) == baseline, "the server to free the connections", DETECT_S + 10)
    assert _timed_out_connections(srv.log()) == 3


def test_submits_fail_over_from_a_partitioned_server(server, fault_proxy) -> None:
    """A server cut off by a partition: the submit in flight times out (outcome unknown), and the
    next submits for it reconnect, find it unreachable and go to the next server."""
    first, second = server(), server()
    fronts = [fault_proxy(first.port), fault_proxy(second.port)]
    unique = next(u for u in (f"u{i}" for i in range(100)) if zlib.crc32(u.encode()) % 2 == 0)
    with Client([f.address for f in fronts], timeout=2, connect_timeout=1) as client:
        job = client.submit("record", b"x", background=True, unique=unique)
        assert job.server == fronts[0].address
        fronts[0].blackhole()
        with pytest.raises(OutcomeUnknownTimeout):
            client.submit("record", b"y", background=True, unique=unique)
        started = time.monotonic()
        job = client.submit("record", b"z", background=True, unique=unique)
        assert job.server == fronts[1].address  # failed over
        assert time.monotonic() - started < 1 + 3
    assert fn_status(second)[0] == 1
