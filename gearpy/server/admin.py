"""The text admin protocol, answered byte for byte as gearmand 1.1.20 answers it.

Listings end with ``.\\n`` and use ``\\n``; ``OK <value>`` uses ``\\n``; bare ``OK`` and every
``ERR`` line use ``\\r\\n`` (reference §5). Each command produces one reply, returned as one piece
so the core queues it as one write (gearadmin frames replies by timing). Entries are listed in
gearmand's hash-bucket order so outputs can be diffed against gearmand's.

Names, client ids and uniques are written through :func:`~gearpy.server.wire.escape`: a control
byte in one must not add a field or a row, or end a listing (issue 18.8). Nothing here hashes more
than a bounded prefix of any value, so a listing costs the same whatever the payloads' size.

Handlers see the core only through :class:`AdminTarget` (read-only tables and the few changes an
admin may make), so this module does not import the core and the core's internals stay private.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from gearpy.protocol import AdminCommand
from gearpy.server import refusals
from gearpy.server.index import DropOutcome
from gearpy.server.interfaces import AdminGate
from gearpy.server.state import HIGH, LOW, NORMAL, Conn, Function, Job, gm_hash
from gearpy.server.wire import CloseConnection, atoi, escape, escape_field

log = logging.getLogger("gearpy.server.admin")

BUCKETS = 991
OK = b"OK\r\n"
MAX_TOKENS = 5
#: Commands that change server state; ``admin_allow`` may restrict them.
MUTATING = frozenset({b"cancel", b"create", b"drop", b"maxqueue"})
DENIED = b"ERR PERMISSION_DENIED Mutating+admin+commands+are+not+allowed+from+here\r\n"
#: Bytes of a ``-`` job's payload that order it in ``show unique jobs`` (gearmand hashes them all;
#: the same order for payloads up to this size, and a bounded cost for larger ones).
UNIQUE_ORDER_BYTES = 64


class AdminTarget(Protocol):
    """What admin commands may read and do to the server core."""

    @property
    def functions(self) -> Mapping[bytes, Function]: ...

    @property
    def jobs(self) -> Mapping[bytes, Job]: ...

    @property
    def conns(self) -> Mapping[int, Conn]: ...

    @property
    def version(self) -> str: ...

    @property
    def verbose(self) -> str: ...

    def function(self, name: bytes) -> Function: ...

    def bad_function_name(self, name: bytes) -> bytes | None: ...

    def cancel(self, handle: bytes) -> bool: ...

    def drop_function(self, name: bytes) -> DropOutcome: ...

    def set_max_queue(self, name: bytes, limits: list[int]) -> None: ...


Handler = Callable[[AdminTarget, Sequence[bytes]], bytes]


def _incomplete(word: bytes) -> bytes:
    return b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+" + word + b"\r\n"


def _unknown(word: bytes) -> bytes:
    return b"ERR UNKNOWN_COMMAND Unknown+server+command" + word + b"\r\n"


def answer_admin(target: AdminTarget, conn: Conn, cmd: AdminCommand, gate: AdminGate | None) -> bytes:
    """The reply to one admin line. Raises CloseConnection where gearmand drops the connection."""
    tokens = cmd.tokens
    if len(tokens) > MAX_TOKENS:
        raise CloseConnection("admin line with more than 5 tokens")
    word = tokens[0].lower()
    mutating = word in MUTATING
    if mutating and gate is not None and not gate(conn):
        refusals.admin_refused(conn.ip, conn.peer_cert_subject, word.decode("ascii", "replace"))
        return DENIED
    handler = _COMMANDS.get(word)
    if handler is None:
        return _unknown(tokens[0])
    reply = handler(target, tokens)
    if mutating:
        text = b" ".join(tokens).decode("utf-8", "replace")
        log.info("admin %s from %s: %s", word.decode(), conn.ip, text)
    return reply


def _functions_in_order(target: AdminTarget) -> list[Function]:
    return sorted(target.functions.values(), key=lambda f: (f.hash % BUCKETS, -f.seq))


def _status(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    lines = [
        b"%s\t%d\t%d\t%d\n" % (escape(f.name), f.total, f.running, f.workers)
        for f in _functions_in_order(target)
    ]
    lines.append(b".\n")
    return b"".join(lines)


def _prioritystatus(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    lines = [
        b"%s\t%d\t%d\t%d\t%d\n"
        % (escape(f.name), f.queued(HIGH), f.queued(NORMAL), f.queued(LOW), f.workers)
        for f in _functions_in_order(target)
    ]
    lines.append(b".\n")
    return b"".join(lines)


def _workers(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    lines = []
    for c in sorted(target.conns.values(), key=lambda c: -c.id):
        names = b"".join(b" " + escape_field(a.function.name) for a in c.abilities)
        lines.append(b"%d %s %s :%s\n" % (c.fd, c.ip.encode(), escape_field(c.client_id), names))
    lines.append(b".\n")
    return b"".join(lines)


def _job_order(job: Job) -> tuple[int, int]:
    return (gm_hash(job.handle) % BUCKETS, -job.number)


def _unique_order(job: Job) -> tuple[int, int]:
    if not job.unique:
        return (0, -job.number)
    basis = job.payload[:UNIQUE_ORDER_BYTES] if job.unique == b"-" else job.unique
    return (gm_hash(basis) % BUCKETS, -job.number)


def _show(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    if len(tokens) < 2:
        return _unknown(tokens[0])
    what = [t.lower() for t in tokens[1:]]
    # gearmand wants the exact words: "show jobs please" is ERR UNKNOWN_SHOW_ARGUMENTS.
    if what == [b"jobs"]:
        lines = [
            b"%s\t%d\t%d\t%d\n" % (j.handle, j.retries, int(j.ignore), int(j.background))
            for j in sorted(target.jobs.values(), key=_job_order)
        ]
    elif what == [b"unique", b"jobs"]:
        lines = [escape(j.unique[:63]) + b"\n" for j in sorted(target.jobs.values(), key=_unique_order)]
    else:
        return b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    lines.append(b".\n")
    return b"".join(lines)


def _cancel(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    if len(tokens) < 3:
        return _unknown(tokens[0])
    if tokens[1].lower() != b"job":
        return b"ERR UNKNOWN_ERROR\r\n"
    return OK if target.cancel(tokens[2]) else b"ERR UNKNOWN_JOB\r\n"


def _create(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    if len(tokens) != 3 or tokens[1].lower() != b"function":
        return _incomplete(b"create")
    if tokens[2] not in target.functions and target.bad_function_name(tokens[2]) is not None:
        return b"ERR INVALID_FUNCTION_NAME Function+name+too+long+or+with+control+characters\r\n"
    target.function(tokens[2])
    return OK


def _drop(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    if len(tokens) != 3 or tokens[1].lower() != b"function":
        return _incomplete(b"drop")
    outcome = target.drop_function(tokens[2])
    if outcome == "dropped":
        return OK
    if outcome == "busy":
        return b"ERR there are still connected workers or executing clients\r\n"
    return b"ERR function not found\r\n"


def _maxqueue(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    if len(tokens) < 2:
        return _incomplete(b"maxqueue")
    nums = [max(0, atoi(t)) for t in tokens[2:5]]
    if not nums:
        limits = [0, 0, 0]
    elif len(nums) == 1:
        limits = [nums[0]] * 3
    else:
        limits = (nums + [0, 0])[:3]
    target.set_max_queue(tokens[1], limits)
    return OK


def _version(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    return b"OK " + target.version.encode() + b"\n"


def _verbose(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    return b"OK " + target.verbose.encode() + b"\n"


def _getpid(target: AdminTarget, tokens: Sequence[bytes]) -> bytes:
    return b"OK %d\n" % os.getpid()


_COMMANDS: dict[bytes, Handler] = {
    b"status": _status,
    b"prioritystatus": _prioritystatus,
    b"workers": _workers,
    b"show": _show,
    b"cancel": _cancel,
    b"create": _create,
    b"drop": _drop,
    b"maxqueue": _maxqueue,
    b"version": _version,
    b"verbose": _verbose,
    b"getpid": _getpid,
}
