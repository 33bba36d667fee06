"""The worker's connection to one server, and the greenlet that grabs jobs from it.

A :class:`ServerLink` speaks the worker protocol on one connection::

    connect → SET_CLIENT_ID, CAN_DO / CAN_DO_TIMEOUT FUNC\\0N (one per task; N in the server's unit)
    loop:  wait for a free concurrency slot → GRAB_JOB_UNIQ
           JOB_ASSIGN_UNIQ → hand the job to the runtime (its greenlet owns the slot), grab again
           NO_JOB          → give the slot back, PRE_SLEEP, wait for NOOP, grab again

It knows nothing of tasks or hooks: the runtime is a :class:`GrabPolicy` that hands out slots and
takes assigned jobs. A lost connection is retried with backoff; every new connection re-registers.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import Protocol

import gevent
import gevent.lock

from gearpy.errors import GearpyConnectionError, GearpyTimeoutError, ProtocolError
from gearpy.protocol import Packet, PacketType, encode_request
from gearpy.transport import Backoff, PacketConnection
from gearpy.worker.config import (
    CONNECT_TIMEOUT,
    IDLE_REGRAB_INTERVAL,
    RECONNECT_BACKOFF_BASE,
    RECONNECT_BACKOFF_CAP,
)

__all__ = ["GRAB_PAUSE", "GrabPolicy", "ServerLink", "Session"]

log = logging.getLogger("gearpy.worker")
P = PacketType

#: Seconds a connection waits before asking again when the runtime declined a grab (a hook's budget).
GRAB_PAUSE = 1.0


class Session:
    """One TCP connection to a server plus the lock that keeps packets whole.

    Job greenlets write WORK_* packets while the link greenlet reads; a new session is made for every
    reconnect, so a job can only ever answer on the connection its job came from.
    """

    __slots__ = ("conn", "lock", "address")

    def __init__(self, conn: PacketConnection, address: str) -> None:
        self.conn = conn
        self.address = address
        self.lock = gevent.lock.RLock()

    def send(self, data: bytes) -> None:
        with self.lock:
            self.conn.send(data)

    def send_packet(self, kind: int, *args: bytes) -> None:
        self.send(encode_request(kind, *args))


class GrabPolicy(Protocol):
    """What a link needs from the runtime."""

    @property
    def stopping(self) -> bool: ...

    def acquire_grab(self) -> bool:
        """Wait for a free concurrency slot; True when a grab may be sent now (the slot is held),
        False when not (nothing held: the worker is stopping, or a hook declined)."""

    def release_grab(self, assigned: bool) -> None:
        """The grab was answered (or its connection lost); without ``assigned`` the slot is freed."""

    def assign(self, session: Session, packet: Packet) -> None:
        """Run the job of a JOB_ASSIGN_UNIQ; it owns the slot of its grab until it ends."""


class ServerLink:
    """The worker's connection to ``address`` and the greenlet that serves it.

    ``abilities`` are the (wire function name, CAN_DO_TIMEOUT value in the servers' unit, or None) to
    register.
    Public surface for the runtime: :meth:`start`, :meth:`interrupt`, :meth:`close`, :attr:`connected`
    and :attr:`greenlet`.
    """

    def __init__(
        self,
        address: str,
        policy: GrabPolicy,
        *,
        client_id: str,
        abilities: Sequence[tuple[bytes, int | None]],
        ssl_context: ssl.SSLContext | None = None,
        max_packet_size: int | None = None,
    ) -> None:
        self.address = address
        #: a WORK_* packet above this is refused before sending (gearpy.packetlimit); None: no check
        self.max_packet_size = max_packet_size
        self.policy = policy
        self.client_id = client_id
        self.abilities = list(abilities)
        self.ssl_context = ssl_context
        self.session: Session | None = None
        self.greenlet: gevent.Greenlet[[], None] | None = None
        #: False only between sending a grab and reading its answer: killing the greenlet then could
        #: leave a job assigned to us that nobody runs until the connection closes.
        self._interruptible = True

    @property
    def connected(self) -> bool:
        return self.session is not None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)
        self.greenlet.name = f"link {self.address}"

    def interrupt(self) -> None:
        """Stop grabbing now unless a grab is on the wire (then the link ends once it is answered,
        as it sees the worker stopping). Never blocks."""
        if self._interruptible and self.greenlet is not None:
            self.greenlet.kill(block=False)

    def close(self) -> None:
        """Kill the greenlet and close the connection (after the jobs taken on it ended)."""
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
        self._drop()

    def _drop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.conn.close()

    def _run(self) -> None:
        backoff = Backoff(RECONNECT_BACKOFF_BASE, RECONNECT_BACKOFF_CAP)
        failures = 0
        while not self.policy.stopping:
            self._interruptible = True
            conn = PacketConnection(
                self.address,
                connect_timeout=CONNECT_TIMEOUT,
                ssl_context=self.ssl_context,
                keepalive=True,
                max_packet_size=self.max_packet_size,
            )
            try:
                conn.connect()
                self.session = Session(conn, self.address)
                self._register()
                if failures:
                    log.info("reconnected to %s; abilities registered again", self.address)
                else:
                    log.info("connected to %s", self.address)
                failures = 0
                self._serve(self.session, backoff)
            except (GearpyConnectionError, ProtocolError) as exc:
                self._drop()
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "%s: %s; reconnecting", self.address, exc)
                self._interruptible = True
                gevent.sleep(backoff.next_delay())
            except Exception:
                # A bug of ours must not silently end the serving of this server: log, reconnect.
                self._drop()
                failures += 1
                log.exception("unexpected error on the connection to %s; reconnecting", self.address)
                self._interruptible = True
                gevent.sleep(backoff.next_delay())
        # Not closed here: jobs taken on this connection may still be running and must answer on
        # it. The runtime closes every link once the jobs are done.

    def _register(self) -> None:
        out = [encode_request(P.SET_CLIENT_ID, self.client_id.encode("utf-8"))]
        for wire, ms in self.abilities:
            if ms is None:
                out.append(encode_request(P.CAN_DO, wire))
            else:
                out.append(encode_request(P.CAN_DO_TIMEOUT, wire, str(ms).encode()))
        assert self.session is not None
        self.session.send(b"".join(out))

    def _read(self, session: Session, timeout: float | None = None) -> Packet:
        pkt = session.conn.read_packet(timeout)
        if pkt.kind == P.ERROR:
            code, text = (a.decode("utf-8", "replace") for a in pkt.args)
            # gearmand ends a job at WORK_EXCEPTION and answers the WORK_FAIL that python-gearman
            # style workers (and we) send after it with JOB_NOT_FOUND: expected, so not a warning.
            level = logging.DEBUG if code == "JOB_NOT_FOUND" else logging.WARNING
            log.log(level, "%s answered ERROR %s: %s", self.address, code, text)
        return pkt

    def _serve(self, session: Session, backoff: Backoff) -> None:
        policy = self.policy
        while not policy.stopping:
            self._interruptible = True
            if not policy.acquire_grab():
                if policy.stopping:
                    return
                gevent.sleep(GRAB_PAUSE)
                continue
            assigned = False
            try:
                self._interruptible = False
                session.send_packet(P.GRAB_JOB_UNIQ)
                while True:
                    pkt = self._read(session)
                    if pkt.kind in (P.JOB_ASSIGN_UNIQ, P.NO_JOB):
                        break
                backoff.reset()
                if pkt.kind == P.JOB_ASSIGN_UNIQ:
                    policy.assign(session, pkt)
                    assigned = True
            finally:
                self._interruptible = True
                policy.release_grab(assigned)
            if assigned or policy.stopping:
                continue
            session.send_packet(P.PRE_SLEEP)
            try:
                while self._read(session, IDLE_REGRAB_INTERVAL).kind != P.NOOP:
                    pass
            except GearpyTimeoutError:
                log.debug("no NOOP from %s in %.0f s; grabbing anyway", self.address, IDLE_REGRAB_INTERVAL)
