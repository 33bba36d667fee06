"""Fixtures for the queue-store tests: real SQLite files and the machine's MariaDB, PostgreSQL, Redis.

Every test gets its own table / key prefix (random suffix), dropped afterwards, so tests can run in
parallel with each other and with other users of the shared services. A service that cannot be
reached skips the test, which ``GEARPY_REQUIRE_EXTERNAL=1`` (CI) turns into a failure.

:class:`FaultProxy` (``tests/support/faultproxy.py``) stands between gearpy and a database: it can
be stopped and started again on the same port, blackhole or reset the link, without touching the
shared service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from stores import KINDS, Service, make_service


@pytest.fixture(params=KINDS)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """Each store kind in turn, with a private table/prefix dropped afterwards."""
    svc = make_service(request.param, tmp_path)
    try:
        yield svc
    finally:
        svc.cleanup()


@pytest.fixture(params=[k for k in KINDS if k != "sqlite"])
def server_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """The client/server databases only (MariaDB, PostgreSQL, Redis)."""
    svc = make_service(request.param, tmp_path)
    try:
        yield svc
    finally:
        svc.cleanup()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[int], FaultProxy]]:
    """Factory of started :class:`FaultProxy` objects, all stopped at the end of the test."""
    proxies: list[FaultProxy] = []

    def make(port: int) -> FaultProxy:
        proxy = FaultProxy(port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def service_of(tmp_path: Path) -> Iterator[Callable[[str], Service]]:
    """Factory: the :class:`Service` of one named kind (for tests about a single backend)."""
    made: list[Service] = []

    def make(kind: str) -> Service:
        svc = make_service(kind, tmp_path / f"{kind}-{len(made)}")
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.cleanup()
