"""Group commit: one transaction for all the writes of an event-loop turn, off the event loop.

Why: a durable store may acknowledge a job only after a commit, and a commit costs at least one
fsync (or one round trip to a database server). One commit per job caps a server at 1/fsync
jobs per second (gearmand: ~500/s on SQLite). Batching every write that arrives while the
previous commit runs multiplies that by the batch size, while each job still waits at most about
two commit times (reference: ``reliability.md`` §4.3, the pattern of Redis and RabbitMQ).

How:

* :meth:`GroupCommitStore.add` and :meth:`~GroupCommitStore.remove` only append to in-memory
  lists and wake one *committer* greenlet. No I/O happens in the caller's greenlet.
* The committer takes everything pending (up to ``max_batch`` jobs / ``max_batch_bytes``) and runs
  :meth:`Backend.write_batch` in gevent's threadpool, so the database call (fsync, socket wait)
  never blocks the event loop. Writes that arrive meanwhile form the next batch.
* After the commit the committer, which runs in the hub's thread, calls every ``on_durable``
  callback of the batch in submission order: ``None`` on success, a :class:`StoreError` when the
  transaction failed, in which case nothing of the batch was written (one transaction).
* Failures: a failed batch is retried once on a fresh connection (a server that closed an idle
  connection is not an error worth showing a client). If that fails too, the store is *broken*:
  new adds fail at once with a clear error until a reconnect succeeds; reconnects are tried in the
  background with exponential backoff (``reconnect_min`` to ``reconnect_max``), so a store that
  comes back is used again within about ``reconnect_max`` seconds without a restart. Removes of a
  failed batch are kept for the next one (a lost delete would run the job again at the next start),
  and so are deletes of the failed batch's own jobs: a commit cut off mid-way may have been applied.
* A silent database (a partition: no reset, no reply) fails a commit after the backend's
  ``commit_timeout`` (network stores, default 10 s) plus ``connect_timeout`` (5 s) for the retry's
  reconnect: submitters get ERROR QUEUE_ERROR within about 15 s, never an acknowledgement.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import gevent
import gevent.event
import gevent.lock

from gearpy.errors import StoreError
from gearpy.server.store import CommitListener, DurableCallback, QueueStore, StoredJob

log = logging.getLogger("gearpy.server.stores")
T = TypeVar("T")
Pending = tuple[StoredJob, DurableCallback, "StoreError | None"]

#: Most jobs written in one transaction; bounds the latency of a single commit.
DEFAULT_MAX_BATCH = 1000
#: Most payload bytes written in one transaction (a batch always takes at least one job).
DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024
#: First and longest pause between reconnect attempts to a store that went away.
DEFAULT_RECONNECT_MIN = 0.1
DEFAULT_RECONNECT_MAX = 1.0
#: How long :meth:`GroupCommitStore.close` waits for pending writes before giving up on them.
DEFAULT_CLOSE_TIMEOUT = 10.0
#: Most removes written in one transaction (they are tiny; this only bounds statement size).
MAX_REMOVES_PER_BATCH = 10000


class Backend(ABC):
    """What a database must offer to be a group-committed queue store.

    Every method is called from a threadpool thread, never two at a time, so a backend holds one
    plain blocking connection and needs no locking of its own.
    """

    #: Redacted description for logs (e.g. ``mysql://root:***@127.0.0.1:3306/test table=q``).
    name: str = "backend"
    #: Plain-words durability of an acknowledged job, filled in by :meth:`connect` (logged at open).
    durability: str = "unknown"
    #: Largest job (payload + names) the backend can store, or None; bigger jobs fail alone, at once.
    max_job_bytes: int | None = None
    #: Committed :meth:`write_batch` transactions, for tests and metrics.
    commits: int = 0

    @abstractmethod
    def connect(self) -> None:
        """Open the connection (closing none: :meth:`close` is called first on a reconnect)."""

    @abstractmethod
    def create_schema(self) -> None:
        """Create the table / check the key layout if missing; idempotent."""

    @abstractmethod
    def load(self) -> list[StoredJob]:
        """Every stored job, in insertion order."""

    @abstractmethod
    def write_batch(self, adds: Sequence[StoredJob], removes: Sequence[str]) -> None:
        """Insert ``adds`` and delete ``removes`` (by store_id) in ONE transaction, then commit."""

    def ping(self) -> None:
        """Raise if the connection is unusable."""

    @abstractmethod
    def close(self) -> None:
        """Drop the connection; must not raise."""


def abort_on_close(sock: Any) -> None:
    """Make closing ``sock`` abortive (SO_LINGER 0: an RST, and unsent data is dropped).

    Why: a commit given up after ``commit_timeout`` may still sit in the kernel's retransmission
    queue. A graceful close would keep sending it, and a database that comes back would apply that
    stale commit after the server already answered QUEUE_ERROR and deleted the batch's rows. The
    drivers close their socket themselves on a timeout, so this is set once, at connect.
    """
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


def job_size(job: StoredJob) -> int:
    return len(job.payload) + len(job.function) + len(job.unique) + len(job.reducer)


def describe(exc: BaseException, secret: str | None = None) -> str:
    """One line for an exception, with ``secret`` (a password) scrubbed if a driver echoed it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}"


class GroupCommitStore(QueueStore):
    """A durable :class:`QueueStore` over any :class:`Backend`, with group commit (see module doc)."""

    durable = True

    def __init__(
        self,
        backend: Backend,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        commit_delay: float = 0.0,
        reconnect_min: float = DEFAULT_RECONNECT_MIN,
        reconnect_max: float = DEFAULT_RECONNECT_MAX,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        secret: str | None = None,
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self.max_batch = max(1, max_batch)
        self.max_batch_bytes = max(1, max_batch_bytes)
        self.commit_delay = commit_delay
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_min, reconnect_max)
        self.close_timeout = close_timeout
        self._secret = secret
        # (job, callback, error decided at add time or None); one queue keeps callbacks in order.
        self._adds: deque[Pending] = deque()
        self._removes: deque[str] = deque()
        self._wake = gevent.event.Event()
        # One backend call at a time: replay()/open()/close() from the server's greenlets must not
        # share the connection with a commit running in another thread.
        self._lock = gevent.lock.BoundedSemaphore()
        self._idle = gevent.event.Event()
        self._idle.set()
        self._committer: gevent.Greenlet | None = None
        self._connected = False
        self._opened = False
        self._closed = False
        self._last_error: str | None = None
        self._backoff = reconnect_min
        self._retry_at = 0.0
        #: Called after each committed batch with (seconds the commit took, jobs written); the
        #: server's metrics set it (``commit_seconds`` / ``commit_batch`` histograms).
        self.commit_observer: CommitListener | None = None
        #: Counters for tests and metrics.
        self.batches = 0
        self.jobs_written = 0
        self.failed_batches = 0
        self.largest_batch = 0

    # -- the QueueStore interface -------------------------------------------------------------

    def open(self) -> None:
        """Connect and create the schema; raise :class:`StoreError` in one line if unreachable."""
        try:
            self._in_thread(self._reconnect)
        except Exception as exc:
            raise StoreError(f"cannot open queue store {self.name}: {describe(exc, self._secret)}") from None
        self._connected = self._opened = True
        log.info("queue store %s opened; durability: %s", self.name, self.backend.durability)
        self._committer = gevent.spawn(self._run)

    def replay(self) -> list[StoredJob]:
        """Every job stored by an earlier run, oldest first (read in the threadpool)."""
        try:
            try:
                jobs = self._in_thread(self.backend.load)
            except Exception:  # one retry on a fresh connection, as for writes
                self._connected = False
                self._in_thread(self._reconnect)
                self._connected = True
                jobs = self._in_thread(self.backend.load)
        except Exception as exc:
            raise StoreError(f"cannot read queue store {self.name}: {describe(exc, self._secret)}") from None
        log.info("queue store %s: %d stored jobs to replay", self.name, len(jobs))
        return jobs

    def watch_commits(self, listener: CommitListener) -> None:
        """Report each commit's duration and size to ``listener`` (the server's metrics)."""
        self.commit_observer = listener

    def add(self, job: StoredJob, on_durable: DurableCallback) -> None:
        """Queue ``job`` for the next commit; ``on_durable`` runs in the hub's thread afterwards."""
        limit = self.backend.max_job_bytes
        if self._closed or not self._opened:
            self._later(on_durable, StoreError(f"queue store {self.name} is not open"))
            return
        error = None
        if limit is not None and job_size(job) > limit:
            # Refused alone: an oversized job must not fail the other jobs of its batch. It still
            # goes through the queue so that callbacks keep the order of the adds.
            error = StoreError(
                f"job of {job_size(job)} bytes exceeds the limit of queue store {self.name} ({limit} bytes)"
            )
        self._adds.append((job, on_durable, error))
        self._idle.clear()
        self._wake.set()

    def remove(self, store_id: str) -> None:
        """Queue the delete of a finished job; it goes into the next transaction."""
        if self._closed or not self._opened:
            return
        self._removes.append(store_id)
        self._idle.clear()
        self._wake.set()

    def healthy(self) -> bool:
        """True when open and the last commit or reconnect succeeded (no I/O: safe in the loop)."""
        return self._opened and not self._closed and self._last_error is None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything added so far is committed (or failed); True if it finished."""
        if self._committer is None:
            return True
        return self._idle.wait(timeout) and not (self._adds or self._removes)

    def close(self) -> None:
        """Commit what is pending (up to ``close_timeout``), then release the connection."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._committer is not None:
            self._committer.join(self.close_timeout)
            if not self._committer.dead:
                self._committer.kill()
        err = StoreError(f"queue store {self.name} closed before the job was written")
        while self._adds:
            _, callback, refused = self._adds.popleft()
            self._later(callback, refused or err)
        if self._removes:
            log.warning(
                "queue store %s: %d deletes not written at close (those jobs will run again)",
                self.name,
                len(self._removes),
            )
        if self._opened:
            try:
                self._in_thread(self.backend.close)
            except Exception:  # pragma: no cover - close() must not raise
                log.exception("closing queue store %s", self.name)

    # -- the committer ------------------------------------------------------------------------

    def _run(self) -> None:
        """The committer greenlet: one batch at a time, forever (until close)."""
        while True:
            try:
                if not self._wait_for_work():
                    return
                self._idle.clear()
                if self.commit_delay > 0:
                    gevent.sleep(self.commit_delay)
                adds, removes = self._take()
                error = self._commit(adds, removes)
                self._deliver(adds, error)
            except gevent.GreenletExit:
                raise
            except Exception:  # pragma: no cover - a bug here must not stop all durability
                log.exception("queue store %s: committer error", self.name)
                gevent.sleep(self.reconnect_min)

    def _wait_for_work(self) -> bool:
        """Sleep until a batch should be written; also probes a broken store. False = stop."""
        while True:
            broken = self._last_error is not None
            due = time.monotonic() >= self._retry_at
            if self._adds or (self._removes and (not broken or due)):
                return True
            if self._closed:
                return False
            if broken and due:
                self._probe()
                continue
            self._idle.set()
            self._wake.clear()
            self._wake.wait(max(0.0, self._retry_at - time.monotonic()) if broken else None)

    def _take(self) -> tuple[list[Pending], list[str]]:
        adds: list[Pending] = []
        size = 0
        while self._adds and len(adds) < self.max_batch and (not adds or size < self.max_batch_bytes):
            item = self._adds.popleft()
            if item[2] is None:
                size += job_size(item[0])
            adds.append(item)
        removes = [self._removes.popleft() for _ in range(min(len(self._removes), MAX_REMOVES_PER_BATCH))]
        return adds, removes

    def _commit(self, adds: list[Pending], removes: list[str]) -> StoreError | None:
        """Write one batch; return None, or the error every add of the batch gets."""
        jobs = [job for job, _, refused in adds if refused is None]
        if not jobs and not removes:
            return None
        started = time.monotonic()
        error: StoreError | None
        if self._last_error is not None and time.monotonic() < self._retry_at and not self._closed:
            error = StoreError(f"queue store {self.name} is unavailable ({self._last_error}); retrying")
        else:
            error = self._write(jobs, removes)
        if error is None:
            self.batches += 1
            self.jobs_written += len(jobs)
            self.largest_batch = max(self.largest_batch, len(jobs))
            if self.commit_observer is not None:
                try:
                    self.commit_observer(time.monotonic() - started, len(jobs))
                except Exception:
                    log.exception("queue store %s: commit observer failed", self.name)
        else:
            self.failed_batches += 1
            self._removes.extendleft(reversed(removes))
        return error

    def _write(self, jobs: list[StoredJob], removes: list[str]) -> StoreError | None:
        """Write with one retry on a fresh connection; mark the store broken if both fail."""
        attempts = 1 if self._last_error is not None else 2
        last: BaseException | None = None
        for _ in range(attempts):
            try:
                if not self._connected:
                    self._in_thread(self._reconnect)
                    self._connected = True
                self._in_thread(self.backend.write_batch, jobs, removes)
            except Exception as exc:
                last = exc
                self._connected = False
                continue
            self._healed()
            return None
        assert last is not None
        self._broken(last)
        # A commit cut off mid-way (timeout, reset) may have been applied by the database: delete
        # those rows with a later batch, so a job whose submitter got QUEUE_ERROR never runs after
        # a restart (deleting a row that was never written is a no-op).
        self._removes.extend(job.store_id for job in jobs)
        return StoreError(f"queue store {self.name} could not write the job: {self._last_error}")

    def _probe(self) -> None:
        """Try to reconnect to a broken store (no batch pending), so it heals without traffic."""
        try:
            self._in_thread(self._reconnect)
        except Exception as exc:
            self._broken(exc)
        else:
            self._connected = True
            self._healed()

    def _reconnect(self) -> None:
        """In a thread: drop any old connection, connect, make sure the schema exists."""
        self.backend.close()
        self.backend.connect()
        self.backend.create_schema()

    def _broken(self, exc: BaseException) -> None:
        first = self._last_error is None
        self._last_error = describe(exc, self._secret)
        self._retry_at = time.monotonic() + self._backoff
        if first:
            log.error(
                "queue store %s failed: %s; background submits get QUEUE_ERROR until it is back",
                self.name,
                self._last_error,
            )
        self._backoff = min(self._backoff * 2, self.reconnect_max)

    def _healed(self) -> None:
        if self._last_error is not None:
            log.warning("queue store %s is back", self.name)
        self._last_error = None
        self._backoff = self.reconnect_min
        self._retry_at = 0.0

    def _deliver(self, adds: list[Pending], error: StoreError | None) -> None:
        """Run the callbacks in submission order; one that raises does not stop the others."""
        for _, callback, refused in adds:
            try:
                callback(refused or error)
            except Exception:
                log.exception("queue store %s: on_durable callback failed", self.name)

    # -- helpers ------------------------------------------------------------------------------

    def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking backend call in gevent's threadpool; only the calling greenlet waits.

        The exception is carried back and raised here, in the hub's thread, so that gevent does not
        print a traceback for every failed commit (a store that is down is logged once, by us).
        """

        def call() -> tuple[bool, Any]:
            try:
                return True, func(*args)
            except Exception as exc:
                return False, exc

        with self._lock:
            ok, value = gevent.get_hub().threadpool.apply(call)
        if not ok:
            raise value
        return cast(T, value)

    def _later(self, callback: DurableCallback, error: StoreError) -> None:
        """Call back from the loop, never re-entrantly from inside add()."""

        def call() -> None:
            try:
                callback(error)
            except Exception:
                log.exception("queue store %s: on_durable callback failed", self.name)

        gevent.get_hub().loop.run_callback(call)
