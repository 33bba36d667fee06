"""One connection to one server, as python-gearman's ``GearmanConnection``: a socket with an input
and an output buffer, driven by the connection manager's poll loop.

Everything on the wire goes through :mod:`gearpy.protocol` (encoder and incremental decoder);
connecting (TCP_NODELAY, TLS, error wording) is :func:`gearpy.transport.connect_tcp`. Sockets are the
standard library's, looked up at call time: plain blocking-free sockets in a threaded program, and
cooperative ones if the application happens to monkey-patch with gevent. No gevent is imported.
"""

from __future__ import annotations

import collections
import socket
import ssl
from collections.abc import Mapping
from typing import Any

from gearpy.compat.gearman.constants import DEFAULT_GEARMAN_PORT
from gearpy.compat.gearman.errors import ConnectionError, GearmanError, ProtocolError, ServerUnavailable
from gearpy.config import parse_server_address
from gearpy.errors import ConfigError, GearpyConnectionError, LocalProtocolError, RemoteProtocolError
from gearpy.protocol import AdminCommand, Decoder, Packet, encode_request
from gearpy.transport import client_ssl_context, connect_tcp

#: Admin replies (``workers`` of a worker with hundreds of functions) may be long lines.
MAX_TEXT_LINE = 1024 * 1024
RECV_SIZE = 256 * 1024

Event = Packet | AdminCommand


def to_bytes(value: Any, what: str = "argument") -> bytes:
    """Bytes for the wire: bytes-like as is, ``str`` as UTF-8 (python-gearman's Py3 rule)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ProtocolError(f"{what} must be bytes or str, got {type(value).__name__}")


class GearmanConnection:
    """A (re)connectable connection. TLS when any of ``keyfile``/``certfile``/``ca_certs`` is given;
    the server's certificate is then verified against ``ca_certs`` (or the system's trust store) and
    its name checked against ``host``."""

    #: Seconds to wait for the TCP connect and the TLS handshake (python-gearman had none).
    connect_timeout: float | None = 10.0

    def __init__(
        self,
        host: str | None = None,
        port: int = DEFAULT_GEARMAN_PORT,
        keyfile: str | None = None,
        certfile: str | None = None,
        ca_certs: str | None = None,
    ) -> None:
        if host is None:
            raise ServerUnavailable("No host specified")
        self.gearman_host = host
        self.gearman_port = int(port or DEFAULT_GEARMAN_PORT)
        self.keyfile = keyfile
        self.certfile = certfile
        self.ca_certs = ca_certs
        self.use_ssl = bool(keyfile or certfile or ca_certs)
        self._ssl_context: ssl.SSLContext | None = None
        if self.use_ssl:
            # Built now, so a missing or unreadable certificate is reported at construction.
            try:
                self._ssl_context = client_ssl_context(ca_certs, certfile, keyfile)
            except (ConfigError, OSError, ssl.SSLError) as exc:
                raise GearmanError(f"TLS settings for {host}:{self.gearman_port}: {exc}") from exc
        self._reset_connection()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(host={self.gearman_host!r}, port={self.gearman_port!r}, "
            f"keyfile={self.keyfile!r}, certfile={self.certfile!r}, ca_certs={self.ca_certs!r})"
        )

    def _reset_connection(self) -> None:
        self.connected = False
        self.gearman_socket: socket.socket | None = None
        self._decoder = Decoder(allow_admin=True, max_admin_line=MAX_TEXT_LINE)
        self._incoming: collections.deque[Event] = collections.deque()
        self._outgoing = bytearray()

    # ----- python-gearman's accessors -----------------------------------------------------------
    def fileno(self) -> int:
        if self.gearman_socket is None:
            self.throw_exception(message="no socket set")
        assert self.gearman_socket is not None
        return self.gearman_socket.fileno()

    def get_address(self) -> tuple[str, int]:
        return (self.gearman_host, self.gearman_port)

    def writable(self) -> bool:
        """True while output waits to be sent."""
        return self.connected and bool(self._outgoing)

    def readable(self) -> bool:
        return self.connected

    def has_buffered_input(self) -> bool:
        """Input already read (decoded events, or TLS bytes the kernel no longer reports)."""
        if self._incoming:
            return True
        sock = self.gearman_socket
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    # ----- connecting ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the connection; raise :class:`ConnectionError` when the server cannot be reached."""
        if self.connected:
            self.throw_exception(message="connection already established")
        self._reset_connection()
        try:
            sock = connect_tcp(
                (self.gearman_host, self.gearman_port), self.connect_timeout, self._ssl_context
            )
        except GearpyConnectionError as exc:
            raise ConnectionError(f"<{self.gearman_host}:{self.gearman_port}> {exc}") from exc
        sock.setblocking(False)
        self.gearman_socket = sock
        self.connected = True

    def close(self) -> None:
        sock = self.gearman_socket
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._reset_connection()

    def throw_exception(self, message: str | None = None, exception: BaseException | None = None) -> None:
        """Mark the connection dead and raise :class:`ConnectionError` (python-gearman's helper)."""
        self.connected = False
        if exception is not None:
            message = f"{type(exception).__name__}: {exception}"
        raise ConnectionError(f"<{self.gearman_host}:{self.gearman_port}> {message}")

    # ----- output -------------------------------------------------------------------------------
    def send_command(self, kind: int, *args: bytes) -> None:
        """Queue one request packet; the poll loop writes it."""
        try:
            self._outgoing += encode_request(kind, *args)
        except LocalProtocolError as exc:
            raise ProtocolError(str(exc)) from exc

    def send_text(self, line: str) -> None:
        """Queue one admin text command line."""
        if "\n" in line or "\r" in line:
            raise ProtocolError("an admin command is one line")
        self._outgoing += line.encode("utf-8") + b"\n"

    def send_data_to_socket(self) -> int:
        """Write what the socket takes now; return the bytes still waiting."""
        sock = self.gearman_socket
        if not self.connected or sock is None:
            self.throw_exception(message="disconnected")
        assert sock is not None
        if self._outgoing:
            try:
                sent = sock.send(self._outgoing)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            except OSError as exc:
                self.throw_exception(exception=exc)
            del self._outgoing[:sent]
        return len(self._outgoing)

    # ----- input --------------------------------------------------------------------------------
    def read_data_from_socket(self) -> int:
        """Read what is available and decode it; return the number of events now waiting.

        A closed connection or bytes that are not Gearman responses raise :class:`ConnectionError`
        (python-gearman raised ProtocolError out of the poll loop and left the connection open).
        """
        sock = self.gearman_socket
        if not self.connected or sock is None:
            self.throw_exception(message="disconnected")
        assert sock is not None
        got = False
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as exc:
                self.throw_exception(exception=exc)
            if not data:
                if got:
                    break  # report the close on the next read, after these bytes are handled
                self.throw_exception(message="remote disconnected")
            got = True
            self._decoder.feed(data)
            if len(data) < RECV_SIZE and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                break
        try:
            for event in self._decoder.events():
                if isinstance(event, Packet) and event.request:
                    raise ProtocolError(f"server sent a request packet: {event!r}")
                self._incoming.append(event)
        except (RemoteProtocolError, ProtocolError) as exc:
            self.throw_exception(message=f"invalid data from the server: {exc}")
        return len(self._incoming)

    def read_command(self) -> Event | None:
        """The next decoded event, or None."""
        return self._incoming.popleft() if self._incoming else None


def parse_host(element: Any) -> dict[str, Any]:
    """One ``host_list`` entry as GearmanConnection keyword arguments.

    ``"host[:port]"`` (``"[v6]:port"`` too), ``(host, port)``, or a dict with ``host`` and optional
    ``port``, ``keyfile``, ``certfile``, ``ca_certs`` (TLS when a file is given).
    """
    if isinstance(element, str):
        try:
            host, port = parse_server_address(element, DEFAULT_GEARMAN_PORT)
        except ConfigError as exc:
            raise GearmanError(str(exc)) from None
        return {"host": host, "port": port}
    if isinstance(element, tuple):
        if len(element) != 2:
            raise GearmanError(f"expected a (host, port) tuple, got {element!r}")
        return {"host": element[0], "port": int(element[1])}
    if isinstance(element, Mapping):
        if "host" not in element:
            raise GearmanError("Incomplete SSL connection definition: no host")
        unknown = set(element) - {"host", "port", "keyfile", "certfile", "ca_certs"}
        if unknown:
            raise GearmanError(f"unknown keys in connection definition: {sorted(unknown)}")
        return {
            "host": element["host"],
            "port": int(element.get("port") or DEFAULT_GEARMAN_PORT),
            "keyfile": element.get("keyfile"),
            "certfile": element.get("certfile"),
            "ca_certs": element.get("ca_certs"),
        }
    raise GearmanError(f"Expected str, tuple or dict; got {element!r} (type {type(element).__name__})")
