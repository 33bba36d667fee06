"""Dashboard and HTTP API tests (issue #15): a real gearpy-server with ``--http``, real HTTP requests.

Fixtures: ``make_dash(*flags)`` and ``dash`` (servers with the dashboard on, their logs checked for
tracebacks), ``auth_file`` (users and tokens made with the documented command). Helpers are in
``support.dashboard``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support.dashboard import DashServer, start_dash


@pytest.fixture
def make_dash():
    """``make_dash(*flags)``: a gearpy-server with the dashboard on; stopped after the test, its log
    free of tracebacks."""
    started: list[DashServer] = []

    def make(*args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1") -> DashServer:
        dash = start_dash(*args, env=env, host=host)
        started.append(dash)
        return dash

    yield make
    for dash in started:
        log = dash.server.log()
        dash.server.stop()
        assert "Traceback" not in log, log


@pytest.fixture
def dash(make_dash) -> DashServer:
    """A gearpy-server serving the dashboard on loopback without credentials."""
    return make_dash()


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    """An auth file made with the documented command: users alice (admin) and bob (read), tokens."""
    import subprocess

    path = tmp_path / "http-auth.yaml"
    for user, password, role in (("alice", "alice-secret", "admin"), ("bob", "bob-secret", "read")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gearpy.server.http.auth",
                "add-user",
                str(path),
                user,
                "--role",
                role,
                "--password-stdin",
            ],
            input=password + "\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=60,
        )
    tokens = {}
    for name, role in (("ops", "admin"), ("grafana", "read")):
        out = subprocess.run(
            [sys.executable, "-m", "gearpy.server.http.auth", "add-token", str(path), name, "--role", role],
            text=True,
            check=True,
            capture_output=True,
            timeout=60,
        )
        tokens[name] = out.stdout.strip()
    (tmp_path / "tokens").write_text(f"{tokens['ops']}\n{tokens['grafana']}\n")
    return path
