"""CAN_DO_TIMEOUT as Perl's Gearman::Worker and PHP's GearmanWorker::addFunction mean it.

Perl's own tests (t/14-sleep.t) and PHP's manual give the timeout in seconds; gearmand >= 1.1.19
reads milliseconds. gearpy-server reads milliseconds unless ``--can-do-timeout-unit s``. A job that
outlives its timeout fails; the result the worker sends afterwards is dropped (logged and counted)
instead of answered with ERROR JOB_NOT_FOUND, so these workers live on and take the next job.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

from gearpy.client import Client
from gearpy.errors import JobFailed
from gearpy.testing import ServerProcess, free_port

from support.waits import wait_for_worker

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PERL_WORKER = r"""
use strict; use warnings;
use Gearman::Worker;
$| = 1;
my ($port) = @ARGV;
my $done = 0;
my $w = Gearman::Worker->new(job_servers => ["127.0.0.1:$port"]);
$w->register_function(slow => 3, sub { sleep 8; $done++; return "slow done"; });
$w->register_function(quick => sub { $done++; return "quick:" . $_[0]->arg; });
$w->work(stop_if => sub { $done >= 2 });
print "worked $done\n";
"""

PHP_WORKER = r"""
$port = (int)$argv[1]; $timeout = (int)$argv[2];
$w = new GearmanWorker();
$w->addServer('127.0.0.1', $port);
$w->addFunction('slow', function ($job) { sleep(8); return 'slow done'; }, null, $timeout);
$w->addFunction('quick', function ($job) { return 'quick:' . $job->workload(); });
for ($i = 0; $i < 2; $i++) {
    if (!@$w->work()) { fwrite(STDERR, "work() ended: " . $w->returnCode() . "\n"); exit(2); }
}
echo "worked 2\n";
"""


def _late_results(mport: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line.startswith("gearpy_late_results_dropped_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('"')[1]] = float(value)
    return out


def _run_slow_then_quick(server: ServerProcess, mport: int, worker) -> float:
    """Submit ``slow`` (fails at the timeout), wait for the worker's late result, then ``quick``."""
    with Client([server.address]) as client:
        wait_for_worker(server.address, "slow")
        start = time.monotonic()
        job = client.submit("slow", b"x")
        with pytest.raises(JobFailed):
            job.result(30)
        elapsed = time.monotonic() - start
        # The worker finishes its 8 s sleep and sends WORK_COMPLETE for the job that timed out.
        deadline = time.monotonic() + 30
        while not _late_results(mport) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _late_results(mport) == {"WORK_COMPLETE": 1.0}
        # ... and is still alive: it takes the next job.
        assert client.submit("quick", b"ok").result(30) == b"quick:ok"
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert b"worked 2" in out
    assert b"JOB_NOT_FOUND" not in err and b"unexpected packet" not in err
    assert server.log().count("the job had already timed out") == 1
    return elapsed


def _timeout_server(make_server, *args: str) -> tuple[ServerProcess, int]:
    """gearpy-server with --metrics (to read gearpy_late_results_dropped_total) and ``args``."""
    mport = free_port()
    return make_server("--metrics", f"127.0.0.1:{mport}", *args), mport


def test_perl_worker_timeout_in_seconds(make_server, perl, procs):
    server, mport = _timeout_server(make_server, "--can-do-timeout-unit", "s")
    worker = procs([perl, "-e", PERL_WORKER, str(server.port)])
    elapsed = _run_slow_then_quick(server, mport, worker)
    # register_function(slow => 3): three seconds, not the 1 s floor of "3 ms", not the 8 s sleep.
    assert 2.5 <= elapsed < 7.0


@pytest.mark.parametrize(("unit", "timeout"), [("s", "3"), ("ms", "3000")])
def test_php_worker_timeout(make_server, php, procs, unit, timeout):
    args = ("--can-do-timeout-unit", unit) if unit == "s" else ()
    server, mport = _timeout_server(make_server, *args)
    worker = procs([php, "-r", PHP_WORKER, "--", str(server.port), timeout])
    elapsed = _run_slow_then_quick(server, mport, worker)
    assert 2.5 <= elapsed < 7.0
