"""PHP's gearman extension (libgearman-based) as client and worker, on gearpy-server and gearmand."""

from __future__ import annotations

import json
import subprocess

import pytest

from gearpy.protocol import PacketType

pytestmark = pytest.mark.interop

T = PacketType

WORKER = r"""
$port = (int)$argv[1]; $n = (int)$argv[2];
$w = new GearmanWorker();
$w->addServer('127.0.0.1', $port);
$w->setTimeout(15000);
$w->addFunction('rev', function ($job) { return strrev($job->workload()); });
$w->addFunction('progress', function ($job) {
    $job->sendStatus(1, 2);
    $job->sendData('partial');
    $job->sendStatus(2, 2);
    return 'done:' . $job->workload();
});
$w->addFunction('boom', function ($job) { $job->sendFail(); return null; });
for ($i = 0; $i < $n; $i++) {
    if (!@$w->work()) { fwrite(STDERR, "work() ended: " . $w->returnCode() . "\n"); exit(2); }
}
echo "worked $n\n";
"""

CLIENT = r"""
$port = (int)$argv[1];
$c = new GearmanClient();
$c->addServer('127.0.0.1', $port);
$c->setTimeout(15000);
$out = [];
$out['normal'] = [$c->doNormal('rev', 'hello'), $c->returnCode() == GEARMAN_SUCCESS];
$out['high'] = [$c->doHigh('rev', 'abc'), $c->returnCode() == GEARMAN_SUCCESS];
$out['low'] = [$c->doLow('rev', 'xyz'), $c->returnCode() == GEARMAN_SUCCESS];
$out['unique'] = [$c->doNormal('rev', 'uniq', 'my-unique-id'), $c->returnCode() == GEARMAN_SUCCESS];
$c->doNormal('boom', 'x');
$out['fail'] = $c->returnCode() == GEARMAN_WORK_FAIL;
$events = [];
$c->setStatusCallback(function ($t) use (&$events) {
    $events[] = ['status', $t->taskNumerator(), $t->taskDenominator()];
});
$c->setDataCallback(function ($t) use (&$events) { $events[] = ['data', $t->data()]; });
$c->setCompleteCallback(function ($t) use (&$events) { $events[] = ['complete', $t->data()]; });
$c->setFailCallback(function ($t) use (&$events) { $events[] = ['fail']; });
$c->addTask('progress', 'p1');
$out['run'] = $c->runTasks();
$out['events'] = $events;
$h = $c->doBackground('nobody', 'queued', 'bg-unique');
$out['bg_ok'] = $c->returnCode() == GEARMAN_SUCCESS;
$out['bg_handle'] = $h;
$out['bg_status'] = $c->jobStatus($h);
$out['unknown_status'] = $c->jobStatus('H:nope:1');
$out['bg_high'] = $c->doHighBackground('nobody', 'h') != '';
$out['bg_low'] = $c->doLowBackground('nobody', 'l') != '';
echo json_encode($out);
"""


def test_php_client_and_worker(gearman_server, php, procs, session):
    port = str(gearman_server.port)
    worker = procs([php, "-r", WORKER, "--", port, "6"])
    session(gearman_server).wait_admin(b"status\n", b"boom\t0\t0\t1\n")
    r = subprocess.run([php, "-r", CLIENT, "--", port], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["normal"] == ["olleh", True]
    assert out["high"] == ["cba", True]
    assert out["low"] == ["zyx", True]
    assert out["unique"] == ["qinu", True]
    assert out["fail"] is True
    assert out["run"] is True
    assert out["events"] == [
        ["status", 1, 2],
        ["data", "partial"],
        ["status", 2, 2],
        ["complete", "done:p1"],
    ]
    assert out["bg_ok"] is True and out["bg_handle"].startswith("H:")
    assert out["bg_status"] == [True, False, 0, 0]
    assert out["unknown_status"] == [False, False, 0, 0]
    assert out["bg_high"] is True and out["bg_low"] is True
    stdout, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert stdout == b"worked 6\n"
    a = session(gearman_server)
    assert a.admin(b"prioritystatus\n").count(b"nobody\t1\t1\t1\t0\n") == 1
    assert b"bg-unique\n" in a.admin(b"show unique jobs\n")
    assert "Traceback" not in gearman_server.log()


def test_php_worker_job_status_seen_by_raw_client(gearman_server, php, procs, session):
    """A PHP worker's sendStatus/sendData reach a session client byte for byte."""
    port = str(gearman_server.port)
    procs([php, "-r", WORKER, "--", port, "1"])
    session(gearman_server).wait_admin(b"status\n", b"progress\t0\t0\t1\n")
    c = session(gearman_server)
    c.send(T.SUBMIT_JOB, b"progress", b"", b"raw")
    pkts = []
    for _ in range(500):
        if pkts and pkts[-1].kind == T.WORK_COMPLETE:
            break
        pkts += [p for p in c.call(T.ECHO_REQ, b"") if p.kind != T.ECHO_RES]
    h = pkts[0].args[0]
    assert [(p.kind, p.args) for p in pkts] == [
        (T.JOB_CREATED, (h,)),
        (T.WORK_STATUS, (h, b"1", b"2")),
        (T.WORK_DATA, (h, b"partial")),
        (T.WORK_STATUS, (h, b"2", b"2")),
        (T.WORK_COMPLETE, (h, b"done:raw")),
    ]


TWO_TASKS_ONE_UNIQUE = r"""
$c = new GearmanClient();
$c->addServer('127.0.0.1', (int)$argv[1]);
$c->setTimeout(15000);
$done = [];
$c->setCompleteCallback(function ($t) use (&$done) { $done[] = $t->data(); });
$c->addTask('rev', 'abc', null, 'same-unique');
$c->addTask('rev', 'abc', null, 'same-unique');
echo json_encode(['run' => $c->runTasks(), 'done' => $done]);
"""


def test_php_two_tasks_with_one_unique_both_complete(gearman_server, php, procs, session):
    """One job for both tasks (coalesced), and a result for each: the server attaches the
    connection once (issue 18.1) but answers it once per submit, as gearmand does."""
    port = str(gearman_server.port)
    procs([php, "-r", WORKER, "--", port, "1"])
    session(gearman_server).wait_admin(b"status\n", b"rev\t0\t0\t1\n")
    r = subprocess.run([php, "-r", TWO_TASKS_ONE_UNIQUE, "--", port], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"run": True, "done": ["cba", "cba"]}
