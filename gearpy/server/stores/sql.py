"""What the three SQL backends (SQLite, MySQL/MariaDB, PostgreSQL) share: table layout and batches.

gearpy's table, whatever the database (types differ per dialect)::

    seq            auto-increment primary key   -- replay order = insertion order
    store_id       text, UNIQUE                 -- the job's identity (never unique+function)
    function_name  blob    unique_key  blob     -- bytes, byte for byte (NUL allowed)
    priority       int     when_to_run bigint   -- 0 high, 1 normal, 2 low; epoch seconds or 0
    reducer        blob    data        blob     -- never NULL: an empty payload is b''

Unlike gearmand's ``(unique_key, function_name)`` key, two jobs with the same (or an empty) unique
are two rows, and an empty payload is a zero-length blob, not a NULL that breaks the next start.
Every value is a bound parameter; only the validated table name is spliced into SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from gearpy.server.store import StoredJob
from gearpy.server.stores.group_commit import Backend, job_size

COLUMNS = ("store_id", "function_name", "unique_key", "priority", "when_to_run", "reducer", "data")
#: Rows per multi-row INSERT statement (7 parameters each; SQLite allows 32766 per statement).
INSERT_ROWS = 500
#: Payload bytes per INSERT statement, so a statement stays below MySQL's max_allowed_packet.
INSERT_BYTES = 4 * 1024 * 1024
#: store_ids per DELETE ... IN (...) statement.
DELETE_ROWS = 500


def row_of(job: StoredJob) -> tuple[Any, ...]:
    return (job.store_id, job.function, job.unique, job.priority, job.when, job.reducer, job.payload)


def job_of(row: Sequence[Any]) -> StoredJob:
    store_id, function, unique, priority, when, reducer, data = row
    return StoredJob(
        store_id=str(store_id),
        function=bytes(function),
        unique=bytes(unique),
        payload=bytes(data),
        priority=int(priority),
        when=int(when),
        reducer=bytes(reducer),
    )


def chunks_by_size(jobs: Sequence[StoredJob]) -> Iterator[Sequence[StoredJob]]:
    """Split a batch into statements of at most INSERT_ROWS rows / about INSERT_BYTES bytes."""
    start, size = 0, 0
    for i, job in enumerate(jobs):
        if i > start and (i - start >= INSERT_ROWS or size + job_size(job) > INSERT_BYTES):
            yield jobs[start:i]
            start, size = i, 0
        size += job_size(job)
    if start < len(jobs):
        yield jobs[start:]


class SqlBackend(Backend):
    """A DB-API backend; subclasses give the connection, the DDL and the placeholder style."""

    placeholder = "%s"
    quote = '"'

    def __init__(self, table: str, name: str) -> None:
        self.table = table
        self.name = name
        self.conn: Any = None
        self.commits = 0

    @property
    def qtable(self) -> str:
        return f"{self.quote}{self.table}{self.quote}"

    # Dialect hooks ----------------------------------------------------------------------------

    def begin(self, cur: Any) -> None:
        """Start the batch's transaction (DB-API drivers start one implicitly)."""

    def commit(self, cur: Any) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        except Exception:
            pass

    # Backend ----------------------------------------------------------------------------------

    def check_layout(self, cur: Any) -> None:
        """Fail clearly when the table exists with another layout (e.g. gearmand's own table)."""
        try:
            cur.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM {self.qtable} WHERE 1 = 0")
            cur.fetchall()
        except Exception as exc:
            self.rollback()
            raise RuntimeError(
                f"table {self.table!r} exists but is not a gearpy queue table (gearmand's? use "
                f"'python -m gearpy.server.stores.takeover' to move its jobs): {exc}"
            ) from None

    def load(self) -> list[StoredJob]:
        cur = self.conn.cursor()
        try:
            self.begin(cur)
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {self.qtable} ORDER BY seq")
            rows = cur.fetchall()
            self.commit(cur)
        except BaseException:
            self.rollback()
            raise
        return [job_of(row) for row in rows]

    def write_batch(self, adds: Sequence[StoredJob], removes: Sequence[str]) -> None:
        cur = self.conn.cursor()
        try:
            self.begin(cur)
            row_marks = "(" + ", ".join([self.placeholder] * len(COLUMNS)) + ")"
            for chunk in chunks_by_size(adds):
                params = [value for job in chunk for value in row_of(job)]
                cur.execute(
                    f"INSERT INTO {self.qtable} ({', '.join(COLUMNS)}) VALUES "
                    + ", ".join([row_marks] * len(chunk)),
                    params,
                )
            for i in range(0, len(removes), DELETE_ROWS):
                ids = list(removes[i : i + DELETE_ROWS])
                marks = ", ".join([self.placeholder] * len(ids))
                cur.execute(f"DELETE FROM {self.qtable} WHERE store_id IN ({marks})", ids)
            self.commit(cur)
        except BaseException:
            self.rollback()
            raise
        self.commits += 1

    def ping(self) -> None:
        cur = self.conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        self.commit(cur)

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
