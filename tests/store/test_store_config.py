"""Store URLs and options, gearmand's ``-q`` spellings, and taking over gearmand's queue tables."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid

import pytest

from gearpy.errors import ConfigError, StoreError
from gearpy.server.store import MemoryStore, StoredJob
from gearpy.server.stores import gearmand_queue_url, open_durable_store, open_store
from gearpy.server.stores.takeover import take_over
from gearpy.server.stores.url import parse_url

from .test_store_roundtrip import opened


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/gearpy/queue.db", "/var/lib/gearpy/queue.db"),
        ("sqlite:////var/lib/gearpy/queue.db", "/var/lib/gearpy/queue.db"),
        ("sqlite://rel/queue.db", "rel/queue.db"),
        ("sqlite:queue.db?table=t", "queue.db"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    assert parse_url(url).path == path


def test_options_from_url_options_mapping_and_keywords() -> None:
    assert open_durable_store("sqlite:///tmp/x.db?table=a").backend.table == "a"  # type: ignore[attr-defined]
    store = open_durable_store("sqlite:///tmp/x.db?table=a", options={"table": "b"})
    assert store.backend.table == "b"  # type: ignore[attr-defined]
    store = open_durable_store("sqlite:///tmp/x.db?table=a", options={"table": "b"}, table="c")
    assert store.backend.table == "c"  # type: ignore[attr-defined]
    store = open_durable_store("sqlite:///tmp/x.db?max_batch=7&commit_delay=0.001", table=None)
    assert (store.max_batch, store.commit_delay) == (7, 0.001)
    assert store.backend.table == "gearpy_queue"  # type: ignore[attr-defined]
    redis_store = open_durable_store("redis://127.0.0.1/0", table="from-cli:")  # --queue-table
    assert redis_store.backend.prefix == "from-cli:"  # type: ignore[attr-defined]
    # gearpy-server passes table=None when --queue-table is not given: the URL's table still holds.
    assert open_store("sqlite:///tmp/x.db?table=a", table=None).backend.table == "a"  # type: ignore[attr-defined]
    store = open_durable_store("mysql://root@127.0.0.1/test?commit_timeout=2.5")
    assert store.backend._params["read_timeout"] == 2.5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///tmp/x.db?tabel=a", "unknown option 'tabel'"),
        ("sqlite:///tmp/x.db?table=a;drop", "invalid table name"),
        ("sqlite:///tmp/x.db?max_batch=many", "not a valid int"),
        ("sqlite:///tmp/x.db?synchronous=sometimes", "synchronous"),
        ("sqlite:///tmp/x.db?prefix=p", "'prefix' is for redis"),
        ("oracle://db/x", "unknown queue store 'oracle'"),
        ("redis://127.0.0.1/zero", "must be a number"),
        ("mysql://root@127.0.0.1:3306/", "needs a database"),
        ("mysql://root@127.0.0.1:99999/db", "invalid port"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


def test_memory_and_names_without_passwords() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    for url in ("mysql://u:pw-123@h:3306/db", "postgres://u:pw-123@h/db", "redis://:pw-123@h:6379/1"):
        store = open_store(url)
        assert "pw-123" not in store.name and "***" in store.name
        assert "pw-123" not in repr(parse_url(url))


@pytest.mark.parametrize(
    ("kind", "opts", "url"),
    [
        ("builtin", {}, "memory://"),
        (None, {}, "memory://"),
        ("libsqlite3", {"libsqlite3_db": "/var/q.db"}, "sqlite:///var/q.db"),
        (
            "libsqlite3",
            {"libsqlite3-db": "/var/q.db", "libsqlite3_table": "jobs"},
            "sqlite:///var/q.db?table=gearpy_jobs",
        ),
        (
            "MySQL",
            {
                "mysql_host": "db",
                "mysql_port": "3307",
                "mysql_user": "gm",
                "mysql_password": "p@ss",
                "mysql_db": "q",
            },
            "mysql://gm:p%40ss@db:3307/q",
        ),
        ("mysql", {"mysql_db": "q", "mysql_table": "gearman_queue"}, "mysql://root@localhost:3306/q"),
        (
            "postgres",
            {"libpq_conninfo": "host=pg port=5433 dbname=jobs user=gm password='a b'", "libpq_table": "q2"},
            "postgresql://gm:a%20b@pg:5433/jobs?table=gearpy_q2",
        ),
        ("postgres", {"libpq_conninfo": "postgresql://gm@pg/jobs"}, "postgresql://gm@pg/jobs"),
        (
            "redis",
            {"redis_server": "r", "redis_port": "6380", "redis_password": "pw"},
            "redis://:pw@r:6380/0",
        ),
        ("redis", {"redis_prefix": "jobs"}, "redis://127.0.0.1:6379/0?prefix=gearpy%3Ajobs%3A"),
    ],
)
def test_gearmand_queue_url(kind, opts, url) -> None:
    assert gearmand_queue_url(kind, opts) == url
    open_store(url)  # every translation is a valid store URL


def test_gearmand_queue_url_errors() -> None:
    with pytest.raises(ConfigError, match="libsqlite3-db"):
        gearmand_queue_url("libsqlite3", {})
    with pytest.raises(ConfigError, match="not supported"):
        gearmand_queue_url("libmemcached", {})
    with pytest.raises(ConfigError, match="unknown queue type"):
        gearmand_queue_url("nosuch", {})


# -- takeover of gearmand's queue --------------------------------------------------------------

GEARMAND_ROWS = [  # (unique, function, priority, data, when) as gearmand writes them
    (b"u1", b"fn", 0, b"high", 0),
    (b"u2", b"fn", 1, None, 0),  # gearmand's sqlite stores an empty payload as NULL
    (b"u3", b"other", 2, b"\x00bin\x00", 2_000_000_000),
]


def _gearmand_source(kind: str, service, tmp_path) -> str:
    """Create a gearmand-layout queue in ``kind``'s database; return its takeover URL."""
    name = f"gm_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        path = tmp_path / "gearmand.db"
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER, "
            "data BLOB, when_to_run INTEGER, PRIMARY KEY(unique_key, function_name))"
        )
        conn.executemany(
            "INSERT INTO gearman_queue VALUES (?, ?, ?, ?, ?)",
            [(u.decode(), f.decode(), p, d, w) for u, f, p, d, w in GEARMAND_ROWS],
        )
        conn.commit()
        conn.close()
        return f"sqlite://{path}"
    if kind == "redis":
        import redis

        client = redis.Redis()
        for unique, function, priority, data, _ in GEARMAND_ROWS:
            client.hset(
                f"{name}-".encode() + function + b"-" + unique,
                mapping={"data": data or b"", "priority": priority},
            )
        old_cleanup = service.cleanup

        def cleanup() -> None:
            old_cleanup()
            keys = list(client.scan_iter(match=f"{name}-*"))
            if keys:
                client.delete(*keys)

        service.cleanup = cleanup
        return f"redis://127.0.0.1:6379/0?prefix={name}"
    base = service.url.split("?", 1)[0]
    store = open_store(service.url)
    backend = store.backend  # a plain DB-API connection to the same database
    backend.connect()
    cur = backend.conn.cursor()
    blob = "LONGBLOB" if kind == "mysql" else "BYTEA"
    cur.execute(
        f"CREATE TABLE {name} (unique_key VARCHAR(64), function_name VARCHAR(255), priority INT, "
        f"data {blob}, when_to_run INT, UNIQUE (unique_key, function_name))"
    )
    for unique, function, priority, data, when in GEARMAND_ROWS:
        cur.execute(
            f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s)",
            (unique.decode(), function.decode(), priority, data, when),
        )
    backend.conn.commit()
    backend.close()
    old_cleanup = service.cleanup

    def drop() -> None:
        old_cleanup()
        backend.connect()
        c = backend.conn.cursor()
        c.execute(f"DROP TABLE IF EXISTS {name}")
        backend.conn.commit()
        backend.close()

    service.cleanup = drop
    return f"{base}?table={name}"


def test_takeover_moves_gearmand_jobs(service, tmp_path) -> None:
    source = _gearmand_source(service.kind, service, tmp_path)
    assert take_over(source, service.url, dry_run=True) == 3
    assert take_over(source, service.url) == 3
    assert take_over(source, service.url) == 0  # gearmand's rows are gone: nothing runs twice
    store = opened(service.url)
    try:
        jobs = sorted(store.replay(), key=lambda j: j.unique)
    finally:
        store.close()
    assert [(j.unique, j.function, j.priority, j.payload, j.when) for j in jobs] == [
        (u, f, p, d or b"", w if service.kind != "redis" else 0) for u, f, p, d, w in GEARMAND_ROWS
    ]
    assert all(isinstance(j, StoredJob) and len(j.store_id) == 32 for j in jobs)


def test_takeover_command_line(tmp_path) -> None:
    source = tmp_path / "gearmand.db"
    conn = sqlite3.connect(source)
    conn.execute(
        "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB,"
        " when_to_run INTEGER)"
    )
    conn.execute("INSERT INTO gearman_queue VALUES ('', 'f', 1, 'x', 0)")
    conn.commit()
    conn.close()
    argv = [
        sys.executable,
        "-m",
        "gearpy.server.stores.takeover",
        "--from-gearmand",
        f"sqlite://{source}",
        "--to",
        f"sqlite://{tmp_path}/gearpy.db",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "moved 1 jobs" in proc.stdout


def test_gearmand_table_is_never_used_as_a_gearpy_table(tmp_path) -> None:
    path = tmp_path / "shared.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB,"
        " when_to_run INTEGER)"
    )
    conn.close()
    store = open_store(f"sqlite://{path}?table=gearman_queue")
    with pytest.raises(StoreError, match="not a gearpy queue table.*takeover"):
        store.open()


def test_one_registry_names_every_store_including_memory() -> None:
    for url in ("memory://", "builtin://", "memory", "builtin", ""):
        assert isinstance(open_store(url, table="ignored"), MemoryStore), url
    with pytest.raises(ConfigError, match="known: builtin, mariadb, memory, mysql, postgres"):
        open_store("oracle://db/x")
