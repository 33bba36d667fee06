"""Background processes for the third-party tools; raw connections come from the ``session`` fixture."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def procs():
    """Background processes (workers) that are always stopped after the test."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)
