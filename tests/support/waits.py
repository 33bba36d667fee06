"""Bounded polling: wait for a condition or a registered worker, and fail (never hang) after a timeout.

Used instead of sleeps: a test proceeds the moment the server is in the state it needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from gearpy.client import Admin

from support.raw import Address

V = TypeVar("V")
WAIT = 30.0


def wait_until(predicate: Callable[[], V], what: str, timeout: float = WAIT, interval: float = 0.05) -> V:
    """Poll ``predicate`` until it is truthy and return its value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _address(server: Address | str) -> str:
    return server if isinstance(server, str) else f"{server.host}:{server.port}"


def function_status(server: Address | str, function: str) -> tuple[int, int, int] | None:
    """(total, running, workers) of ``function`` from the admin ``status`` listing, or None."""
    with Admin(_address(server), timeout=5) as admin:
        for line in admin.status():
            if line.function == function:
                return line.total, line.running, line.workers
    return None


def wait_for_workers(
    server: Address | str, functions: Iterable[str], count: int = 1, timeout: float = WAIT
) -> None:
    """Wait until each of ``functions`` has at least ``count`` registered workers on the server."""
    address, wanted = _address(server), set(functions)

    def registered() -> bool:
        with Admin(address, timeout=5) as admin:
            return wanted <= {f.function for f in admin.status() if f.workers >= count}

    wait_until(registered, f"{count} worker(s) for {sorted(wanted)} on {address}", timeout, interval=0.02)


def wait_for_worker(server: Address | str, function: str, count: int = 1, timeout: float = WAIT) -> None:
    """Wait until ``function`` has at least ``count`` registered workers on the server."""
    wait_for_workers(server, [function], count, timeout)
