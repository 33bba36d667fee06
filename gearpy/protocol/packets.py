"""Packet types, magic codes and the table of each type's argument layout.

One table (:data:`LAYOUT`) drives decoding, encoding, validation and ``repr``: it says how many
arguments a packet type has and whether an opaque tail (which may contain NUL bytes) follows them.
The layout is gearmand's (``libgearman/command.cc``), not the PROTOCOL text's: the reduce submits
carry four terminated fields (function, unique, reducer, aggregator) before the workload.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, NamedTuple

REQ: Final = b"\x00REQ"
RES: Final = b"\x00RES"
HEADER_SIZE: Final = 12


class PacketType(IntEnum):
    """Every binary packet type gearmand knows (1-42)."""

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    UNUSED = 5
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


MAX_TYPE: Final = 42

T = PacketType

#: type -> (argc, has_tail). With a tail, all argc arguments are NUL-terminated and the rest of
#: the body is the tail. Without one, the last argument is the unterminated rest of the body.
LAYOUT: dict[int, tuple[int, bool]] = {
    T.CAN_DO: (1, False),
    T.CANT_DO: (1, False),
    T.RESET_ABILITIES: (0, False),
    T.PRE_SLEEP: (0, False),
    T.UNUSED: (0, False),
    T.NOOP: (0, False),
    T.SUBMIT_JOB: (2, True),
    T.JOB_CREATED: (1, False),
    T.GRAB_JOB: (0, False),
    T.NO_JOB: (0, False),
    T.JOB_ASSIGN: (2, True),
    T.WORK_STATUS: (3, False),
    T.WORK_COMPLETE: (1, True),
    T.WORK_FAIL: (1, False),
    T.GET_STATUS: (1, False),
    T.ECHO_REQ: (0, True),
    T.ECHO_RES: (0, True),
    T.SUBMIT_JOB_BG: (2, True),
    T.ERROR: (2, False),
    T.STATUS_RES: (5, False),
    T.SUBMIT_JOB_HIGH: (2, True),
    T.SET_CLIENT_ID: (1, False),
    T.CAN_DO_TIMEOUT: (2, False),
    T.ALL_YOURS: (0, False),
    T.WORK_EXCEPTION: (1, True),
    T.OPTION_REQ: (1, False),
    T.OPTION_RES: (1, False),
    T.WORK_DATA: (1, True),
    T.WORK_WARNING: (1, True),
    T.GRAB_JOB_UNIQ: (0, False),
    T.JOB_ASSIGN_UNIQ: (3, True),
    T.SUBMIT_JOB_HIGH_BG: (2, True),
    T.SUBMIT_JOB_LOW: (2, True),
    T.SUBMIT_JOB_LOW_BG: (2, True),
    T.SUBMIT_JOB_SCHED: (7, True),
    T.SUBMIT_JOB_EPOCH: (3, True),
    T.SUBMIT_REDUCE_JOB: (4, True),
    T.SUBMIT_REDUCE_JOB_BACKGROUND: (4, True),
    T.GRAB_JOB_ALL: (0, False),
    T.JOB_ASSIGN_ALL: (4, True),
    T.GET_STATUS_UNIQUE: (1, False),
    T.STATUS_RES_UNIQUE: (6, False),
}

#: Number of fields a decoded packet of each type carries (argc, plus one for a tail).
FIELD_COUNT: dict[int, int] = {t: argc + (1 if tail else 0) for t, (argc, tail) in LAYOUT.items()}

#: Types only a server sends. A server that receives one answers ERROR INVALID_COMMAND.
RESPONSE_ONLY = frozenset(
    {
        T.NOOP,
        T.JOB_CREATED,
        T.NO_JOB,
        T.JOB_ASSIGN,
        T.ECHO_RES,
        T.ERROR,
        T.STATUS_RES,
        T.OPTION_RES,
        T.JOB_ASSIGN_UNIQ,
        T.JOB_ASSIGN_ALL,
        T.STATUS_RES_UNIQUE,
    }
)


class Packet(NamedTuple):
    """One decoded binary packet.

    ``args`` holds exactly :data:`FIELD_COUNT` ``[kind]`` byte strings; for types with a tail the
    last one is the tail. ``request`` tells the magic: ``\\0REQ`` (True) or ``\\0RES`` (False).
    A NamedTuple rather than a dataclass: this is the hot path and tuples are the cheapest object.
    """

    kind: PacketType
    args: tuple[bytes, ...]
    request: bool = True

    def __repr__(self) -> str:
        shown = ", ".join(repr(a if len(a) <= 40 else a[:37] + b"...") for a in self.args)
        magic = "REQ" if self.request else "RES"
        return f"<{magic} {self.kind.name} {shown}>"


class AdminCommand(NamedTuple):
    """One line of the text admin protocol, received on the same port as binary packets.

    ``line`` is the raw line without its ``\\n`` and one trailing ``\\r``; ``tokens`` is the line
    split on spaces only (runs collapse; a leading space gives an empty first token), as gearmand does.
    ``crlf`` records whether the line ended in ``\\r\\n``.
    """

    line: bytes
    tokens: tuple[bytes, ...]
    crlf: bool = False
