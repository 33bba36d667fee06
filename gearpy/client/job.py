"""A submitted job as the client sees it: handle, events, and an explicit outcome.

A :class:`Job` does no I/O of its own. Its server connection (``gearpy.client.connection``) feeds it
the packets that belong to it; waiting for an outcome asks that connection to read until the job is
done, so whichever caller waits drives the socket and dispatches packets to every job on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gearpy.codecs import Codec
from gearpy.errors import (
    GearpyConnectionError,
    GearpyError,
    JobException,
    JobFailed,
    JobOutcomeUnknown,
    RemoteProtocolError,
    ServerError,
)
from gearpy.protocol import Packet, PacketType

if TYPE_CHECKING:
    from gearpy.client.connection import ServerConnection

T = PacketType
Callback = Callable[["JobEvent"], Any]

#: Event kinds a job produces while it runs (terminal outcomes are not events; see ``result()``).
EVENT_KINDS = ("progress", "data", "warning")


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One WORK_STATUS (``progress``), WORK_DATA (``data``) or WORK_WARNING (``warning``) from the worker."""

    kind: str
    data: bytes = b""
    numerator: int = 0
    denominator: int = 0


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Answer to GET_STATUS. An unknown handle (finished, never existed, server restarted) is all zero."""

    handle: str
    known: bool
    running: bool
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class UniqueStatus:
    """Answer to GET_STATUS_UNIQUE, including how many clients wait on the job."""

    unique: str
    known: bool
    running: bool
    numerator: int
    denominator: int
    waiting_clients: int


def _int(b: bytes) -> int:
    try:
        return int(b or b"0")
    except ValueError:
        return 0


def parse_status(packet: Packet) -> JobStatus:
    h, known, running, num, den = packet.args
    return JobStatus(h.decode("utf-8", "replace"), known == b"1", running == b"1", _int(num), _int(den))


def parse_status_unique(packet: Packet) -> UniqueStatus:
    u, known, running, num, den, waiting = packet.args
    return UniqueStatus(
        u.decode("utf-8", "replace"), known == b"1", running == b"1", _int(num), _int(den), _int(waiting)
    )


class Job:
    """A job submitted through a :class:`~gearpy.client.Client`.

    States: ``pending`` (sent, no JOB_CREATED yet) → ``created`` → one of ``complete``, ``failed``,
    ``exception``, ``unknown`` (connection lost while it ran) or ``error`` (the server refused it).
    A background job is finished as soon as it is created: its outcome is the worker's business.
    """

    def __init__(
        self,
        function: str,
        wire_function: bytes,
        unique: bytes,
        payload: bytes,
        *,
        background: bool,
        codec: Codec,
        callbacks: dict[str, list[Callback]] | None = None,
    ) -> None:
        self.function = function
        self.wire_function = wire_function
        self.unique = unique
        self.payload = payload
        self.background = background
        self.codec = codec
        self.handle: str | None = None
        self.server: str | None = None
        self.state = "pending"
        self.numerator = 0
        self.denominator = 0
        self._conn: ServerConnection | None = None
        self._result: bytes | None = None
        self._error: GearpyError | None = None
        self._lost_before_created: GearpyConnectionError | None = None
        self._events: list[JobEvent] = []
        self._callbacks: dict[str, list[Callback]] = {k: [] for k in EVENT_KINDS}
        for kind, fns in (callbacks or {}).items():
            for fn in fns:
                self.add_callback(kind, fn)

    def __repr__(self) -> str:
        return f"<Job {self.function!r} handle={self.handle!r} {self.state}>"

    # ----- public API -------------------------------------------------------------------------
    @property
    def created(self) -> bool:
        return self.handle is not None

    @property
    def done(self) -> bool:
        """True once the outcome is known (for a background job: once it is created)."""
        return self.state not in ("pending", "created")

    def add_callback(self, kind: str, fn: Callback) -> None:
        """Call ``fn(event)`` for each ``progress``/``data``/``warning`` event, in the thread that reads.

        Callbacks run outside the client's locks, so they may use the client, but a slow callback
        delays every job on the same connection.
        """
        if kind not in self._callbacks:
            raise ValueError(f"unknown event kind {kind!r} (use one of {', '.join(EVENT_KINDS)})")
        self._callbacks[kind].append(fn)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the outcome and return the decoded result.

        Raises :class:`JobFailed`, :class:`JobException` (``payload`` = what the worker sent),
        :class:`JobOutcomeUnknown` or :class:`GearpyTimeoutError` (the job keeps running; call
        ``result()`` again to keep waiting).
        """
        if self.background:
            raise GearpyError("a background job has no result; use status() to follow it")
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self.codec.decode(self._result or b"")

    def wait(self, timeout: float | None = None) -> Job:
        """Wait until :attr:`done` without raising the job's error; returns self."""
        self._wait(timeout)
        return self

    def exception(self, timeout: float | None = None) -> GearpyError | None:
        """Wait for the outcome and return its error (None when it completed)."""
        self._wait(timeout)
        return self._error

    def events(self, timeout: float | None = None) -> Iterator[JobEvent]:
        """Iterate over progress/data/warning events as they arrive, until the job ends.

        ``timeout`` bounds the whole iteration. The outcome is not an event: call :meth:`result`
        afterwards.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        i = 0
        while True:
            while i < len(self._events):
                i += 1
                yield self._events[i - 1]
            if self.done:
                return
            assert self._conn is not None
            n = i
            self._conn.wait(lambda n=n: self.done or len(self._events) > n, deadline)

    def status(self, timeout: float | None = 10.0) -> JobStatus:
        """Ask the server (GET_STATUS) whether the job is known and running, and its progress."""
        if self.handle is None or self._conn is None:
            raise GearpyError("the job has not been created on a server")
        return self._conn.get_status(self.handle, timeout)

    # ----- fed by the connection (called with the connection's lock held) ------------------------
    def _wait(self, timeout: float | None) -> None:
        if self.done:
            return
        if self._conn is None:
            raise GearpyError("the job was never sent")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._conn.wait(lambda: self.done, deadline)

    def _attach(self, conn: ServerConnection) -> None:
        self._conn = conn
        self.server = conn.address
        self._lost_before_created = None

    def on_reply(self, conn: ServerConnection, packet: Packet) -> None:
        """The in-order reply to our submit: JOB_CREATED or ERROR."""
        if packet.kind == T.JOB_CREATED:
            self.handle = packet.args[0].decode("utf-8", "replace")
            if self.background:
                self.state = "complete"
            else:
                self.state = "created"
                conn.register(packet.args[0], self)
        elif packet.kind == T.ERROR:
            code, text = (a.decode("utf-8", "replace") for a in packet.args)
            self._finish("error", ServerError(code, text))
        else:
            self._finish("error", RemoteProtocolError(f"unexpected reply to a submit: {packet!r}"))

    def on_lost(self, exc: GearpyConnectionError) -> None:
        """The connection died before JOB_CREATED: the caller may try the next server."""
        self._lost_before_created = exc

    def on_unknown(self, exc: GearpyConnectionError) -> None:
        self._finish(
            "unknown",
            JobOutcomeUnknown(
                f"connection to {self.server} lost while job {self.handle} ran; "
                "it may or may not have completed",
                self.handle,
            ),
        )

    def on_work(self, packet: Packet) -> list[tuple[Callback, JobEvent]]:
        """Apply one WORK_* packet; return the callbacks to run once the lock is released."""
        kind = packet.kind
        if kind == T.WORK_COMPLETE:
            self._result = packet.args[1]
            self.state = "complete"
            return []
        if kind == T.WORK_FAIL:
            self._finish("failed", JobFailed(f"job {self.handle} failed", self.handle))
            return []
        if kind == T.WORK_EXCEPTION:
            payload = packet.args[1]
            text = payload.decode("utf-8", "replace")
            self._finish("exception", JobException(f"job {self.handle} raised: {text}", self.handle, payload))
            return []
        if kind == T.WORK_STATUS:
            self.numerator, self.denominator = _int(packet.args[1]), _int(packet.args[2])
            ev = JobEvent("progress", b"", self.numerator, self.denominator)
        elif kind == T.WORK_DATA:
            ev = JobEvent("data", packet.args[1])
        elif kind == T.WORK_WARNING:
            ev = JobEvent("warning", packet.args[1])
        else:
            return []
        self._events.append(ev)
        return [(fn, ev) for fn in self._callbacks[ev.kind]]

    def _finish(self, state: str, error: GearpyError | None) -> None:
        self.state = state
        self._error = error
