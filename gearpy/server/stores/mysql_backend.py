"""MySQL / MariaDB (PyMySQL): ``mysql://user:pass@host:3306/db?table=gearpy_queue``.

A batch is one InnoDB transaction; the job is acknowledged after ``COMMIT`` returns. How durable
that is depends on the server's ``innodb_flush_log_at_trx_commit``, read at connect and logged:
1 (the default) syncs the redo log at every commit (InnoDB groups concurrent commits itself);
2 writes at commit and syncs about once a second (survives a mysqld crash, not an OS crash);
0 may lose about a second even on a mysqld crash.

The server's ``max_allowed_packet`` bounds one statement, so the backend reports a per-job limit
(half of it, since escaping can double binary data): a bigger job fails alone with a clear error
instead of failing its batch or looping on reconnects (gearmand #126).
"""

from __future__ import annotations

from typing import Any

from gearpy.server.stores.group_commit import abort_on_close
from gearpy.server.stores.sql import SqlBackend

try:
    import pymysql
except ImportError:  # the optional driver: pip install 'gearpy[mysql]'; connect() says so
    pymysql = None  # type: ignore[assignment]

DEFAULT_TABLE = "gearpy_queue"
DEFAULT_PORT = 3306
EXTRA_OPTIONS: dict[str, type] = {}
_FLUSH_LEVELS = {
    "1": "fsync of the InnoDB log at every commit (innodb_flush_log_at_trx_commit=1)",
    "2": "mysqld crash only: up to ~1 s lost on an OS crash (innodb_flush_log_at_trx_commit=2)",
    "0": "up to ~1 s lost even on a mysqld crash (innodb_flush_log_at_trx_commit=0)",
}


class MysqlBackend(SqlBackend):
    """A MySQL/MariaDB database holding gearpy's queue table (InnoDB)."""

    quote = "`"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        database: str,
        table: str = DEFAULT_TABLE,
        connect_timeout: float = 5.0,
        commit_timeout: float = 10.0,
    ) -> None:
        super().__init__(table, name)
        self._params: dict[str, Any] = dict(
            host=host,
            port=port,
            user=user,
            password=password,
            database=database,
            connect_timeout=connect_timeout,
            read_timeout=commit_timeout,
            write_timeout=commit_timeout,
            autocommit=False,
            max_allowed_packet=1 << 30,
            binary_prefix=True,
            charset="utf8mb4",
        )

    def connect(self) -> None:
        if pymysql is None:
            raise ImportError("No module named 'pymysql'")
        conn = pymysql.connect(**self._params)
        abort_on_close(getattr(conn, "_sock", None))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@max_allowed_packet, @@innodb_flush_log_at_trx_commit")
                packet, flush = cur.fetchone()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self.max_job_bytes = max(1024, (int(packet) - 65536) // 2)
        self.durability = _FLUSH_LEVELS.get(str(flush), f"innodb_flush_log_at_trx_commit={flush}")
        self.conn = conn

    def create_schema(self) -> None:
        cur = self.conn.cursor()
        cur.execute(
            f"""CREATE TABLE IF NOT EXISTS {self.qtable} (
                seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                store_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                function_name BLOB NOT NULL,
                unique_key BLOB NOT NULL,
                priority TINYINT NOT NULL,
                when_to_run BIGINT NOT NULL,
                reducer BLOB NOT NULL,
                data LONGBLOB NOT NULL,
                UNIQUE KEY store_id (store_id)
            ) ENGINE=InnoDB"""
        )
        self.conn.commit()
        self.check_layout(cur)
