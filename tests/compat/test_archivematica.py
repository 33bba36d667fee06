"""python-gearman programs written the way Archivematica's are, run on ``gearpy.compat.gearman``
against gearpy-server and gearmand (the ``gearman_server`` fixture runs each test on both).

The classes below follow Archivematica's code (MCPClient ``client/gearman.py``, MCPServer
``tasks/backends/gearman_backend.py`` and ``rpc_server.py``, dashboard ``contrib/mcp/client.py``)
with only the import changed, and everything runs on plain threads: no gevent, no monkey-patching.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime

import pytest

from gearpy.compat import gearman
from gearpy.compat.gearman.constants import JOB_COMPLETE, JOB_FAILED, JOB_UNKNOWN

from support.compat import JSONDataEncoder
from support.waits import wait_for_worker, wait_until

pytestmark = pytest.mark.slow  # threads, restarts and deadlines: seconds each

SCRIPTS = [f"script{i}_v0.0" for i in range(12)]


class MCPGearmanWorker(gearman.GearmanWorker):
    """MCPClient's worker: JSON, a client id, one task per client script, batches of tasks."""

    data_encoder = JSONDataEncoder

    def __init__(self, hosts, client_scripts, shutdown_event=None, max_jobs_to_process=None):
        super().__init__(hosts)
        self.client_id = f"MCPClient-{os.getpid()}-{threading.get_ident()}"
        self.jobs_processed_count = 0
        self.max_jobs_to_process = max_jobs_to_process
        self.shutdown_event = shutdown_event
        self.exceptions: list[tuple[bytes, BaseException]] = []
        self.set_client_id(self.client_id.encode("ascii"))
        for client_script in client_scripts:
            self.register_task(client_script.encode(), functools.partial(self.handle_job, client_script))

    def handle_job(self, task_name, gearman_worker, gearman_job):
        assert gearman_worker is self and gearman_job.task == task_name.encode()
        results = {}
        for task_uuid, task_data in gearman_job.data["tasks"].items():
            if task_data["arguments"] == "explode":
                raise RuntimeError("client script crashed")
            created = task_data["createdDate"]
            assert isinstance(created, datetime)  # the encoder's tagged type made the round trip
            results[task_uuid] = {
                "exitCode": 0,
                "finishedTimestamp": datetime(2024, 1, 1, 12, 0, 0),
                "stdout": f"{task_name}:{task_data['arguments']}:{gearman_job.unique.decode()}",
            }
        self.jobs_processed_count += 1
        return {"task_results": results}

    def on_job_exception(self, current_job, exc_info):
        self.exceptions.append((current_job.task, exc_info[1]))
        return super().on_job_exception(current_job, exc_info)

    def after_poll(self, any_activity):
        if self.shutdown_event and self.shutdown_event.is_set():
            return False
        if self.max_jobs_to_process is not None and self.jobs_processed_count >= self.max_jobs_to_process:
            return False
        return True


class MCPGearmanClient(gearman.GearmanClient):
    """MCPServer's task client, with its own wait loop built on poll_connections_until_stopped."""

    data_encoder = JSONDataEncoder

    def wait_until_any_job_completed(self, job_requests, poll_timeout=None):
        def continue_while_no_job_completed(any_activity):
            for current_request in job_requests:
                if current_request.complete and current_request.state != JOB_UNKNOWN:
                    return False
            return True

        self.poll_connections_until_stopped(
            self.connection_list, continue_while_no_job_completed, timeout=poll_timeout
        )
        for current_request in job_requests:
            if current_request.complete:
                self.request_to_rotating_connection_queue.pop(current_request, None)
        return job_requests


def submit_batch(client, script, arguments):
    """GearmanTaskBatch.submit: a foreground job with a fresh UUID as unique, max_retries=5."""
    tasks = {
        str(uuid.uuid4()): {"uuid": "x", "createdDate": datetime.now(), "arguments": a, "wants_output": True}
        for a in arguments
    }
    request = client.submit_job(
        task=script.encode(),
        data={"tasks": tasks},
        unique=str(uuid.uuid4()).encode(),
        wait_until_complete=False,
        background=False,
        max_retries=5,
    )
    return request, tasks


def wait_for_results(client, requests):
    """GearmanTaskBackend.wait_for_results: accepted first, then collect as they complete."""
    client.wait_until_jobs_accepted(requests)
    pending = list(requests)
    done = []
    while pending:
        client.wait_until_any_job_completed(pending)
        done += [r for r in pending if r.state in (JOB_COMPLETE, JOB_FAILED)]
        pending = [r for r in pending if r.state not in (JOB_COMPLETE, JOB_FAILED)]
    return done


def test_mcpserver_batches_on_mcpclient_workers(gearman_server, run_thread):
    shutdown = threading.Event()
    workers = [MCPGearmanWorker([gearman_server.address], SCRIPTS, shutdown) for _ in range(2)]
    running = [run_thread(w.work, poll_timeout=1.0) for w in workers]
    wait_for_worker(gearman_server.address, SCRIPTS[-1], count=2)

    admin = gearman.GearmanAdminClient([gearman_server.address])
    listed = {w["client_id"]: w["tasks"] for w in admin.get_workers()}
    for w in workers:
        assert listed[w.client_id] == tuple(sorted(SCRIPTS)) or set(listed[w.client_id]) == set(SCRIPTS)

    def mcpserver_thread(n):
        # One client per executor thread, as MCPServer's thread-local backend.
        client = MCPGearmanClient([gearman_server.address])
        batches = [
            submit_batch(client, SCRIPTS[(n + i) % len(SCRIPTS)], [f"t{n}-{i}-{k}" for k in range(3)])
            for i in range(4)
        ]
        failing, _ = submit_batch(client, SCRIPTS[n], ["ok", "explode"])
        requests = [r for r, _ in batches] + [failing]
        # submit_job always waits for JOB_CREATED (wait_until_complete=False only skips the rest).
        assert all(
            r.state in (gearman.JOB_CREATED, JOB_COMPLETE, JOB_FAILED) and r.job.handle for r in requests
        )
        done = wait_for_results(client, requests)
        client.shutdown()
        return batches, failing, done

    threads = [run_thread(mcpserver_thread, n) for n in range(3)]
    for t in threads:
        batches, failing, done = t.join(60)
        assert len(done) == 5
        for request, tasks in batches:
            assert request.state == JOB_COMPLETE and not request.timed_out
            assert request.job.handle and isinstance(request.job.handle, bytes)
            results = request.result["task_results"]
            assert set(results) == set(tasks)
            unique = request.job.unique.decode()
            for task_uuid, task in tasks.items():
                assert results[task_uuid]["exitCode"] == 0
                assert (
                    results[task_uuid]["stdout"]
                    == f"{request.job.task.decode()}:{task['arguments']}:{unique}"
                )
                assert results[task_uuid]["finishedTimestamp"] == datetime(2024, 1, 1, 12, 0, 0)
        assert failing.state == JOB_FAILED and failing.result is None

    crashed = [e for w in workers for e in w.exceptions]
    assert len(crashed) == 3 and all(str(exc) == "client script crashed" for _, exc in crashed)
    assert sum(w.jobs_processed_count for w in workers) == 12
    shutdown.set()
    for r in running:
        r.join(15)  # after_poll saw the shutdown flag
    assert not any(c.connected for w in workers for c in w.connection_list)
    admin.shutdown()


def test_mcpclient_worker_stops_after_max_jobs(gearman_server, run_thread):
    worker = MCPGearmanWorker([gearman_server.address], SCRIPTS[:2], max_jobs_to_process=3)
    running = run_thread(worker.work, poll_timeout=5.0)
    wait_for_worker(gearman_server.address, SCRIPTS[0])
    client = MCPGearmanClient([gearman_server.address])
    requests = [submit_batch(client, SCRIPTS[i % 2], [f"a{i}"])[0] for i in range(5)]
    client.wait_until_jobs_accepted(requests)
    running.join(30)
    assert worker.jobs_processed_count == 3
    client.wait_until_jobs_completed(requests, poll_timeout=1.0)
    assert sorted(r.state for r in requests) == [JOB_COMPLETE] * 3 + [gearman.JOB_CREATED] * 2
    assert sum(r.timed_out for r in requests) == 2
    # A fresh process (here: worker) picks up what is left, as the MCPClient pool would.
    second = MCPGearmanWorker([gearman_server.address], SCRIPTS[:2], max_jobs_to_process=2)
    run_thread(second.work).join(30)
    client.wait_until_jobs_completed(requests, poll_timeout=10.0)
    assert [r.state for r in requests] == [JOB_COMPLETE] * 5
    client.shutdown()


class RPCServer(gearman.GearmanWorker):
    """MCPServer's RPC API: a worker whose handlers answer the dashboard."""

    data_encoder = JSONDataEncoder

    def __init__(self, hosts, shutdown_event):
        super().__init__(host_list=hosts)
        self.shutdown_event = shutdown_event
        self.register_task(b"getUnitStatus", self._unit_status_handler)
        self.register_task(b"approveJob", self._job_approve_handler)
        self.set_client_id(b"testhost_MCPServer")

    def after_poll(self, any_activity):
        return not self.shutdown_event.is_set()

    def _unit_status_handler(self, worker, job):
        payload = job.data
        if payload["id"] == "missing":
            return {"error": True, "handler": "getUnitStatus", "message": "Unit not found"}
        return {"name": f"unit-{payload['id']}", "jobs": [], "user": payload["user_id"]}

    def _job_approve_handler(self, worker, job):
        raise KeyError(job.data["jobUUID"])  # raise_exc=True: the library reports WORK_FAIL


def rpc_server_loop(worker, shutdown_event, unavailable):
    """rpc_server.start(): work(poll_timeout=5.0), retrying while the server is unavailable."""
    while not shutdown_event.is_set():
        try:
            worker.work(poll_timeout=5.0)
        except gearman.errors.ServerUnavailable as inst:
            unavailable.append(inst)
            time.sleep(1)


class DashboardGearmanClient(gearman.GearmanClient):
    data_encoder = JSONDataEncoder


class RPCTimeoutError(Exception):
    pass


class RPCError(Exception):
    pass


def rpc_sync_call(address, ability, data, timeout=30.0):
    """The dashboard's _rpc_sync_call: one short-lived client per call, blocking with a deadline."""
    client = DashboardGearmanClient([address])
    response = client.submit_job(
        ability, data, background=False, wait_until_complete=True, poll_timeout=timeout
    )
    client.shutdown()
    if response.state == gearman.JOB_CREATED:
        raise RPCTimeoutError(timeout)
    if response.state != JOB_COMPLETE:
        raise RPCError(f"{ability} failed (check the logs)")
    return response.result


def test_dashboard_calls_rpc_server_which_survives_a_server_restart(gearman_server, run_thread):
    shutdown = threading.Event()
    unavailable: list[Exception] = []
    rpc = RPCServer([gearman_server.address], shutdown)
    loop = run_thread(rpc_server_loop, rpc, shutdown, unavailable)
    wait_for_worker(gearman_server.address, "getUnitStatus")

    data = {"id": "u1", "lang": "en", "user_id": 7}
    assert rpc_sync_call(gearman_server.address, "getUnitStatus", data) == {
        "name": "unit-u1",
        "jobs": [],
        "user": 7,
    }
    assert (
        rpc_sync_call(gearman_server.address, "getUnitStatus", {"id": "missing", "lang": "en", "user_id": 7})[
            "error"
        ]
        is True
    )
    with pytest.raises(RPCError):
        rpc_sync_call(gearman_server.address, "approveJob", {"jobUUID": "j1", "chain": "c", "user_id": 7})

    # A deadline that passes while the job waits for a worker: the request is still CREATED.
    client = DashboardGearmanClient([gearman_server.address])
    start = time.monotonic()
    response = client.submit_job("nobodyServesThis", {"x": 1}, wait_until_complete=True, poll_timeout=2.0)
    elapsed = time.monotonic() - start
    client.shutdown()
    assert response.state == gearman.JOB_CREATED and response.timed_out
    assert 1.5 <= elapsed < 10
    with pytest.raises(RPCTimeoutError):
        rpc_sync_call(gearman_server.address, "nobodyServesThis", {"x": 2}, timeout=1.0)

    gearman_server.restart()
    wait_until(lambda: unavailable, "ServerUnavailable in the RPC server loop", 20)
    assert rpc_sync_call(
        gearman_server.address, "getUnitStatus", {"id": "u2", "lang": "en", "user_id": 8}
    ) == {"name": "unit-u2", "jobs": [], "user": 8}
    shutdown.set()
    loop.join(15)


def test_submit_refused_by_server_error_fails_instead_of_hanging(gearman_server):
    """python-gearman leaves a request that got ERROR PENDING forever; here it ends FAILED."""
    admin = gearman.GearmanAdminClient([gearman_server.address])
    client = gearman.GearmanClient([gearman_server.address])
    first = client.submit_job("capped", b"1", background=True)
    assert first.state == gearman.JOB_CREATED and first.complete
    assert admin.send_maxqueue("capped", 1) == "OK"  # (a limit applies to a function that exists)
    start = time.monotonic()
    refused = client.submit_job("capped", b"2", background=True, poll_timeout=30)
    assert time.monotonic() - start < 10
    assert refused.state == JOB_FAILED and not refused.timed_out
    assert refused.server_error is not None and refused.server_error[0] == "QUEUE_ERROR"
    # The connection is still usable afterwards.
    status = client.get_job_status(first, poll_timeout=10)
    assert status.status["known"] is True and status.status["running"] is False
    assert not status.timed_out
    assert [s for s in admin.get_status() if s["task"] == "capped"] == [
        {"task": "capped", "queued": 1, "running": 0, "workers": 0}
    ]
    client.shutdown()
    admin.shutdown()


def test_lost_connection_marks_running_requests_unknown(gearman_server):
    client = gearman.GearmanClient([gearman_server.address])
    bg = client.submit_job("nobody", b"bg", background=True)
    fg = client.submit_job("nobody", b"fg", wait_until_complete=False)
    assert bg.state == fg.state == gearman.JOB_CREATED
    gearman_server.kill()
    with pytest.raises(gearman.errors.ServerUnavailable):
        client.wait_until_jobs_completed([fg])
    assert fg.state == JOB_UNKNOWN  # may or may not have run: never re-sent by the library
    assert bg.state == gearman.JOB_CREATED  # the server accepted it; losing the socket changes nothing
    with pytest.raises(gearman.errors.ServerUnavailable):
        client.submit_job("nobody", b"again", background=True)
    gearman_server.start()
    again = client.submit_job("nobody", b"again", background=True, max_retries=2)
    assert again.state == gearman.JOB_CREATED
    client.shutdown()


def test_admin_client(gearman_server, run_thread):
    shutdown = threading.Event()
    worker = MCPGearmanWorker([gearman_server.address], SCRIPTS[:3], shutdown)
    running = run_thread(worker.work, poll_timeout=1.0)
    wait_for_worker(gearman_server.address, SCRIPTS[2])
    admin = gearman.GearmanAdminClient([gearman_server.address], poll_timeout=10.0)
    assert 0 <= admin.ping_server() < 10
    assert admin.get_version().startswith("OK ")
    assert admin.get_pid() == f"OK {gearman_server.proc.pid}"  # raw answer, as python-gearman
    client = gearman.GearmanClient([gearman_server.address])
    client.submit_job("queued_only", b"x", background=True, unique="admin-unique-1")
    status = {s["task"]: s for s in admin.get_status()}
    assert status["queued_only"] == {"task": "queued_only", "queued": 1, "running": 0, "workers": 0}
    assert status[SCRIPTS[0]]["workers"] == 1
    [me] = [w for w in admin.get_workers() if w["client_id"] == worker.client_id]
    assert (
        set(me["tasks"]) == set(SCRIPTS[:3]) and me["ip"] == "127.0.0.1" and me["file_descriptor"].isdigit()
    )
    jobs = admin.get_jobs()
    assert len(jobs) == 1 and set(jobs[0]) == {"handle", "queued", "canceled", "enabled"}
    assert {"unique": "admin-unique-1"} in admin.get_unique_jobs()
    with pytest.raises(gearman.errors.GearmanError):
        gearman.GearmanAdminClient([gearman_server.address, gearman_server.address])
    shutdown.set()
    running.join(15)
    client.shutdown()
    admin.shutdown()


def test_module_runs_without_gevent():
    """Importing and using the compat module loads no gevent (so nothing asks for monkey-patching)."""
    code = (
        "import sys\n"
        "from gearpy.compat import gearman\n"
        "from gearpy.compat.gearman import errors, constants, job\n"
        "c = gearman.GearmanClient(['127.0.0.1:1'])\n"
        "try:\n"
        "    c.submit_job('f', b'x')\n"
        "except errors.ServerUnavailable:\n"
        "    print('unavailable')\n"
        "print('gevent' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["unavailable", "False"]
