"""The registry of queue stores (:data:`STORES`, :func:`open_store`): memory, and the durable
SQLite, MySQL/MariaDB, PostgreSQL and Redis stores, all with group commit.

Choose one with a URL (``gearpy-server -q URL``, or ``server: {queue: URL}`` in YAML)::

    sqlite:///var/lib/gearpy/queue.db          embedded; the default durable store for one machine
    mysql://user:pass@host:3306/db             MySQL / MariaDB (PyMySQL)
    postgresql://user:pass@host:5432/db        PostgreSQL (pg8000); postgres:// works too
    redis://[:pass@]host:6379/0                Redis (redis-py); rediss:// for TLS

Options go in the query string or as keyword arguments (keywords win; an ``options`` mapping is
accepted too): ``table`` (SQL, default ``gearpy_queue``), ``prefix`` (Redis, default ``gearpy:``),
``max_batch``, ``max_batch_bytes``, ``commit_delay``, ``reconnect_min``, ``reconnect_max``,
``connect_timeout``, ``commit_timeout`` (network stores: seconds a commit may wait on a silent
database before it fails, default 10), ``close_timeout``; SQLite also ``busy_timeout`` and ``synchronous``
(``FULL`` default, ``NORMAL`` survives kill -9 but not power loss); Redis also ``require_aof``.

Every store acknowledges a background job only after its transaction committed, batches the writes
of concurrent submits into one transaction (:mod:`.group_commit`), keys rows by the job's
``store_id`` (so empty and repeated uniques and empty payloads are all kept), and replays in
insertion order. What "committed" survives (fsync, server crash only, ...) depends on the database
settings and is logged at start; see each backend module.

**Moving from gearmand.** :func:`gearmand_queue_url` turns gearmand's ``-q``/``--libsqlite3-*``/
``--mysql-*``/``--libpq-*``/``--redis-*`` options into a URL, so the same flags work. gearpy never
writes gearmand's table (its layout loses jobs, see gearman-protocol.md §6.4); jobs still waiting
in it are moved once with::

    python -m gearpy.server.stores.takeover --from-gearmand sqlite:///var/lib/gearmand/queue.db \\
        --to sqlite:///var/lib/gearpy/queue.db

(stop gearmand first; see :mod:`.takeover`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import NamedTuple

from gearpy.errors import ConfigError
from gearpy.server.store import MemoryStore, QueueStore
from gearpy.server.stores import mysql_backend, postgres_backend, redis_backend, sqlite_backend
from gearpy.server.stores.gearmand import gearmand_queue_url
from gearpy.server.stores.group_commit import Backend, GroupCommitStore
from gearpy.server.stores.url import StoreURL, check_identifier, parse_options, parse_url

__all__ = [
    "Backend",
    "GroupCommitStore",
    "gearmand_queue_url",
    "make_backend",
    "open_durable_store",
    "open_store",
]

#: Seconds a network store's commit (or any call) may wait on a silent database before it fails:
#: with the reconnect's ``connect_timeout`` (5 s) this bounds how long a submitter waits for its
#: ERROR QUEUE_ERROR when the database's link is cut without a reset (a partition).
DEFAULT_COMMIT_TIMEOUT = 10.0

_STORE_OPTIONS = (
    "max_batch",
    "max_batch_bytes",
    "commit_delay",
    "reconnect_min",
    "reconnect_max",
    "close_timeout",
)


def _sqlite(url: StoreURL, opts: dict[str, object]) -> Backend:
    mod = sqlite_backend
    return mod.SqliteBackend(
        url.path,
        table=check_identifier(str(opts.get("table") or mod.DEFAULT_TABLE)),
        busy_timeout=float(opts.get("busy_timeout", mod.DEFAULT_BUSY_TIMEOUT)),  # type: ignore[arg-type]
        synchronous=str(opts.get("synchronous", "FULL")),
    )


def _name(url: StoreURL, default_port: int, detail: str) -> str:
    """A log-safe name: scheme, user, host, port, database; never the password."""
    user = f"{url.user or ''}:***@" if url.password else (f"{url.user}@" if url.user else "")
    return f"{url.scheme}://{user}{url.host or '127.0.0.1'}:{url.port or default_port}/{url.path} {detail}"


def _mysql(url: StoreURL, opts: dict[str, object]) -> Backend:
    mod = mysql_backend
    table = check_identifier(str(opts.get("table") or mod.DEFAULT_TABLE))
    if not url.path:
        raise ConfigError("mysql queue URL needs a database: mysql://user:pass@host:3306/DB")
    return mod.MysqlBackend(
        _name(url, mod.DEFAULT_PORT, f"table={table}"),
        host=url.host or "127.0.0.1",
        port=url.port or mod.DEFAULT_PORT,
        user=url.user or "root",
        password=url.password or "",
        database=url.path,
        table=table,
        connect_timeout=float(opts.get("connect_timeout", 5.0)),  # type: ignore[arg-type]
        commit_timeout=float(opts.get("commit_timeout", DEFAULT_COMMIT_TIMEOUT)),  # type: ignore[arg-type]
    )


def _postgres(url: StoreURL, opts: dict[str, object]) -> Backend:
    mod = postgres_backend
    table = check_identifier(str(opts.get("table") or mod.DEFAULT_TABLE))
    user = url.user or os.environ.get("PGUSER") or "postgres"
    return mod.PostgresBackend(
        _name(url, mod.DEFAULT_PORT, f"table={table}"),
        host=url.host or "127.0.0.1",
        port=url.port or mod.DEFAULT_PORT,
        user=user,
        password=url.password if url.password is not None else os.environ.get("PGPASSWORD"),
        database=url.path or user,
        table=table,
        connect_timeout=float(opts.get("connect_timeout", 5.0)),  # type: ignore[arg-type]
        commit_timeout=float(opts.get("commit_timeout", DEFAULT_COMMIT_TIMEOUT)),  # type: ignore[arg-type]
    )


def _redis(url: StoreURL, opts: dict[str, object]) -> Backend:
    mod = redis_backend
    # ``table`` arrives here as ``prefix`` (``OPTION_ALIASES``): ``--queue-table`` names "table or prefix".
    prefix = str(opts.get("prefix") or mod.DEFAULT_PREFIX)
    try:
        db = int(url.path or 0)
    except ValueError:
        raise ConfigError(f"redis database must be a number, not {url.path!r}") from None
    return mod.RedisBackend(
        _name(url, mod.DEFAULT_PORT, f"prefix={prefix}"),
        host=url.host or "127.0.0.1",
        port=url.port or mod.DEFAULT_PORT,
        db=db,
        username=url.user,
        password=url.password,
        prefix=prefix,
        ssl=url.scheme == "rediss",
        connect_timeout=float(opts.get("connect_timeout", 5.0)),  # type: ignore[arg-type]
        commit_timeout=float(opts.get("commit_timeout", DEFAULT_COMMIT_TIMEOUT)),  # type: ignore[arg-type]
        require_aof=bool(opts.get("require_aof", False)),
    )


class StoreKind(NamedTuple):
    """One entry of the registry: how to build the backend, and the options it adds."""

    #: None for the in-memory store: nothing to connect to, nothing durable
    backend: Callable[[StoreURL, dict[str, object]], Backend] | None
    extra_options: Mapping[str, type]
    #: option names accepted as another's (redis: ``table`` means ``prefix``)
    option_aliases: Mapping[str, str] = {}


_MEMORY = StoreKind(None, {})
_SQLITE = StoreKind(_sqlite, sqlite_backend.EXTRA_OPTIONS)
_MYSQL = StoreKind(_mysql, mysql_backend.EXTRA_OPTIONS)
_POSTGRES = StoreKind(_postgres, postgres_backend.EXTRA_OPTIONS)
_REDIS = StoreKind(_redis, redis_backend.EXTRA_OPTIONS, redis_backend.OPTION_ALIASES)

#: Every queue store by URL scheme (gearmand's ``-q`` names are translated by gearmand_queue_url).
STORES: dict[str, StoreKind] = {
    "memory": _MEMORY,
    "builtin": _MEMORY,
    "sqlite": _SQLITE,
    "sqlite3": _SQLITE,
    "mysql": _MYSQL,
    "mariadb": _MYSQL,
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    "redis": _REDIS,
    "rediss": _REDIS,
}


def open_store(url: str, **options: object) -> QueueStore:
    """Build the store named by a ``--queue`` URL (``memory://``, ``sqlite:///path``, ...)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else (url.lower() or "memory")
    kind = STORES.get(scheme or "memory")
    if kind is not None and kind.backend is None:
        return MemoryStore()
    return open_durable_store(url, **options)


def make_backend(url: str, **options: object) -> tuple[Backend, dict[str, object], StoreURL]:
    """Parse ``url`` and options into a backend (not connected), the checked options and the URL."""
    parsed = parse_url(url)
    kind = STORES.get(parsed.scheme)
    if kind is None or kind.backend is None:
        raise ConfigError(
            f"unknown queue store {parsed.scheme!r} in {parsed.redacted!r} "
            f"(known: {', '.join(sorted(STORES))})"
        )
    opts = parse_options(parsed, options, kind.extra_options, kind.option_aliases)
    if opts.get("prefix") and kind is not _REDIS:
        raise ConfigError(f"'prefix' is for redis queue stores; use 'table' for {parsed.scheme}")
    try:
        backend = kind.backend(parsed, opts)
    except ImportError as exc:
        raise ConfigError(
            f"queue store {parsed.scheme!r} needs its driver: pip install 'gearpy[{parsed.scheme}]' ({exc})"
        ) from None
    return backend, opts, parsed


def open_durable_store(url: str, **options: object) -> GroupCommitStore:
    """Build the durable store named by ``url``; the caller then calls ``open()`` and ``replay()``.

    Raises :class:`ConfigError` for a bad URL or option (checked before any connection). The
    store is returned unopened so the server decides when to connect (``open()`` raises
    :class:`gearpy.errors.StoreError` with one log-safe line when the database is unreachable).
    """
    backend, opts, parsed = make_backend(url, **options)
    tuning = {key: opts[key] for key in _STORE_OPTIONS if key in opts}
    return GroupCommitStore(backend, secret=parsed.password, **tuning)  # type: ignore[arg-type]
