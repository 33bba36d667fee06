"""``run_thread``: python-gearman clients and workers on plain threads, joined after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.compat import Runner


@pytest.fixture
def run_thread() -> Iterator[Callable[..., Runner]]:
    """``run_thread(fn, *args)`` starts ``fn`` on a thread; ``.join(timeout)`` returns or raises."""
    started: list[Runner] = []

    def start(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Runner:
        r = Runner(fn, *args, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.thread.join(30)
