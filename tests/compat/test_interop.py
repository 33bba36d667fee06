"""``gearpy.compat.gearman`` talking to other Gearman code: gearpy's own client and worker, PHP's
gearman extension (libgearman), and a TLS server that verifies both sides."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from gearpy.compat import gearman

from support.waits import wait_for_worker

ROOT = Path(__file__).resolve().parents[2]


class ReverseWorker(gearman.GearmanWorker):
    """Serves ``compat_rev`` (with progress and data updates) and ``compat_boom`` (raises)."""

    def __init__(self, hosts, stop: threading.Event):
        super().__init__(hosts)
        self.stop = stop
        self.set_client_id("compat-worker")
        self.register_task("compat_rev", self.rev)
        self.register_task(b"compat_boom", self.boom)

    def rev(self, worker, job):
        worker.send_job_status(job, 1, 2)
        worker.send_job_data(job, b"half")
        worker.send_job_warning(job, b"careful")
        worker.send_job_status(job, 2, 2)
        return job.data[::-1]

    def boom(self, worker, job):
        raise ValueError("boom")

    def after_poll(self, any_activity):
        return not self.stop.is_set()


@pytest.fixture
def compat_worker(run_thread):
    stop = threading.Event()
    started = []

    def start(address: str, hosts=None) -> ReverseWorker:
        w = ReverseWorker(hosts or [address], stop)
        started.append(run_thread(w.work, poll_timeout=0.5))
        if hosts is None:  # (a TLS server: the tests' submits wait for the worker themselves)
            wait_for_worker(address, "compat_rev")
        return w

    yield start
    stop.set()
    for r in started:
        r.join(15)


def test_compat_client_with_gearpy_worker(gearpy_server, gearpy_worker):
    gearpy_worker(str(ROOT / "examples" / "tasks.py"))
    wait_for_worker(gearpy_server.address, "add")
    client = gearman.GearmanClient([gearpy_server.address])
    req = client.submit_job("reverse", b"hello", poll_timeout=30)
    assert (req.state, req.result) == (gearman.JOB_COMPLETE, b"olleh")

    class JSONClient(gearman.GearmanClient):
        data_encoder = gearman.JSONDataEncoder

    jc = JSONClient([gearpy_server.address])
    reqs = jc.submit_multiple_jobs(
        [{"task": "add", "data": {"a": i, "b": 1}, "priority": gearman.PRIORITY_HIGH} for i in range(3)],
        poll_timeout=30,
    )
    assert [r.result for r in reqs] == [{"sum": 1}, {"sum": 2}, {"sum": 3}]
    assert all(r.status["numerator"] == 2 and r.status["denominator"] == 2 for r in reqs)
    client.shutdown()
    jc.shutdown()


def test_gearpy_client_with_compat_worker(gearpy_server, compat_worker):
    from gearpy.client import Client
    from gearpy.errors import JobException, JobFailed

    compat_worker(gearpy_server.address)
    with Client([gearpy_server.address]) as c:
        events = []
        job = c.submit(
            "compat_rev", b"abc", on_data=events.append, on_warning=events.append, on_progress=events.append
        )
        assert job.result(30) == b"cba"
        kinds = [(e.kind, e.data if e.data else (e.numerator, e.denominator)) for e in events]
        assert kinds == [
            ("progress", (1, 2)),
            ("data", b"half"),
            ("warning", b"careful"),
            ("progress", (2, 2)),
        ]
        with pytest.raises((JobFailed, JobException)):
            c.submit("compat_boom", b"x").result(30)
        assert c.submit("compat_rev", b"", background=True).handle


@pytest.mark.parametrize("direction", ["php-client", "php-worker"])
def test_php_interop(gearman_server, php, procs, compat_worker, direction):
    port = str(gearman_server.port)
    if direction == "php-client":
        compat_worker(gearman_server.address)
        script = r"""
            $c = new GearmanClient(); $c->addServer('127.0.0.1', (int)$argv[1]); $c->setTimeout(20000);
            $r = $c->doNormal('compat_rev', 'hello'); $ok = $c->returnCode() == GEARMAN_SUCCESS;
            $c->doNormal('compat_boom', 'x'); $failed = $c->returnCode() == GEARMAN_WORK_FAIL;
            echo json_encode([$r, $ok, $failed]);
        """
        out = subprocess.run([php, "-r", script, "--", port], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        # libgearman's doNormal prepends the WORK_DATA chunks it received to the result.
        assert out.stdout == '["halfolleh",true,true]'
        return
    worker = procs(
        [
            php,
            "-r",
            r"""
        $w = new GearmanWorker(); $w->addServer('127.0.0.1', (int)$argv[1]); $w->setTimeout(20000);
        $w->addFunction('php_upper', function ($job) {
            $job->sendStatus(1, 1); return strtoupper($job->workload());
        });
        $w->addFunction('php_fail', function ($job) { $job->sendFail(); return null; });
        for ($i = 0; $i < 2; $i++) { if (!@$w->work()) { exit(2); } }
        echo "worked 2\n";
    """,
            "--",
            port,
        ]
    )
    wait_for_worker(gearman_server.address, "php_fail")
    client = gearman.GearmanClient([gearman_server.address])
    up, fail = client.submit_multiple_jobs(
        [{"task": "php_upper", "data": "héllo"}, {"task": b"php_fail", "data": b""}], poll_timeout=30
    )
    assert (up.state, up.result) == (
        gearman.JOB_COMPLETE,
        "HéLLO".encode(),
    )
    assert up.status["numerator"] == 1
    assert fail.state == gearman.JOB_FAILED
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0 and out == b"worked 2\n", err
    client.shutdown()


def test_tls_host_dicts_verify_the_server(tls_server, pki, compat_worker):
    host = {
        "host": "127.0.0.1",
        "port": tls_server.port,
        "keyfile": str(pki.client_key),
        "certfile": str(pki.client_cert),
        "ca_certs": str(pki.ca),
    }
    compat_worker(tls_server.address, hosts=[host])
    client = gearman.GearmanClient([host])
    req = client.submit_job("compat_rev", b"secure", poll_timeout=30)
    assert (req.state, req.result) == (gearman.JOB_COMPLETE, b"eruces")
    assert client.connection_list[0].gearman_socket.version() in ("TLSv1.2", "TLSv1.3")
    client.shutdown()
    # A server whose certificate the given CA did not sign is refused, whatever else works.
    rogue = gearman.GearmanClient([{**host, "ca_certs": str(pki.rogue_ca)}])
    with pytest.raises(gearman.errors.ServerUnavailable):
        rogue.submit_job("compat_rev", b"x", poll_timeout=10)
    # Without a CA file the system trust store is used: the test CA is not in it.
    system = gearman.GearmanClient(
        [
            {
                "host": "127.0.0.1",
                "port": tls_server.port,
                "keyfile": str(pki.client_key),
                "certfile": str(pki.client_cert),
            }
        ]
    )
    with pytest.raises(gearman.errors.ServerUnavailable):
        system.submit_job("compat_rev", b"x", poll_timeout=10)


def test_host_list_forms():
    c = gearman.GearmanClient(["example.org", "10.0.0.1:4731", ("h", 4732), "[::1]:4733", {"host": "t"}])
    assert [x.get_address() for x in c.connection_list] == [
        ("example.org", 4730),
        ("10.0.0.1", 4731),
        ("h", 4732),
        ("::1", 4733),
        ("t", 4730),
    ]
    assert [x.use_ssl for x in c.connection_list] == [False] * 5
    with pytest.raises(gearman.errors.GearmanError):
        gearman.GearmanClient([42])
    with pytest.raises(gearman.errors.GearmanError):
        gearman.GearmanClient([{"host": "t", "certfile": "/nonexistent/cert.pem"}])


def test_guide_snippet_runs(gearpy_server, gearpy_worker, monkeypatch, capsys):
    """The python-gearman section of docs/guide.md runs as written."""
    import re

    text = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    section = text[text.index("## Moving a python-gearman program") :]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "from gearpy.compat import gearman" in block
    gearpy_worker(str(ROOT / "examples" / "tasks.py"))
    wait_for_worker(gearpy_server.address, "reverse")
    monkeypatch.setenv("GEARMAN_SERVER", gearpy_server.address)
    exec(compile(block, "docs/guide.md:python-gearman", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["COMPLETE b'olleh'"]
