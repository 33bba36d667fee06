"""gearmand compatibility: its ``-q`` options as a gearpy URL, and reading its queue tables.

:func:`gearmand_queue_url` lets an operator swap binaries without rewriting flags::

    gearmand -q libsqlite3 --libsqlite3-db=/var/lib/gearmand/q.db
    gearpy-server -q libsqlite3 --libsqlite3-db=/var/lib/gearmand/q.db   # same flags

gearpy keeps its own table (``gearpy_queue``; ``gearpy_<T>`` when gearmand's table was set to a
non-default ``<T>``) or Redis prefix (``gearpy:``) next to gearmand's, in the same database, and
never writes gearmand's layout: that layout keys rows by (unique, function) and loses jobs
(gearman-protocol.md §6.4). Rows gearmand left behind are moved by :mod:`.takeover`, which uses
the readers here (:func:`read_gearmand_jobs`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from gearpy.config import redact_url
from gearpy.errors import ConfigError
from gearpy.server.stores.url import check_identifier

#: gearmand's default table / prefix per module, and gearpy's default in the same database.
GEARMAND_SQL_TABLE = {"sqlite": "gearman_queue", "mysql": "gearman_queue", "postgres": "queue"}
GEARMAND_REDIS_PREFIX = "_gear_"


def _opt(opts: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    """Look an option up under gearmand's spelling, with ``-`` or ``_`` and with or without ``--``."""
    norm = {str(k).lstrip("-").replace("-", "_").lower(): v for k, v in opts.items()}
    for name in names:
        value = norm.get(name)
        if value not in (None, ""):
            return value
    return default


def _gearpy_table(gearmand_table: str | None, module: str) -> str:
    if not gearmand_table or gearmand_table == GEARMAND_SQL_TABLE[module]:
        return "gearpy_queue"
    return check_identifier(f"gearpy_{gearmand_table}"[:63])


def _query(**params: Any) -> str:
    items = {k: v for k, v in params.items() if v not in (None, "")}
    return ("?" + urlencode(items)) if items else ""


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """Parse a libpq ``key=value key='quoted value'`` string (URIs are returned as ``{'uri': ...}``)."""
    text = conninfo.strip()
    if text.startswith(("postgres://", "postgresql://")):
        return {"uri": text}
    out: dict[str, str] = {}
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if not sep:
            raise ConfigError(f"invalid --libpq-conninfo entry {token!r} (expected key=value)")
        out[key.strip().lower()] = value
    return out


def gearmand_queue_url(queue_type: str | None, opts: Mapping[str, Any]) -> str:
    """Translate gearmand's ``-q TYPE`` and its module options into a gearpy queue URL.

    ``opts`` is keyed like the CLI passes them (``libsqlite3_db``, ``mysql_host``, ``libpq_conninfo``,
    ``redis_prefix``, ...; ``--libsqlite3-db`` spellings are accepted too). Unknown or unsupported
    modules raise :class:`ConfigError`. The result never contains a password in clear unless the
    operator passed one (it then goes in the URL, which must be logged with ``redact_url``).
    """
    kind = (queue_type or "builtin").strip().lower()
    if kind in ("builtin", "memory", "none", ""):
        return "memory://"
    if kind in ("libsqlite3", "sqlite", "sqlite3"):
        db = _opt(opts, "libsqlite3_db")
        if not db:
            raise ConfigError("-q libsqlite3 needs --libsqlite3-db=PATH")
        table = _gearpy_table(_opt(opts, "libsqlite3_table"), "sqlite")
        return f"sqlite://{quote(os.path.abspath(str(db)))}" + _query(
            table=table if table != "gearpy_queue" else None
        )
    if kind in ("mysql", "mariadb"):
        database = _opt(opts, "mysql_db")
        if not database:
            raise ConfigError("-q mysql needs --mysql-db=NAME")
        user = _opt(opts, "mysql_user", default="root")
        password = _opt(opts, "mysql_password")
        creds = quote(str(user), safe="") + (f":{quote(str(password), safe='')}" if password else "")
        host = _opt(opts, "mysql_host", default="localhost")
        port = int(_opt(opts, "mysql_port", default=3306))
        table = _gearpy_table(_opt(opts, "mysql_table"), "mysql")
        return f"mysql://{creds}@{host}:{port}/{quote(str(database))}" + _query(
            table=table if table != "gearpy_queue" else None
        )
    if kind in ("postgres", "postgresql", "libpq"):
        info = parse_conninfo(str(_opt(opts, "libpq_conninfo", default="")))
        table = _gearpy_table(_opt(opts, "libpq_table"), "postgres")
        extra = _query(table=table if table != "gearpy_queue" else None)
        if "uri" in info:
            return info["uri"] + (("&" if "?" in info["uri"] else "") + extra[1:] if extra else "")
        env = os.environ
        user = info.get("user") or env.get("PGUSER") or "postgres"
        password = info.get("password")
        creds = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        host = info.get("host") or info.get("hostaddr") or env.get("PGHOST") or "127.0.0.1"
        pg_port = info.get("port") or env.get("PGPORT") or "5432"
        database = info.get("dbname") or env.get("PGDATABASE") or user
        return f"postgresql://{creds}@{host}:{pg_port}/{quote(database)}" + extra
    if kind == "redis":
        host = _opt(opts, "redis_server", default="127.0.0.1")
        port = int(_opt(opts, "redis_port", default=6379))
        password = _opt(opts, "redis_password")
        prefix = _opt(opts, "redis_prefix", default=GEARMAND_REDIS_PREFIX)
        creds = f":{quote(str(password), safe='')}@" if password else ""
        gearpy_prefix = None if prefix == GEARMAND_REDIS_PREFIX else f"gearpy:{prefix}:"
        return f"redis://{creds}{host}:{port}/0" + _query(prefix=gearpy_prefix)
    if kind in ("libmemcached", "libtokyocabinet", "libdrizzle"):
        raise ConfigError(f"-q {kind} is not supported by gearpy; use sqlite, mysql, postgres or redis")
    if any(c in kind for c in ":/@"):  # a mistyped URL (mysql:/u:pw@h): never echo its password
        raise ConfigError(
            f"queue {redact_url(str(queue_type))!r} is neither a store URL (scheme://...) nor a gearmand "
            "queue type (builtin, libsqlite3, mysql, postgres, redis)"
        )
    raise ConfigError(f"unknown queue type {queue_type!r} (builtin, libsqlite3, mysql, postgres, redis)")


# -- reading gearmand's own queue layout (for the takeover) -------------------------------------


@dataclass(slots=True)
class GearmandRow:
    """One job as gearmand stores it; ``key`` is what deletes it again."""

    unique: bytes
    function: bytes
    priority: int
    data: bytes
    when: int
    key: Any


def _b(value: Any) -> bytes:
    if value is None:
        return b""  # gearmand's sqlite module stores an empty payload as NULL
    return value.encode() if isinstance(value, str) else bytes(value)


def read_gearmand_sql(conn: Any, table: str, dialect: str) -> Iterator[GearmandRow]:
    """Rows of gearmand's SQL table ``(unique_key, function_name, priority, data, when_to_run)``."""
    check_identifier(table)
    q = "`" if dialect == "mysql" else '"'
    cur = conn.cursor()
    order = " ORDER BY rowid" if dialect == "sqlite" else ""
    columns = "unique_key, function_name, priority, data"
    try:
        cur.execute(f"SELECT {columns}, when_to_run FROM {q}{table}{q}{order}")
        rows = cur.fetchall()
    except Exception:  # tables from gearmand < 0.33 have no when_to_run column
        conn.rollback()
        cur = conn.cursor()
        cur.execute(f"SELECT {columns}, 0 FROM {q}{table}{q}{order}")
        rows = cur.fetchall()
    for unique, function, priority, data, when in rows:
        yield GearmandRow(
            _b(unique), _b(function), int(priority or 0), _b(data), int(when or 0), (unique, function)
        )


def delete_gearmand_sql(conn: Any, table: str, dialect: str, keys: list[Any]) -> None:
    """Delete the taken-over rows (by gearmand's own key) and commit."""
    q = "`" if dialect == "mysql" else '"'
    mark = "?" if dialect == "sqlite" else "%s"
    cur = conn.cursor()
    for unique, function in keys:
        cur.execute(
            f"DELETE FROM {q}{table}{q} WHERE unique_key = {mark} AND function_name = {mark}",
            (unique, function),
        )
    conn.commit()


def read_gearmand_redis(client: Any, prefix: str) -> Iterator[GearmandRow]:
    """Hashes ``PREFIX-FUNCTION-UNIQUE`` with ``data``/``priority`` (and ``function``/``unique``)."""
    head = f"{prefix}-".encode()
    for key in client.scan_iter(match=head + b"*", count=1000):
        fields = client.hgetall(key)
        if b"data" not in fields and b"priority" not in fields:
            continue
        function, unique = fields.get(b"function"), fields.get(b"unique")
        if function is None:  # gearmand < master: only the key names them (split at the first '-')
            function, _, unique = key[len(head) :].partition(b"-")
        yield GearmandRow(
            unique or b"", function, int(fields.get(b"priority", b"1")), fields.get(b"data", b""), 0, key
        )
