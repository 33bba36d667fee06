"""The sending side of the packet-size limit: refuse what the server would refuse, before sending it.

gearpy-server refuses a packet body above its ``--max-packet-size`` (64 MiB by default) with
``ERROR ARGUMENT_TOO_LARGE`` and closes the connection. A client still writing a 70 MB payload then
only sees "connection reset", and a worker's oversized result is lost and its job requeued, to be
refused again. So the client and the worker check every packet against their own
``max_packet_size`` setting, whose default is the server's (:data:`DEFAULT_MAX_PACKET_SIZE`, one
constant for all three), before a byte of it is written.
"""

from __future__ import annotations

from struct import Struct

from gearpy.errors import PacketTooBig
from gearpy.protocol import DEFAULT_MAX_PACKET_SIZE, HEADER_SIZE, PacketType

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "check_packets", "oversized"]

_TYPE_AND_SIZE = Struct(">II")


def oversized(data: bytes, limit: int) -> tuple[int, int] | None:
    """(type, body size) of the first packet in ``data`` (encoded packets, back to back) above ``limit``.

    Data no longer than one maximal packet cannot hold an oversized one, so the common case costs
    one comparison and only large writes walk their headers.
    """
    end = len(data)
    if end <= limit + HEADER_SIZE:
        return None
    pos = 0
    while pos + HEADER_SIZE <= end:
        kind, size = _TYPE_AND_SIZE.unpack_from(data, pos + 4)
        if size > limit:
            return kind, size
        pos += HEADER_SIZE + size
    return None


def check_packets(data: bytes, limit: int | None) -> None:
    """Raise :class:`PacketTooBig` when a packet in ``data`` has a body above ``limit`` (None: no limit)."""
    if limit is None:
        return
    found = oversized(data, limit)
    if found is None:
        return
    kind, size = found
    try:
        name = PacketType(kind).name
    except ValueError:
        name = f"packet type {kind}"
    raise PacketTooBig(
        f"not sent: {name} body of {size} bytes exceeds max_packet_size {limit} (a server with that "
        f"limit answers ARGUMENT_TOO_LARGE); send less, or raise --max-packet-size on the server "
        f"and max_packet_size here"
    )
