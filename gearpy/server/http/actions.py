"""What the HTTP API changes, done through the core's own entry point as a socketless connection.

An HTTP submit becomes a SUBMIT_JOB* packet and a cancel/maxqueue/drop an admin line, handed to
``core.handle`` on a :class:`~gearpy.server.state.Conn` without a socket (``fd == -1``): the same
checks (``--acl-file``, unique and size limits, maxqueue, ``--max-queued-bytes``, the durable
store's commit, ``--admin-allow``) apply as on the Gearman port, and the replies are decoded from
the bytes the core queued, exactly as a client library would read them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gevent.event import Event
from gevent.timeout import Timeout

from gearpy.protocol import AdminCommand, Decoder, Packet, PacketType
from gearpy.server.state import HIGH, LOW, NORMAL, Conn

if TYPE_CHECKING:
    from gearpy.server.core import ServerCore

log = logging.getLogger("gearpy.server.http")
T = PacketType

_KINDS = {
    (HIGH, False): T.SUBMIT_JOB_HIGH,
    (NORMAL, False): T.SUBMIT_JOB,
    (LOW, False): T.SUBMIT_JOB_LOW,
    (HIGH, True): T.SUBMIT_JOB_HIGH_BG,
    (NORMAL, True): T.SUBMIT_JOB_BG,
    (LOW, True): T.SUBMIT_JOB_LOW_BG,
}
#: Gearman ERROR codes and the HTTP status they become.
_ERROR_STATUS = {b"QUEUE_ERROR": 503, b"PERMISSION_DENIED": 403}
#: Socketless connections get negative ids, apart from the I/O layer's.
_ids = itertools.count(-1, -1)


class ActionError(Exception):
    """An action the core refused: the HTTP status and a message."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(slots=True)
class SubmitResult:
    handle: str = ""
    outcome: str = "queued"
    result: bytes = b""
    data: list[bytes] = field(default_factory=list)
    warnings: list[bytes] = field(default_factory=list)
    numerator: int = 0
    denominator: int = 0


@dataclass(slots=True)
class Host:
    """What the actions need from the running server, given at construction."""

    core: ServerCore
    #: schedule sending what the core queued for other connections (woken workers, say)
    flush: Callable[[], None]
    #: connection id -> callback the server's flush calls when a socketless connection has output
    socketless: dict[int, Callable[[], None]]


class _Pseudo:
    """A socketless connection: the core's replies are decoded as they are queued."""

    def __init__(self, host: Host, ip: str, port: int, subject: str | None) -> None:
        self.host = host
        self.core = core = host.core
        self.conn = Conn(next(_ids), -1, ip, port)
        self.conn.client_id = b"http"
        self.conn.peer_cert_subject = subject
        self.ready = Event()
        host.socketless[self.conn.id] = self.ready.set
        self.decoder = Decoder(allow_admin=False)
        core.connect(self.conn)
        self.conn.exceptions = True

    def packets(self) -> list[Packet]:
        data = self.conn.take_output()
        self.core.dirty.discard(self.conn)
        self.ready.clear()
        self.decoder.feed(data)
        return [e for e in self.decoder.events() if isinstance(e, Packet)]

    def text(self) -> bytes:
        self.core.dirty.discard(self.conn)
        return self.conn.take_output()

    def close(self) -> None:
        self.core.disconnect(self.conn)
        self.host.socketless.pop(self.conn.id, None)
        self.host.flush()


def submit(
    host: Host,
    *,
    function: bytes,
    payload: bytes,
    unique: bytes,
    priority: int,
    background: bool,
    when: int,
    timeout: float,
    peer: tuple[str, int],
    subject: str | None,
) -> SubmitResult:
    """Submit one job; background returns once created (durably, with a durable store),
    foreground waits up to ``timeout`` seconds for its end."""
    core = host.core
    if core.draining:
        raise ActionError(503, "the server is shutting down")
    pseudo = _Pseudo(host, peer[0], peer[1], subject)
    res = SubmitResult()
    try:
        if when:
            packet = Packet(T.SUBMIT_JOB_EPOCH, (function, unique, str(when).encode(), payload))
        else:
            packet = Packet(_KINDS[(priority, background)], (function, unique, payload))
        try:
            core.handle(pseudo.conn, packet)
        except Exception as exc:  # CloseConnection: what gearmand would drop the connection for
            raise ActionError(400, f"refused: {exc}") from None
        host.flush()
        try:
            with Timeout(timeout):
                while True:
                    for p in pseudo.packets():
                        if _apply(p, res):
                            return res
                    if res.handle and background:
                        return res
                    pseudo.ready.wait()
        except Timeout:
            if not res.handle:
                raise ActionError(503, "the queue store did not confirm the job in time") from None
            res.outcome = "timeout"
            return res
    finally:
        pseudo.close()


def _apply(p: Packet, res: SubmitResult) -> bool:
    """Note one reply; True once the job has ended."""
    k = p.kind
    if k == T.JOB_CREATED:
        res.handle = p.args[0].decode("utf-8", "replace")
    elif k == T.ERROR:
        code, text = p.args[0], p.args[1].decode("utf-8", "replace")
        raise ActionError(_ERROR_STATUS.get(code, 400), text, code.decode("ascii", "replace"))
    elif k == T.WORK_COMPLETE:
        res.outcome, res.result = "complete", p.args[1]
        return True
    elif k == T.WORK_FAIL:
        res.outcome = "fail"
        return True
    elif k == T.WORK_EXCEPTION:
        res.outcome, res.result = "exception", p.args[1]
        return True
    elif k == T.WORK_DATA:
        res.data.append(p.args[1])
    elif k == T.WORK_WARNING:
        res.warnings.append(p.args[1])
    elif k == T.WORK_STATUS:
        res.numerator = _int(p.args[1])
        res.denominator = _int(p.args[2])
    return False


def _int(b: bytes) -> int:
    try:
        return int(b)
    except ValueError:
        return 0


def admin(host: Host, tokens: tuple[bytes, ...], peer: tuple[str, int]) -> str:
    """Run one mutating admin command as the text protocol would; returns its ``OK`` reply text.

    An ``ERR`` reply raises :class:`ActionError` (403 for ``--admin-allow``, else 409).
    """
    pseudo = _Pseudo(host, peer[0], peer[1], None)
    try:
        host.core.handle(pseudo.conn, AdminCommand(b" ".join(tokens), tokens))
        reply = pseudo.text().decode("utf-8", "replace").strip()
    finally:
        pseudo.close()
    if reply.startswith("OK"):
        return reply
    code, _, message = reply[4:].partition(" ")
    if not code.replace("_", "").isupper():  # "ERR there are still ...": no code, all message
        code, message = "conflict", reply[4:]
    if code == "PERMISSION_DENIED":
        raise ActionError(403, "refused by --admin-allow", code)
    if code == "UNKNOWN_JOB":
        raise ActionError(404, "no such job", code)
    raise ActionError(409, (message or code).replace("+", " "), code)


def peer_of(environ: dict[str, Any]) -> tuple[str, int]:
    try:
        port = int(environ.get("REMOTE_PORT") or 0)
    except ValueError:
        port = 0
    return str(environ.get("REMOTE_ADDR") or "-"), port
