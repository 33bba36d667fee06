"""Robustness tests (issue #8): limits, fuzzing, faults with real processes.

Puts this directory on ``sys.path`` so the test modules can import ``robustness_support``
(pytest runs with ``--import-mode=importlib``, which does not).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gearpy.testing import ServerProcess, gearpy_server_argv

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
def make_server():
    """Start gearpy-servers with extra flags; each is stopped after the test, its log free of tracebacks."""
    started: list[ServerProcess] = []

    def make(*args: str) -> ServerProcess:
        server = ServerProcess(gearpy_server_argv(*args)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        log = server.log()
        server.stop()
        assert "Traceback" not in log, log
