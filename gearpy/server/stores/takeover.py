"""Move the jobs waiting in a gearmand queue table into a gearpy store.

Usage (stop gearmand first, so no job is added or finished meanwhile)::

    python -m gearpy.server.stores.takeover --from-gearmand sqlite:///var/lib/gearmand/q.db \\
        --to sqlite:///var/lib/gearpy/queue.db
    python -m gearpy.server.stores.takeover \\
        --from-gearmand 'mysql://gearman:pw@db:3306/gearman?table=gearman_queue' \\
        --to 'mysql://gearman:pw@db:3306/gearman'

``--from-gearmand`` names gearmand's database with ``?table=`` (SQL, default ``gearman_queue``;
``queue`` for PostgreSQL) or ``?prefix=`` (Redis, default ``_gear_``). gearmand's rows
``(unique_key, function_name, priority, data, when_to_run)`` become gearpy rows with fresh
store_ids, keeping unique, priority, due time and payload (a NULL payload becomes empty). The
gearpy rows are committed first, then the gearmand rows are deleted (``--keep`` leaves them): a
crash in between can only duplicate jobs, never lose one. ``--dry-run`` only counts.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from gearpy.config import redact_url, scrub
from gearpy.errors import GearpyError
from gearpy.server.store import StoredJob
from gearpy.server.stores import make_backend
from gearpy.server.stores.gearmand import (
    GEARMAND_REDIS_PREFIX,
    GEARMAND_SQL_TABLE,
    GearmandRow,
    delete_gearmand_sql,
    read_gearmand_redis,
    read_gearmand_sql,
)
from gearpy.server.stores.group_commit import Backend
from gearpy.server.stores.url import check_identifier, parse_url

BATCH = 1000


def _open_source(url: str) -> tuple[list[GearmandRow], Any, Any]:
    """Read every gearmand row; return them, a function deleting a list of their keys, and a closer.

    The read transaction is ended at once, so no lock is held on gearmand's table meanwhile.
    """
    parsed = parse_url(url)
    params = dict(parsed.params)
    if parsed.scheme in ("sqlite", "sqlite3"):
        table = check_identifier(params.get("table", GEARMAND_SQL_TABLE["sqlite"]))
        conn = sqlite3.connect(parsed.path, timeout=6.0)  # plain connection: leave gearmand's file as it is
        rows = list(read_gearmand_sql(conn, table, "sqlite"))
        conn.rollback()
        return rows, lambda keys: delete_gearmand_sql(conn, table, "sqlite", keys), conn.close
    if parsed.scheme in ("redis", "rediss"):
        prefix = params.pop("prefix", GEARMAND_REDIS_PREFIX)
        backend, _, _ = make_backend(url.split("?", 1)[0])
        backend.connect()
        client = backend.client  # type: ignore[attr-defined]
        rows = list(read_gearmand_redis(client, prefix))
        return rows, lambda keys: client.delete(*keys) if keys else None, backend.close
    dialect = "mysql" if parsed.scheme in ("mysql", "mariadb") else "postgres"
    table = check_identifier(params.get("table", GEARMAND_SQL_TABLE[dialect]))
    backend, _, _ = make_backend(url.split("?", 1)[0])
    backend.connect()  # a plain connection; gearpy's schema is not created in gearmand's database
    conn = backend.conn  # type: ignore[attr-defined]
    rows = list(read_gearmand_sql(conn, table, dialect))
    conn.rollback()
    return rows, lambda keys: delete_gearmand_sql(conn, table, dialect, keys), backend.close


def _jobs(rows: Sequence[GearmandRow]) -> Iterator[StoredJob]:
    for row in rows:
        yield StoredJob(
            uuid.uuid4().hex, row.function, row.unique, row.data, min(max(row.priority, 0), 2), row.when
        )


def take_over(from_url: str, to_url: str, *, keep: bool = False, dry_run: bool = False) -> int:
    """Copy gearmand's waiting jobs into the gearpy store at ``to_url``; return how many.

    Runs without gevent (plain blocking calls): it is a one-off operator tool.
    """
    rows, delete, close_source = _open_source(from_url)
    try:
        if dry_run or not rows:
            return len(rows)
        target: Backend
        target, _, _ = make_backend(to_url)
        target.connect()
        try:
            target.create_schema()
            jobs = list(_jobs(rows))
            for i in range(0, len(jobs), BATCH):
                target.write_batch(jobs[i : i + BATCH], ())
        finally:
            target.close()
        if not keep:
            delete([row.key for row in rows])
    finally:
        close_source()
    return len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gearpy.server.stores.takeover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from-gearmand", required=True, metavar="URL", help="gearmand's queue database")
    parser.add_argument("--to", required=True, metavar="URL", help="the gearpy queue store URL")
    parser.add_argument("--keep", action="store_true", help="do not delete the rows from gearmand's table")
    parser.add_argument("--dry-run", action="store_true", help="only count gearmand's waiting jobs")
    args = parser.parse_args(argv)
    try:
        count = take_over(args.from_gearmand, args.to, keep=args.keep, dry_run=args.dry_run)
    except (GearpyError, Exception) as exc:
        # Driver errors are printed as they are, so scrub any password a driver may have echoed.
        message = scrub(" ".join(str(exc).split()), args.from_gearmand, args.to)
        print(f"takeover failed: {message}", file=sys.stderr)
        return 1
    verb = "found" if args.dry_run else "moved"
    print(f"{verb} {count} jobs from {redact_url(args.from_gearmand)} to {redact_url(args.to)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
