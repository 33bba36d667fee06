"""What the binary-protocol core and the text admin protocol share: limits, errors, C parsing.

Both :mod:`gearpy.server.core` and :mod:`gearpy.server.admin` import this module and neither
imports the other's internals, so the two protocols stay apart without imports hidden in
functions.
"""

from __future__ import annotations

import re
from typing import Final

from gearpy.protocol import PacketType, encode

T = PacketType

#: gearmand's GEARMAN_MAX_UNIQUE_SIZE: a unique of this length or more is cut and never coalesces.
MAX_UNIQUE: Final = 64
#: gearmand's GEARMAND_JOB_HANDLE_SIZE less its NUL.
MAX_HANDLE: Final = 63
#: gearmand's GEARMAN_MAX_IDENTIFIER less its NUL (SET_CLIENT_ID).
MAX_CLIENT_ID: Final = 127
#: Longest function name accepted by default: libgearman's GEARMAN_FUNCTION_MAX_SIZE (its workers
#: refuse longer ones; gearmand itself has no limit).
DEFAULT_MAX_FUNCTION_NAME = 512

#: Bytes that never reach the admin text protocol raw: C0 controls (tab, newline ...) and DEL.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
#: The same plus space, for the space-separated fields of ``workers`` (the client id).
_CONTROL_OR_SPACE = re.compile(rb"[\x00-\x20\x7f]")

NOOP: Final = encode(T.NOOP)
NO_JOB: Final = encode(T.NO_JOB)
ERR_NOT_EXPECTED = encode(T.ERROR, b"INVALID_COMMAND", b"Command not expected")
ERR_BAD_MAGIC = encode(T.ERROR, b"INVALID_MAGIC", b"Request magic expected")
ERR_UNIQUE_TOO_LARGE = encode(T.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large")
ERR_QUEUE_FULL = encode(T.ERROR, b"QUEUE_ERROR", b"Job queue is full")
ERR_QUEUE_MEMORY = encode(T.ERROR, b"QUEUE_ERROR", b"Server queue memory limit reached (max_queued_bytes)")
ERR_CONNECTION_JOBS = encode(
    T.ERROR, b"QUEUE_ERROR", b"Too many unfinished jobs from this connection (max_jobs_per_connection)"
)
ERR_BAD_FUNCTION_NAME = encode(
    T.ERROR, b"INVALID_FUNCTION_NAME", b"Function name contains control characters"
)
ERR_PERMISSION = encode(T.ERROR, b"PERMISSION_DENIED", b"Not allowed for this client certificate")
ERR_UNKNOWN_OPTION = encode(T.ERROR, b"UNKNOWN_OPTION", b"Server does not recognize given option")
ERR_HANDLE_TOO_LARGE = encode(
    T.ERROR,
    b"ARGUMENT_TOO_LARGE",
    b"Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf",
)
#: JOB_NOT_FOUND texts, by the work packet gearmand could not match to a job
NOT_FOUND_TEXT: dict[int, bytes] = {
    T.WORK_DATA: b"Job does not exist on server",
    T.WORK_WARNING: b"Job does not exist on server",
    T.WORK_STATUS: b"Job given in work result not found",
    T.WORK_COMPLETE: b"Job given in work result not found",
    T.WORK_FAIL: b"Job given in work result not found",
    T.WORK_EXCEPTION: b"An exception was received for a job that does not exist",
}


class CloseConnection(Exception):
    """Raised inside the core when gearmand would drop the connection without a reply."""


def packet_too_large_reply(reason: str) -> bytes:
    """The ERROR sent before closing a connection whose packet exceeds ``max_packet_size``.

    A limit of ours, not gearmand's (which allocates whatever a header claims): the peer is told
    why, then the connection closes.
    """
    return encode(T.ERROR, b"ARGUMENT_TOO_LARGE", reason.encode())


def function_name_error(name: bytes, max_length: int) -> bytes | None:
    """The ERROR refusing a new function name, or None when it may be used (issue 18.2, 18.8)."""
    if len(name) > max_length:
        return encode(
            T.ERROR,
            b"ARGUMENT_TOO_LARGE",
            b"Function name longer than %d bytes (max_function_name)" % max_length,
        )
    if _CONTROL.search(name) is not None:
        return ERR_BAD_FUNCTION_NAME
    return None


def _hex(match: re.Match[bytes]) -> bytes:
    return b"\\x%02x" % match.group()[0]


def escape(text: bytes) -> bytes:
    """``text`` for a line of the admin protocol: each control byte as ``\\xNN``, the rest as is.

    A tab or newline inside a name, client id or unique would otherwise add fields or rows (or end
    a listing early) in what ``gearadmin`` and ``gearpy-client`` parse (issue 18.8).
    """
    return text if _CONTROL.search(text) is None else _CONTROL.sub(_hex, text)


def escape_field(text: bytes) -> bytes:
    """Like :func:`escape`, spaces too: for a space-separated field (``workers``' client id)."""
    return text if _CONTROL_OR_SPACE.search(text) is None else _CONTROL_OR_SPACE.sub(_hex, text)


def atoi(text: bytes) -> int:
    """C ``atoi``: optional sign and leading digits; anything else counts as 0."""
    text = text.strip()
    end = 0
    if text[:1] in (b"-", b"+"):
        end = 1
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def parse_epoch(text: bytes) -> int:
    """SUBMIT_JOB_EPOCH's time field; gearmand drops the connection when it overflows 64 bits."""
    value = atoi(text)
    if not -(2**63) <= value < 2**63:
        raise CloseConnection("epoch out of range")
    return max(0, value)
