#!/usr/bin/env python
"""Render a screenshot of each dashboard page into ``docs/`` (for docs/guide.md).

Starts a gearpy-server with ``--http`` (and a gearmand plus a second gearpy-server as fleet peers
when gearmand is installed), gives it something to show (workers from ``examples/tasks.py`` and a
slow task, a burst of jobs for the rate chart, queued jobs at every priority, an epoch job), then
opens each page in headless chromium (selenium) and saves ``docs/dashboard-<page>.png``.

    python scripts/screenshots.py            # writes docs/dashboard-*.png
    python scripts/screenshots.py --out /tmp

Needs chromium and chromium-driver (Debian), as the browser tests do.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gearpy.client import Client  # noqa: E402
from gearpy.testing import ServerProcess, gearpy_server_argv  # noqa: E402

from support.dashboard import make_browser, run_worker, start_dash, stop_worker  # noqa: E402
from support.servers import gearmand_argv  # noqa: E402

SLOW_TASKS = """
import time
from gearpy.worker import task

@task
def transcode(job, data):
    for i in range(600):
        job.progress(i, 600)
        time.sleep(0.5)
    return data
"""


def populate(address: str, seconds: float) -> None:
    """Jobs for every page: a varying stream for the chart, a backlog, a scheduled job, slow ones."""
    with Client([address]) as client:
        for i in range(2):
            client.submit("transcode", f"video-{i}".encode(), background=True)
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            burst = 20 + int(15 * abs(((time.monotonic() * 0.6) % 2) - 1))
            client.submit_many([("reverse", b"frame-%d" % (n + i)) for i in range(burst)], background=True)
            n += burst
            time.sleep(0.25)
        client.submit_many(
            [
                {
                    "function": "resize",
                    "payload": b"x" * (100 + i),
                    "background": True,
                    "priority": ("high", "normal", "low")[i % 3],
                    "unique": f"img-{i}" if i % 4 == 0 else "",
                }
                for i in range(37)
            ]
        )
        client.submit_many([("send_email", b'{"to": "ops@example.com"}')] * 12, background=True)
        client.submit("report", b"monthly", background=True, when=int(time.time()) + 3600)


def login_page(browser: object, tmp: Path, out: Path) -> None:
    """The login form of a dashboard with credentials."""
    from gearpy.server.http.auth import add_user

    auth = tmp / "http-auth.yaml"
    add_user(str(auth), "alice", "not-shown", "admin")
    secured = start_dash("--http-auth-file", str(auth))
    try:
        browser.get(secured.url + "/")  # type: ignore[attr-defined]
        time.sleep(1.0)
        browser.find_element("id", "user").send_keys("alice")  # type: ignore[attr-defined]
        target = out / "dashboard-login.png"
        browser.save_screenshot(str(target))  # type: ignore[attr-defined]
        print(f"wrote {target}")
    finally:
        secured.server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="directory for the PNG files")
    parser.add_argument("--seconds", type=float, default=25.0, help="seconds of traffic for the chart")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gearpy-shots-"))
    (tmp / "slow_tasks.py").write_text(SLOW_TASKS)
    peers: list[ServerProcess] = []
    workers = []
    if shutil.which("gearmand") or Path("/usr/sbin/gearmand").exists():
        peers.append(ServerProcess(gearmand_argv(tmp)).start())
    peers.append(ServerProcess(gearpy_server_argv()).start())
    with Client([peers[-1].address]) as client:
        client.submit_many([("ingest", b"row")] * 250, background=True)
    if len(peers) > 1:
        with Client([peers[0].address]) as client:
            client.submit_many([("legacy_export", b"row")] * 40, background=True)
    dash = start_dash("--http-peers", ",".join(p.address for p in peers))
    browser = make_browser(1360, 860)
    try:
        workers.append(run_worker(dash.server, str(ROOT / "examples" / "tasks.py"), "--concurrency", "4"))
        workers.append(run_worker(dash.server, str(tmp / "slow_tasks.py"), "--concurrency", "2"))
        dash.wait_for(lambda: len(dash.get("/api/v1/workers").json["workers"]) >= 2, what="workers")
        populate(dash.server.address, args.seconds)
        time.sleep(1.5)
        jobs = dash.get("/api/v1/jobs?state=running").json["jobs"]
        detail = jobs[0]["handle"] if jobs else dash.get("/api/v1/jobs").json["jobs"][0]["handle"]
        pages = {
            "overview": "/",
            "functions": "/functions",
            "workers": "/workers",
            "jobs": "/jobs?function=resize",
            "job": "/jobs/" + detail,
            "fleet": "/fleet",
            "submit": "/submit",
        }
        for name, path in pages.items():
            browser.get(dash.url + path)
            time.sleep(2.5)  # one refresh: rates and ages filled in
            if name == "submit":
                browser.find_element("id", "f-function").send_keys("add")
                browser.find_element("id", "f-payload").send_keys('{"a": 2, "b": 3}')
                browser.find_element("id", "f-encoding").send_keys("JSON")
                browser.find_element("id", "f-submit").click()
                time.sleep(1.5)
            target = out / f"dashboard-{name}.png"
            browser.save_screenshot(str(target))
            print(f"wrote {target}")
        login_page(browser, tmp, out)
    finally:
        browser.quit()
        for w in workers:
            stop_worker(w)
        dash.server.stop()
        for p in peers:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
