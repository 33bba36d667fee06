"""A submitted job as the client sees it: handle, state, events, and an explicit outcome.

Two objects, one boundary. :class:`JobTracker` is the wire side: its server connection
(``gearpy.client.connection``) feeds it the packets that belong to the job through the connection's
``ReplyEntry`` / ``WorkListener`` protocols, and the :class:`~gearpy.client.Client` reads the submit's
outcome from it. :class:`Job` is what the caller holds: it reads the tracker and has no wire methods.
Neither does I/O of its own: waiting asks the connection to read until the job is done, so whichever
caller waits drives the socket and dispatches packets to every job on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from gearpy.client.status import StatusReply
from gearpy.codecs import Codec, get_codec
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

__all__ = ["EVENT_KINDS", "Callback", "Job", "JobConnection", "JobEvent", "JobState", "JobTracker"]

T = PacketType
Callback = Callable[["JobEvent"], Any]

#: Event kinds a job produces while it runs (terminal outcomes are not events; see ``result()``).
EVENT_KINDS = ("progress", "data", "warning")


class JobState(str, Enum):
    """Where a job is, as far as this client knows. A ``str`` enum: ``state == "failed"`` works.

    ``PENDING`` → ``CREATED`` (foreground) → ``COMPLETE`` / ``FAILED`` / ``EXCEPTION`` / ``UNKNOWN``;
    ``PENDING`` → ``SUBMITTED`` (background); ``PENDING`` → ``ERROR`` (the server refused it).
    """

    #: Sent; the server has not answered JOB_CREATED yet.
    PENDING = "pending"
    #: A foreground job the server created: queued or running; the result is on its way.
    CREATED = "created"
    #: A background job the server accepted. It is queued (or already running) there, and its
    #: outcome goes to no client: follow it with ``status()``.
    SUBMITTED = "submitted"
    #: The worker sent WORK_COMPLETE.
    COMPLETE = "complete"
    #: The worker sent WORK_FAIL (or the server failed the job).
    FAILED = "failed"
    #: The worker sent WORK_EXCEPTION.
    EXCEPTION = "exception"
    #: The connection was lost while a foreground job ran: it may or may not have completed.
    UNKNOWN = "unknown"
    #: The server refused the submit (ERROR packet).
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        """True when nothing more about the job will reach this client."""
        return self not in (JobState.PENDING, JobState.CREATED)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One WORK_STATUS (``progress``), WORK_DATA (``data``) or WORK_WARNING (``warning``) from the worker.

    ``data`` is the payload as sent. :attr:`value` decodes it by one rule: a ``data`` chunk with the
    job's codec (what gearpy's ``job.data()`` encodes with), a ``warning`` as UTF-8 text (gearpy's
    ``job.warning()`` sends text, never through the codec), ``progress`` as ``(numerator, denominator)``.
    """

    kind: str
    data: bytes = b""
    numerator: int = 0
    denominator: int = 0
    codec: Codec = field(default_factory=get_codec, repr=False, compare=False)

    @property
    def value(self) -> Any:
        """The payload decoded (see the class docs); a chunk the codec cannot read raises its error."""
        if self.kind == "data":
            return self.codec.decode(self.data)
        if self.kind == "warning":
            return self.data.decode("utf-8", "replace")
        return (self.numerator, self.denominator)


def _int(b: bytes) -> int:
    try:
        return int(b or b"0")
    except ValueError:
        return 0


class JobConnection(Protocol):
    """What a job needs from its server connection (a :class:`~gearpy.client.connection.ServerConnection`)."""

    @property
    def address(self) -> str: ...

    def wait(self, predicate: Callable[[], bool], deadline: float | None) -> None:
        """Read and dispatch packets until ``predicate()`` holds (GearpyTimeoutError at the deadline)."""

    def register(self, handle: bytes, job: JobTracker) -> None:
        """Route the WORK_* packets of ``handle`` to ``job`` (called with the connection's lock held)."""

    def get_status(self, handle: str, timeout: float | None) -> StatusReply: ...


class JobTracker:
    """The wire side of one job: state the connection's packets drive, read by Job and Client.

    Its ``on_*`` methods are called by the :class:`~gearpy.client.connection.ServerConnection` with
    its lock held; nothing else calls them.
    """

    __slots__ = (
        "background",
        "codec",
        "state",
        "handle",
        "server",
        "conn",
        "numerator",
        "denominator",
        "result",
        "error",
        "lost_before_created",
        "events",
        "callbacks",
    )

    def __init__(self, *, background: bool, codec: Codec) -> None:
        self.background = background
        self.codec = codec
        self.state = JobState.PENDING
        self.handle: str | None = None
        self.server: str | None = None
        self.conn: JobConnection | None = None
        self.numerator = 0
        self.denominator = 0
        self.result: bytes | None = None
        self.error: GearpyError | None = None
        #: the connection died before JOB_CREATED: the client may send the job to the next server
        self.lost_before_created: GearpyConnectionError | None = None
        self.events: list[JobEvent] = []
        self.callbacks: dict[str, list[Callback]] = {k: [] for k in EVENT_KINDS}

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def settled(self) -> bool:
        """The submit is over: created, refused, or its connection lost before JOB_CREATED."""
        return self.handle is not None or self.done or self.lost_before_created is not None

    def attach(self, conn: JobConnection) -> None:
        """The job is about to be sent on ``conn`` (again, after a failover)."""
        self.conn = conn
        self.server = conn.address
        self.lost_before_created = None

    # ----- ReplyEntry: the in-order reply to our submit -------------------------------------------
    def on_reply(self, conn: JobConnection, packet: Packet) -> None:
        if packet.kind == T.JOB_CREATED:
            self.handle = packet.args[0].decode("utf-8", "replace")
            if self.background:
                self.state = JobState.SUBMITTED
            else:
                self.state = JobState.CREATED
                conn.register(packet.args[0], self)
        elif packet.kind == T.ERROR:
            code, text = (a.decode("utf-8", "replace") for a in packet.args)
            self._finish(JobState.ERROR, ServerError(code, text))
        else:
            self._finish(JobState.ERROR, RemoteProtocolError(f"unexpected reply to a submit: {packet!r}"))

    def on_lost(self, exc: GearpyConnectionError) -> None:
        self.lost_before_created = exc

    # ----- WorkListener: WORK_* packets of a created foreground job ------------------------------
    def on_unknown(self, exc: GearpyConnectionError) -> None:
        self._finish(
            JobState.UNKNOWN,
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
            self.result = packet.args[1]
            self.state = JobState.COMPLETE
            return []
        if kind == T.WORK_FAIL:
            self._finish(JobState.FAILED, JobFailed(f"job {self.handle} failed", self.handle))
            return []
        if kind == T.WORK_EXCEPTION:
            payload = packet.args[1]
            text = payload.decode("utf-8", "replace")
            self._finish(
                JobState.EXCEPTION, JobException(f"job {self.handle} raised: {text}", self.handle, payload)
            )
            return []
        if kind == T.WORK_STATUS:
            self.numerator, self.denominator = _int(packet.args[1]), _int(packet.args[2])
            ev = JobEvent("progress", b"", self.numerator, self.denominator, self.codec)
        elif kind == T.WORK_DATA:
            ev = JobEvent("data", packet.args[1], codec=self.codec)
        elif kind == T.WORK_WARNING:
            ev = JobEvent("warning", packet.args[1], codec=self.codec)
        else:
            return []
        self.events.append(ev)
        return [(fn, ev) for fn in self.callbacks[ev.kind]]

    def _finish(self, state: JobState, error: GearpyError | None) -> None:
        self.state = state
        self.error = error

    # ----- waiting (no lock held) ----------------------------------------------------------------
    def wait_settled(self, deadline: float | None) -> None:
        self.wait_until(lambda: self.settled, deadline)

    def wait_until(self, predicate: Callable[[], bool], deadline: float | None) -> None:
        if predicate():
            return
        if self.conn is None:
            raise GearpyError("the job was never sent")
        self.conn.wait(predicate, deadline)


class Job:
    """A job submitted through a :class:`~gearpy.client.Client`.

    ``state`` is a :class:`JobState`. A foreground job goes ``pending`` → ``created`` → its outcome;
    a background job ends at ``submitted`` once the server accepted it: its outcome is the worker's
    business, follow it with :meth:`status`.
    """

    __slots__ = ("function", "wire_function", "unique", "payload", "_t")

    def __init__(
        self, tracker: JobTracker, function: str, wire_function: bytes, unique: bytes, payload: bytes
    ) -> None:
        self.function = function
        self.wire_function = wire_function
        self.unique = unique
        self.payload = payload
        self._t = tracker

    def __repr__(self) -> str:
        return f"<Job {self.function!r} handle={self.handle!r} {self.state}>"

    @property
    def background(self) -> bool:
        return self._t.background

    @property
    def codec(self) -> Codec:
        return self._t.codec

    @property
    def state(self) -> JobState:
        return self._t.state

    @property
    def handle(self) -> str | None:
        """The server's job handle (``H:host:42``) once it created the job."""
        return self._t.handle

    @property
    def server(self) -> str | None:
        """``host:port`` of the server the job was sent to."""
        return self._t.server

    @property
    def numerator(self) -> int:
        """Progress from the last WORK_STATUS (foreground jobs)."""
        return self._t.numerator

    @property
    def denominator(self) -> int:
        return self._t.denominator

    @property
    def created(self) -> bool:
        return self._t.handle is not None

    @property
    def done(self) -> bool:
        """True once nothing more about the job will reach this client: a foreground job's outcome
        is known, or a background job was accepted (``submitted``) or refused."""
        return self._t.done

    def add_callback(self, kind: str, fn: Callback) -> None:
        """Call ``fn(event)`` for each ``progress``/``data``/``warning`` event, in the thread that reads.

        Callbacks run outside the client's locks, so they may use the client, but a slow callback
        delays every job on the same connection.
        """
        if kind not in self._t.callbacks:
            raise ValueError(f"unknown event kind {kind!r} (use one of {', '.join(EVENT_KINDS)})")
        self._t.callbacks[kind].append(fn)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the outcome and return the result decoded with the job's codec.

        Raises :class:`JobFailed`, :class:`JobException` (``payload`` = what the worker sent),
        :class:`JobOutcomeUnknown` or :class:`GearpyTimeoutError` (the job keeps running; call
        ``result()`` again to keep waiting).
        """
        if self._t.background:
            raise GearpyError("a background job has no result; use status() to follow it")
        self._wait(timeout)
        if self._t.error is not None:
            raise self._t.error
        return self._t.codec.decode(self._t.result or b"")

    def wait(self, timeout: float | None = None) -> Job:
        """Wait until :attr:`done` without raising the job's error; returns self."""
        self._wait(timeout)
        return self

    def exception(self, timeout: float | None = None) -> GearpyError | None:
        """Wait until :attr:`done` and return the job's error (None when it completed or was submitted)."""
        self._wait(timeout)
        return self._t.error

    def events(self, timeout: float | None = None) -> Iterator[JobEvent]:
        """Iterate over progress/data/warning events as they arrive, until the job ends.

        ``timeout`` bounds the whole iteration. The outcome is not an event: call :meth:`result`
        afterwards. ``event.value`` decodes a payload (see :class:`JobEvent`).
        """
        t = self._t
        deadline = None if timeout is None else time.monotonic() + timeout
        i = 0
        while True:
            while i < len(t.events):
                i += 1
                yield t.events[i - 1]
            if t.done:
                return

            def more(seen: int = i) -> bool:
                return t.done or len(t.events) > seen

            t.wait_until(more, deadline)

    def status(self, timeout: float | None = 10.0) -> StatusReply:
        """Ask the server (GET_STATUS) whether the job is known and running, and its progress."""
        if self._t.handle is None or self._t.conn is None:
            raise GearpyError("the job has not been created on a server")
        return self._t.conn.get_status(self._t.handle, timeout)

    def _wait(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        t = self._t
        t.wait_until(lambda: t.done, deadline)
