"""Puts this directory on ``sys.path`` so the test modules can import ``compat_support``, and gives
them ``run_thread``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

HERE = os.path.dirname(__file__)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from compat_support import Runner  # noqa: E402


@pytest.fixture
def run_thread():
    """``run_thread(fn, *args)`` starts ``fn`` on a thread; unfinished threads fail the test."""
    started: list[Runner] = []

    def start(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Runner:
        r = Runner(fn, *args, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.thread.join(30)
