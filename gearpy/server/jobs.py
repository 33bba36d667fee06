"""A job's life in the server: created (or coalesced), queued, requeued, ended, cancelled.

:class:`JobBook` keeps the accounting every path must agree on - the index, the bytes jobs hold,
the store rows, the observer's events, the clients waiting - so that ending, abandoning and
cancelling a job go through one cleanup path (:meth:`JobBook.release`). Packet parsing and the
worker side live in :mod:`gearpy.server.core`; queueing decisions in :mod:`.queues`; the durable
acknowledgement in :mod:`.durable`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from gearpy.protocol import PacketType, encode, encode_unchecked_one
from gearpy.server.durable import DurableWrites
from gearpy.server.index import JobIndex, unique_key
from gearpy.server.interfaces import FlushHook, IdleHook, Observer, Scheduler
from gearpy.server.queues import JobQueues
from gearpy.server.state import Conn, Job
from gearpy.server.store import QueueStore, StoredJob
from gearpy.server.wire import ERR_CONNECTION_JOBS, ERR_QUEUE_FULL, ERR_QUEUE_MEMORY, MAX_UNIQUE

log = logging.getLogger("gearpy.server.core")
T = PacketType
_JOB_CREATED: Final = int(T.JOB_CREATED)  # a machine int when compiled (see core.py)

#: What a job costs the server beyond its payload (its record, handle, queue and index entries),
#: and what a unique adds (its two index entries; plus the unique and the function name, which the
#: coalescing key holds): measured with tracemalloc, rounded up. ``max_queued_bytes`` counts them,
#: so empty-payload jobs cannot fill memory unseen (issue 18.5).
JOB_BYTES: Final = 320
UNIQUE_BYTES: Final = 300


def footprint(job: Job) -> int:
    """The bytes ``max_queued_bytes`` counts for ``job`` (the same at its submit and at its end)."""
    size = JOB_BYTES + len(job.payload) + len(job.reducer)
    if job.unique:
        size += UNIQUE_BYTES + len(job.unique) + len(job.function.name)
    return size


class JobBook:
    """Creates and forgets jobs; see the module docstring."""

    def __init__(
        self,
        *,
        index: JobIndex,
        scheduler: Scheduler,
        store: QueueStore,
        observer: Observer,
        timing: bool,
        clock: Callable[[], float],
        handle_prefix: bytes,
        job_retries: int,
        worker_wakeup: int,
        max_queued_bytes: int,
        max_jobs_per_connection: int,
        conns: dict[int, Conn],
        dirty: set[Conn],
        flush: FlushHook,
        on_idle: IdleHook,
    ) -> None:
        self.index = index
        self.jobs = index.jobs
        self.uniques = index.uniques
        self.functions = index.functions
        self.store = store
        self.observer = observer
        self.timing = timing
        self.clock = clock
        self.handle_prefix = handle_prefix
        self.job_retries = job_retries
        #: cap on the bytes jobs hold in memory (:func:`footprint`; 0 = none), and what they hold now
        self.max_queued_bytes = max_queued_bytes
        self.queued_bytes = 0
        #: cap on the jobs one connection created that have not ended (0 = none)
        self.max_jobs_per_connection = max_jobs_per_connection
        self.dirty = dirty
        self.on_idle = on_idle
        #: set by :meth:`drain`: ``on_idle`` is called once no job is left
        self.draining = False
        self.queues = JobQueues(scheduler, clock, worker_wakeup, dirty, self.discard)
        self.durable = DurableWrites(store, flush, conns, dirty)
        self._handle_counter = 0

    def send(self, conn: Conn, data: bytes) -> None:
        conn.push(data)
        self.dirty.add(conn)

    # ---------------------------------------------------------------- creating

    def submit(
        self,
        conn: Conn | None,
        name: bytes,
        unique: bytes,
        payload: bytes,
        priority: int,
        background: bool,
        when: int = 0,
        reducer: bytes = b"",
    ) -> Job | None:
        """Create (or coalesce onto) a job and reply JOB_CREATED to ``conn``.

        ``conn`` is None for replayed jobs. Returns the job, or None when it was refused.
        """
        # Created only once the job is accepted: refused submits must not leave functions behind.
        fn = self.functions.get(name)
        if not unique:
            key = None
        elif len(unique) >= MAX_UNIQUE:
            # gearmand keeps 63 bytes of a 64-byte unique, and such a submit never coalesces.
            key = None
            unique = unique[: MAX_UNIQUE - 1]
        else:
            key = unique_key(name, unique, payload)
            job = self.uniques.get(key) if key is not None else None
            if job is not None and not job.ignore:
                return self._coalesce(conn, job, background)
        if fn is not None:  # (a new function holds no job: below any limit)
            limit = fn.max_queue[priority]
            if limit > 0 and fn.total >= limit:
                if conn is not None:
                    self.send(conn, ERR_QUEUE_FULL)
                return None
        size = JOB_BYTES + len(payload) + len(reducer)
        if unique:
            size += UNIQUE_BYTES + len(unique) + len(name)
        if conn is not None:
            if self.max_queued_bytes and self.queued_bytes + size > self.max_queued_bytes:
                self.send(conn, ERR_QUEUE_MEMORY)
                return None
            if self.max_jobs_per_connection and conn.submitted >= self.max_jobs_per_connection:
                self.send(conn, ERR_CONNECTION_JOBS)
                return None
        if fn is None:
            fn = self.index.function(name)
        self.queued_bytes += size
        self._handle_counter += 1
        handle = self.handle_prefix + str(self._handle_counter).encode()
        job = Job(handle, fn, unique, payload, priority, background, when, reducer)
        fn.live += 1
        if fn.idle:
            self.index.busy(fn)
        if self.timing:
            job.submitted_at = self.clock()
        if conn is not None:
            conn.is_client = True
            if not background:
                job.clients = {conn: 1}
                conn.waiting[job] = None
            if self.max_jobs_per_connection:
                job.submitter = conn
                conn.submitted += 1
        self.jobs[handle] = job
        if unique:
            self.index.add_unique(job, key)
        if background and conn is not None and self.store.durable:
            # Queue only once durable: a crash before the commit must not run a job we never acked.
            self.durable.persist(conn, job, self._settle_new)
            return job
        if when or fn.sleepers:
            self.queues.enqueue(job)
        else:
            fn.queues[priority].append(job)  # the common case, without the calls
        if self.timing:
            self.observer.job_submitted(job)
        if conn is not None:
            data = encode_unchecked_one(_JOB_CREATED, handle)
            conn.out.append(data)
            conn.out_bytes += len(data)
            self.dirty.add(conn)
        return job

    def _coalesce(self, conn: Conn | None, job: Job, background: bool) -> Job | None:
        """A submit whose unique matches a live job: attach to it and answer with its handle.

        A foreground one counts against ``max_jobs_per_connection`` like a new job (each costs a
        reply per result): unlimited coalesced submits would bypass the cap. None when refused.
        """
        if background and conn is not None and self.durable.join(job, conn):
            # The job's durable write is still pending: acknowledged with the same commit.
            return job
        if not background and conn is not None:
            limit = self.max_jobs_per_connection
            if limit:
                if conn.submitted >= limit:
                    self.send(conn, ERR_CONNECTION_JOBS)
                    return None
                conn.submitted += 1
            # One entry per connection, counting its submits (gearmand sends every packet once
            # per submit; libgearman tasks that share a unique wait for one each).
            clients = job.clients
            if clients:
                clients[conn] = clients.get(conn, 0) + 1
            else:
                job.clients = {conn: 1}
            conn.waiting[job] = None
            conn.is_client = True
        if background and not job.background:
            job.background = True
            if self.store.durable and conn is not None:
                self.durable.persist(conn, job, self._settle_upgrade)
                return job
        if conn is not None:
            self.send(conn, encode_unchecked_one(T.JOB_CREATED, job.handle))
        return job

    def _settle_new(self, job: Job, exc: BaseException | None) -> None:
        """A new background job's commit landed (queue it) or failed (nobody may wait on it)."""
        if exc is None:
            self.queues.enqueue(job)
            self.observer.job_submitted(job)
        else:
            self.fail_clients(job)
            self.discard(job)

    def _settle_upgrade(self, job: Job, exc: BaseException | None) -> None:
        """A foreground job made background by a coalescing submit stays foreground on failure."""
        if exc is not None:
            job.background = False

    def replay(self, stored: StoredJob) -> Job | None:
        """Queue a job read back from the store at start (keeps its store row)."""
        job = self.submit(
            None,
            stored.function,
            stored.unique,
            stored.payload,
            stored.priority,
            True,
            stored.when,
            stored.reducer,
        )
        if job is not None:
            if job.store_id is not None and job.store_id != stored.store_id:
                # Coalesced onto a job already replayed: this row is a duplicate; drop it.
                self.store.remove(stored.store_id)
            else:
                job.store_id = stored.store_id
        return job

    # ---------------------------------------------------------------- workers going away

    def requeue(self, job: Job) -> None:
        """Put a job whose worker went away back on its queue (retry counted), or drop it."""
        self.queues.stop_job_timer(job)
        job.worker = None
        job.function.running -= 1
        job.retries += 1
        if job.ignore:
            self.discard(job)
            return
        if self.job_retries > 0 and job.retries >= self.job_retries:
            log.info("dropped job %s after %d attempts (--job-retries)", job.handle.decode(), job.retries)
            self.fail_clients(job)
            self.finish(job, "dropped")
            return
        job.numerator = job.denominator = 0
        job.function.queues[job.priority].append(job)
        self.queues.wake(job.function)

    def abandon_waits(self, conn: Conn) -> None:
        """A client left: detach it; a foreground job nobody waits on any more is abandoned."""
        for job in conn.waiting:
            clients = job.clients
            if clients:
                clients.pop(conn, None)
            if not clients and not job.background and job.handle in self.jobs:
                job.ignore = True
                self.index.forget_unique(job)
                self.drop_payload(job)
        conn.waiting.clear()

    # ---------------------------------------------------------------- ending

    def fail_clients(self, job: Job) -> None:
        """Tell every client waiting on ``job`` that it failed."""
        if job.clients:
            self.fan_out(job, encode(T.WORK_FAIL, job.handle))

    def fan_out(self, job: Job, data: bytes) -> None:
        """Queue ``data`` (framed once) for every client of ``job``, once per submit it made."""
        clients = job.clients
        if not clients:
            return
        dirty = self.dirty
        for c, times in clients.items():
            if times == 1:
                c.out.append(data)
                c.out_bytes += len(data)
            else:
                c.push_times(data, times)
            dirty.add(c)

    def finish(self, job: Job, outcome: str) -> None:
        """A job ended: forget it everywhere (its clients were told by the caller)."""
        self.observer.job_finished(job, outcome)
        self.discard(job)

    def discard(self, job: Job) -> None:
        """Forget a job entirely (ended, or abandoned and popped off its queue)."""
        if self.jobs.pop(job.handle, None) is not None:
            fn = job.function
            # footprint(job), inlined on the hot path (the core fuzz test checks they agree)
            size = JOB_BYTES + len(job.payload) + len(job.reducer)
            if job.unique:
                size += UNIQUE_BYTES + len(job.unique) + len(fn.name)
            self.queued_bytes -= size
            fn.live -= 1
            if not fn.workers and fn.unused():
                self.index.mark_idle(fn)
            forgotten = True
        else:
            forgotten = False
        if job.unique or job.clients or job.store_id is not None:  # else nothing to release
            self.release(job)
        if forgotten and job.submitter is not None:  # (after release: it tells coalesced submits apart)
            job.submitter.submitted -= 1
            job.submitter = None
        if self.draining and not self.jobs:
            self.on_idle()

    def release(self, job: Job) -> None:
        """Detach a job from its clients, its unique and its store row.

        The one cleanup path of ending (:meth:`discard`) and cancelling (:meth:`cancel`) a job.
        """
        if job.unique:  # a job without one is in neither unique table
            self.index.forget_unique(job)
        counted = self.max_jobs_per_connection
        for c, times in job.clients.items() if job.clients else ():
            c.waiting.pop(job, None)
            if counted:  # coalesced foreground submits (the submitter's own is counted apart)
                c.submitted -= times - 1 if c is job.submitter else times
        job.clients = ()
        if job.store_id is not None:
            if not self.durable.remove_when_committed(job):
                self.store.remove(job.store_id)
            job.store_id = None

    def drop_payload(self, job: Job) -> None:
        """Free an abandoned queued job's payload now; its empty shell waits to be popped.

        gearmand keeps abandoned jobs counted until a worker pops them, and so do we (``status``
        stays comparable), but their payloads need not hold memory meanwhile.
        """
        if job.worker is None and job.payload:
            self.queued_bytes -= len(job.payload)
            job.payload = b""

    def cancel(self, handle: bytes) -> bool:
        """Admin ``cancel job``: tell clients WORK_FAIL, forget the stored row, abandon the job."""
        job = self.jobs.get(handle)
        if job is None:
            return False
        if job.ignore:
            return True  # gearmand: the job is still in memory, so OK again (nothing left to tell)
        self.fail_clients(job)
        self.release(job)
        job.ignore = True
        job.background = False
        self.drop_payload(job)
        self.observer.job_finished(job, "cancelled")
        return True

    def drain(self) -> None:
        """Graceful stop: ``on_idle`` is called as soon as no job is queued or running."""
        self.draining = True
        if not self.jobs:
            self.on_idle()
