"""submit() and Client against live servers (gearpy-server and gearmand), with real workers."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zlib

import pytest

from gearpy.client import Admin, Client, submit
from gearpy.errors import (
    GearpyConnectionError,
    GearpyTimeoutError,
    JobException,
    JobFailed,
    JobOutcomeUnknown,
    ServerError,
)
from gearpy.protocol import PacketType
from gearpy.testing import free_port

from support.servers import server_of

T = PacketType


def test_foreground_result(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    assert submit("upper", "hello world", servers=[gearman_server.address], timeout=10) == b"HELLO WORLD"


@pytest.mark.parametrize("priority", ["normal", "high", "low"])
def test_foreground_priorities(gearman_server, gearman_worker, priority):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    out = submit("upper", b"abc", priority=priority, servers=[gearman_server.address], timeout=10)
    assert out == b"ABC"


def test_failed_job_raises_job_failed(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "broken", "false")
    with pytest.raises(JobFailed) as info:
        submit("broken", "x", servers=[gearman_server.address], timeout=10)
    assert info.value.handle


def test_background_returns_handle_and_queues(gearman_server):
    addr = [gearman_server.address]
    h_high = submit("nobody", "a", background=True, priority="high", servers=addr, timeout=10)
    h_low = submit("nobody", "b", background=True, priority="low", servers=addr, timeout=10)
    h_norm = submit("nobody", "c", background=True, servers=addr, timeout=10)
    assert len({h_high, h_low, h_norm}) == 3 and all(isinstance(h, str) and h for h in (h_high, h_low))
    with Admin(gearman_server.address) as admin:
        prio = {p.function: p for p in admin.prioritystatus()}["nobody"]
        assert (prio.high, prio.normal, prio.low) == (1, 1, 1)
        assert {h_high, h_low, h_norm} <= {j.handle for j in admin.show_jobs()}
    with Client(addr) as client:
        st = client.status(h_high)
        assert st.known and not st.running and st.handle == h_high


def test_epoch_job_is_background_and_queued(gearman_server):
    when = dt.datetime.now() + dt.timedelta(hours=1)
    handle = submit("later", "x", background=True, when=when, servers=[gearman_server.address], timeout=10)
    with Client([gearman_server.address]) as client:
        assert client.status(handle).known
    with Admin(gearman_server.address) as admin:
        assert {p.function: p.normal for p in admin.prioritystatus()}["later"] == 1


def test_epoch_needs_background():
    with Client(["127.0.0.1:1"]) as client, pytest.raises(ValueError):
        client.submit("f", "x", when=time.time())


def test_workers_key_prefixes_function(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "site1-upper", "tr", "a-z", "A-Z")
    assert submit("upper", "k", key="site1", servers=[gearman_server.address], timeout=10) == b"K"
    with Client([gearman_server.address], key="site1") as client:
        assert client.submit("upper", "j").result(10) == b"J"


def test_unique_coalesces_and_status_unique(gearman_server, gearman_worker):
    with Client([gearman_server.address]) as client:
        a, b = client.submit_many([("upper", "same"), ("upper", "same")], unique="u-1", timeout=10)
        assert a.handle == b.handle
        st = client.status_unique("u-1")
        assert st.known and not st.running
        gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
        assert a.result(10) == b"SAME" and b.result(10) == b"SAME"


def test_submit_many_pipelined_results_in_order(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    with Client([gearman_server.address]) as client:
        jobs = client.submit_many([("upper", f"job{i}") for i in range(50)], timeout=10)
        assert [j.result(20) for j in jobs] == [f"JOB{i}".encode() for i in range(50)]


def test_progress_data_warning_events_and_status(gearman_server, raw_worker):
    release = threading.Event()

    def script(w, handle, payload):
        w.send(T.WORK_STATUS, handle, b"1", b"4")
        w.send(T.WORK_DATA, handle, b"chunk1")
        w.send(T.WORK_WARNING, handle, b"careful")
        release.wait(10)
        w.send(T.WORK_DATA, handle, b"chunk2")
        w.send(T.WORK_COMPLETE, handle, payload[::-1])

    raw_worker(gearman_server, "rev", script)
    seen = []
    with Client([gearman_server.address]) as client:
        job = client.submit(
            "rev", "abc", on_data=seen.append, on_warning=seen.append, on_progress=seen.append
        )
        events = job.events(timeout=10)
        first = [next(events) for _ in range(3)]
        assert [e.kind for e in first] == ["progress", "data", "warning"]
        assert (first[0].numerator, first[0].denominator) == (1, 4)
        st = job.status()
        assert st.known and st.running and (st.numerator, st.denominator) == (1, 4)
        release.set()
        rest = list(events)
        assert [(e.kind, e.data) for e in rest] == [("data", b"chunk2")]
        assert job.result(10) == b"cba"
        assert [e.kind for e in seen] == ["progress", "data", "warning", "data"]
        assert not client.status(job.handle).known


def test_work_exception_carries_payload(gearman_server, raw_worker):
    raw_worker(gearman_server, "explode", lambda w, h, p: w.send(T.WORK_EXCEPTION, h, b"ValueError: boom"))
    with pytest.raises(JobException) as info:
        submit("explode", "x", servers=[gearman_server.address], timeout=10)
    assert info.value.payload == b"ValueError: boom"


def test_work_fail_from_raw_worker(gearman_server, raw_worker):
    raw_worker(gearman_server, "nope", lambda w, h, p: w.send(T.WORK_FAIL, h))
    with Client([gearman_server.address]) as client:
        job = client.submit("nope", "x")
        with pytest.raises(JobFailed):
            job.result(10)
        assert job.state == "failed"


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_codecs_round_trip_through_worker(gearman_server, raw_worker, codec):
    raw_worker(gearman_server, "echo", lambda w, h, p: w.send(T.WORK_COMPLETE, h, p))
    obj = {"name": "ü", "items": [1, 2.5, None, True]}
    assert submit("echo", obj, codec=codec, servers=[gearman_server.address], timeout=10) == obj


@pytest.mark.slow
def test_result_timeout_leaves_job_waiting(gearman_server):
    with Client([gearman_server.address]) as client:
        job = client.submit("nobody-home", "x")
        with pytest.raises(GearpyTimeoutError):
            job.result(timeout=0.3)
        assert job.state == "created" and not job.done
    with pytest.raises(GearpyTimeoutError):
        submit("nobody-home", "x", servers=[gearman_server.address], timeout=0.3)


def test_failover_when_first_server_down(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    servers = [f"127.0.0.1:{free_port()}", gearman_server.address]
    for unique in (None, "u1", "u2", "u3"):
        assert submit("upper", "fo", unique=unique, servers=servers, timeout=10) == b"FO"
    handle = submit("upper", "bg", background=True, servers=servers, timeout=10)
    assert handle
    with Client(servers) as client:
        jobs = client.submit_many([("upper", f"m{i}") for i in range(6)], timeout=10)
        assert {j.server for j in jobs} == {gearman_server.address}
        assert [j.result(10) for j in jobs] == [f"M{i}".encode() for i in range(6)]


def test_no_server_reachable():
    servers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with pytest.raises(GearpyConnectionError, match="no Gearman server reachable"):
        submit("f", "x", servers=servers, timeout=10)
    with pytest.raises(GearpyConnectionError, match="Connection refused"):
        submit("f", "x", servers=servers[:1], timeout=10)


def test_server_refusal_is_server_error(gearman_server):
    with Admin(gearman_server.address) as admin:
        submit("capped", "a", background=True, servers=[gearman_server.address], timeout=10)
        admin.maxqueue("capped", 1)
    with pytest.raises(ServerError) as info:
        submit("capped", "b", background=True, servers=[gearman_server.address], timeout=10)
    assert info.value.code == "QUEUE_ERROR"


@pytest.mark.slow
def test_outcome_unknown_when_server_killed_mid_job(gearman_server, raw_worker):
    grabbed = threading.Event()
    raw_worker(gearman_server, "hang", lambda w, h, p: grabbed.set())
    with Client([gearman_server.address]) as client:
        job = client.submit("hang", "x")
        assert grabbed.wait(10)
        gearman_server.kill()
        with pytest.raises(JobOutcomeUnknown):
            job.result(10)
        assert job.state == "unknown"
        # The job is never re-submitted behind the caller's back; a new submit reconnects.
        gearman_server.start()
        assert client.submit("other", "y", background=True).handle


def test_unique_picks_server_by_stable_hash_and_fails_over(gearman_server, tmp_path):
    other = server_of("gearmand", tmp_path).start()
    try:
        servers = [gearman_server.address, other.address]
        with Client(servers) as client:
            for i in range(8):
                unique = f"u{i}".encode()
                job = client.submit("hashed", "x", background=True, unique=unique)
                assert job.server == servers[zlib.crc32(unique) % 2]
                again = client.submit("hashed", "y", background=True, unique=unique)
                assert (again.server, again.handle) == (job.server, job.handle)
            # u1 hashes to one of them: stop it, and the same unique moves to the other.
            target = client.submit("hashed", "z", background=True, unique="moving")
            victim = gearman_server if target.server == gearman_server.address else other
            victim.kill()
            moved = client.submit("hashed", "z", background=True, unique="moving")
            assert moved.server != target.server and moved.handle
    finally:
        other.stop()


@pytest.mark.slow
def test_close_from_another_thread_wakes_a_waiting_reader(gearman_server):
    client = Client([gearman_server.address])
    job = client.submit("nobody-home", "x")
    outcome: list[BaseException] = []

    def wait_forever() -> None:
        try:
            job.result(timeout=None)  # blocks in recv() with no deadline
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=wait_forever, daemon=True)
    reader.start()
    while not client.connection(gearman_server.address)._reading and reader.is_alive():
        time.sleep(0.01)
    client.close()
    reader.join(30)
    assert not reader.is_alive(), "close() did not wake the reader blocked in recv()"
    assert len(outcome) == 1 and isinstance(outcome[0], JobOutcomeUnknown)


def test_submit_many_request_none_does_not_hide_the_batch_default(gearpy_server):
    """A request's ``key=None``/``priority=None`` means "not given" (issue 17: unset options)."""
    with Client([gearpy_server.address]) as client:
        jobs = client.submit_many(
            [{"function": "nonefn", "payload": b"x", "key": None, "priority": None}],
            key="site9",
            priority="high",
            background=True,
        )
        assert jobs[0].handle
    with Admin(gearpy_server.address) as admin:
        prio = {p.function: p for p in admin.prioritystatus()}
    assert "nonefn" not in prio
    assert (prio["site9-nonefn"].high, prio["site9-nonefn"].normal) == (1, 0)
