"""The server's sockets: listening ones, and the options every accepted connection gets.

Plain stdlib sockets, set non-blocking; :mod:`gearpy.server.net` waits on them with gevent.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from gearpy.server.config import ServerConfig


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
    """Non-blocking, no Nagle delay, and keepalive so that a silent peer is dropped in bounded time."""
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in (
            ("TCP_KEEPIDLE", cfg.keepalive_idle),
            ("TCP_KEEPINTVL", cfg.keepalive_interval),
            ("TCP_KEEPCNT", cfg.keepalive_count),
            ("TCP_USER_TIMEOUT", user_timeout_ms(cfg)),
        ):
            if value > 0 and hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


def user_timeout_ms(cfg: ServerConfig) -> int:
    """TCP_USER_TIMEOUT matching the keepalive budget, so unacknowledged output is given up as soon
    as an idle silent peer would be (keepalive alone never fires while data is in flight)."""
    if min(cfg.keepalive_idle, cfg.keepalive_interval, cfg.keepalive_count) <= 0:
        return 0
    return (cfg.keepalive_idle + cfg.keepalive_interval * cfg.keepalive_count) * 1000


def is_loopback(addr: Any) -> bool:
    """Whether an accepted peer address is on this host (the kept admin slot is for those only)."""
    ip = addr[0] if isinstance(addr, tuple) and addr else ""
    return isinstance(ip, str) and (ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1"))
