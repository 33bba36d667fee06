"""A worker refuses to send a result above its max_packet_size and fails the job (issue 17 item 2).

Sent anyway, a result the server refuses costs the worker its connection, and the server requeues
the job to be run, and refused, again. Failing it (WORK_FAIL, logged) ends the job once.
"""

from __future__ import annotations

import re

import pytest

from gearpy.client import Client
from gearpy.errors import JobException, JobFailed

from support.waits import function_status, wait_for_worker, wait_until

BIG_TASKS = r"""
from gearpy.worker import task


@task
def big(job, payload):
    return b"r" * int(payload)


@task
def big_data(job, payload):
    job.data(b"d" * int(payload))
    return b"after data"
"""


@pytest.mark.timeout(120)
def test_oversized_result_fails_the_job_once(gearpy_server, start_worker, workdir):
    (workdir / "bigtasks.py").write_text(BIG_TASKS)
    worker = start_worker("-s", gearpy_server.address, "bigtasks", env={"GEARPY_MAX_PACKET_SIZE": "1048576"})
    wait_for_worker(gearpy_server, "big")
    with Client([gearpy_server.address]) as client:
        assert client.submit("big", b"1000", timeout=30).result(30) == b"r" * 1000
        with pytest.raises(JobFailed):
            client.submit("big", b"2000000", timeout=30).result(30)
        # WORK_DATA above the limit raises in the task, which then ends in WORK_EXCEPTION.
        with pytest.raises((JobException, JobFailed)):
            client.submit("big_data", b"2000000", timeout=30).result(30)
        assert client.submit("big", b"10", timeout=30).result(30) == b"r" * 10  # same connection
    wait_until(lambda: function_status(gearpy_server, "big") == (0, 0, 1), "no job left for 'big'")
    log = worker.log()
    assert "exceeds max_packet_size 1048576" in log
    assert len(re.findall(r"WORK_COMPLETE body of 20000\d\d bytes", log)) == 1  # failed once, not requeued
