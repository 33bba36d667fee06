"""The link between the server and its database fails or crawls (MariaDB, PostgreSQL, Redis).

What must hold (issue #16): with the store's link blackholed or reset mid-commit, submitters get
ERROR QUEUE_ERROR within a bounded time (``commit_timeout`` + ``connect_timeout``), nothing is
acknowledged that is not committed, a job refused with QUEUE_ERROR never runs, the server uses the
store again as soon as the link is back, and nothing acknowledged is lost (a SIGKILL and restart
replays exactly the acknowledged jobs). A store that answers slowly costs a pipelining client
latency, not server memory (back-pressure), and never stalls foreground jobs, which need no store.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from gearpy.client import Client
from gearpy.errors import ServerError
from gearpy.protocol import Decoder, PacketType, encode_request
from gearpy.server.stores import open_store

from support.reliability import fn_status
from support.waits import wait_until

T = PacketType
pytestmark = [pytest.mark.slow, pytest.mark.external]

#: A silent database fails a commit after 3 s, the retry's reconnect after 1 s more.
TIMEOUTS = "commit_timeout=3&connect_timeout=1&reconnect_min=0.1&reconnect_max=0.5"
BOUND_S = 3 + 1


def stored_ids(url: str) -> list[str]:
    """Job ids of the rows in the store (read with gearpy's own reader, on a direct link)."""
    store = open_store(url)
    store.open()
    try:
        return [job.payload.decode().rsplit(":", 1)[1] for job in store.replay()]
    finally:
        store.close()


def submit_batch(client: Client, ids: list[str]) -> dict[str, str]:
    """Pipelined background submits: job id -> 'ack' or the ERROR code."""
    jobs = client.submit_many([("record", f"bg:{i}".encode()) for i in ids], background=True)
    out = {}
    for job_id, job in zip(ids, jobs, strict=True):
        error = job.exception(0)
        if error is None:
            out[job_id] = "ack"
        else:
            out[job_id] = error.code if isinstance(error, ServerError) else repr(error)
    return out


@pytest.mark.parametrize("kind", ["mysql", "postgres", "redis"])
def test_store_link_blackholed_and_reset_mid_commit(
    kind, server, worker, fault_proxy, joblog, service_of
) -> None:
    svc = service_of(kind)
    link = fault_proxy(svc.port)
    srv = server("-q", f"{svc.url_for(link.port)}&{TIMEOUTS}")
    worker(srv.address, key="fg")  # serves fg-record: foreground jobs, which need no store
    wait_until(lambda: fn_status(srv, "fg-record")[2] == 1, "the foreground worker", 20)
    outcomes: dict[str, str] = {}
    with Client([srv.address], timeout=30) as client:
        outcomes |= submit_batch(client, ["a1", "a2", "a3"])
        assert set(outcomes.values()) == {"ack"}

        # A partition between the server and its database, while commits are under way.
        link.blackhole()
        started = time.monotonic()
        down = submit_batch(client, ["b1", "b2", "b3"])
        took = time.monotonic() - started
        assert set(down.values()) == {"QUEUE_ERROR"}, down
        assert took < BOUND_S + 4, took
        # Foreground jobs do not wait for the store.
        started = time.monotonic()
        assert client.submit("record", b"sleep:0:fg1", key="fg").result(10) == b"done:sleep:0:fg1"
        assert time.monotonic() - started < 2.5  # a stalled loop would take the 4 s of a commit
        outcomes |= down

        # The link comes back: submits succeed again without a server restart.
        link.heal()
        deadline = time.monotonic() + 10
        n = 0
        while True:
            n += 1
            got = submit_batch(client, [f"c{n}"])
            outcomes |= got
            if got[f"c{n}"] == "ack":
                break
            assert time.monotonic() < deadline, "the server did not use the store again"
            time.sleep(0.2)

        # An RST in the middle of the next commit's first statement.
        link.reset(after=20)
        cut = submit_batch(client, ["d1", "d2"])
        assert set(cut.values()) <= {"ack", "QUEUE_ERROR"}, cut
        outcomes |= cut
        link.heal()
        deadline = time.monotonic() + 10
        while (got := submit_batch(client, [f"e{n}"]))[f"e{n}"] != "ack":
            outcomes |= got
            assert time.monotonic() < deadline, "the server did not use the store again"
            n += 1
            time.sleep(0.2)
        outcomes |= got

    acked = {i for i, o in outcomes.items() if o == "ack"}
    refused = {i for i, o in outcomes.items() if o != "ack"}
    assert refused >= {"b1", "b2", "b3"}
    # What is in the database is exactly what was acknowledged: a refused job's row, if its
    # commit was cut after the database applied it, is deleted once the store is back.
    wait_until(lambda: set(stored_ids(svc.url)) == acked, f"the store to hold exactly {acked}", 10)

    # Crash and restart: exactly the acknowledged jobs run, each once.
    srv.kill()
    srv.start()
    worker(srv.address)
    wait_until(lambda: set(joblog.ids()) >= acked, "every acknowledged job to run", 30)
    time.sleep(0.5)
    ran = [i for i in joblog.ids() if i != "fg1"]
    assert sorted(ran) == sorted(acked)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_store_back_pressure_bounded_memory_no_foreground_stall(
    server, worker, fault_proxy, service_of
) -> None:
    svc = service_of("postgres")
    link = fault_proxy(svc.port)
    srv = server("-q", svc.url_for(link.port), "--max-pending-commits", "64")
    worker(srv.address, key="fg")
    wait_until(lambda: fn_status(srv, "fg-record")[2] == 1, "the foreground worker", 20)
    link.delay(1.0)  # 2 s per round trip to the database: a commit takes 4 s or more
    n, size = 4000, 8192
    flood = b"".join(
        encode_request(T.SUBMIT_JOB_BG, b"record", b"", b"x" * (size - 20) + f":{i:08d}".encode())
        for i in range(n)
    )
    rss_before = _rss_kib(srv.proc.pid)
    sock = socket.create_connection((srv.host, srv.port))
    sent = [0]

    def writer() -> None:
        view = memoryview(flood)
        while sent[0] < len(flood):
            sent[0] += sock.send(view[sent[0] : sent[0] + 65536])

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    time.sleep(3)
    # Back-pressure: the server stopped reading; most of the 32 MiB is still on our side.
    assert sent[0] < len(flood) * 2 // 3, sent[0]
    assert _rss_kib(srv.proc.pid) - rss_before < 20 * 1024
    # Foreground jobs are not held up by the slow store.
    with Client([srv.address], timeout=30) as client:
        started = time.monotonic()
        assert client.submit("record", b"sleep:0:fg", key="fg").result(10) == b"done:sleep:0:fg"
        assert time.monotonic() - started < 3
    link.heal()
    dec = Decoder(allow_admin=False)
    created = 0
    sock.settimeout(60)
    while created < n:
        data = sock.recv(65536)
        assert data, "server closed the connection"
        dec.feed(data)
        for packet in dec.events():
            assert packet.kind == T.JOB_CREATED, packet
            created += 1
    th.join(10)
    sock.close()
    assert len(stored_ids(svc.url)) == n  # every acknowledged job is in the database


def test_redis_without_aof_is_warned_about_at_start(server, service_of) -> None:
    import redis

    svc = service_of("redis")
    r = redis.Redis(host="127.0.0.1", port=svc.port)
    aof = r.config_get("appendonly")["appendonly"]
    fsync = r.config_get("appendfsync")["appendfsync"]
    r.close()
    srv = server("-q", svc.url)
    log = wait_until(lambda: "listening on" in srv.log() and srv.log(), "the server to start", 10)
    if aof == "no":
        assert "WARNING" in log and "appendonly=no" in log and "RDB snapshot" in log, log
    elif fsync != "always":
        assert "WARNING" in log and f"appendfsync={fsync}" in log, log
    else:
        assert "fsync at every batch" in log and "not fsynced" not in log, log


def test_a_paused_connection_is_not_timed_out_for_a_packet_it_has_not_read(
    server, fault_proxy, service_of
) -> None:
    # Back-pressure stops reading a connection while the store is slow; the rest of a packet it
    # had started then waits in the socket, unread on purpose: the packet timeout must not close
    # the connection for it (every job acknowledged so far would be submitted again elsewhere).
    svc = service_of("redis")
    link = fault_proxy(svc.port)
    srv = server("-q", svc.url_for(link.port), "--max-pending-commits", "8", "--packet-timeout", "1")
    link.delay(1.0)  # a commit takes 2 s or more: longer than the packet timeout
    data = b"".join(encode_request(T.SUBMIT_JOB_BG, b"record", b"", f"p:{i}".encode()) for i in range(20))
    sock = socket.create_connection((srv.host, srv.port))
    sock.sendall(data[:-5])  # 19 whole submits and the start of the 20th: reading pauses mid-packet
    time.sleep(0.5)
    sock.sendall(data[-5:])  # the rest waits in the socket while the connection is paused
    time.sleep(2.0)
    link.heal()
    dec = Decoder(allow_admin=False)
    created = 0
    sock.settimeout(30)
    while created < 20:
        chunk = sock.recv(65536)
        assert chunk, f"server closed the connection after {created} of 20 JOB_CREATED"
        dec.feed(chunk)
        for packet in dec.events():
            assert packet.kind == T.JOB_CREATED, packet
            created += 1
    sock.close()
