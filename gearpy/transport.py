"""The connection layer shared by the client library and the worker runtime.

Blocking sockets from the stdlib ``socket`` module, looked up at call time: in plain threads they
block the thread; in a gevent program (the worker runtime patches the process) they cooperate.
Socket errors are mapped onto gearpy's exception tree here, in one place (:func:`map_socket_errors`),
keeping the cause; :func:`enable_keepalive` is the one TCP keepalive set-up (server, worker).
"""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gearpy.config import parse_server_address
from gearpy.errors import (
    ConfigError,
    GearpyConnectionError,
    GearpyTimeoutError,
    ProtocolError,
    RefusedByServer,
)
from gearpy.packetlimit import check_packets
from gearpy.protocol import Decoder, Packet, PacketType, encode_request

DEFAULT_PORT = 4730
RECV_SIZE = 256 * 1024
#: Seconds a failed send may spend reading what the server said before it closed (its ERROR is
#: normally in our receive buffer already; this only bounds a peer that went quiet).
LAST_WORDS_TIMEOUT = 2.0
#: TCP keepalive of client-side connections (worker → server): probe after 60 s idle, every 10 s,
#: give up after 6 unanswered probes, so a vanished server is noticed within about two minutes.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 10, 6


@contextmanager
def map_socket_errors(
    failure: str,
    *,
    timeout: str | None = None,
    close: Callable[[], object] | None = None,
    close_on_timeout: bool = True,
) -> Iterator[None]:
    """Translate the socket errors raised inside the block into gearpy's exception tree.

    Modelled on httpcore's ``map_exceptions``: one place decides what a socket error means to a caller.

    * a timeout → :class:`GearpyTimeoutError` with the text ``timeout`` when it is given (the
      operation may be retried), else a connection error like any other;
    * any other ``OSError`` (``ssl.SSLError`` included) → :class:`GearpyConnectionError`
      ``"<failure>: <reason>"``, keeping the original as ``__cause__``.

    ``close`` is called before raising, to drop a connection that cannot be used any more; with
    ``close_on_timeout=False`` a timeout leaves the connection open (its framing is intact).
    """
    try:
        yield
    except TimeoutError as exc:
        if close is not None and (close_on_timeout or timeout is None):
            close()
        if timeout is not None:
            raise GearpyTimeoutError(timeout) from exc
        raise GearpyConnectionError(f"{failure}: {_reason(exc)}") from exc
    except OSError as exc:
        if close is not None:
            close()
        raise GearpyConnectionError(f"{failure}: {_reason(exc)}") from exc


def enable_keepalive(
    sock: socket.socket,
    idle: int = KEEPALIVE_IDLE,
    interval: int = KEEPALIVE_INTERVAL,
    count: int = KEEPALIVE_COUNT,
) -> None:
    """Turn on TCP keepalive, so a peer that vanished without a FIN/RST is noticed.

    ``idle``/``interval`` are seconds, ``count`` unanswered probes; a value <= 0, or an option the
    platform lacks (these are Linux names), keeps the system default. When all three are set,
    TCP_USER_TIMEOUT gets the same budget, ``(idle + interval * count)`` seconds: keepalive never
    fires while sent data waits for an acknowledgement, so without it a peer that vanished while we
    were writing would be noticed only after the kernel's retransmissions (about 15 minutes).
    Errors are ignored: a socket without keepalive still works, it only notices a dead peer later.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    user_timeout_ms = (idle + interval * count) * 1000 if min(idle, interval, count) > 0 else 0
    options = (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
        ("TCP_USER_TIMEOUT", user_timeout_ms),
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in options:
            if value > 0 and hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:
        pass


class Backoff:
    """Exponential reconnect delays with full jitter: ``uniform(0, min(cap, base * 2**n))``.

    Jitter keeps a fleet of workers from reconnecting in lock-step after a server restart.
    """

    def __init__(self, base: float = 0.1, cap: float = 5.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


class PacketConnection:
    """One TCP (optionally TLS) connection speaking binary Gearman packets.

    Not thread-safe by itself: the client guards it with a lock, the worker gives each its own
    greenlet.
    """

    def __init__(
        self,
        address: str | tuple[str, int],
        *,
        connect_timeout: float | None = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        keepalive: bool = False,
        max_packet_size: int | None = None,
    ) -> None:
        if isinstance(address, str):
            address = parse_server_address(address, DEFAULT_PORT)
        self.host, self.port = address
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname or self.host
        self.sock: socket.socket | None = None
        self.decoder = Decoder(allow_admin=False)
        #: A packet body above this is refused before sending (:mod:`gearpy.packetlimit`); None: no check.
        self.max_packet_size = max_packet_size

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self) -> None:
        """Open the connection (TCP_NODELAY on, as every Gearman exchange is small; keepalive if asked)."""
        self.close()
        sock = connect_tcp(
            (self.host, self.port), self.connect_timeout, self.ssl_context, self.server_hostname
        )
        if self.keepalive:
            enable_keepalive(sock)
        sock.settimeout(None)
        self.sock = sock
        self.decoder = Decoder(allow_admin=False)

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def send(self, data: bytes) -> None:
        """Send already-encoded bytes (several packets may be joined into one send).

        Raises :class:`~gearpy.errors.PacketTooBig` (nothing sent) for a packet above
        ``max_packet_size``. When the write fails because the server refused what it was reading
        and closed (``ERROR ARGUMENT_TOO_LARGE`` for a body above *its* limit), the ERROR it sent
        first is read and raised as :class:`~gearpy.errors.RefusedByServer`, not as a bare reset.
        """
        if self.sock is None:
            raise GearpyConnectionError(f"not connected to {self.name}")
        check_packets(data, self.max_packet_size)
        with map_socket_errors(f"connection to {self.name} lost", close=self.close):
            try:
                self.sock.sendall(data)
            except OSError as exc:
                self._raise_refusal(exc)
                raise

    def _raise_refusal(self, exc: OSError) -> None:
        """After a failed write: raise the ERROR the server sent before it closed, if there is one."""
        error = self._last_error()
        if error is not None:
            self.close()
            code, text = (a.decode("utf-8", "replace") for a in error.args)
            raise RefusedByServer(self.name, code, text) from exc

    def _last_error(self) -> Packet | None:
        """After a failed write: the ERROR the server sent before closing, if it is still readable.

        A server that closes with our unread data in its buffer makes the kernel send a reset, which
        fails our write; what it sent before (its reason) still sits in our receive buffer.
        """
        sock = self.sock
        if sock is None:
            return None
        try:
            sock.settimeout(LAST_WORDS_TIMEOUT)
            while data := sock.recv(RECV_SIZE):
                self.decoder.feed(data)
        except (OSError, ValueError):
            pass
        try:
            for event in self.decoder.events():
                if isinstance(event, Packet) and event.kind == PacketType.ERROR:
                    return event
        except ProtocolError:
            pass
        return None

    def send_packet(self, kind: int, *args: bytes) -> None:
        self.send(encode_request(kind, *args))

    def read_packet(self, timeout: float | None = None) -> Packet:
        """Return the next packet, reading as needed; raise on timeout or a lost connection."""
        while True:
            ev = self.decoder.next_event()
            if ev is not None:
                return ev  # type: ignore[return-value]
            self._fill(timeout)

    def read_available(self, timeout: float | None = None) -> Iterator[Packet]:
        """Read once (waiting up to ``timeout``) and yield every packet that is then complete."""
        ev = self.decoder.next_event()
        if ev is None:
            self._fill(timeout)
        else:
            yield ev  # type: ignore[misc]
        yield from self.decoder.events()  # type: ignore[misc]

    def _fill(self, timeout: float | None) -> None:
        if self.sock is None:
            raise GearpyConnectionError(f"not connected to {self.name}")
        with map_socket_errors(
            f"connection to {self.name} lost",
            timeout=f"no answer from {self.name} within {timeout} s",
            close=self.close,
            close_on_timeout=False,
        ):
            self.sock.settimeout(timeout)
            data = self.sock.recv(RECV_SIZE)
        if not data:
            self.close()
            raise GearpyConnectionError(f"connection to {self.name} closed by the server")
        self.decoder.feed(data)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def connect_tcp(
    address: str | tuple[str, int],
    timeout: float | None = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> socket.socket:
    """Open a TCP socket (TCP_NODELAY on, TLS when a context is given): the one connect of gearpy's
    clients and workers, binary and admin protocol alike.

    Errors map to :class:`GearpyConnectionError` ``cannot connect to HOST:PORT: reason``.
    """
    if isinstance(address, str):
        address = parse_server_address(address, DEFAULT_PORT)
    host, port = address
    with map_socket_errors(f"cannot connect to {host}:{port}"):
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
        except BaseException:
            sock.close()
            raise
    return sock


def client_ssl_context(
    ca_file: str | None = None,
    certificate: str | None = None,
    key: str | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """TLS settings for clients and workers: the server is verified by default.

    ``ca_file`` replaces the system's trust store (a private CA); ``certificate``/``key`` are
    presented to servers that require client certificates. ``verify=False`` is for tests and
    migrations only (gearmand's own clients verify nothing).
    """
    ctx = ssl.create_default_context(cafile=ca_file) if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        if certificate:
            ctx.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load client certificate {certificate}: {_reason(exc)}") from exc
    return ctx
