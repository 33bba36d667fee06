"""Sans-I/O encoder and incremental decoder for the Gearman binary and admin text protocols.

Bytes in, typed events out (:class:`Packet` or :class:`AdminCommand`); packets in, bytes out.
No sockets, no gevent, no logging: the server, the worker runtime and the client all wrap this
module in their own I/O (python-hyper/h11 is the model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from struct import Struct
from typing import Final

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
_pack_header: Final = _HEADER.pack
_unpack_header: Final = _HEADER.unpack_from
_TYPES: Final = {int(t): t for t in PacketType}
#: :data:`LAYOUT` as tuples indexed by packet type (0 unused): compiled, one lookup is an index.
_ARGC: Final = tuple(LAYOUT[t][0] if t in LAYOUT else 0 for t in range(MAX_TYPE + 1))
_TAIL: Final = tuple(LAYOUT[t][1] if t in LAYOUT else False for t in range(MAX_TYPE + 1))

#: :meth:`Decoder.advance` results other than a packet type.
NEED_MORE: Final = 0
ADMIN_LINE: Final = -1
#: ``Packet(...)`` runs the NamedTuple's ``__new__``, a Python function, even when this module is
#: compiled; ``tuple.__new__`` builds the same object in C.
_new_packet: Callable[[type[Packet], tuple[PacketType, tuple[bytes, ...], bool]], Packet] = tuple.__new__

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
    return _split(kind, body, 0, len(body))


def _split(kind: int, buf: bytes, start: int, end: int) -> tuple[bytes, ...]:
    """The fields of the body ``buf[start:end]`` of a packet of type ``kind`` (1-42).

    One slice and one ``split`` (measured compiled: a ``find`` per field costs more, each is a
    method call with boxed bounds).
    """
    argc = _ARGC[kind]
    if _TAIL[kind]:
        if argc == 0:
            return (buf[start:end],)
        parts = buf[start:end].split(b"\x00", argc)
        if len(parts) <= argc:
            raise MalformedPacket(f"{_TYPES[kind].name} needs {argc} NUL-terminated arguments")
        return tuple(parts)
    if argc <= 1:
        # argc 0: gearmand reads and ignores any bytes present.
        return (buf[start:end],) if argc else ()
    parts = buf[start:end].split(b"\x00", argc - 1)
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


#: Response headers of small bodies, by ``kind << 16 | size``: the server frames most replies with
#: one dict lookup instead of a ``struct`` call (bounded: 43 types x 256 sizes).
_SMALL_HEADERS: Final[dict[int, bytes]] = {}


def _response_header(kind: int, size: int) -> bytes:
    if size >= 256:
        return _pack_header(RES, kind, size)
    key = kind << 16 | size
    header = _SMALL_HEADERS.get(key)
    if header is None:
        header = _SMALL_HEADERS[key] = _pack_header(RES, kind, size)
    return header


def encode_unchecked(kind: int, *fields: bytes) -> bytes:
    """Encode a response whose fields are known to be well formed: the server's hot path.

    Every field but the last is NUL-terminated by the join. Callers pass only values that came
    out of the decoder or the server (handles, names, uniques, payloads), which hold no NUL where
    one would break the framing and have the layout's field count, so :func:`encode`'s checks
    are skipped (h11 keeps the same kind of unchecked path inside its protocol package).
    """
    body = b"\x00".join(fields)
    return _response_header(kind, len(body)) + body


def encode_unchecked_one(kind: int, field: bytes) -> bytes:
    """:func:`encode_unchecked` for a one-field response (JOB_CREATED): no tuple, no join."""
    return _response_header(kind, len(field)) + field


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


_NO_ADMIN = AdminCommand(b"", (b"",))


class Decoder:
    """Incremental decoder: ``feed(data)`` then iterate :meth:`events` (or call :meth:`next_event`).

    Correct at every split point. A packet is decoded only once its whole declared body is
    buffered, and a body above ``max_packet_size`` is refused as soon as its header arrives, before
    anything is allocated for it. A first byte other than NUL starts an admin text line (when
    ``allow_admin``), read up to ``\\n`` and bounded by ``max_admin_line``.

    After a :class:`RemoteProtocolError` the stream is out of sync: the caller must close.
    """

    __slots__ = (
        "_buf",
        "_pos",
        "_parts",
        "_parts_len",
        "_need",
        "max_packet_size",
        "max_admin_line",
        "allow_admin",
        "args",
        "request",
        "admin",
    )

    def __init__(
        self,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_admin_line: int = DEFAULT_MAX_ADMIN_LINE,
        allow_admin: bool = True,
    ) -> None:
        # The buffer is immutable bytes: slicing a packet's body out of it is one copy. A large
        # packet that arrives in many chunks is collected in ``_parts`` and joined once, when all
        # of its ``_need`` bytes are there (no quadratic re-copying).
        self._buf = b""
        self._pos = 0
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._need = 0
        self.max_packet_size = max_packet_size
        self.max_admin_line = max_admin_line
        self.allow_admin = allow_admin
        #: the last event :meth:`advance` decoded: a packet's fields and magic, or an admin line
        self.args: tuple[bytes, ...] = ()
        self.request = True
        self.admin = _NO_ADMIN

    def feed(self, data: bytes) -> None:
        """Append received bytes. An empty ``data`` is allowed and does nothing."""
        if not data:
            return
        if self._parts:
            self._parts.append(bytes(data))
            self._parts_len += len(data)
            if self._parts_len >= self._need:
                self._buf = b"".join(self._parts)
                self._pos = 0
                self._parts = []
                self._parts_len = 0
                self._need = 0
            return
        pos = self._pos
        if pos >= len(self._buf):
            self._buf = bytes(data)
        else:
            self._buf = self._buf[pos:] + data
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded into an event."""
        return len(self._buf) - self._pos + self._parts_len

    def next_event(self) -> Packet | AdminCommand | None:
        """Return the next complete event, or None when more bytes are needed."""
        for ev in self.events():
            return ev
        return None

    def events(self) -> Iterator[Packet | AdminCommand]:
        """Yield every complete event in the buffer; stop when more bytes are needed.

        The decoder's position moves past each event before it is yielded, so a caller may stop
        iterating at any point and resume later with another call.
        """
        while True:
            kind = self.advance()
            if kind == NEED_MORE:
                return
            if kind == ADMIN_LINE:
                yield self.admin
            else:
                yield _new_packet(Packet, (_TYPES[kind], self.args, self.request))

    def advance(self) -> int:
        """Decode the next complete event in place; the unboxed fast path under :meth:`events`.

        Returns the packet type (1-42), its fields left in ``args`` and its magic in ``request``;
        or :data:`ADMIN_LINE` with the line in ``admin``; or :data:`NEED_MORE`. No event object is
        built: the server applies packets straight from these fields (compiled, a packet costs no
        allocation beyond its fields). The same checks as :meth:`events`, which is built on it.
        """
        if self._parts:
            return NEED_MORE
        buf = self._buf
        pos = self._pos
        n = len(buf)
        if pos >= n:
            return NEED_MORE
        if buf[pos] != 0:
            ev = self._next_admin(buf, pos)
            if ev is None:
                return NEED_MORE
            self.admin = ev
            return ADMIN_LINE
        if n - pos < HEADER_SIZE:
            # Reject bad magic early, so garbage is not buffered while waiting for a header.
            magic_seen = buf[pos : pos + 4]
            if not (REQ.startswith(magic_seen) or RES.startswith(magic_seen)):
                raise BadMagic(f"bad magic {magic_seen!r}")
            return NEED_MORE
        magic: bytes
        kind: int
        size: int
        magic, kind, size = _unpack_header(buf, pos)
        if magic == REQ:
            self.request = True
        elif magic == RES:
            self.request = False
        else:
            raise BadMagic(f"bad magic {magic!r}")
        if kind == 0 or kind > MAX_TYPE:
            raise UnknownPacketType(f"unknown packet type {kind}")
        if size > self.max_packet_size:
            raise PacketTooLarge(f"packet body of {size} bytes exceeds limit of {self.max_packet_size}")
        start = pos + HEADER_SIZE
        end = start + size
        if end > n:
            if end - pos > 65536:
                # A big packet still arriving: collect its chunks and join them once.
                self._parts = [buf[pos:]]
                self._parts_len = n - pos
                self._need = end - pos
                self._buf = b""
                self._pos = 0
            return NEED_MORE
        self._pos = end  # past the packet before its fields are checked, as events() always was
        self.args = _split(kind, buf, start, end)
        return kind

    def _next_admin(self, buf: bytes, pos: int) -> AdminCommand | None:
        if not self.allow_admin:
            raise BadMagic("text data where a binary packet was expected")
        nl = buf.find(b"\n", pos, pos + self.max_admin_line)
        if nl < 0:
            if len(buf) - pos >= self.max_admin_line:
                raise AdminLineTooLong(f"admin line longer than {self.max_admin_line} bytes")
            return None
        line = buf[pos:nl]
        self._pos = nl + 1
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        return AdminCommand(line, split_admin_line(line), crlf)
