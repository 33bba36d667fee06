"""A gearpy worker serving real clients: the gearman CLI, PHP's GearmanClient and gearpy.client.

Each runs on gearpy-server and on gearmand 1.1.20 (``gearman_server``).
"""

from __future__ import annotations

import subprocess

import pytest

from gearpy.client import Client, submit
from gearpy.errors import JobException, JobFailed

from support.external import require_tool
from support.waits import function_status, wait_for_worker

TIMEOUT = 20.0


@pytest.mark.interop
def test_gearman_cli_client(gearman_server, start_worker):
    gearman = require_tool("gearman")
    start_worker("-s", gearman_server.address, "wtasks")
    wait_for_worker(gearman_server, "upper")
    out = subprocess.run(
        [gearman, "-h", gearman_server.host, "-p", str(gearman_server.port), "-f", "upper"],
        input=b"hello gearman",
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    # WORK_STATUS 1/2 is printed as "50% Complete" by the CLI, then the WORK_COMPLETE payload.
    assert b"HELLO GEARMAN" in out.stdout
    assert b"50% Complete" in out.stdout


@pytest.mark.interop
def test_gearman_cli_sees_fail_without_exceptions(gearman_server, start_worker):
    """--no-exceptions: a raised exception is a bare WORK_FAIL, which libgearman clients understand
    on both servers (gearmand turns WORK_EXCEPTION into a WORK_FAIL they never match)."""
    gearman = require_tool("gearman")
    start_worker("-s", gearman_server.address, "--no-exceptions", "wtasks")
    wait_for_worker(gearman_server, "boom")
    out = subprocess.run(
        [gearman, "-h", gearman_server.host, "-p", str(gearman_server.port), "-f", "boom"],
        input=b"x",
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 1
    assert b"Job failed" in out.stderr


PHP_CLIENT = r"""
$port = (int)$argv[1];
$c = new GearmanClient();
$c->addServer('127.0.0.1', $port);
$c->setTimeout(15000);
$out = [];
$out['upper'] = $c->doNormal('upper', 'from php');
$out['upper_ok'] = $c->returnCode() == GEARMAN_SUCCESS;
$out['add'] = $c->doNormal('add', '{"a": 2, "b": 40}');
$c->doNormal('refuse', 'x');
$out['refuse_failed'] = $c->returnCode() == GEARMAN_WORK_FAIL;
echo json_encode($out);
"""


@pytest.mark.interop
def test_php_client(gearman_server, start_worker):
    php = require_tool("php")
    import json

    check = subprocess.run([php, "-r", "exit(class_exists('GearmanClient') ? 0 : 3);"], timeout=TIMEOUT)
    if check.returncode != 0:
        pytest.skip("PHP has no gearman extension")
    start_worker("-s", gearman_server.address, "wtasks")
    wait_for_worker(gearman_server, "refuse")
    out = subprocess.run(
        [php, "-r", PHP_CLIENT, "--", str(gearman_server.port)], capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["upper"] == "FROM PHP" and got["upper_ok"] is True
    assert json.loads(got["add"]) == {"sum": 42}
    assert got["refuse_failed"] is True


@pytest.mark.slow
def test_outcomes_with_gearpy_client(gearman_server, start_worker):
    start_worker("-s", gearman_server.address, "wtasks")
    wait_for_worker(gearman_server, "too_slow")
    servers = [gearman_server.address]

    assert submit("add", {"a": 1, "b": 2}, servers=servers, codec="json", timeout=TIMEOUT) == {"sum": 3}

    with pytest.raises(JobException) as exc:
        submit("boom", b"42", servers=servers, timeout=TIMEOUT)
    assert exc.value.payload == b"ValueError: bad input 42"

    with pytest.raises(JobFailed):
        submit("refuse", b"", servers=servers, timeout=TIMEOUT)

    # Retried locally twice (attempts 0 and 1 raise), so the client only sees the success.
    assert submit("flaky", b"", servers=servers, timeout=TIMEOUT) == b"ok after 2 retries"

    with pytest.raises(JobException) as exc:
        submit("too_slow", b"", servers=servers, timeout=TIMEOUT)
    assert exc.value.payload.startswith(b"TaskTimeout: task 'too_slow' exceeded its timeout")


def test_job_context_events(gearman_server, start_worker):
    start_worker("-s", gearman_server.address, "wtasks")
    wait_for_worker(gearman_server, "events")
    with Client([gearman_server.address], codec="json") as client:
        job = client.submit("events", {"n": 1}, unique="u-123")
        result = job.result(TIMEOUT)
        events = [(e.kind, e.data, e.numerator, e.denominator) for e in job.events(TIMEOUT)]
    assert result == {"function": "events", "unique": "u-123", "raw": '{"n":1}', "got": {"n": 1}}
    assert events == [
        ("progress", b"", 1, 3),
        ("data", b'{"chunk":1}', 0, 0),
        ("warning", b"careful", 0, 0),
        ("progress", b"", 3, 3),
    ]


def test_timeout_is_announced_with_can_do_timeout(gearmand_server, start_worker, workdir):
    """The worker announces CAN_DO_TIMEOUT with a grace period over its own timer, so its timer fires
    first and the job fails once, instead of gearmand requeueing it silently to run again."""
    start_worker("-s", gearmand_server.address, "-f", "too_slow", "wtasks")
    wait_for_worker(gearmand_server, "too_slow")
    with pytest.raises(JobException):
        submit("too_slow", b"", servers=[gearmand_server.address], timeout=TIMEOUT)
    # Ran exactly once: a server-side requeue would have started it a second time.
    assert len(list(workdir.glob("slow-started-*"))) == 1
    assert function_status(gearmand_server, "too_slow")[0] == 0


def test_event_values_decode_by_the_documented_rule(gearpy_server, start_worker):
    """``event.value``: a WORK_DATA chunk decoded with the job's codec (the task encoded it with its
    own), a warning as text, progress as a pair; ``event.data`` stays the bytes sent."""
    start_worker("-s", gearpy_server.address, "wtasks")
    wait_for_worker(gearpy_server, "events")
    seen = []
    with Client([gearpy_server.address], codec="json") as client:
        job = client.submit("events", {"n": 2}, on_data=lambda ev: seen.append(ev.value))
        job.result(TIMEOUT)
        values = [(e.kind, e.value) for e in job.events(TIMEOUT)]
    assert values == [
        ("progress", (1, 3)),
        ("data", {"chunk": 1}),
        ("warning", "careful"),
        ("progress", (3, 3)),
    ]
    assert seen == [{"chunk": 1}]
