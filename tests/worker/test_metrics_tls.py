"""gearpy-worker over TLS, with its opt-in metrics and health endpoint."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from gearpy.client import Client
from gearpy.client.config import ClientConfig
from gearpy.errors import JobFailed
from gearpy.testing import free_port

from support.waits import wait_until


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:  # not listening (yet)
        return 0, ""


@pytest.mark.slow
def test_worker_serves_over_tls_and_reports_metrics(tls_server, pki, tls_client_args, start_worker):
    mport = free_port()
    worker = start_worker(
        "-s",
        tls_server.address,
        *tls_client_args,
        "--metrics",
        f"127.0.0.1:{mport}",
        "wtasks",
    )
    cfg = ClientConfig(
        servers=[tls_server.address],
        ssl=True,
        ssl_ca_file=str(pki.ca),
        ssl_certificate=str(pki.client_cert),
        ssl_key=str(pki.client_key),
        timeout=30,
    )
    wait_until(lambda: _get(f"http://127.0.0.1:{mport}/healthz")[0] == 200, "worker connected")
    with Client(config=cfg) as client:
        assert client.submit("upper", b"tls").result(30) == b"TLS"
        with pytest.raises(JobFailed):
            client.submit("refuse", b"x").result(30)
    status, body = _get(f"http://127.0.0.1:{mport}/metrics")
    assert status == 200
    assert 'gearpy_worker_jobs_total{function="upper",outcome="complete"} 1.0' in body
    assert 'gearpy_worker_jobs_total{function="refuse",outcome="fail"} 1.0' in body
    assert "gearpy_worker_connected_servers 1.0" in body
    assert "gearpy_worker_jobs_in_flight 0.0" in body
    assert 'gearpy_worker_job_duration_seconds_count{function="upper"} 1.0' in body
    # The server goes away: the worker is no longer healthy.
    tls_server.stop()
    wait_until(lambda: _get(f"http://127.0.0.1:{mport}/healthz")[0] == 503, "health to turn 503")
    assert "not connected" in _get(f"http://127.0.0.1:{mport}/healthz")[1]
    worker.stop()


@pytest.mark.slow
def test_worker_refuses_a_server_it_cannot_verify(tls_server, pki, start_worker):
    worker = start_worker(
        "-s",
        tls_server.address,
        "--ssl",
        "--ssl-ca-file",
        str(pki.rogue_ca),
        "--ssl-certificate",
        str(pki.client_cert),
        "--ssl-key",
        str(pki.client_key),
        "wtasks",
    )
    wait_until(
        lambda: "CERTIFICATE_VERIFY_FAILED" in worker.log() or "certificate verify" in worker.log(),
        "the worker to refuse the server's certificate",
    )
    assert worker.proc.poll() is None  # it keeps retrying, as with any unreachable server


@pytest.mark.slow
def test_metrics_with_processes_one_port_per_process(gearpy_server, start_worker):
    for _ in range(50):  # a free port whose next port is free too (a taken neighbour is luck, not a skip)
        mport = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", mport + 1))
            except OSError:
                continue
        break
    else:
        pytest.fail("no two consecutive free ports in 50 tries")
    start_worker("-s", gearpy_server.address, "--processes", "2", "--metrics", f"127.0.0.1:{mport}", "wtasks")
    for port in (mport, mport + 1):
        wait_until(lambda p=port: _get(f"http://127.0.0.1:{p}/healthz")[0] == 200, f"process on port {port}")
    with Client([gearpy_server.address]) as client:
        for i in range(6):
            assert client.submit("upper", b"x%d" % i).result(30) == b"X%d" % i
    done = 0
    for port in (mport, mport + 1):
        body = _get(f"http://127.0.0.1:{port}/metrics")[1]
        for line in body.splitlines():
            if line.startswith('gearpy_worker_jobs_total{function="upper",outcome="complete"}'):
                done += int(float(line.split()[-1]))
    assert done == 6  # every job counted once, by the process that ran it
