"""The queue-store interface: where background jobs live so that a restart does not lose them.

The server core talks to one :class:`QueueStore`; :func:`gearpy.server.stores.open_store` builds
the one a ``--queue`` URL names (every kind, this module's memory store included, is registered
there). The default :class:`MemoryStore` keeps nothing
(jobs live only in the core's memory, like gearmand's builtin module). Durable stores (SQLite,
MySQL/MariaDB, PostgreSQL, Redis, in ``gearpy.server.stores``) acknowledge a job only once it is
durable, and batch the writes of one event-loop turn into one commit (group commit).

Contract, from the core's side:

* :meth:`add` is called for every *new* background job before JOB_CREATED may be sent. A durable
  store calls ``on_durable(None)`` once the job is committed, or ``on_durable(exc)`` if it could not
  be written; the core sends JOB_CREATED (or ``ERROR QUEUE_ERROR``) only then. The callback runs
  in the event loop's thread. A non-durable store need not call it at all (``durable`` is False and
  the core does not wait).
* :meth:`remove` is called when a stored job ends (complete, fail, exception, cancel, retry
  limit). It need not be durable before the core goes on: a lost delete means a job runs again after
  a crash (at-least-once), never a lost job.
* :meth:`replay` is called once at start, before any connection is accepted, and returns the jobs
  to queue again.

Every job carries its own ``store_id``, so jobs with empty or repeated uniques and empty payloads
are all kept as distinct rows (gearmand keys rows by unique + function and loses them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol

DurableCallback = Callable[[BaseException | None], None]
#: Told the duration (seconds) and size (jobs) of every durable commit (metrics).
CommitListener = Callable[[float, int], None]


@dataclass(slots=True)
class StoredJob:
    """What a store keeps of a background job: enough to queue it again after a restart."""

    store_id: str
    function: bytes
    unique: bytes
    payload: bytes
    priority: int  # 0 high, 1 normal, 2 low (gearmand's numbering)
    when: int = 0  # epoch seconds at which the job becomes runnable; 0 = now
    reducer: bytes = b""


class QueueStore(Protocol):
    """Interface of every queue store (see the module docstring for the contract).

    A structural type: stores need not inherit from it; those that do get the defaults below.
    """

    #: True when :meth:`add` acknowledges through its callback only after the job is durable.
    durable: ClassVar[bool]
    #: A short name for logs and metrics (never contains a password).
    name: str

    def open(self) -> None:
        """Connect and create tables/keys. Raise :class:`gearpy.errors.StoreError` if unreachable."""

    def replay(self) -> Iterable[StoredJob]:
        """Return the jobs stored by an earlier run, oldest first."""
        ...

    def add(self, job: StoredJob, on_durable: DurableCallback) -> None:
        """Store a new background job; call ``on_durable`` when it is durable (or failed)."""
        ...

    def remove(self, store_id: str) -> None:
        """Forget a job that has ended."""
        ...

    def healthy(self) -> bool:
        """Whether the store is reachable now (for health checks)."""
        return True

    def watch_commits(self, listener: CommitListener) -> None:
        """Report every commit to ``listener`` (metrics); stores without commits ignore it."""

    def close(self) -> None:
        """Flush what is pending and release connections."""


class MemoryStore:
    """The default: nothing is written anywhere; jobs are lost when the server stops."""

    durable: ClassVar[bool] = False
    name = "memory"

    def open(self) -> None:
        pass

    def replay(self) -> Iterable[StoredJob]:
        return ()

    def add(self, job: StoredJob, on_durable: DurableCallback) -> None:
        pass

    def remove(self, store_id: str) -> None:
        pass

    def healthy(self) -> bool:
        return True

    def watch_commits(self, listener: CommitListener) -> None:
        pass

    def close(self) -> None:
        pass
