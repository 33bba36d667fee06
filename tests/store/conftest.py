"""Fixtures for the queue-store tests: real SQLite files and the machine's MariaDB, PostgreSQL, Redis.

Every test gets its own table / key prefix (random suffix), dropped afterwards, so tests can run in
parallel with each other and with other users of the shared services. A service that cannot be
reached skips the test, which ``GEARPY_REQUIRE_EXTERNAL=1`` (CI) turns into a failure.

:class:`FaultProxy` (``tests/support/faultproxy.py``) stands between gearpy and a database: it can
be stopped and started again on the same port, blackhole or reset the link, without touching the
shared service.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultproxy import FaultProxy

MYSQL = ("127.0.0.1", 3306)
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
KINDS = ("sqlite", "mysql", "postgres", "redis")


def reachable(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return True
    except OSError:
        return False


def _pg_user() -> str:
    import pg8000.native

    for user in ("postgres", "root"):
        try:
            pg8000.native.Connection(user, host=POSTGRES[0], port=POSTGRES[1], database="test").close()
            return user
        except Exception:
            continue
    pytest.skip("PostgreSQL at 127.0.0.1:5432 accepts neither user postgres nor root on db test")


@dataclass
class Service:
    """One store under test: how to build its URL (optionally through another port) and clean up."""

    kind: str
    name: str  # table or key prefix, unique to the test
    url_for: Callable[[int | None], str]
    cleanup: Callable[[], None]
    port: int | None = None

    @property
    def url(self) -> str:
        return self.url_for(None)


def make_service(kind: str, tmp_path: Path) -> Service:
    """Return a :class:`Service` for ``kind``, or skip when its server is unreachable."""
    suffix = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        path = tmp_path / "queue.db"
        tmp_path.mkdir(parents=True, exist_ok=True)
        table = f"q_{suffix}"
        return Service(kind, table, lambda port: f"sqlite://{path}?table={table}", lambda: None)
    if kind == "mysql":
        if not reachable(MYSQL):
            pytest.skip("MariaDB is not reachable at 127.0.0.1:3306")
        table = f"gearpy_test_{suffix}"

        def drop_mysql() -> None:
            import pymysql

            conn = pymysql.connect(host=MYSQL[0], port=MYSQL[1], user="root", database="test")
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS `{table}`")
            conn.commit()
            conn.close()

        return Service(
            kind,
            table,
            lambda port: f"mysql://root@127.0.0.1:{port or MYSQL[1]}/test?table={table}",
            drop_mysql,
            MYSQL[1],
        )
    if kind == "postgres":
        if not reachable(POSTGRES):
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
        user = _pg_user()
        table = f"gearpy_test_{suffix}"

        def drop_pg() -> None:
            import pg8000.native

            conn = pg8000.native.Connection(user, host=POSTGRES[0], port=POSTGRES[1], database="test")
            conn.run(f'DROP TABLE IF EXISTS "{table}"')
            conn.close()

        return Service(
            kind,
            table,
            lambda port: f"postgresql://{user}@127.0.0.1:{port or POSTGRES[1]}/test?table={table}",
            drop_pg,
            POSTGRES[1],
        )
    if kind == "redis":
        if not reachable(REDIS):
            pytest.skip("Redis is not reachable at 127.0.0.1:6379")
        prefix = f"gearpy-test-{suffix}:"

        def drop_redis() -> None:
            import redis

            client = redis.Redis(host=REDIS[0], port=REDIS[1])
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

        return Service(
            kind,
            prefix,
            lambda port: f"redis://127.0.0.1:{port or REDIS[1]}/0?prefix={prefix}",
            drop_redis,
            REDIS[1],
        )
    raise ValueError(kind)


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
