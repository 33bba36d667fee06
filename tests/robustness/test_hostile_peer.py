"""Issue 18, the server core: what one hostile peer could do to everyone, over real sockets.

Each test starts a real ``gearpy-server`` process, does what the probe of the released server did
(scaled down to fit a loaded CI machine, not so far that the old code would pass) and checks what
the attacker, a bystander and the operator see. Complexity (quadratic cleanup, slow grabs) is
checked without sockets in ``tests/server/test_core_hostile.py``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from gearpy.protocol import Packet, encode_request
from gearpy.server.jobs import JOB_BYTES
from gearpy.testing import free_port

from support.raw import T, admin, closed_by_server, connect, echo_ok, read_packets, served_connections, status
from support.waits import wait_until
from support.workers import rss_kib

MiB = 1024 * 1024


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sync(s: socket.socket) -> list:
    """Everything the server sent ``s`` before answering an ECHO (the ECHO_RES itself left out)."""
    s.sendall(encode_request(T.ECHO_REQ, b"sync"))
    out: list = []
    while not out or out[-1] != Packet(T.ECHO_RES, (b"sync",), False):
        out += read_packets(s, 1, timeout=20)
    return out[:-1]


# -- 18.1: one connection attached a thousand times to one job ---------------------------------


def test_a_repeated_submit_attaches_once_and_its_result_is_not_copied_per_submit(make_server):
    server = make_server()
    client = connect(server)
    n = 200
    client.sendall(encode_request(T.SUBMIT_JOB, b"f", b"same", b"x") * n)
    created = read_packets(client, n)
    handles = {p.args[0] for p in created}
    assert [p.kind for p in created] == [T.JOB_CREATED] * n and len(handles) == 1  # each submit answered
    [handle] = handles
    client.sendall(encode_request(T.GET_STATUS_UNIQUE, b"same"))
    assert read_packets(client, 1)[0].args[-1] == b"%d" % n  # gearmand's count: submits
    other = connect(server)  # a second client waiting on the same job
    other.sendall(encode_request(T.SUBMIT_JOB, b"f", b"same", b"x"))
    read_packets(other, 1)
    worker = connect(server)
    worker.sendall(encode_request(T.CAN_DO, b"f") + encode_request(T.GRAB_JOB))
    [assign] = read_packets(worker, 1)
    assert assign.args[0] == handle
    before = rss_kib(server.proc.pid)
    result = b"r" * MiB
    worker.sendall(encode_request(T.WORK_COMPLETE, handle, result))
    # 200 submits of a 1 MiB result exceed --max-output-buffer (64 MiB): that client is cut off
    # before anything is copied (the probe: 1000 of them took the server to 1.8 GB) ...
    assert closed_by_server(client, 20)
    grown = rss_kib(server.proc.pid) - before
    assert grown < 40 * MiB // 1024, f"one 1 MiB result grew the server by {grown // 1024} MiB"
    # ... and the other client gets its result, once
    got = read_packets(other, 1, timeout=20) + sync(other)
    assert got == [Packet(T.WORK_COMPLETE, (handle, result), False)]
    echo_ok(worker)


def test_a_job_submitted_twice_on_one_connection_is_answered_twice_as_by_gearmand(make_server):
    """libgearman clients (PHP's runTasks) with two tasks of one unique wait for two results."""
    server = make_server()
    client = connect(server)
    client.sendall(encode_request(T.SUBMIT_JOB, b"f", b"u", b"x") * 2)
    [(_, handle)] = {(p.kind, p.args[0]) for p in read_packets(client, 2)}
    worker = connect(server)
    worker.sendall(encode_request(T.CAN_DO, b"f") + encode_request(T.GRAB_JOB))
    read_packets(worker, 1)
    worker.sendall(encode_request(T.WORK_DATA, handle, b"d") + encode_request(T.WORK_COMPLETE, handle, b"r"))
    got = read_packets(client, 4)
    assert got == [Packet(T.WORK_DATA, (handle, b"d"), False)] * 2 + [
        Packet(T.WORK_COMPLETE, (handle, b"r"), False)
    ] * 2


# -- 18.2: function names ----------------------------------------------------------------------


def test_function_names_are_capped_with_a_clear_error(make_server):
    server = make_server("--max-function-name", "16")
    s = connect(server)
    replies = [
        (encode_request(T.CAN_DO, b"n" * 17), T.ERROR),
        (encode_request(T.SUBMIT_JOB_BG, b"n" * 17, b"", b"x"), T.ERROR),
        (encode_request(T.SUBMIT_JOB_BG, b"n" * 16, b"", b"x"), T.JOB_CREATED),
    ]
    for packet, kind in replies:
        s.sendall(packet)
        [reply] = read_packets(s, 1)
        assert reply.kind == kind, reply
        if kind == T.ERROR:
            says = b"Function name longer than 16 bytes (max_function_name)"
            assert reply.args == (b"ARGUMENT_TOO_LARGE", says)
    assert list(status(server)) == ["n" * 16]
    # An 8 MiB name (the probe froze every client for 3 s with one) is refused at once, and the
    # default limit is libgearman's 512 bytes.
    server = make_server()
    s = connect(server)
    t0 = time.monotonic()
    s.sendall(encode_request(T.CAN_DO, b"n" * (8 * MiB)))
    [reply] = read_packets(s, 1, timeout=20)
    assert reply.args[0] == b"ARGUMENT_TOO_LARGE" and b"512" in reply.args[1]
    echo_ok(server)
    assert time.monotonic() - t0 < 10
    s.sendall(encode_request(T.CAN_DO, b"n" * 512))
    echo_ok(s)
    assert status(server) == {"n" * 512: (0, 0, 1)}


def test_functions_nobody_uses_are_forgotten_beyond_the_limit(make_server):
    server = make_server("--max-idle-functions", "10")
    c = connect(server)
    c.sendall(encode_request(T.SUBMIT_JOB_BG, b"queued", b"", b"x"))  # a job keeps its function
    read_packets(c, 1)
    w = connect(server)
    w.sendall(b"".join(encode_request(T.CAN_DO, b"fn%03d" % i) for i in range(200)))
    echo_ok(w)
    assert len(status(server)) == 201
    w.close()
    # the worker's 200 names outlived it before; now the 10 it registered last stay, as gearmand's
    # status would show them, and the queued job's function
    wait_until(lambda: len(status(server)) == 11, "idle functions to be forgotten", timeout=10)
    assert set(status(server)) == {"queued"} | {f"fn{i:03d}" for i in range(190, 200)}
    assert status(server)["queued"] == (1, 0, 0)


def test_show_unique_jobs_does_not_hash_whole_payloads(make_server):
    server = make_server()
    c = connect(server)
    for tag in (b"a", b"b"):  # unique "-": coalesced by payload (the probe: 3.6 s for two of 4 MiB)
        c.sendall(encode_request(T.SUBMIT_JOB_BG, b"f", b"-", tag * (8 * MiB)))
        read_packets(c, 1, timeout=20)
    t0 = time.monotonic()
    assert admin(server, b"show unique jobs", timeout=30) == b"-\n-\n.\n"
    took = time.monotonic() - t0
    assert took < 2.0, f"show unique jobs took {took:.1f} s"


# -- 18.8: control bytes in names, client ids, uniques -----------------------------------------

FAKE_ROWS = b"real\t0\t0\t0\nfakefn\t999\t999\t42"


def test_control_bytes_never_reach_the_admin_protocol_raw(make_server):
    server = make_server()
    s = connect(server)
    for packet in (
        encode_request(T.CAN_DO, FAKE_ROWS),
        encode_request(T.SUBMIT_JOB_BG, FAKE_ROWS, b"", b"x"),
        encode_request(T.CAN_DO_TIMEOUT, b"tab\tname", b"5"),
    ):
        s.sendall(packet)
        [reply] = read_packets(s, 1)
        assert reply.args == (b"INVALID_FUNCTION_NAME", b"Function name contains control characters")
    assert b"fake" not in admin(server, b"status") and status(server) == {}
    # the client id "w1 :\n.\n" once ended `workers` before the worker's functions
    w = connect(server)
    w.sendall(encode_request(T.SET_CLIENT_ID, b"w1 :\n.\n") + encode_request(T.CAN_DO, b"visible"))
    echo_ok(w)
    rows = admin(server, b"workers").split(b"\n")
    assert rb"w1\x20:\x0a.\x0a : visible" in [r.split(b" ", 2)[-1] for r in rows], rows
    # a unique "a\n.\n" once ended `show unique jobs` early
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"visible", b"a\n.\n", b"x"))
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"visible", b"after", b"x"))
    read_packets(s, 2)
    listed = admin(server, b"show unique jobs").split(b"\n")
    assert sorted(listed) == sorted([rb"a\x0a.\x0a", b"after", b".", b""]), listed
    # gearpy-client's view, table and JSON
    cli = [sys.executable, "-m", "gearpy.client", "--server", server.address]
    table = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "fakefn" not in table.stdout and "visible" in table.stdout
    rows = json.loads(subprocess.run([*cli, "--json", "status"], capture_output=True, timeout=60).stdout)
    assert [r["function"] for r in rows] == ["visible"], rows


# -- 18.3: /metrics ----------------------------------------------------------------------------


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as r:
        return r.read().decode()


def metrics_listening(port: int) -> None:
    def up() -> bool:
        try:
            return "gearman_up 1.0" in scrape(port)
        except OSError:
            return False

    wait_until(up, "the metrics listener", timeout=10)


def series(text: str, family: str) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(rf'^{family}{{function="([^"]*)"}} (\S+)$', text, re.MULTILINE)
    }


def test_metrics_series_are_bounded_and_dropped_with_their_functions(make_server):
    port = free_port()
    server = make_server(
        "--metrics", f"127.0.0.1:{port}", "--metrics-max-functions", "20", "--max-idle-functions", "5"
    )
    metrics_listening(port)
    w = connect(server)
    w.sendall(b"".join(encode_request(T.CAN_DO, b"fn%04d" % i) for i in range(3000)))
    echo_ok(w)
    workers = series(scrape(port), "gearman_workers")
    assert len(workers) == 21 and workers["__other__"] == 2980, sorted(workers)[:5]
    w.close()
    gone = "the series of functions that are gone to go"
    wait_until(lambda: len(series(scrape(port), "gearman_workers")) == 5, gone, timeout=10)
    assert "__other__" not in series(scrape(port), "gearman_workers")


# -- 18.5: what a job costs ----------------------------------------------------------------------


def test_max_queued_bytes_counts_each_jobs_record_not_only_its_payload(make_server):
    server = make_server("--max-queued-bytes", str(MiB))
    s = connect(server)
    n = 10000
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"f", b"", b"") * n)  # the probe: 300k of these
    replies = read_packets(s, n, timeout=60)
    created = sum(1 for p in replies if p.kind == T.JOB_CREATED)
    refused = [p for p in replies if p.kind == T.ERROR]
    assert created + len(refused) == n
    assert created <= MiB // JOB_BYTES, f"{created} empty jobs accepted under a 1 MiB limit"
    assert refused and refused[0].args[0] == b"QUEUE_ERROR"
    assert status(server)["f"][0] == created


def test_max_jobs_per_connection(make_server, tmp_path):
    server = make_server("--max-jobs-per-connection", "3")
    s = connect(server)
    s.sendall(b"".join(encode_request(T.SUBMIT_JOB_BG, b"f", b"", b"%d" % i) for i in range(4)))
    replies = read_packets(s, 4)
    assert [p.kind for p in replies] == [T.JOB_CREATED] * 3 + [T.ERROR]
    assert replies[3].args == (
        b"QUEUE_ERROR",
        b"Too many unfinished jobs from this connection (max_jobs_per_connection)",
    )
    other = connect(server)  # another connection has its own allowance
    other.sendall(encode_request(T.SUBMIT_JOB, b"f", b"", b"fg"))
    assert read_packets(other, 1)[0].kind == T.JOB_CREATED
    w = connect(server)
    w.sendall(encode_request(T.CAN_DO, b"f") + encode_request(T.GRAB_JOB))
    [job] = read_packets(w, 1)
    w.sendall(encode_request(T.WORK_COMPLETE, job.args[0], b""))
    echo_ok(w)
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"f", b"", b"again"))  # one ended: room for one more
    assert read_packets(s, 1)[0].kind == T.JOB_CREATED
    s.sendall(encode_request(T.SUBMIT_JOB_BG, b"f", b"", b"over"))
    assert read_packets(s, 1)[0].kind == T.ERROR


# -- 18.6 and hardening: connections -------------------------------------------------------------


@pytest.mark.slow
def test_tls_handshakes_count_against_max_connections(make_server, tls_args):
    server = make_server(*tls_args("--max-connections", "5", "--handshake-timeout", "20"))
    time.sleep(0.5)  # the start-up probe's connection is gone
    baseline = fds(server.proc.pid)
    raw = [connect(server) for _ in range(60)]  # never start a handshake
    time.sleep(1.5)
    held = fds(server.proc.pid) - baseline
    assert held <= 5 + 1, f"{held} descriptors held for 60 connections against a limit of 5"
    for s in raw:
        s.close()


def test_refused_connections_are_logged_rate_limited_and_loopback_admin_keeps_a_slot(make_server):
    server = make_server("--max-connections", "3")
    held = served_connections(server, 3)
    # full: a loopback admin still gets in (one connection), for admin lines only
    with connect(server) as a:
        a.sendall(b"status\n")
        assert read_packets(a, 1)[0].line == b"."
        refused = []
        for _ in range(40):
            extra = connect(server)
            assert closed_by_server(extra), "a connection beyond the admin slot was served"
            refused.append(extra)
        a.sendall(encode_request(T.ECHO_REQ, b"x"))  # a worker or client may not take the slot
        assert closed_by_server(a)
    for s in refused:
        s.close()
    wait_until(lambda: "refusing connection" in server.log(), "the refusal to be logged", timeout=5)
    lines = [line for line in server.log().splitlines() if "refusing connection" in line]
    assert 1 <= len(lines) <= 10, f"{len(lines)} log lines for 40 refusals"
    for s in held:
        echo_ok(s)


@pytest.mark.slow
def test_idle_timeout_closes_connections_that_hold_nothing(make_server):
    server = make_server("--idle-timeout", "1")
    idle = connect(server)
    worker = connect(server)
    worker.sendall(encode_request(T.CAN_DO, b"f") + encode_request(T.PRE_SLEEP))
    client = connect(server)
    client.sendall(encode_request(T.SUBMIT_JOB, b"g", b"", b"waits"))
    assert read_packets(client, 1)[0].kind == T.JOB_CREATED
    t0 = time.monotonic()
    assert closed_by_server(idle, 10), "an idle connection was kept"
    assert time.monotonic() - t0 >= 0.5
    time.sleep(1.5)
    echo_ok(worker)  # a sleeping worker and a waiting client are not idle
    echo_ok(client)


@pytest.mark.slow
def test_idle_timeout_spares_a_submit_waiting_for_a_slow_commit(make_server, service_of, fault_proxy):
    # A background submit whose JOB_CREATED waits for a durable commit is not idle: closing it
    # makes the client fail over and submit the job twice.
    svc = service_of("redis")
    proxy = fault_proxy(svc.port)
    server = make_server("--idle-timeout", "1", "-q", svc.url_for(proxy.port))
    client = connect(server)
    echo_ok(client)
    proxy.delay(1.5)  # each way: the commit takes ~3 s, three idle timeouts
    client.sendall(encode_request(T.SUBMIT_JOB_BG, b"slow", b"", b"durable"))
    created = read_packets(client, 1, timeout=20)[0]
    assert created.kind == T.JOB_CREATED, created
    proxy.heal()
    echo_ok(client)


@pytest.mark.slow
def test_metrics_listener_has_a_connection_limit_and_a_timeout(make_server):
    port = free_port()
    server = make_server(
        "--metrics", f"127.0.0.1:{port}", "--metrics-max-connections", "4", "--metrics-timeout", "1"
    )
    metrics_listening(port)
    time.sleep(0.3)
    baseline = fds(server.proc.pid)
    half = []
    for _ in range(50):  # half-sent requests (the probe: 200 still held after 10 s)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        half.append(s)
    time.sleep(0.5)
    held = fds(server.proc.pid) - baseline
    assert held <= 4, f"{held} descriptors held for 50 half-sent requests against a limit of 4"
    assert closed_by_server(half[0], 5), "a half-sent request outlived --metrics-timeout"
    for s in half:
        s.close()
    wait_until(lambda: "gearman_up 1.0" in scrape(port), "a full scrape to be served again", timeout=20)
    echo_ok(server)



def test_gearpy_client_reads_gearmands_raw_names_safely(gearmand_server):
    """gearmand prints names raw: gearpy-client keeps a tab inside a name and escapes controls."""
    w = connect(gearmand_server)
    w.sendall(encode_request(T.CAN_DO, b"tab\tname") + encode_request(T.CAN_DO, b"esc\x1b[2Jname"))
    w.sendall(encode_request(T.SUBMIT_JOB_BG, b"tab\tname", b"", b"x"))
    assert read_packets(w, 1)[0].kind == T.JOB_CREATED
    cli = [sys.executable, "-m", "gearpy.client", "--server", gearmand_server.address]
    table = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "\t" not in table.stdout
    rows = {line.split()[1]: line.split()[2:] for line in table.stdout.splitlines()[1:]}
    assert rows == {r"tab\x09name": ["1", "0", "1"], r"esc\x1b[2Jname": ["0", "0", "1"]}, table.stdout
    out = subprocess.run([*cli, "--json", "status"], capture_output=True, timeout=60).stdout
    assert {r["function"]: r["total"] for r in json.loads(out)} == {"tab\tname": 1, "esc\x1b[2Jname": 0}
    w.close()


def test_workers_listing_escapes_spaces_in_function_names(make_server):
    """``workers`` is space-separated: a space inside a function name must not split it in two."""
    server = make_server()
    w = connect(server)
    w.sendall(encode_request(T.CAN_DO, b"has space") + encode_request(T.CAN_DO, b"plain"))
    echo_ok(w)
    rows = [line for line in admin(server, b"workers").splitlines() if line.endswith((b"plain", b"space"))]
    assert len(rows) == 1, rows
    assert sorted(rows[0].split(b" :", 1)[1].split()) == [rb"has\x20space", b"plain"], rows
    w.close()


def test_last_error_is_sent_even_behind_a_backlog(make_server):
    """A connection closed by the server (oversized packet) gets its ERROR even when earlier
    replies still wait in the writer's backlog: the close waits (briefly) for them to go out."""
    import struct

    from gearpy.protocol import Decoder

    server = make_server("--max-packet-size", "2000000")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((server.host, server.port))
    s.settimeout(20)
    big = b"e" * 1_000_000
    s.sendall(encode_request(T.ECHO_REQ, big) * 6 + b"\0REQ" + struct.pack(">II", int(T.ECHO_REQ), 3_000_000))
    time.sleep(0.5)  # the server has hit the oversized header with replies still queued
    dec = Decoder(max_packet_size=1 << 30)
    events: list[object] = []
    while True:
        try:
            data = s.recv(1 << 20)
        except ConnectionResetError:
            break
        if not data:
            break
        dec.feed(data)
        events.extend(dec.events())
    s.close()
    kinds = [e.kind for e in events]  # type: ignore[attr-defined]
    assert kinds[-1] == T.ERROR, kinds[-3:]
    assert kinds.count(T.ECHO_RES) == 6


@pytest.mark.slow
def test_half_a_packet_is_bounded_by_the_packet_timeout_not_the_idle_timeout(make_server):
    server = make_server("--idle-timeout", "1", "--packet-timeout", "4")
    half = connect(server)
    half.sendall(encode_request(T.SUBMIT_JOB, b"f", b"", b"x")[:7])
    t0 = time.monotonic()
    assert closed_by_server(half, 10), "a half-sent packet was kept beyond its timeout"
    assert time.monotonic() - t0 >= 3.0, "closed by the idle timeout while a packet was arriving"
