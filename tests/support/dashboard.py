"""The dashboard's tests: a server with ``--http``, HTTP requests (stdlib only), a headless chromium."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gearpy.testing import ServerProcess, free_port, gearpy_server_argv, start_worker_process, wait_for_port
from gearpy.testing import stop_process as stop_worker  # noqa: F401 (used by the tests)

from support.external import require_tool


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class DashServer:
    server: ServerProcess
    http_port: int
    scheme: str = "http"
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 30,
    ) -> Reply:
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if basic:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        handlers: list[Any] = [_NoRedirect()]
        if self.ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return Reply(resp.status, resp.read(), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read(), dict(exc.headers))

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def wait_for(self, predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


def start_dash(
    *args: str,
    env: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
) -> DashServer:
    port = free_port()
    argv = gearpy_server_argv("--http", f"{host}:{port}", *args)
    if env:
        # Environment configuration: the server reads GEARPY_* itself.
        argv = gearpy_server_argv(*args)
        os.environ.update(env)
        try:
            server = ServerProcess(argv).start()
        finally:
            for k in env:
                os.environ.pop(k, None)
        port = int(env["GEARPY_HTTP"].rsplit(":", 1)[1])
    else:
        server = ServerProcess(argv).start()
    wait_for_port("127.0.0.1", port, proc=server.proc)
    return DashServer(server, port, "https" if ssl_context else "http", ssl_context)


def run_worker(server: ServerProcess, *args: str, log_path: str = os.devnull) -> subprocess.Popen[bytes]:
    """A real ``gearpy-worker`` against ``server``; stop it with :func:`stop_worker`."""
    return start_worker_process(["-s", server.address, *args], Path(log_path))


def make_browser(width: int = 1280, height: int = 860) -> Any:
    """Headless Debian chromium driven by selenium (chromium and chromium-driver from apt)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = require_tool("chromium")
    driver = require_tool("chromedriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--disable-extensions",
        "--no-first-run",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)
