"""Queue stores for tests: real SQLite files and the machine's MariaDB, PostgreSQL, Redis.

The fixtures ``service``, ``server_service``, ``service_of`` and ``fault_proxy`` (``tests/conftest.py``)
are built on :func:`make_service` and :class:`FaultProxy`. Every test gets its own table / key
prefix (random suffix), dropped afterwards, so tests can run in parallel with each other and with
other users of the shared services. A service that cannot be reached skips the test, which
``GEARPY_REQUIRE_EXTERNAL=1`` (CI) turns into a failure.

:class:`FaultProxy` (:mod:`support.faultproxy`, re-exported here) stands between gearpy and a
database: stopped and started again on the same port, blackholed, slowed or reset, it makes the
database "go away" for gearpy without touching the shared service.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.faultproxy import FaultProxy

__all__ = ["KINDS", "FaultProxy", "Service", "make_service", "reachable"]

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
