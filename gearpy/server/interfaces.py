"""The collaborators the server core is given at construction, as structural types.

Each is a :class:`typing.Protocol`, not a base class: the gevent layer, the stores, the metrics
and the tests provide their own implementations without inheriting from anything in the core
(which a compiled core - mypyc - would not allow interpreted classes to do anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gearpy.protocol import PacketType
from gearpy.server.state import Conn, Job

#: What :meth:`Scheduler.call_later` returns; only ever handed back to :meth:`Scheduler.cancel`.
TimerHandle = object


class Scheduler(Protocol):
    """Timers: the gevent layer's run on the event loop, a test's fire when the test says."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle: ...

    def cancel(self, timer: TimerHandle) -> None: ...


class Observer(Protocol):
    """Hooks for metrics, called as jobs move (one call per event, nothing else per packet)."""

    def job_submitted(self, job: Job) -> None: ...

    def job_started(self, job: Job) -> None: ...

    def job_finished(self, job: Job, outcome: str) -> None: ...

    def late_result(self, kind: PacketType) -> None:
        """A worker sent ``kind`` for a job that had already timed out on it (dropped)."""


class NullObserver:
    """The observer of a server without metrics: every hook does nothing."""

    def job_submitted(self, job: Job) -> None:
        pass

    def job_started(self, job: Job) -> None:
        pass

    def job_finished(self, job: Job, outcome: str) -> None:
        pass

    def late_result(self, kind: PacketType) -> None:
        pass


class FunctionPolicy(Protocol):
    """Who may register (``register``) or submit (``invoke``) a function (:mod:`gearpy.server.acl`)."""

    def allowed(self, subject: str | None, action: str, function: bytes) -> bool: ...


class AdminGate(Protocol):
    """Whether a connection may run mutating admin commands (``admin_allow``, :mod:`.acl`)."""

    def __call__(self, conn: Conn) -> bool: ...


#: Called by the core when output became ready outside a read loop (a durable commit landed).
FlushHook = Callable[[], None]
#: Called by the core when a graceful drain found no job left.
IdleHook = Callable[[], None]
