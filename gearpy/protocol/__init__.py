"""The Gearman protocol, sans I/O: packet types, layouts, encoder and incremental decoder.

Shared by the server, the worker runtime and the client; nothing else in gearpy knows the byte
layout.
"""

from gearpy.protocol.codec import (
    ADMIN_LINE,
    DEFAULT_MAX_ADMIN_LINE,
    DEFAULT_MAX_PACKET_SIZE,
    NEED_MORE,
    AdminLineTooLong,
    BadMagic,
    Decoder,
    MalformedPacket,
    PacketTooLarge,
    UnknownPacketType,
    encode,
    encode_packet,
    encode_request,
    encode_unchecked,
    encode_unchecked_one,
    split_admin_line,
    split_body,
)
from gearpy.protocol.packets import (
    FIELD_COUNT,
    HEADER_SIZE,
    LAYOUT,
    REQ,
    RES,
    RESPONSE_ONLY,
    AdminCommand,
    Packet,
    PacketType,
)

__all__ = [
    "ADMIN_LINE",
    "NEED_MORE",
    "DEFAULT_MAX_ADMIN_LINE",
    "DEFAULT_MAX_PACKET_SIZE",
    "FIELD_COUNT",
    "HEADER_SIZE",
    "LAYOUT",
    "REQ",
    "RES",
    "RESPONSE_ONLY",
    "AdminCommand",
    "AdminLineTooLong",
    "BadMagic",
    "Decoder",
    "MalformedPacket",
    "Packet",
    "PacketTooLarge",
    "PacketType",
    "UnknownPacketType",
    "encode",
    "encode_packet",
    "encode_request",
    "encode_unchecked",
    "encode_unchecked_one",
    "split_admin_line",
    "split_body",
]
