"""A store that is unreachable, locked, full or cut off: clear errors, nothing half-written, recovery."""

from __future__ import annotations

import sqlite3
import time
import uuid

import gevent
import pytest

from gearpy.errors import StoreError
from gearpy.server.store import StoredJob
from gearpy.server.stores import GroupCommitStore, open_store

from .test_store_roundtrip import add_all, opened

FAST = {"reconnect_min": 0.05, "reconnect_max": 0.2}


def job(payload: bytes) -> StoredJob:
    return StoredJob(uuid.uuid4().hex, b"f", b"", payload, 1)


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_until_ok(store: GroupCommitStore, payload: bytes, within: float = 5.0) -> StoredJob:
    """Submit (a new job each time) until one is durable: what clients retrying QUEUE_ERROR do."""
    deadline = time.monotonic() + within
    while True:
        candidate = job(payload)
        if add_all(store, [candidate])[0] is None:
            return candidate
        assert time.monotonic() < deadline, "store did not recover"
        gevent.sleep(0.05)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///dev/null/not-a-dir/q.db",
        "mysql://root:s3cret-pw@127.0.0.1:{port}/test",
        "postgresql://postgres:s3cret-pw@127.0.0.1:{port}/test",
        "redis://:s3cret-pw@127.0.0.1:{port}/0",
    ],
)
def test_unreachable_at_open_is_one_line_without_password(url: str) -> None:
    store = open_store(url.format(port=closed_port()), connect_timeout=2)
    with pytest.raises(StoreError) as info:
        store.open()
    text = str(info.value)
    assert "\n" not in text and "s3cret-pw" not in text
    assert text.startswith("cannot open queue store ")
    assert info.value.__cause__ is None  # the driver's exception (and its locals) is not chained


def test_sqlite_locked_database_fails_submit_then_recovers(tmp_path) -> None:
    path = tmp_path / "q.db"
    store = opened(f"sqlite://{path}", busy_timeout=0.2, **FAST)
    try:
        first = job(b"before")
        assert add_all(store, [first]) == [None]
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        failed = add_all(store, [job(b"locked-1"), job(b"locked-2")])
        assert all(isinstance(e, StoreError) and "locked" in str(e) for e in failed)
        assert not store.healthy()
        other.execute("ROLLBACK")
        other.close()
        after = add_until_ok(store, b"after")
        assert store.healthy()
        assert list(store.replay()) == [first, after]  # nothing of the failed batch was written
    finally:
        store.close()


def test_sqlite_disk_full_fails_the_batch_only(tmp_path, monkeypatch) -> None:
    """SQLITE_FULL (max_page_count on every connection: a rootless full disk): errors, then recovery."""
    from gearpy.server.stores.sqlite_backend import SqliteBackend

    store = opened(f"sqlite://{tmp_path}/q.db", **FAST)
    try:
        first = job(b"small")
        assert add_all(store, [first]) == [None]
        real_connect = SqliteBackend.connect

        def full_disk_connect(self: SqliteBackend) -> None:
            real_connect(self)
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count={pages}")

        monkeypatch.setattr(SqliteBackend, "connect", full_disk_connect)
        store._in_thread(full_disk_connect, store.backend)  # the disk fills up under the open store
        result = add_all(store, [job(b"x" * 200_000), job(b"y")])
        assert all(isinstance(e, StoreError) and "full" in str(e) for e in result), result
        assert not store.healthy()
        monkeypatch.undo()  # space is freed
        after = add_until_ok(store, b"after")
        assert list(store.replay()) == [first, after]
    finally:
        store.close()


def test_server_store_goes_away_and_comes_back(server_service, fault_proxy) -> None:
    proxy = fault_proxy(server_service.port)
    store = opened(server_service.url_for(proxy.port), connect_timeout=2, **FAST)
    try:
        first = job(b"before")
        assert add_all(store, [first]) == [None]
        proxy.stop()
        failed = add_all(store, [job(b"down-1"), job(b"down-2")])
        assert all(isinstance(e, StoreError) for e in failed), failed
        assert "could not write" in str(failed[0]) or "unavailable" in str(failed[0])
        assert not store.healthy()
        # while it is down, new submits fail fast rather than queueing up behind reconnects
        started = time.monotonic()
        assert isinstance(add_all(store, [job(b"down-3")])[0], StoreError)
        assert time.monotonic() - started < 3
        proxy.start()
        after = add_until_ok(store, b"after")
        assert store.healthy()
    finally:
        store.close()
    direct = opened(server_service.url)
    try:
        assert list(direct.replay()) == [first, after]  # no half-written batch
    finally:
        direct.close()


def _own_connection_id(store: GroupCommitStore, kind: str) -> int:
    backend = store.backend
    if kind == "redis":
        return int(store._in_thread(backend.client.client_id))  # type: ignore[attr-defined]

    def query() -> int:
        cur = backend.conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SELECT CONNECTION_ID()" if kind == "mysql" else "SELECT pg_backend_pid()")
        value = cur.fetchone()[0]
        backend.conn.commit()  # type: ignore[attr-defined]
        return int(value)

    return store._in_thread(query)


def _kill(kind: str, url: str, conn_id: int) -> None:
    if kind == "redis":
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        client.client_kill_filter(_id=conn_id)
        client.close()
    elif kind == "mysql":
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", database="test")
        with conn.cursor() as cur:
            cur.execute(f"KILL {conn_id}")
        conn.close()
    else:
        import pg8000.native

        user = url.split("//", 1)[1].split("@", 1)[0]
        conn = pg8000.native.Connection(user, host="127.0.0.1", database="test")
        conn.run(f"SELECT pg_terminate_backend({conn_id})")
        conn.close()


def test_killed_connection_is_replaced_without_an_error(server_service) -> None:
    """A server that drops our idle connection (timeout, failover, CLIENT KILL) costs no client an error."""
    store = opened(server_service.url, **FAST)
    try:
        first = job(b"before")
        assert add_all(store, [first]) == [None]
        _kill(server_service.kind, server_service.url, _own_connection_id(store, server_service.kind))
        gevent.sleep(0.1)
        second = job(b"after kill")
        assert add_all(store, [second]) == [None]
        assert store.healthy()
        assert list(store.replay()) == [first, second]
    finally:
        store.close()


def test_removes_of_a_failed_batch_are_written_later(tmp_path) -> None:
    """A lost delete would run a finished job again after the next restart: keep it for later."""
    path = tmp_path / "q.db"
    store = opened(f"sqlite://{path}", busy_timeout=0.1, **FAST)
    try:
        done, kept = job(b"done"), job(b"kept")
        assert add_all(store, [done, kept]) == [None, None]
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        store.remove(done.store_id)
        gevent.sleep(0.5)  # the delete fails (locked) at least once
        assert not store.healthy()
        other.execute("ROLLBACK")
        other.close()
        deadline = time.monotonic() + 5
        while [j.store_id for j in store.replay()] != [kept.store_id]:
            assert time.monotonic() < deadline, "the delete was never written"
            gevent.sleep(0.05)
    finally:
        store.close()
