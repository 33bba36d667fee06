"""Worker processes coming and going: keys, SIGKILL, SIGTERM, server restart, recycling, prefork."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gearpy.client import submit
from gearpy.worker.config import EXIT_HARD_STOP, EXIT_OK, EXIT_RECYCLED

from support.waits import function_status, wait_for_worker, wait_until

pytestmark = pytest.mark.slow

TIMEOUT = 30.0


def started(workdir: Path, payload: str) -> list[Path]:
    return list(workdir.glob(f"started-*-{payload}"))


def started_by(workdir: Path, pid: int, payload: str) -> bool:
    return (workdir / f"started-{pid}-{payload}").exists()


def test_two_keys_on_one_server_stay_apart(gearman_server, start_worker):
    start_worker("-s", gearman_server.address, "--key", "site1", "wtasks", env={"WTEST_NAME": "one"})
    start_worker("-s", gearman_server.address, "--key", "site2", "wtasks", env={"WTEST_NAME": "two"})
    wait_for_worker(gearman_server, "site1-whoami")
    wait_for_worker(gearman_server, "site2-whoami")
    servers = [gearman_server.address]
    for _ in range(5):
        assert submit("whoami", b"", key="site1", servers=servers, timeout=TIMEOUT).startswith(b"one:")
        assert submit("whoami", b"", key="site2", servers=servers, timeout=TIMEOUT).startswith(b"two:")
    # Nobody serves the bare name: a job without the key would wait forever.
    assert function_status(gearman_server, "whoami") is None


def test_workers_key_from_environment_and_config(gearmand_server, start_worker, workdir):
    cfg = workdir / "gearpy.yml"
    cfg.write_text(f"servers: ['{gearmand_server.address}']\nworkers_key: fromfile\n")
    start_worker("--config", str(cfg), "wtasks")
    start_worker("--config", str(cfg), "wtasks", env={"GEARPY_WORKERS_KEY": "fromenv"})
    wait_for_worker(gearmand_server, "fromfile-upper")
    wait_for_worker(gearmand_server, "fromenv-upper")


def test_sigkill_mid_job_another_worker_completes_it(gearman_server, start_worker, workdir):
    first = start_worker("-s", gearman_server.address, "-f", "hold", "wtasks")
    wait_for_worker(gearman_server, "hold")
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(submit, "hold", b"job1", servers=[gearman_server.address], timeout=TIMEOUT * 2)
        wait_until(lambda: started_by(workdir, first.pid, "job1"), "the first worker to start the job")
        second = start_worker("-s", gearman_server.address, "-f", "hold", "wtasks")
        wait_for_worker(gearman_server, "hold", 2)
        first.signal(signal.SIGKILL)
        first.wait()
        wait_until(
            lambda: started_by(workdir, second.pid, "job1"), "the second worker to get the requeued job"
        )
        (workdir / "release").write_text("go")
        assert fut.result(TIMEOUT) == f"done:job1:{second.pid}".encode()


def test_sigterm_mid_job_finishes_it_and_exits_0(gearman_server, start_worker, workdir):
    worker = start_worker("-s", gearman_server.address, "-c", "2", "wtasks")
    wait_for_worker(gearman_server, "hold")
    servers = [gearman_server.address]
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(submit, "hold", b"job1", servers=servers, timeout=TIMEOUT)
        wait_until(lambda: started(workdir, "job1"), "the job to start")
        worker.signal(signal.SIGTERM)
        wait_until(lambda: "no more grabs" in worker.log(), "the worker to begin its warm shutdown")
        # A job submitted now must not be taken although a concurrency slot is free.
        submit("upper", b"later", background=True, servers=servers, timeout=TIMEOUT)
        (workdir / "release").write_text("go")
        assert fut.result(TIMEOUT) == f"done:job1:{worker.pid}".encode()
    assert worker.wait() == EXIT_OK
    assert function_status(gearman_server, "upper")[0] == 1


def test_second_signal_is_a_hard_stop(gearman_server, start_worker, workdir):
    worker = start_worker("-s", gearman_server.address, "-f", "hold", "wtasks")
    wait_for_worker(gearman_server, "hold")
    submit("hold", b"bg", background=True, servers=[gearman_server.address], timeout=TIMEOUT)
    wait_until(lambda: started(workdir, "bg"), "the job to start")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "no more grabs" in worker.log(), "the warm shutdown")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == EXIT_HARD_STOP
    # The server requeued the abandoned job.
    wait_until(lambda: function_status(gearman_server, "hold") == (1, 0, 0), "the job to be requeued")


def test_shutdown_timeout_abandons_running_jobs(gearman_server, start_worker, workdir):
    worker = start_worker("-s", gearman_server.address, "--shutdown-timeout", "0.2", "-f", "hold", "wtasks")
    wait_for_worker(gearman_server, "hold")
    submit("hold", b"bg", background=True, servers=[gearman_server.address], timeout=TIMEOUT)
    wait_until(lambda: started(workdir, "bg"), "the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == EXIT_HARD_STOP
    assert "abandoning" in worker.log()


def test_server_restart_worker_reregisters(gearman_server, start_worker):
    start_worker("-s", gearman_server.address, "wtasks")
    wait_for_worker(gearman_server, "upper")
    servers = [gearman_server.address]
    assert submit("upper", b"before", servers=servers, timeout=TIMEOUT) == b"BEFORE"
    gearman_server.restart()
    wait_for_worker(gearman_server, "upper")
    assert submit("upper", b"after", servers=servers, timeout=TIMEOUT) == b"AFTER"


def test_takes_work_from_every_server(gearpy_server, gearmand_server, start_worker):
    start_worker("-s", gearpy_server.address, "-s", gearmand_server.address, "wtasks")
    for server in (gearpy_server, gearmand_server):
        wait_for_worker(server, "upper")
        assert submit("upper", server.address.encode(), servers=[server.address], timeout=TIMEOUT) == (
            server.address.upper().encode()
        )


def test_max_jobs_recycles_single_process(gearman_server, start_worker):
    worker = start_worker("-s", gearman_server.address, "--max-jobs", "2", "-c", "3", "-f", "upper", "wtasks")
    wait_for_worker(gearman_server, "upper")
    servers = [gearman_server.address]
    for i in range(3):
        submit("upper", f"j{i}".encode(), background=True, servers=servers, timeout=TIMEOUT)
    assert worker.wait() == EXIT_RECYCLED
    # Exactly two jobs were taken; the third is still queued for the next process.
    wait_until(lambda: function_status(gearman_server, "upper") == (1, 0, 0), "one job left in the queue")


def test_prefork_replaces_recycled_and_killed_children(gearman_server, start_worker):
    parent = start_worker("-s", gearman_server.address, "--processes", "1", "--max-jobs", "1", "wtasks")
    wait_for_worker(gearman_server, "whoami")
    servers = [gearman_server.address]
    pids = []
    for _ in range(2):
        pid = int(submit("whoami", b"", servers=servers, timeout=TIMEOUT).split(b":")[1])
        pids.append(pid)
    assert pids[0] != pids[1] and parent.pid not in pids

    # Kill the current (third) child outright: the parent starts another one.
    def new_child() -> int | None:
        with open(f"/proc/{parent.pid}/task/{parent.pid}/children") as f:
            kids = [int(p) for p in f.read().split() if int(p) not in pids]
        return kids[0] if len(kids) == 1 else None

    child = wait_until(new_child, "the parent to start a third child")
    os.kill(child, signal.SIGKILL)
    third = int(submit("whoami", b"", servers=servers, timeout=TIMEOUT).split(b":")[1])
    assert third not in (*pids, child)
    parent.signal(signal.SIGTERM)
    assert parent.wait() == EXIT_OK, parent.log()
    assert "exited with -9" in parent.log()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_never_grabs_more_than_concurrency(gearman_server, start_worker, workdir, concurrency):
    start_worker("-s", gearman_server.address, "-c", str(concurrency), "-f", "hold", "wtasks")
    wait_for_worker(gearman_server, "hold")
    servers = [gearman_server.address]
    for i in range(concurrency + 2):
        submit("hold", f"c{i}".encode(), background=True, servers=servers, timeout=TIMEOUT)
    wait_until(lambda: len(list(workdir.glob("started-*"))) == concurrency, f"{concurrency} jobs running")
    wait_until(
        lambda: function_status(gearman_server, "hold") == (concurrency + 2, concurrency, 1),
        "the server to show the extra jobs still queued",
    )
    (workdir / "release").write_text("go")
    wait_until(lambda: function_status(gearman_server, "hold")[0] == 0, "every job done")


def test_max_memory_recycles(gearman_server, start_worker):
    # Any Python process is above 1 MiB resident, so the first finished job triggers the recycle.
    worker = start_worker("-s", gearman_server.address, "--max-memory", "1", "wtasks")
    wait_for_worker(gearman_server, "upper")
    assert submit("upper", b"m", servers=[gearman_server.address], timeout=TIMEOUT) == b"M"
    assert worker.wait() == EXIT_RECYCLED
    assert "above --max-memory" in worker.log()


def test_worker_started_before_the_server_connects_when_it_appears(gearpy_server, start_worker):
    gearpy_server.stop()
    worker = start_worker("-s", gearpy_server.address, "wtasks")
    wait_until(lambda: "cannot connect" in worker.log(), "a failed connection attempt")
    gearpy_server.start()
    wait_for_worker(gearpy_server, "upper")
    assert submit("upper", b"late", servers=[gearpy_server.address], timeout=TIMEOUT) == b"LATE"


def test_sigterm_while_the_server_is_down_exits_0(gearpy_server, start_worker):
    worker = start_worker("-s", gearpy_server.address, "wtasks")
    wait_for_worker(gearpy_server, "upper")
    gearpy_server.kill()
    wait_until(lambda: "reconnecting" in worker.log(), "the worker to notice the lost server")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == EXIT_OK


def test_client_id_and_json_logs(gearman_server, start_worker):
    import json

    from gearpy.client import Admin

    worker = start_worker(
        "-s", gearman_server.address, "--client-id", "report-box-1", "--log-format", "json", "wtasks"
    )
    wait_for_worker(gearman_server, "upper")
    with Admin(gearman_server.address, timeout=5) as admin:
        mine = [w for w in admin.workers() if w.client_id == "report-box-1"]
    assert len(mine) == 1 and {"upper", "hold", "whoami"} <= set(mine[0].functions)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == EXIT_OK
    records = [json.loads(line) for line in worker.log().splitlines() if line.strip()]
    assert any(r["message"].startswith("connected to") for r in records)


def test_prefork_sigterm_mid_job_lets_children_finish(gearman_server, start_worker, workdir):
    parent = start_worker("-s", gearman_server.address, "--processes", "2", "-f", "hold", "wtasks")
    wait_for_worker(gearman_server, "hold", 2)
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(submit, "hold", b"pf", servers=[gearman_server.address], timeout=TIMEOUT)
        wait_until(lambda: started(workdir, "pf"), "a child to start the job")
        parent.signal(signal.SIGTERM)
        wait_until(lambda: "asking 2 worker process(es)" in parent.log(), "the parent to forward the stop")
        (workdir / "release").write_text("go")
        assert fut.result(TIMEOUT).startswith(b"done:pf:")
    assert parent.wait() == EXIT_OK, parent.log()
