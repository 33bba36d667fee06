"""Redis (redis-py): ``redis://[:password@]host:6379/0?prefix=gearpy:`` (``rediss://`` for TLS).

Layout, under a configurable prefix (default ``gearpy:``)::

    PREFIX job:STORE_ID   hash  function, unique, data, priority, when, reducer (all bytes-safe)
    PREFIX order          zset  STORE_ID scored by an increasing sequence -> replay order

A batch is one ``MULTI``/``EXEC`` pipeline (one round trip; HSET+ZADD and DEL+ZREM are idempotent,
so retrying a batch whose reply was lost is harmless). Keys hold the store_id, never the function
or unique, so hyphens, NUL bytes and empty uniques cannot collide or break replay (gearmand #159).

**Durability depends on Redis's append-only file**, which gearpy cannot change:

* ``appendonly yes`` + ``appendfsync always``: durable when the job is acknowledged.
* ``appendonly yes`` + ``appendfsync everysec`` (Redis's AOF default): up to ~1 s of acknowledged
  jobs lost on a power failure or OS crash (a redis-server crash alone loses nothing written).
* ``appendonly no`` (Redis's default, and this machine's): jobs survive a gearpy crash or restart,
  but a Redis restart or crash loses them (RDB snapshots, if enabled, keep an older state).

The setting is read with ``CONFIG GET`` at connect and logged (a warning unless ``always``);
``?require_aof=true`` refuses to start without AOF. Servers where CONFIG is disabled or renamed
are tolerated: the level is logged as unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # the optional driver: pip install 'gearpy[redis]'; connect() says so
    redis = None  # type: ignore[assignment]

from gearpy.server.store import StoredJob
from gearpy.server.stores.group_commit import Backend, abort_on_close

log = logging.getLogger("gearpy.server.stores")

DEFAULT_PREFIX = "gearpy:"
DEFAULT_PORT = 6379
EXTRA_OPTIONS: dict[str, type] = {"require_aof": bool}
#: ``table`` means the key prefix here, so one ``--queue-table`` flag serves every store.
OPTION_ALIASES: dict[str, str] = {"table": "prefix"}
#: Jobs fetched per pipeline round trip during replay.
LOAD_CHUNK = 1000


class RedisBackend(Backend):
    """A Redis database holding one hash per job and an ordered index."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        db: int,
        username: str | None,
        password: str | None,
        prefix: str = DEFAULT_PREFIX,
        ssl: bool = False,
        connect_timeout: float = 5.0,
        require_aof: bool = False,
        commit_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.order_key = f"{prefix}order".encode()
        self.require_aof = require_aof
        self.client: Any = None
        self.commits = 0
        self._seq = 0
        self._warned = False
        self._params: dict[str, Any] = dict(
            host=host,
            port=port,
            db=db,
            username=username,
            password=password,
            ssl=ssl,
            socket_connect_timeout=connect_timeout,
            socket_timeout=commit_timeout,
            client_name="gearpy-queue-store",
        )

    def job_key(self, store_id: str) -> bytes:
        return f"{self.prefix}job:{store_id}".encode()

    def connect(self) -> None:
        if redis is None:
            raise ImportError("No module named 'redis'")
        # No driver-level retries: GroupCommitStore retries once and then backs off, which keeps a
        # dead server from stalling every batch for several seconds.
        # A pool that in practice holds one connection: calls are serialised by GroupCommitStore,
        # and pipelines (unlike single_connection_client) always draw from the pool.
        if self._params["ssl"]:  # redis-py picks its own connection class for TLS
            client = redis.Redis(retry=Retry(NoBackoff(), 0), **self._params)
        else:
            params = {k: v for k, v in self._params.items() if k != "ssl"}
            pool = redis.ConnectionPool(
                connection_class=_aborting_connection_class(), retry=Retry(NoBackoff(), 0), **params
            )
            client = redis.Redis(connection_pool=pool)
        try:
            client.ping()
            self._check_durability(client)
            top = client.zrevrange(self.order_key, 0, 0, withscores=True)
        except BaseException:
            client.close()
            raise
        self._seq = max(self._seq, int(top[0][1]) if top else 0)
        self.client = client

    def _check_durability(self, client: Any) -> None:
        try:
            aof = client.config_get("appendonly").get("appendonly")
            fsync = client.config_get("appendfsync").get("appendfsync")
        except redis.ResponseError:
            aof = fsync = None
        if aof is None:
            self.durability = "unknown (CONFIG is disabled): check appendonly/appendfsync on the server"
        elif aof != "yes":
            self.durability = (
                "gearpy crash only: redis runs with appendonly=no, so after a redis restart only what its "
                "last RDB snapshot held is left (set appendonly yes, appendfsync always)"
            )
        elif fsync == "always":
            self.durability = "fsync at every batch (appendonly=yes, appendfsync=always)"
        else:
            self.durability = f"up to ~1 s lost on power failure (appendonly=yes, appendfsync={fsync})"
        if self.require_aof and aof != "yes":
            raise RuntimeError(f"require_aof is set but redis reports appendonly={aof or 'unknown'}")
        if not self._warned and fsync != "always":
            self._warned = True
            log.warning("queue store %s: acknowledged jobs are not fsynced: %s", self.name, self.durability)

    def create_schema(self) -> None:
        """Nothing to create; refuse a prefix whose order key holds something else."""
        kind = self.client.type(self.order_key)
        if kind not in (b"zset", b"none"):
            raise RuntimeError(f"key {self.order_key.decode()!r} is a {kind.decode()}, not a gearpy index")

    def load(self) -> list[StoredJob]:
        ids = self.client.zrange(self.order_key, 0, -1)
        jobs: list[StoredJob] = []
        fields = (b"function", b"unique", b"data", b"priority", b"when", b"reducer")
        for i in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[i : i + LOAD_CHUNK]
            pipe = self.client.pipeline(transaction=False)
            for store_id in chunk:
                pipe.hmget(self.job_key(store_id.decode()), fields)
            for store_id, values in zip(chunk, pipe.execute(), strict=True):
                function, unique, data, priority, when, reducer = values
                if function is None:  # index entry without a job: skip rather than invent one
                    continue
                jobs.append(
                    StoredJob(
                        store_id=store_id.decode(),
                        function=function,
                        unique=unique or b"",
                        payload=data or b"",
                        priority=int(priority or 1),
                        when=int(when or 0),
                        reducer=reducer or b"",
                    )
                )
        return jobs

    def write_batch(self, adds: Sequence[StoredJob], removes: Sequence[str]) -> None:
        pipe = self.client.pipeline(transaction=True)
        scores: dict[str, int] = {}
        for job in adds:
            self._seq += 1
            scores[job.store_id] = self._seq
            pipe.hset(
                self.job_key(job.store_id),
                mapping={
                    "function": job.function,
                    "unique": job.unique,
                    "data": job.payload,
                    "priority": job.priority,
                    "when": job.when,
                    "reducer": job.reducer,
                },
            )
        if scores:
            pipe.zadd(self.order_key, scores)
        if removes:
            pipe.delete(*[self.job_key(store_id) for store_id in removes])
            pipe.zrem(self.order_key, *removes)
        pipe.execute()
        self.commits += 1

    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
                client.connection_pool.disconnect()  # a pool of our own is not closed by close()
            except Exception:
                pass


def _aborting_connection_class() -> type:
    class AbortingConnection(redis.Connection):
        """A redis-py connection whose close is abortive (see :func:`abort_on_close`)."""

        def _connect(self) -> Any:
            sock = super()._connect()  # type: ignore[no-untyped-call]
            abort_on_close(sock)
            return sock

    return AbortingConnection
