"""The server's sockets: listening ones, and the options every accepted connection gets.

Plain stdlib sockets, set non-blocking; :mod:`gearpy.server.net` waits on them with gevent.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from gearpy.server.config import ServerConfig
from gearpy.transport import enable_keepalive


def open_listeners(listen: str, port: int, backlog: int) -> list[socket.socket]:
    """Bind and listen on every address ``listen`` resolves to (``*`` or empty: all interfaces).

    IPv6 sockets are IPv6-only, so a wildcard listens on both families; on a host where the IPv4
    wildcard already covers the port (dual-stack quirks), a second EADDRINUSE is skipped.
    """
    host: str | None = listen
    if host in ("*", ""):
        host = None
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve listen address {listen!r}: {exc.strerror}") from exc
    listeners: list[socket.socket] = []
    seen = set()
    for family, stype, proto, _, addr in infos:
        if (family, addr) in seen:
            continue
        seen.add((family, addr))
        sock = socket.socket(family, stype, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and host is None and listeners:
                continue
            for other in listeners:
                other.close()
            where = f"{str(addr[0])}:{str(addr[1])}"
            raise OSError(f"cannot listen on {where}: {exc.strerror}") from exc
        sock.listen(backlog)
        sock.setblocking(False)
        listeners.append(sock)
    return listeners


def tune_connection(sock: socket.socket, cfg: ServerConfig) -> None:
    """Non-blocking, no Nagle delay, and keepalive with a matching TCP_USER_TIMEOUT, so that a
    silent peer is dropped within the keepalive budget (:func:`gearpy.transport.enable_keepalive`)."""
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        enable_keepalive(sock, cfg.keepalive_idle, cfg.keepalive_interval, cfg.keepalive_count)


def is_loopback(addr: Any) -> bool:
    """Whether an accepted peer address is on this host (the kept admin slot is for those only)."""
    ip = addr[0] if isinstance(addr, tuple) and addr else ""
    return isinstance(ip, str) and (ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1"))
