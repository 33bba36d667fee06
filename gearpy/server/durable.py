"""Background jobs acknowledged only once durable: the core's side of the queue-store contract.

A durable store (:mod:`gearpy.server.store`) commits asynchronously. Until it calls back, the
submit's JOB_CREATED waits in a reserved reply slot (:class:`~gearpy.server.state.Pending`), so
replies keep their order and a crash before the commit never leaves a client holding a handle
the server forgot. Background submits that coalesce onto the job meanwhile wait for the same
commit and get the same answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping

from gearpy.protocol import PacketType, encode, encode_unchecked_one
from gearpy.server.interfaces import FlushHook
from gearpy.server.state import Conn, Job, Pending
from gearpy.server.store import QueueStore, StoredJob

log = logging.getLogger("gearpy.server.core")
T = PacketType

#: What the core does once a job's commit landed (``None``) or failed (the error).
Settle = Callable[[Job, "BaseException | None"], None]


class DurableWrites:
    """Jobs whose durable write is in flight, and the replies waiting for it."""

    __slots__ = ("store", "flush", "conns", "dirty", "uncommitted", "doomed")

    def __init__(
        self, store: QueueStore, flush: FlushHook, conns: Mapping[int, Conn], dirty: set[Conn]
    ) -> None:
        self.store = store
        self.flush = flush
        self.conns = conns
        self.dirty = dirty
        #: handle -> (connection, reply slot) of background submits waiting for its commit
        self.uncommitted: dict[bytes, list[tuple[Conn, Pending]]] = {}
        #: handles of jobs released while their write is in flight: their row goes once committed
        self.doomed: set[bytes] = set()

    def join(self, job: Job, conn: Conn) -> bool:
        """Let a background submit coalescing onto ``job`` wait for its pending commit, if any."""
        waiters = self.uncommitted.get(job.handle)
        if waiters is None:
            return False
        conn.is_client = True
        waiters.append((conn, conn.reserve()))
        return True

    def remove_when_committed(self, job: Job) -> bool:
        """Defer removing ``job``'s row until its insert committed; False if nothing is in flight.

        A group-commit store may commit a remove in an earlier batch than the insert it undoes,
        which would leave an orphan row to be replayed at the next start.
        """
        if job.handle not in self.uncommitted:
            return False
        self.doomed.add(job.handle)
        return True

    def persist(self, conn: Conn, job: Job, settle: Settle) -> None:
        """Write a background job to the store; answer ``conn`` (and joiners) once it committed.

        ``settle`` runs first, so that the core queues (or forgets) the job before the replies
        go out; the reply is JOB_CREATED, or ``ERROR QUEUE_ERROR`` saying why the write failed.
        """
        waiters: list[tuple[Conn, Pending]] = [(conn, conn.reserve())]
        self.uncommitted[job.handle] = waiters
        job.store_id = uuid.uuid4().hex
        record = StoredJob(
            job.store_id, job.function.name, job.unique, job.payload, job.priority, job.when, job.reducer
        )

        def on_durable(exc: BaseException | None) -> None:
            self.uncommitted.pop(job.handle, None)
            if job.handle in self.doomed:
                self.doomed.discard(job.handle)
                if exc is None:
                    self.store.remove(record.store_id)
            if exc is None:
                reply = encode_unchecked_one(T.JOB_CREATED, job.handle)
            else:
                job.store_id = None
                log.warning("queue store write failed: %s", exc)
                text = f"queue store unavailable: {exc}".encode("utf-8", "replace")[:200]
                reply = encode(T.ERROR, b"QUEUE_ERROR", text)
            settle(job, exc)
            for c, pending in waiters:
                pending.data = reply
                if c.id in self.conns:
                    self.dirty.add(c)
            self.flush()

        self.store.add(record, on_durable)
