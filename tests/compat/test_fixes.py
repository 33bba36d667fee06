"""Where gearpy.compat.gearman does the sane thing and python-gearman did not, on live servers."""

from __future__ import annotations

import socket
import threading

import pytest

from gearpy.compat import gearman
from gearpy.testing import ServerProcess, gearpy_server_argv

from support.waits import wait_for_worker


class EchoWorker(gearman.GearmanWorker):
    data_encoder = gearman.JSONDataEncoder

    def __init__(self, hosts, stop=None, max_jobs=None):
        super().__init__(hosts)
        self.stop, self.max_jobs = stop, max_jobs
        self.done: list[bytes] = []
        self.failures: list[tuple[object, BaseException]] = []
        self.register_task("echo", self.echo)

    def echo(self, worker, job):
        self.done.append(job.handle)
        return {"echo": job.data}

    def on_job_exception(self, current_job, exc_info):
        self.failures.append((current_job.data, exc_info[1]))
        return super().on_job_exception(current_job, exc_info)

    def after_poll(self, any_activity):
        if self.stop is not None and self.stop.is_set():
            return False
        return self.max_jobs is None or len(self.done) + len(self.failures) < self.max_jobs


def test_coalesced_requests_all_get_the_result(gearman_server, run_thread):
    """Same unique on one connection: one handle; python-gearman completed only the last request
    and then raised on the second WORK_COMPLETE the server sends to that connection."""
    client = gearman.GearmanClient([gearman_server.address])
    client.data_encoder = gearman.JSONDataEncoder
    first = client.submit_job("echo", {"n": 1}, unique="same-unique", wait_until_complete=False)
    second = client.submit_job("echo", {"n": 1}, unique="same-unique", wait_until_complete=False)
    assert first.job.handle == second.job.handle
    worker = EchoWorker([gearman_server.address], max_jobs=1)
    running = run_thread(worker.work, poll_timeout=1.0)
    client.wait_until_jobs_completed([first, second], poll_timeout=30)
    assert [(r.state, r.result) for r in (first, second)] == [(gearman.JOB_COMPLETE, {"echo": {"n": 1}})] * 2
    running.join(30)
    assert len(worker.done) == 1
    # The connection is still in use after the duplicate WORK_COMPLETE for a finished handle.
    third = client.submit_job("echo", {"n": 3}, background=True)
    assert third.state == gearman.JOB_CREATED
    client.shutdown()


def test_undecodable_job_data_goes_to_on_job_exception(gearman_server, run_thread):
    worker = EchoWorker([gearman_server.address], max_jobs=2)
    running = run_thread(worker.work, poll_timeout=1.0)
    wait_for_worker(gearman_server.address, "echo")
    raw = gearman.GearmanClient([gearman_server.address])  # NoopEncoder: sends bytes as they are
    bad = raw.submit_job("echo", b"{not json", poll_timeout=30)
    good = raw.submit_job("echo", b'{"ok": true}', poll_timeout=30)
    running.join(30)
    assert bad.state == gearman.JOB_FAILED
    assert (good.state, good.result) == (gearman.JOB_COMPLETE, b'{"echo":{"ok":true}}')
    [(data, exc)] = worker.failures
    assert data == b"{not json" and isinstance(exc, ValueError)
    raw.shutdown()


def test_result_for_a_lost_connection_is_dropped_not_keyerror(run_thread):
    server = ServerProcess(gearpy_server_argv()).start()
    release = threading.Event()
    started = threading.Event()

    class Blocking(gearman.GearmanWorker):
        def hold(self, worker, job):
            started.set()
            release.wait(30)
            worker.send_job_status(job, 1, 2)
            return b"too late"

    worker = Blocking([server.address])
    worker.register_task("hold", worker.hold)
    running = run_thread(worker.work, poll_timeout=30.0)
    try:
        client = gearman.GearmanClient([server.address])
        client.submit_job("hold", b"", background=True)
        assert started.wait(20)
        server.kill()
        release.set()
        with pytest.raises(gearman.errors.ServerUnavailable):
            running.join(30)
    finally:
        server.stop()


def test_garbage_from_the_server_closes_the_connection():
    """A peer that is not a Gearman server: the connection is dropped as lost, so the request is
    re-sent until ``max_retries`` is used up (python-gearman raised ProtocolError out of the poll
    loop and kept the socket)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"\x00HTTP/1.1 400 Bad Request\r\n\r\n" + b"\x00" * 32)
        conn.recv(65536)  # until the client closes
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = gearman.GearmanClient([f"127.0.0.1:{port}"])
    with pytest.raises(gearman.errors.ExceededConnectionAttempts):
        client.submit_job("f", b"x", poll_timeout=10)
    assert not client.connection_list[0].connected
    t.join(10)
    listener.close()


def test_admin_err_answer_raises(gearman_server):
    admin = gearman.GearmanAdminClient([gearman_server.address])
    with pytest.raises(gearman.errors.ProtocolError, match="UNKNOWN_JOB"):
        admin.cancel_job("H:nope:1")
    assert admin.get_status() == ()  # the connection is still in sync
    admin.shutdown()


def test_worker_on_two_servers(run_thread, tmp_path):
    """Jobs queued on two servers before the worker starts are all taken (one job lock)."""
    servers = [ServerProcess(gearpy_server_argv()).start() for _ in range(2)]
    try:
        clients = [gearman.GearmanClient([s.address]) for s in servers]
        for c in clients:
            c.data_encoder = gearman.JSONDataEncoder
        requests = [
            c.submit_job("echo", {"i": i}, wait_until_complete=False) for i in range(3) for c in clients
        ]
        worker = EchoWorker([s.address for s in servers], max_jobs=6)
        running = run_thread(worker.work, poll_timeout=30.0)
        for c in clients:
            c.wait_until_jobs_completed([r for r in requests if r.job.connection in c.connection_list], 30)
        running.join(30)
        assert sorted(r.result["echo"]["i"] for r in requests) == [0, 0, 1, 1, 2, 2]
    finally:
        for s in servers:
            s.stop()
