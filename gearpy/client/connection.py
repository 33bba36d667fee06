"""One client connection to one server, shared by threads or greenlets.

Design: replies to requests (JOB_CREATED, ERROR, STATUS_RES, ECHO_RES, OPTION_RES) come back in
request order on a connection, so each request appends a *reply entry* to a FIFO at the moment it is
sent; WORK_* packets name their job handle and go to the jobs registered under it. There is no
background reader thread: a caller that waits for something becomes the one reader (under a
condition variable), reads, dispatches every packet to whichever entry or job it belongs to, and wakes
the other waiters. That works the same with plain threads (stdlib locks, no monkey-patching needed) and
under gevent (when the application has monkey-patched, ``threading`` and ``socket`` are cooperative,
and we look them up at call time).

Lock order: ``_send_lock`` (held while connecting and while appending entries + sending, so the FIFO
matches the wire order) then ``_cond``. The reader holds neither while blocked in ``recv``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from gearpy.client.job import Callback, JobEvent
from gearpy.client.status import StatusReply, parse_status
from gearpy.errors import (
    GearpyConnectionError,
    GearpyError,
    GearpyTimeoutError,
    RemoteProtocolError,
    ServerError,
)
from gearpy.protocol import Packet, PacketType, encode_request
from gearpy.transport import PacketConnection

T = PacketType
log = logging.getLogger("gearpy.client")

#: Packets that answer the oldest outstanding request on the connection.
REPLY_TYPES = frozenset({T.JOB_CREATED, T.ERROR, T.STATUS_RES, T.STATUS_RES_UNIQUE, T.ECHO_RES, T.OPTION_RES})
#: Packets a worker sends about a job, forwarded by the server to the job's clients.
WORK_TYPES = frozenset(
    {T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION, T.WORK_STATUS, T.WORK_DATA, T.WORK_WARNING}
)
TERMINAL_TYPES = frozenset({T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION})


class ReplyEntry(Protocol):
    """Waits for the in-order reply to one request (a submit's JOB_CREATED, STATUS_RES, ...)."""

    def on_reply(self, conn: ServerConnection, packet: Packet) -> None:
        """Called with the connection's lock held."""

    def on_lost(self, exc: GearpyConnectionError) -> None:
        """The connection died before the reply came."""


class WorkListener(Protocol):
    """Receives the WORK_* packets of a created foreground job (a :class:`~gearpy.client.job.JobTracker`)."""

    def on_work(self, packet: Packet) -> list[tuple[Callback, JobEvent]]:
        """Apply the packet (lock held); return the event callbacks to run once it is released."""

    def on_unknown(self, exc: GearpyConnectionError) -> None:
        """The connection died while the job ran: its outcome is unknown."""


class Pending:
    """A request waiting for its in-order reply of one of the ``expect`` types (or ERROR)."""

    __slots__ = ("expect", "packet", "error", "done")

    def __init__(self, *expect: PacketType) -> None:
        self.expect = expect
        self.packet: Packet | None = None
        self.error: GearpyError | None = None
        self.done = False

    def on_reply(self, conn: ServerConnection, packet: Packet) -> None:
        if packet.kind in self.expect:
            self.packet = packet
        elif packet.kind == T.ERROR:
            code, text = (a.decode("utf-8", "replace") for a in packet.args)
            self.error = ServerError(code, text)
        else:
            self.error = RemoteProtocolError(f"expected {self.expect[0].name}, got {packet!r}")
        self.done = True

    def on_lost(self, exc: GearpyConnectionError) -> None:
        self.error = exc
        self.done = True


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (monotonic), never negative; None means no deadline."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def _read_timeout(deadline: float | None) -> float | None:
    # A zero socket timeout would mean non-blocking (an OSError, read as a lost connection).
    left = remaining(deadline)
    return None if left is None else max(left, 0.001)


class ServerConnection:
    """A lazily (re)connected connection to one server, safe to share between threads/greenlets."""

    def __init__(
        self, address: str, *, connect_timeout: float | None = 5.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context
        self._cond = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._pconn: PacketConnection | None = None
        self._fifo: deque[ReplyEntry] = deque()
        self._jobs: dict[bytes, list[WorkListener]] = {}
        self._reading = False
        self._exceptions = False

    def __repr__(self) -> str:
        return f"<ServerConnection {self.address} {'up' if self._pconn else 'down'}>"

    @property
    def connected(self) -> bool:
        return self._pconn is not None

    # ----- sending ------------------------------------------------------------------------------
    def send(self, data: bytes, entries: list[ReplyEntry], *, exceptions: bool = False) -> None:
        """Send encoded request packets in one write and queue their reply entries in wire order.

        With ``exceptions`` the first use of this connection is preceded by OPTION_REQ
        ``exceptions``. It is pipelined rather than waited for separately: the server handles
        requests in order and replies in order, so by the time a submit's JOB_CREATED is read the
        OPTION_RES has been read before it and the option applies to the job.
        Raises :class:`GearpyConnectionError` when the server cannot be reached; then no entry is
        left queued (each got ``on_lost``).
        """
        with self._send_lock:
            pc = self._pconn
            if pc is None:
                pc = PacketConnection(
                    self.address, connect_timeout=self.connect_timeout, ssl_context=self.ssl_context
                )
                pc.connect()
                with self._cond:
                    self._pconn = pc
                    self._exceptions = False
            if exceptions and not self._exceptions:
                data = encode_request(T.OPTION_REQ, b"exceptions") + data
                entries = [_OptionEntry(self), *entries]
                self._exceptions = True
            with self._cond:
                self._fifo.extend(entries)
            try:
                pc.send(data)
            except GearpyConnectionError as exc:
                self._lost(pc, exc)
                raise

    def call(self, data: bytes, expect: PacketType, deadline: float | None) -> Packet:
        """Send one request and wait for its reply; ERROR raises :class:`ServerError`."""
        entry = Pending(expect)
        self.send(data, [entry])
        self.wait(lambda: entry.done, deadline)
        if entry.error is not None:
            raise entry.error
        assert entry.packet is not None
        return entry.packet

    def get_status(self, handle: str, timeout: float | None) -> StatusReply:
        deadline = None if timeout is None else time.monotonic() + timeout
        packet = self.call(encode_request(T.GET_STATUS, handle.encode("utf-8")), T.STATUS_RES, deadline)
        return parse_status(packet)

    def register(self, handle: bytes, job: WorkListener) -> None:
        """Called (lock held) on JOB_CREATED of a foreground job: route its WORK_* packets to it.

        Several jobs may share a handle when the server coalesced them on their unique id.
        """
        self._jobs.setdefault(handle, []).append(job)

    # ----- reading ------------------------------------------------------------------------------
    def wait(self, predicate: Callable[[], bool], deadline: float | None) -> None:
        """Return once ``predicate()`` holds, reading and dispatching packets meanwhile.

        Only one caller reads at a time; the others sleep on the condition and are woken after
        every batch the reader dispatches. Raises :class:`GearpyTimeoutError` at the deadline.
        """
        cond = self._cond
        while True:
            with cond:
                while True:
                    if predicate():
                        return
                    left = remaining(deadline)
                    if left == 0:
                        raise GearpyTimeoutError(f"no answer from {self.address} in time")
                    if not self._reading:
                        break
                    cond.wait(left)
                pc = self._pconn
                if pc is None:
                    raise GearpyConnectionError(f"not connected to {self.address}")
                self._reading = True
            packets: list[Packet] = []
            error: Exception | None = None
            try:
                for packet in pc.read_available(_read_timeout(deadline)):
                    packets.append(packet)
            except GearpyTimeoutError:
                pass
            except (GearpyConnectionError, RemoteProtocolError) as exc:
                error = exc
            except BaseException:
                with cond:
                    self._reading = False
                    cond.notify_all()
                raise
            callbacks: list[tuple[Callback, JobEvent]] = []
            with cond:
                try:
                    for packet in packets:
                        self._dispatch(packet, callbacks)
                finally:
                    self._reading = False
                    cond.notify_all()
            if error is not None:
                lost = (
                    error
                    if isinstance(error, GearpyConnectionError)
                    else GearpyConnectionError(f"{self.address} sent invalid data: {error}")
                )
                self._lost(pc, lost)
            for fn, ev in callbacks:
                try:
                    fn(ev)
                except Exception:
                    log.exception("job event callback %r failed", fn)

    def _dispatch(self, packet: Packet, callbacks: list[tuple[Callback, JobEvent]]) -> None:
        kind = packet.kind
        if kind in REPLY_TYPES:
            if not self._fifo:
                log.warning("%s: unexpected %r with no request outstanding", self.address, packet)
                return
            self._fifo.popleft().on_reply(self, packet)
        elif kind in WORK_TYPES:
            handle = packet.args[0]
            if kind == T.WORK_FAIL:
                handle = handle.rstrip(b"\x00")  # gearmand appends a NUL for non-opted-in clients
            jobs = self._jobs.get(handle)
            if not jobs:
                log.debug("%s: %r for a job we do not wait for", self.address, packet)
                return
            for job in jobs:
                callbacks.extend(job.on_work(packet))
            if kind in TERMINAL_TYPES:
                del self._jobs[handle]
        elif kind != T.NOOP:
            log.warning("%s: ignoring unexpected %r", self.address, packet)

    def _lost(self, pc: PacketConnection, exc: GearpyConnectionError) -> None:
        """The socket ``pc`` died: fail what waited on it; the next request reconnects."""
        with self._cond:
            if self._pconn is not pc:
                return
            self._pconn = None
            if pc.sock is not None:
                # close() alone does not wake a thread blocked in recv() on this socket; shutdown does.
                try:
                    pc.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            pc.close()
            fifo, self._fifo = self._fifo, deque()
            jobs, self._jobs = self._jobs, {}
            for entry in fifo:
                entry.on_lost(exc)
            for group in jobs.values():
                for job in group:
                    job.on_unknown(exc)
            self._cond.notify_all()

    def close(self) -> None:
        """Close the socket; jobs still waiting on it end as outcome unknown."""
        pc = self._pconn
        if pc is not None:
            self._lost(pc, GearpyConnectionError(f"connection to {self.address} closed by the client"))


class _OptionEntry:
    """Reply entry for OPTION_REQ exceptions. A server that refuses the option still works: failed
    jobs then arrive as WORK_FAIL instead of WORK_EXCEPTION."""

    __slots__ = ("conn",)

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn

    def on_reply(self, conn: ServerConnection, packet: Packet) -> None:
        if packet.kind != T.OPTION_RES:
            log.info("%s does not support OPTION_REQ exceptions: %r", conn.address, packet)

    def on_lost(self, exc: GearpyConnectionError) -> None:
        pass
