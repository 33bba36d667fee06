"""The JSON API over real HTTP against a real gearpy-server (``--http``), with real workers."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gearpy import __version__, _accel
from gearpy.client import Client
from gearpy.client.admin import Admin

from support.dashboard import run_worker, stop_worker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_overview_reports_version_store_and_mode(dash):
    r = dash.get("/api/v1/overview")
    assert r.status == 200
    o = r.json
    assert o["version"] == __version__
    assert o["mode"] == _accel.mode()  # the server runs from this install, in this environment
    assert o["store"] == {"name": "memory", "durable": False, "healthy": True}
    assert o["jobs"] == {"queued": 0, "scheduled": 0, "running": 0, "total": 0}
    assert o["uptime"] >= 0
    assert r.headers["Content-Type"] == "application/json"


def test_background_submit_is_listed_then_cancelled(dash):
    r = dash.post(
        "/api/v1/jobs",
        {"function": "resize", "payload": "img-1", "background": True, "priority": "high", "unique": "u-1"},
    )
    assert r.status == 201, r.body
    handle = r.json["handle"]
    assert r.headers["Location"].endswith(handle)

    fns = {f["name"]: f for f in dash.get("/api/v1/functions").json["functions"]}
    assert fns["resize"]["queued"] == {"high": 1, "normal": 0, "low": 0}
    jobs = dash.get("/api/v1/jobs?function=resize").json
    assert jobs["total"] == 1
    job = jobs["jobs"][0]
    assert (job["handle"], job["unique"], job["priority"], job["size"], job["state"]) == (
        handle,
        "u-1",
        "high",
        5,
        "queued",
    )
    detail = dash.get(f"/api/v1/jobs/{handle}").json
    assert detail["progress"] == {"numerator": 0, "denominator": 0}
    assert detail["worker"] is None and detail["clients"] == []

    # The text admin protocol sees the same job, and then sees it cancelled.
    with Admin(dash.server.address) as admin:
        assert [j.handle for j in admin.show_jobs()] == [handle]
        assert dash.request("DELETE", f"/api/v1/jobs/{handle}").json == {"cancelled": handle}
        assert [j.ignored for j in admin.show_jobs()] == [True]
    assert dash.get(f"/api/v1/jobs/{handle}").json["state"] == "cancelled"
    assert "HTTP cancel job " + handle + " by anonymous@127.0.0.1" in dash.server.log()


def test_foreground_submit_returns_the_workers_result(dash, tmp_path):
    worker = run_worker(dash.server, str(EXAMPLES / "tasks.py"), log_path=str(tmp_path / "w.log"))
    try:
        r = dash.post("/api/v1/jobs", {"function": "reverse", "payload": "hello", "timeout": 30})
        assert r.status == 200, r.body
        assert (r.json["outcome"], r.json["result"]) == ("complete", "olleh")
        assert r.json["handle"].startswith("H:")

        r = dash.post("/api/v1/jobs", {"function": "add", "payload": {"a": 2, "b": 3}, "encoding": "json"})
        assert json.loads(r.json["result"]) == {"sum": 5}
        assert r.json["progress"] == {"numerator": 2, "denominator": 2}

        raw = bytes(range(256))
        r = dash.post(
            "/api/v1/jobs",
            {"function": "reverse", "payload": base64.b64encode(raw).decode(), "encoding": "base64"},
        )
        assert r.json["result"] is None  # not UTF-8
        assert base64.b64decode(r.json["result_base64"]) == raw[::-1]

        workers = dash.get("/api/v1/workers").json["workers"]
        assert len(workers) == 1 and workers[0]["functions"] == ["add", "reverse"]
    finally:
        stop_worker(worker)


def test_foreground_timeout_is_504_and_the_job_is_abandoned(dash):
    t0 = time.monotonic()
    r = dash.post("/api/v1/jobs", {"function": "nobody", "payload": "x", "timeout": 0.5})
    assert r.status == 504
    assert r.json["outcome"] == "timeout" and r.json["handle"]
    assert r.json["error"]["code"] == "timeout"
    assert time.monotonic() - t0 < 10
    # Like a client that left: nobody waits for the job any more.
    assert dash.get(f"/api/v1/jobs/{r.json['handle']}").json["state"] == "cancelled"


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"payload": "x"}', 400, "'function'"),
        (b'{"function": "f", "encoding": "rot13"}', 400, "'encoding'"),
        (b'{"function": "f", "encoding": "base64", "payload": "@@@"}', 400, "base64"),
        (b'{"function": "f", "priority": "urgent"}', 400, "'priority'"),
        (b'{"function": "f", "timeout": -1}', 400, "'timeout'"),
        (b'{"function": "f", "when": 99}', 400, "background"),
        (
            b'{"function": "f", "unique": "' + b"u" * 70 + b'", "background": true}',
            400,
            "Unique value too large",
        ),
    ],
)
def test_bad_submits_get_400_json(dash, body, status, fragment):
    r = dash.request("POST", "/api/v1/jobs", raw=body, headers={"Content-Type": "application/json"})
    assert r.status == status
    assert fragment in r.json["error"]["message"]
    assert r.json["error"]["status"] == status


def test_not_found_and_method_errors_are_json(dash):
    r = dash.get("/api/v1/jobs/H:nowhere:1")
    assert (r.status, r.json["error"]["code"]) == (404, "not_found")
    assert dash.request("DELETE", "/api/v1/jobs/H:nowhere:1").status == 404
    assert dash.get("/api/v1/nothing").status == 404
    assert dash.get("/api/v1/functions/none").status == 404
    r = dash.request("DELETE", "/api/v1/overview")
    assert r.status == 405 and r.json["error"]["code"] == "method_not_allowed"
    assert dash.get("/api/v1/jobs?state=weird").status == 400
    assert dash.get("/api/v1/jobs?limit=x").status == 400
    assert dash.get("/nope").status == 404


def test_413_over_max_packet_size(make_dash):
    dash = make_dash("--max-packet-size", "2048")
    r = dash.post("/api/v1/jobs", {"function": "f", "payload": "x" * 3000, "background": True})
    assert r.status == 413 and "max-packet-size" in r.json["error"]["message"]
    r = dash.request("POST", "/api/v1/jobs", raw=b"x" * 200_000, headers={"Content-Type": "application/json"})
    assert r.status == 413
    assert (
        dash.post("/api/v1/jobs", {"function": "f", "payload": "x" * 1000, "background": True}).status == 201
    )


def test_maxqueue_full_is_503_and_drop_function(dash):
    assert dash.post("/api/v1/jobs", {"function": "q", "background": True, "payload": "1"}).status == 201
    r = dash.request("PUT", "/api/v1/functions/q", {"maxqueue": 1})
    assert r.status == 200 and r.json["maxqueue"] == {"high": 1, "normal": 1, "low": 1}
    r = dash.post("/api/v1/jobs", {"function": "q", "background": True, "payload": "2"})
    assert r.status == 503 and r.json["error"]["code"] == "queue_error"
    assert "queue is full" in r.json["error"]["message"]
    # Not empty: refused, and kept.
    r = dash.request("DELETE", "/api/v1/functions/q")
    assert r.status == 409
    assert dash.get("/api/v1/functions/q").status == 200
    with Admin(dash.server.address) as admin:
        admin.command("create function empty")
    assert dash.request("DELETE", "/api/v1/functions/empty").json == {"dropped": "empty"}
    assert dash.get("/api/v1/functions/empty").status == 404
    assert dash.request("PUT", "/api/v1/functions/q", {"maxqueue": "lots"}).status == 400


def test_jobs_are_paged_and_filtered(dash):
    with Client([dash.server.address]) as client:
        client.submit_many(
            [
                {
                    "function": "pg",
                    "payload": str(i),
                    "background": True,
                    "priority": "low" if i % 3 == 0 else "normal",
                }
                for i in range(120)
            ]
        )
        client.submit("other", b"x", background=True)
    page = dash.get("/api/v1/jobs?function=pg&limit=50&offset=100").json
    assert page["total"] == 120 and len(page["jobs"]) == 20 and page["offset"] == 100
    low = dash.get("/api/v1/jobs?function=pg&priority=low&limit=500").json
    assert low["total"] == 40 and {j["priority"] for j in low["jobs"]} == {"low"}
    everything = dash.get("/api/v1/jobs?limit=100000").json
    assert everything["limit"] == 500 and everything["total"] == 121 and len(everything["jobs"]) == 121
    queued = dash.get("/api/v1/jobs?state=queued&limit=5").json
    assert queued["total"] == 121 and len(queued["jobs"]) == 5
    assert dash.get("/api/v1/jobs?state=running").json["total"] == 0


def _flood(port: int, n: int) -> None:
    """Queue ``n`` background jobs over one raw connection (pipelined), as fast as the server takes them."""
    from gearpy.protocol import Decoder, PacketType, encode_request

    s = socket.create_connection(("127.0.0.1", port))
    batch = b"".join(encode_request(PacketType.SUBMIT_JOB_BG, b"flood", b"", b"p%d" % i) for i in range(1000))
    dec = Decoder(allow_admin=False)
    created = 0
    for _ in range(n // 1000):
        s.sendall(batch)
        while created < 1000 * (_ + 1):
            dec.feed(s.recv(1 << 20))
            created += sum(1 for _ev in dec.events())
    s.close()


def test_a_large_queue_keeps_pages_fast(dash):
    n = 100_000
    _flood(dash.server.port, n)
    assert dash.get("/api/v1/overview").json["jobs"]["queued"] == n
    for path in (
        f"/api/v1/jobs?offset={n - 50}&limit=50",
        f"/api/v1/jobs?function=flood&state=queued&offset={n - 500}&limit=500",
        "/api/v1/functions",
        "/api/v1/overview",
    ):
        t0 = time.monotonic()
        r = dash.get(path)
        elapsed = time.monotonic() - t0
        assert r.status == 200
        assert elapsed < 2.0, f"{path} took {elapsed:.2f} s"  # generous: a shared, loaded machine
    last = dash.get(f"/api/v1/jobs?function=flood&offset={n - 1}&limit=5").json["jobs"]
    assert [j["handle"].rsplit(":", 1)[1] for j in last] == [str(n)]


def test_metrics_without_the_metrics_flag_are_the_scrape_time_gauges(dash):
    dash.post("/api/v1/jobs", {"function": "m", "background": True})
    body = dash.get("/metrics").body
    assert b'gearman_jobs{function="m"} 1.0' in body and b"gearpy_store_up 1.0" in body
    assert b"gearpy_jobs_submitted_total" not in body  # per-job counters come with --metrics


def test_metrics_and_healthz_on_the_http_port_and_metrics_flag_still_works(make_dash):
    from gearpy.testing import free_port

    mport = free_port()
    dash = make_dash("--metrics", f"127.0.0.1:{mport}")
    dash.post("/api/v1/jobs", {"function": "m", "background": True})
    r = dash.get("/metrics")
    assert r.status == 200 and b'gearman_jobs{function="m"} 1.0' in r.body
    assert b'gearpy_jobs_submitted_total{background="true",priority="normal"} 1.0' in r.body
    assert dash.get("/healthz").body == b"ok\n"
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as resp:
        assert b'gearman_jobs{function="m"} 1.0' in resp.read()


def test_environment_variable_turns_it_on(make_dash):
    from gearpy.testing import free_port

    port = free_port()
    dash = make_dash(env={"GEARPY_HTTP": f"127.0.0.1:{port}"})
    assert dash.get("/api/v1/overview").json["version"] == __version__


def test_half_sent_requests_are_dropped(make_dash):
    dash = make_dash("--http-request-timeout", "1")
    s = socket.create_connection(("127.0.0.1", dash.http_port))
    s.sendall(b"GET /api/v1/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    s.settimeout(15)
    t0 = time.monotonic()
    data = s.recv(4096)
    while data and not data.endswith(b"}") and b"408" not in data and b"400" not in data:
        data = s.recv(4096)
    assert time.monotonic() - t0 < 10
    s.close()
    # And the dashboard still answers.
    assert dash.get("/api/v1/overview").status == 200


def test_dns_rebinding_and_cross_site_writes_are_refused(dash):
    r = dash.get("/api/v1/overview", headers={"Host": "attacker.example:80"})
    assert r.status == 403 and r.json["error"]["code"] == "bad_host"
    r = dash.post(
        "/api/v1/jobs", {"function": "f", "background": True}, headers={"Origin": "http://attacker.example"}
    )
    assert r.status == 403 and r.json["error"]["code"] == "csrf"
    r = dash.post(
        "/api/v1/jobs", {"function": "f", "background": True}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert r.status == 403
    assert dash.get("/api/v1/functions").json["functions"] == []


def test_http_submissions_obey_the_acl_file(make_dash, tmp_path):
    acl = tmp_path / "acl.yaml"
    acl.write_text('"*": {invoke: "public_.*"}\n')
    dash = make_dash("--acl-file", str(acl))
    r = dash.post("/api/v1/jobs", {"function": "secret", "background": True})
    assert r.status == 403 and r.json["error"]["code"] == "permission_denied"
    assert dash.post("/api/v1/jobs", {"function": "public_x", "background": True}).status == 201


def test_fleet_shows_gearmand_and_a_down_peer(make_dash, gearmand_server):
    from gearpy.testing import free_port

    dead = f"127.0.0.1:{free_port()}"
    with Client([gearmand_server.address]) as client:
        client.submit("on_gearmand", b"x", background=True)
    dash = make_dash("--http-peers", f"{gearmand_server.address},{dead}")
    servers = dash.get("/api/v1/fleet").json["servers"]
    assert [s["address"] for s in servers] == ["this server", gearmand_server.address, dead]
    gm = servers[1]
    assert gm["up"] and gm["version"].startswith("1.")
    assert {"name": "on_gearmand", "total": 1, "running": 0, "workers": 0} in gm["functions"]
    assert servers[2]["up"] is False and servers[2]["error"]


def test_https_with_the_servers_certificate(make_dash, pki):
    import ssl

    from support.dashboard import start_dash

    ctx = ssl.create_default_context(cafile=str(pki.ca))
    dash = start_dash(
        "--ssl", "--ssl-certificate", str(pki.server_cert), "--ssl-key", str(pki.server_key), ssl_context=ctx
    )
    try:
        assert dash.get("/api/v1/overview").json["version"] == __version__
        with pytest.raises((OSError, http.client.HTTPException)):
            dash.ssl_context = None
            dash.scheme = "http"
            dash.get("/api/v1/overview", timeout=5)
    finally:
        dash.server.stop()


def test_page_routes_serve_the_dashboard_and_static_files(dash):
    for path in ("/", "/functions", "/workers", "/jobs", "/jobs/H:x:1", "/fleet", "/submit"):
        r = dash.get(path)
        assert r.status == 200 and b'<script src="/static/app.js">' in r.body
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert dash.get("/static/app.js").headers["Content-Type"].startswith("text/javascript")
    assert dash.get("/static/../config.py").status == 404


def _refused_start(*args: str) -> str:
    """Start gearpy-server with ``args``; it must exit 2 with one clear line, no traceback."""
    from gearpy.testing import free_port

    proc = subprocess.run(
        [sys.executable, "-m", "gearpy.server", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_non_loopback_http_without_credentials_is_refused():
    from gearpy.testing import free_port

    assert "needs --http-auth-file" in _refused_start("--http", f"0.0.0.0:{free_port()}")


def test_bad_auth_file_stops_the_start(tmp_path):
    from gearpy.testing import free_port

    bad = tmp_path / "auth.yaml"
    bad.write_text("users:\n  alice: {role: god, password: x}\n")
    assert "role 'god'" in _refused_start("--http", str(free_port()), "--http-auth-file", str(bad))
    assert "--http: invalid port" in _refused_start("--http", "127.0.0.1:http")


def test_durable_background_submit_survives_a_restart(make_dash, tmp_path):
    db = tmp_path / "queue.db"
    dash = make_dash("-q", f"sqlite:///{db}")
    r = dash.post("/api/v1/jobs", {"function": "keep", "payload": "safe", "background": True})
    assert r.status == 201
    dash.server.restart()
    with Admin(dash.server.address) as admin:
        assert [(s.function, s.total) for s in admin.status()] == [("keep", 1)]
