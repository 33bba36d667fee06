"""The server's TLS: the SSL context from the configuration, the handshake, the peer's subject.

What a certificate subject may do is decided in :mod:`gearpy.server.acl`.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

from gevent.socket import wait_read, wait_write
from gevent.timeout import Timeout

from gearpy.errors import ConfigError
from gearpy.server import certsubject
from gearpy.server.config import ServerConfig

log = logging.getLogger("gearpy.server")


def peer_subject(cert: dict[str, Any] | None) -> str | None:
    """A peer certificate's subject, escaped so that it compares structurally (ACLs, admin-allow, logs)."""
    return certsubject.of_peercert(cert)


def make_server_ssl_context(cfg: ServerConfig) -> ssl.SSLContext:
    """TLS 1.2 or newer; client certificates required when a CA file is given."""
    if not cfg.ssl_certificate or not cfg.ssl_key:
        raise ConfigError("--ssl needs --ssl-certificate and --ssl-key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.ssl_certificate, cfg.ssl_key)
        if cfg.ssl_ca_file:
            ctx.load_verify_locations(cfg.ssl_ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load TLS certificate/key/CA: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    return ctx


class _HandshakeTimeout(Exception):
    """A peer left its TLS handshake unfinished for ``handshake_timeout``."""


def handshake(
    context: ssl.SSLContext, sock: socket.socket, addr: Any, timeout: float
) -> ssl.SSLSocket | None:
    """TLS handshake without blocking the loop, bounded by ``timeout``; None (closed) if it fails."""
    try:
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except (OSError, ValueError) as exc:
        log.info("TLS setup for %s failed: %s", addr[0], exc)
        sock.close()
        return None
    fd = tls.fileno()
    try:
        with Timeout(timeout, _HandshakeTimeout):
            while True:
                try:
                    tls.do_handshake()
                    return tls
                except ssl.SSLWantReadError:
                    wait_read(fd)
                except ssl.SSLWantWriteError:
                    wait_write(fd)
    except _HandshakeTimeout:
        log.info("TLS handshake from %s timed out", addr[0])
    except (OSError, ssl.SSLError) as exc:
        log.info("TLS handshake from %s failed: %s", addr[0], getattr(exc, "reason", None) or exc)
    tls.close()
    return None
