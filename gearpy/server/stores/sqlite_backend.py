"""SQLite: the embedded durable store for one machine (``sqlite:///var/lib/gearpy/queue.db``).

Settings and why:

* ``journal_mode=WAL`` + ``synchronous=FULL``: each commit syncs the WAL, so an acknowledged job
  survives kill -9, an OS crash and a power loss (if the disk honours flushes), at ~14x the commit
  rate of gearmand's DELETE journal (reliability.md §4.2). ``?synchronous=NORMAL`` trades power-loss
  durability for speed (still survives kill -9) and is logged as such.
* ``busy_timeout`` (default 5 s): another process holding the database (a backup, the takeover
  tool) delays a batch instead of failing it at once.
* One connection, used by one threadpool thread at a time (``check_same_thread=False``): SQLite
  wants one writer, and the stdlib driver releases the GIL during the fsync, so the event loop
  keeps running.
* The parent directory is created if missing (``/var/lib/gearpy`` on a fresh machine, mode 0750),
  and the database file mode 0600 (its ``-wal``/``-shm`` files inherit that): job payloads are
  not for every local user. An existing database readable by others is logged as a warning.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Any

from gearpy.errors import ConfigError
from gearpy.safefiles import private_file, readable_by_others
from gearpy.server.stores.sql import SqlBackend

log = logging.getLogger("gearpy.server.stores")

DEFAULT_TABLE = "gearpy_queue"
DEFAULT_BUSY_TIMEOUT = 5.0
EXTRA_OPTIONS: dict[str, type] = {"busy_timeout": float, "synchronous": str}
_SYNC_LEVELS = {
    "FULL": "fsync at every commit (WAL, synchronous=FULL): survives power loss",
    "EXTRA": "fsync at every commit (WAL, synchronous=EXTRA): survives power loss",
    "NORMAL": "process crash only (WAL, synchronous=NORMAL): the last commits may roll back on power loss",
    "OFF": "none for OS crashes (synchronous=OFF): power loss can corrupt the database",
}


class SqliteBackend(SqlBackend):
    """A SQLite database file holding gearpy's queue table."""

    placeholder = "?"

    def __init__(
        self,
        path: str,
        table: str = DEFAULT_TABLE,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        synchronous: str = "FULL",
    ) -> None:
        shown = f"sqlite://{path}" if path.startswith("/") else f"sqlite:{path}"
        super().__init__(table, f"{shown} table={table}")
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        if self.synchronous not in _SYNC_LEVELS:
            raise ConfigError(f"sqlite synchronous must be one of {', '.join(_SYNC_LEVELS)}")
        self.durability = _SYNC_LEVELS[self.synchronous]

    def connect(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, mode=0o750, exist_ok=True)
        # Created 0600, so job payloads are the server's user's alone: SQLite gives the -wal and
        # -shm files it makes next to it the database file's mode.
        if not private_file(self.path) and readable_by_others(self.path):
            log.warning(
                "queue database %s can be read by other users (job payloads!): chmod 600 it", self.path
            )
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {self.path} to WAL (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def create_schema(self) -> None:
        self.conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {self.qtable} (
                seq INTEGER PRIMARY KEY,
                store_id TEXT NOT NULL UNIQUE,
                function_name BLOB NOT NULL,
                unique_key BLOB NOT NULL,
                priority INTEGER NOT NULL,
                when_to_run INTEGER NOT NULL,
                reducer BLOB NOT NULL,
                data BLOB NOT NULL)"""
        )
        self.check_layout(self.conn.cursor())

    def begin(self, cur: Any) -> None:
        # IMMEDIATE takes the write lock now, so a busy database fails (after busy_timeout) before
        # anything is written rather than at COMMIT.
        cur.execute("BEGIN IMMEDIATE")

    def commit(self, cur: Any) -> None:
        cur.execute("COMMIT")

    def rollback(self) -> None:
        try:
            if self.conn is not None and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except Exception:
            pass

    def checkpoint(self) -> None:
        """Fold the WAL back into the database (called at close, so the WAL does not grow forever)."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.checkpoint()
            except Exception:
                pass
        super().close()
