"""PostgreSQL (pg8000): ``postgresql://user:pass@host:5432/db?table=gearpy_queue``.

A batch is one transaction; the job is acknowledged after ``COMMIT`` returns. With the default
``synchronous_commit=on`` (read at connect and logged) the commit has reached the WAL on disk;
``off`` may lose the last few hundred milliseconds on a server crash (never corrupts).
``postgres://`` is accepted as a synonym. Without a password in the URL, ``PGPASSWORD`` is used.
"""

from __future__ import annotations

from typing import Any

from gearpy.server.stores.group_commit import abort_on_close
from gearpy.server.stores.sql import SqlBackend

try:
    import pg8000.dbapi
except ImportError:  # the optional driver: pip install 'gearpy[postgres]'; connect() says so
    pg8000 = None

DEFAULT_TABLE = "gearpy_queue"
DEFAULT_PORT = 5432
EXTRA_OPTIONS: dict[str, type] = {}


class PostgresBackend(SqlBackend):
    """A PostgreSQL database holding gearpy's queue table."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        user: str,
        password: str | None,
        database: str,
        table: str = DEFAULT_TABLE,
        connect_timeout: float = 5.0,
        commit_timeout: float = 10.0,
    ) -> None:
        super().__init__(table, name)
        self.commit_timeout = commit_timeout
        self._params: dict[str, Any] = dict(
            host=host, port=port, user=user, password=password, database=database, timeout=connect_timeout
        )

    def connect(self) -> None:
        if pg8000 is None:
            raise ImportError("No module named 'pg8000'")
        conn = pg8000.dbapi.connect(**self._params)
        # pg8000 uses its one ``timeout`` for the connect and every later socket call; after the
        # connect, a call waits up to commit_timeout on a silent server.
        sock = getattr(conn, "_usock", None)
        if sock is not None:
            sock.settimeout(self.commit_timeout)
            abort_on_close(sock)
        try:
            cur = conn.cursor()
            cur.execute("SHOW synchronous_commit")
            level = cur.fetchone()[0]
            cur.execute("SHOW fsync")
            fsync = cur.fetchone()[0]
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if fsync != "on":
            self.durability = "none for OS crashes (the server runs with fsync=off)"
        elif level == "off":
            self.durability = "server crash may lose the last commits (synchronous_commit=off)"
        else:
            self.durability = f"WAL flushed at every commit (synchronous_commit={level})"
        self.conn = conn

    def create_schema(self) -> None:
        cur = self.conn.cursor()
        try:
            cur.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.qtable} (
                    seq BIGSERIAL PRIMARY KEY,
                    store_id VARCHAR(128) NOT NULL UNIQUE,
                    function_name BYTEA NOT NULL,
                    unique_key BYTEA NOT NULL,
                    priority SMALLINT NOT NULL,
                    when_to_run BIGINT NOT NULL,
                    reducer BYTEA NOT NULL,
                    data BYTEA NOT NULL)"""
            )
            self.conn.commit()
        except BaseException:
            self.rollback()
            raise
        self.check_layout(cur)
