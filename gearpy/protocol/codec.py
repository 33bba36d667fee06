"""Sans-I/O encoder and incremental decoder for the Gearman binary and admin text protocols.

Bytes in, typed events out (:class:`Packet` or :class:`AdminCommand`); packets in, bytes out.
No sockets, no gevent, no logging: the server, the worker runtime and the client all wrap this
module in their own I/O (python-hyper/h11 is the model).
"""

from __future__ import annotations

from collections.abc import Iterator
from struct import Struct

from gearpy.errors import LocalProtocolError, RemoteProtocolError
from gearpy.protocol.packets import (
    FIELD_COUNT,
    HEADER_SIZE,
    LAYOUT,
    MAX_TYPE,
    REQ,
    RES,
    AdminCommand,
    Packet,
    PacketType,
)

_HEADER = Struct(">4sII")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_TYPES = {int(t): t for t in PacketType}

#: Default cap on one binary packet's body. gearmand accepts up to 4 GiB and allocates whatever a
#: header claims; we refuse bodies above this before reading or allocating them.
DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024
#: gearmand reads admin lines into an 8 KiB buffer and closes the connection on longer ones.
DEFAULT_MAX_ADMIN_LINE = 8192


class BadMagic(RemoteProtocolError):
    """The header's magic was neither \\0REQ nor \\0RES; gearmand closes silently."""


class UnknownPacketType(RemoteProtocolError):
    """Packet type 0 or above 42; gearmand closes silently."""


class PacketTooLarge(RemoteProtocolError):
    """A header declared a body larger than the configured maximum."""


class MalformedPacket(RemoteProtocolError):
    """A body lacks the NUL terminators its packet type requires."""


class AdminLineTooLong(RemoteProtocolError):
    """An admin text line did not end within the line limit."""


def split_body(kind: int, body: bytes) -> tuple[bytes, ...]:
    """Split a packet body into its fields according to :data:`LAYOUT`.

    Parsing is bounded by the body (never by what follows it): a body missing a required NUL is a
    :class:`MalformedPacket`, where gearmand would search on into the next packet's bytes.
    """
    argc, tail = LAYOUT[kind]
    if tail:
        if argc == 0:
            return (body,)
        parts = body.split(b"\x00", argc)
        if len(parts) <= argc:
            raise MalformedPacket(f"{_TYPES[kind].name} needs {argc} NUL-terminated arguments")
        return tuple(parts)
    if argc <= 1:
        # argc 0: gearmand reads and ignores any bytes present.
        return (body,) if argc else ()
    parts = body.split(b"\x00", argc - 1)
    if len(parts) < argc:
        raise MalformedPacket(f"{_TYPES[kind].name} needs {argc} arguments")
    return tuple(parts)


def encode(kind: int, *args: bytes, request: bool = False) -> bytes:
    """Encode one binary packet. Servers send responses (``request=False``, the default).

    Arguments that must be NUL-terminated may not contain NUL themselves; that and a wrong argument
    count raise :class:`LocalProtocolError`.
    """
    layout = LAYOUT.get(kind)
    if layout is None:
        raise LocalProtocolError(f"unknown packet type {kind}")
    if len(args) != FIELD_COUNT[kind]:
        raise LocalProtocolError(
            f"{_TYPES[kind].name} takes {FIELD_COUNT[kind]} arguments, got {len(args)}"
        )
    argc, tail = layout
    terminated = args[:argc] if tail else args[:-1]
    for a in terminated:
        if b"\x00" in a:
            raise LocalProtocolError(f"{_TYPES[kind].name} argument may not contain NUL: {a!r}")
    if tail:
        body = b"".join(a + b"\x00" for a in args[:argc]) + args[argc] if argc else args[0]
    else:
        body = b"\x00".join(args)
    return _pack_header(REQ if request else RES, kind, len(body)) + body


def encode_packet(packet: Packet) -> bytes:
    """Encode a :class:`Packet` (the inverse of decoding)."""
    return encode(packet.kind, *packet.args, request=packet.request)


def encode_request(kind: int, *args: bytes) -> bytes:
    """Encode a request packet (what clients and workers send)."""
    return encode(kind, *args, request=True)


def split_admin_line(line: bytes) -> tuple[bytes, ...]:
    """Split an admin line on spaces only, as gearmand does (runs collapse, tabs do not split)."""
    tokens = [t for t in line.split(b" ") if t]
    if not tokens or line[:1] == b" ":
        tokens.insert(0, b"")
    return tuple(tokens)


class Decoder:
    """Incremental decoder: ``feed(data)`` then iterate :meth:`events` (or call :meth:`next_event`).

    Correct at every split point. A packet is decoded only once its whole declared body is
    buffered, and a body above ``max_packet_size`` is refused as soon as its header arrives, before
    anything is allocated for it. A first byte other than NUL starts an admin text line (when
    ``allow_admin``), read up to ``\\n`` and bounded by ``max_admin_line``.

    After a :class:`RemoteProtocolError` the stream is out of sync: the caller must close.
    """

    __slots__ = ("_buf", "_pos", "max_packet_size", "max_admin_line", "allow_admin")

    def __init__(
        self,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_admin_line: int = DEFAULT_MAX_ADMIN_LINE,
        allow_admin: bool = True,
    ) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_packet_size = max_packet_size
        self.max_admin_line = max_admin_line
        self.allow_admin = allow_admin

    def feed(self, data: bytes) -> None:
        """Append received bytes. An empty ``data`` is allowed and does nothing."""
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded into an event."""
        return len(self._buf) - self._pos

    def events(self) -> Iterator[Packet | AdminCommand]:
        """Yield every complete event in the buffer; stop when more bytes are needed."""
        while True:
            ev = self.next_event()
            if ev is None:
                return
            yield ev

    def next_event(self) -> Packet | AdminCommand | None:
        """Return the next complete event, or None when more bytes are needed."""
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail <= 0:
            return None
        if buf[pos] != 0:
            return self._next_admin(buf, pos)
        if avail < HEADER_SIZE:
            # Reject bad magic early, so garbage is not buffered while waiting for a header.
            magic_seen = bytes(buf[pos : pos + min(avail, 4)])
            if not (REQ.startswith(magic_seen) or RES.startswith(magic_seen)):
                raise BadMagic(f"bad magic {magic_seen!r}")
            return None
        magic, kind, size = _unpack_header(buf, pos)
        if magic == REQ:
            request = True
        elif magic == RES:
            request = False
        else:
            raise BadMagic(f"bad magic {magic!r}")
        if kind == 0 or kind > MAX_TYPE:
            raise UnknownPacketType(f"unknown packet type {kind}")
        if size > self.max_packet_size:
            raise PacketTooLarge(f"packet body of {size} bytes exceeds limit of {self.max_packet_size}")
        end = pos + HEADER_SIZE + size
        if len(buf) < end:
            return None
        body = bytes(buf[pos + HEADER_SIZE : end])
        self._advance(end)
        return Packet(_TYPES[kind], split_body(kind, body), request)

    def _next_admin(self, buf: bytearray, pos: int) -> AdminCommand | None:
        if not self.allow_admin:
            raise BadMagic("text data where a binary packet was expected")
        nl = buf.find(b"\n", pos, pos + self.max_admin_line)
        if nl < 0:
            if len(buf) - pos >= self.max_admin_line:
                raise AdminLineTooLong(f"admin line longer than {self.max_admin_line} bytes")
            return None
        line = bytes(buf[pos:nl])
        self._advance(nl + 1)
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        return AdminCommand(line, split_admin_line(line), crlf)

    def _advance(self, end: int) -> None:
        if end >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif end > 65536 and end * 2 > len(self._buf):
            del self._buf[:end]
            self._pos = 0
        else:
            self._pos = end
