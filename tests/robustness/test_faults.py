"""Faults with real processes: workers SIGKILLed or SIGSTOPped mid-job, poison jobs, clients that
leave, a server SIGKILLed on a durable store or restarted under a gearpy worker, a dead server in a
client's list. Every wait is bounded; nothing asserts speed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from gearpy.client import Client
from gearpy.errors import JobFailed
from gearpy.protocol import Packet, encode_request
from gearpy.testing import ServerProcess, free_port, gearpy_server_argv

from support.raw import T, connect, echo_ok, read_packets, status
from support.waits import wait_until
from support.workers import start_raw_worker, stop_procs, worker_log

pytestmark = pytest.mark.slow


def starts(log, payload: str) -> list[dict]:
    return [r for r in worker_log(log) if r["op"] == "start" and r["payload"] == payload]


def dones(log, payload: str) -> list[dict]:
    return [r for r in worker_log(log) if r["op"] == "done" and r["payload"] == payload]


def test_worker_sigkilled_mid_job_is_requeued_to_another(make_server, tmp_path):
    server = make_server()
    log = tmp_path / "w.log"
    first = start_raw_worker(server, log, "f")
    procs = [first]
    try:
        wait_until(lambda: status(server).get("f", (0, 0, 0))[2] == 1, "first worker", timeout=10)
        c = connect(server, timeout=30)
        c.sendall(encode_request(T.SUBMIT_JOB, b"f", b"", b"sleep:60:k1"))
        [created] = read_packets(c, 1)
        wait_until(lambda: starts(log, "sleep:60:k1"), "the first worker to start the job", timeout=10)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert status(server)["f"][0] == 1  # still known: requeued, not lost
        procs.append(start_raw_worker(server, log, "f", no_sleep=True))
        [done] = read_packets(c, 1, timeout=20)
        assert done == Packet(T.WORK_COMPLETE, (created.args[0], b"done:sleep:60:k1"), False)
        [ran] = dones(log, "sleep:60:k1")
        assert ran["pid"] != first.pid and len(starts(log, "sleep:60:k1")) == 2
        c.close()
    finally:
        stop_procs(*procs)


def test_poison_job_stops_after_job_retries_and_client_is_told(make_server, tmp_path):
    server = make_server("--job-retries", "2")
    log = tmp_path / "w.log"
    outcome: list[BaseException | object] = []

    def client() -> None:
        try:
            with Client([server.address], timeout=60) as cl:
                outcome.append(cl.submit("f", b"die:now").result(60))
        except BaseException as exc:  # noqa: BLE001 - recorded and checked below
            outcome.append(exc)

    th = threading.Thread(target=client, daemon=True)
    th.start()
    deadline = time.monotonic() + 40
    spawned = 0
    while not outcome and time.monotonic() < deadline:
        # a supervisor that keeps replacing the workers the poison job kills
        w = start_raw_worker(server, log, "f")
        spawned += 1
        try:
            w.wait(3)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
        assert spawned < 10, f"poison job still handed out after {spawned} workers died"
    th.join(10)
    assert outcome and isinstance(outcome[0], JobFailed), outcome
    assert len(starts(log, "die:now")) == 2  # attempted exactly --job-retries times
    assert status(server).get("f", (0, 0, 0))[:2] == (0, 0)  # dropped, not requeued


def test_client_disconnect_mid_foreground_job(make_server, tmp_path):
    server = make_server()
    log = tmp_path / "w.log"
    w = start_raw_worker(server, log, "f")
    try:
        c = connect(server)
        c.sendall(encode_request(T.SUBMIT_JOB, b"f", b"", b"sleep:0.5:gone"))
        read_packets(c, 1)
        wait_until(lambda: starts(log, "sleep:0.5:gone"), "the job to start", timeout=10)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # reset while the job runs
        wait_until(lambda: status(server)["f"][:2] == (0, 0), "the job to end", timeout=10)
        # the worker was not disturbed: it finished, and serves the next job
        c2 = connect(server, timeout=10)
        c2.sendall(encode_request(T.SUBMIT_JOB, b"f", b"", b"next"))
        created, done = read_packets(c2, 2, timeout=10)
        assert done == Packet(T.WORK_COMPLETE, (created.args[0], b"done:next"), False)
        assert w.poll() is None and len(dones(log, "sleep:0.5:gone")) == 1
        c2.close()
        echo_ok(server)
    finally:
        stop_procs(w)


def test_server_sigkill_with_sqlite_store_loses_no_acknowledged_job(tmp_path):
    server = ServerProcess(gearpy_server_argv("-q", f"sqlite:///{tmp_path / 'q.db'}")).start()
    log = tmp_path / "w.log"
    w = None
    try:
        with Client([server.address], timeout=10) as cl:
            acked = [f"bg{i}" for i in range(30) if cl.submit("f", f"bg{i}".encode(), background=True).handle]
        server.kill()
        server.start()
        assert status(server)["f"][0] == len(acked)  # replayed
        w = start_raw_worker(server, log, "f")
        wait_until(lambda: status(server)["f"][:2] == (0, 0), "the replayed jobs to run", timeout=20)
        ran = {r["payload"] for r in worker_log(log) if r["op"] == "done"}
        assert set(acked) <= ran, f"lost: {sorted(set(acked) - ran)}"
        assert "Traceback" not in server.log()
    finally:
        if w is not None:
            stop_procs(w)
        server.stop()


TASKS = """
from gearpy.worker import task

@task()
def rev(job, payload):
    return payload[::-1]
"""


def test_gearpy_worker_is_back_after_server_restart(tmp_path):
    server = ServerProcess(gearpy_server_argv()).start()
    (tmp_path / "revtasks.py").write_text(TASKS)
    argv = [sys.executable, "-m", "gearpy.worker", "-s", server.address, "--log-level", "WARNING"]
    worker = subprocess.Popen([*argv, "revtasks"], cwd=tmp_path, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: status(server).get("rev", (0, 0, 0))[2] == 1, "the gearpy worker", timeout=15)
        server.kill()
        server.start()
        # submitted right after the restart; the worker must be back and serve it (bounded wait)
        with Client([server.address], timeout=15) as cl:
            assert cl.submit("rev", b"abc").result(15) == b"cba"
        assert worker.poll() is None
    finally:
        stop_procs(worker)
        server.stop()


def test_client_fails_over_to_the_second_server(make_server, tmp_path):
    dead = ServerProcess(gearpy_server_argv()).start()
    dead.kill()  # was a server, now a closed port
    never = f"127.0.0.1:{free_port()}"
    alive = make_server()
    w = start_raw_worker(alive, tmp_path / "w.log", "f")
    try:
        with Client([dead.address, never, alive.address], timeout=20) as cl:
            assert cl.submit("f", b"x").result(20) == b"done:x"
            handle = cl.submit("g", b"y", background=True).handle
        assert handle and status(alive)["g"][0] == 1
    finally:
        stop_procs(w)


def test_sigstopped_worker_keeps_its_job_until_sigcont(make_server, tmp_path):
    server = make_server()
    log = tmp_path / "w.log"
    w = start_raw_worker(server, log, "f")
    try:
        c = connect(server, timeout=30)
        c.sendall(encode_request(T.SUBMIT_JOB, b"f", b"", b"sleep:0.5:stopped"))
        [created] = read_packets(c, 1)
        wait_until(lambda: starts(log, "sleep:0.5:stopped"), "the job to start", timeout=10)
        w.send_signal(signal.SIGSTOP)
        time.sleep(2)
        assert status(server)["f"][:2] == (1, 1)  # still assigned, not lost nor duplicated
        w.send_signal(signal.SIGCONT)
        [done] = read_packets(c, 1, timeout=15)
        assert done == Packet(T.WORK_COMPLETE, (created.args[0], b"done:sleep:0.5:stopped"), False)
        assert len(starts(log, "sleep:0.5:stopped")) == 1
        c.close()
    finally:
        w.send_signal(signal.SIGCONT)
        stop_procs(w)
