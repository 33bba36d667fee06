"""The server's TLS set-up: the SSL context from the configuration.

The handshake itself is I/O and stays in :mod:`gearpy.server.net`; what a certificate subject
may do is decided in :mod:`gearpy.server.acl` (the subject: :mod:`gearpy.server.certsubject`).
"""

from __future__ import annotations

import ssl

from gearpy.errors import ConfigError
from gearpy.server.config import ServerConfig


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
