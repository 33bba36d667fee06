"""The text admin protocol, answered byte for byte as gearmand 1.1.20 answers it.

Listings end with ``.\\n`` and use ``\\n``; ``OK <value>`` uses ``\\n``; bare ``OK`` and every
``ERR`` line use ``\\r\\n`` (reference §5). Each command produces one reply, queued as one piece so
it goes out in one write (gearadmin frames replies by timing). Entries are listed in gearmand's
hash-bucket order so outputs can be diffed against gearmand's.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from gearpy.protocol import AdminCommand
from gearpy.server import refusals
from gearpy.server.state import HIGH, LOW, NORMAL, Job, gm_hash

if TYPE_CHECKING:
    from gearpy.server.core import ServerCore
    from gearpy.server.state import Conn

log = logging.getLogger("gearpy.server.admin")

BUCKETS = 991
OK = b"OK\r\n"
MAX_TOKENS = 5
#: Commands that change server state; the I/O layer may restrict them (``admin_allow``).
MUTATING = {b"cancel", b"create", b"drop", b"maxqueue"}


def _incomplete(word: bytes) -> bytes:
    return b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+" + word + b"\r\n"


def handle_admin(core: ServerCore, conn: Conn, cmd: AdminCommand) -> None:
    """Answer one admin line. Raises CloseConnection where gearmand drops the connection."""
    from gearpy.server.core import CloseConnection

    tokens = cmd.tokens
    if len(tokens) > MAX_TOKENS:
        raise CloseConnection("admin line with more than 5 tokens")
    word = tokens[0].lower()
    allowed = getattr(core, "admin_allowed", None)
    if word in MUTATING and allowed is not None and not allowed(conn):
        refusals.admin_refused(conn.ip, conn.peer_cert_subject, word.decode("ascii", "replace"))
        core._send(conn, b"ERR PERMISSION_DENIED Mutating+admin+commands+are+not+allowed+from+here\r\n")
        return
    handler = _COMMANDS.get(word)
    if handler is None:
        reply = b"ERR UNKNOWN_COMMAND Unknown+server+command" + tokens[0] + b"\r\n"
    else:
        reply = handler(core, conn, tokens)
        if word in MUTATING:
            text = b" ".join(tokens).decode("utf-8", "replace")
            log.info("admin %s from %s: %s", word.decode(), conn.ip, text)
    core._send(conn, reply)


def _functions_in_order(core: ServerCore):
    return sorted(core.functions.values(), key=lambda f: (f.hash % BUCKETS, -f.seq))


def _status(core: ServerCore, conn: Conn, tokens) -> bytes:
    lines = [
        b"%s\t%d\t%d\t%d\n" % (f.name, f.total, f.running, f.workers) for f in _functions_in_order(core)
    ]
    lines.append(b".\n")
    return b"".join(lines)


def _prioritystatus(core: ServerCore, conn: Conn, tokens) -> bytes:
    lines = [
        b"%s\t%d\t%d\t%d\t%d\n" % (f.name, f.queued(HIGH), f.queued(NORMAL), f.queued(LOW), f.workers)
        for f in _functions_in_order(core)
    ]
    lines.append(b".\n")
    return b"".join(lines)


def _workers(core: ServerCore, conn: Conn, tokens) -> bytes:
    lines = []
    for c in sorted(core.conns.values(), key=lambda c: -c.id):
        names = b"".join(b" " + a[0].name for a in c.abilities)
        lines.append(b"%d %s %s :%s\n" % (c.fd, c.ip.encode(), c.client_id, names))
    lines.append(b".\n")
    return b"".join(lines)


def _job_order(job: Job) -> tuple[int, int]:
    return (gm_hash(job.handle) % BUCKETS, -job.number)


def _unique_order(job: Job) -> tuple[int, int]:
    if not job.unique:
        return (0, -job.number)
    basis = job.payload if job.unique == b"-" else job.unique
    return (gm_hash(basis) % BUCKETS, -job.number)


def _show(core: ServerCore, conn: Conn, tokens) -> bytes:
    if len(tokens) < 2:
        return b"ERR UNKNOWN_COMMAND Unknown+server+command" + tokens[0] + b"\r\n"
    what = [t.lower() for t in tokens[1:]]
    # gearmand wants the exact words: "show jobs please" is ERR UNKNOWN_SHOW_ARGUMENTS.
    if what == [b"jobs"]:
        lines = [
            b"%s\t%d\t%d\t%d\n" % (j.handle, j.retries, int(j.ignore), int(j.background))
            for j in sorted(core.jobs.values(), key=_job_order)
        ]
    elif what == [b"unique", b"jobs"]:
        lines = [j.unique[:63] + b"\n" for j in sorted(core.jobs.values(), key=_unique_order)]
    else:
        return b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    lines.append(b".\n")
    return b"".join(lines)


def _cancel(core: ServerCore, conn: Conn, tokens) -> bytes:
    if len(tokens) < 3:
        return b"ERR UNKNOWN_COMMAND Unknown+server+command" + tokens[0] + b"\r\n"
    if tokens[1].lower() != b"job":
        return b"ERR UNKNOWN_ERROR\r\n"
    return OK if core.cancel(tokens[2]) else b"ERR UNKNOWN_JOB\r\n"


def _create(core: ServerCore, conn: Conn, tokens) -> bytes:
    if len(tokens) != 3 or tokens[1].lower() != b"function":
        return _incomplete(b"create")
    core.function(tokens[2])
    return OK


def _drop(core: ServerCore, conn: Conn, tokens) -> bytes:
    if len(tokens) != 3 or tokens[1].lower() != b"function":
        return _incomplete(b"drop")
    wanted = tokens[2].lower()
    for name, fn in core.functions.items():
        if name.lower() == wanted:
            if fn.workers or fn.running or fn.total:
                return b"ERR there are still connected workers or executing clients\r\n"
            del core.functions[name]
            return OK
    return b"ERR function not found\r\n"


def _maxqueue(core: ServerCore, conn: Conn, tokens) -> bytes:
    if len(tokens) < 2:
        return _incomplete(b"maxqueue")
    fn = core.functions.get(tokens[1])
    nums = [max(0, _atoi(t)) for t in tokens[2:5]]
    if fn is not None:
        if not nums:
            fn.max_queue = [0, 0, 0]
        elif len(nums) == 1:
            fn.max_queue = [nums[0]] * 3
        else:
            fn.max_queue = (nums + [0, 0])[:3]
    return OK


def _version(core: ServerCore, conn: Conn, tokens) -> bytes:
    return b"OK " + core.version.encode() + b"\n"


def _verbose(core: ServerCore, conn: Conn, tokens) -> bytes:
    return b"OK " + core.verbose.encode() + b"\n"


def _getpid(core: ServerCore, conn: Conn, tokens) -> bytes:
    return b"OK %d\n" % os.getpid()


def _atoi(text: bytes) -> int:
    from gearpy.server.core import _atoi as atoi

    return atoi(text)


_COMMANDS = {
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
