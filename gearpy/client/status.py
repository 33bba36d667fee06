"""What a server answers about a job: the GET_STATUS and GET_STATUS_UNIQUE replies.

``StatusReply`` is the server's view at one moment (known? running? progress?), not the job's state
in this client (that is :class:`~gearpy.client.job.JobState`). ``JobStatus`` and ``UniqueStatus``
are the old names, kept as deprecated aliases.
"""

from __future__ import annotations

from dataclasses import dataclass

from gearpy.protocol import Packet

__all__ = ["StatusReply", "UniqueStatusReply", "parse_status", "parse_status_unique"]


@dataclass(frozen=True, slots=True)
class StatusReply:
    """Answer to GET_STATUS. An unknown handle (finished, never existed, server restarted) is all zero."""

    handle: str
    known: bool
    running: bool
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class UniqueStatusReply:
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


def parse_status(packet: Packet) -> StatusReply:
    h, known, running, num, den = packet.args
    return StatusReply(h.decode("utf-8", "replace"), known == b"1", running == b"1", _int(num), _int(den))


def parse_status_unique(packet: Packet) -> UniqueStatusReply:
    u, known, running, num, den, waiting = packet.args
    return UniqueStatusReply(
        u.decode("utf-8", "replace"), known == b"1", running == b"1", _int(num), _int(den), _int(waiting)
    )
