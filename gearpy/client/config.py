"""The client's settings: one dataclass, layered like every gearpy program.

defaults < YAML file (top-level ``servers:`` / ``workers_key:``, then the ``client:`` section) <
``GEARPY_*`` environment (``GEARPY_SERVERS=a:4730,b:4730``, ``GEARPY_WORKERS_KEY``, ``GEARPY_TIMEOUT``)
< arguments given in code or on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gearpy import config as _config
from gearpy.packetlimit import DEFAULT_MAX_PACKET_SIZE

#: Where a client looks when nothing says otherwise: gearmand's default port on this host.
DEFAULT_SERVERS = ("127.0.0.1:4730",)
#: Seconds to wait for a TCP connection before trying the next server.
DEFAULT_CONNECT_TIMEOUT = 5.0


@dataclass
class ClientConfig:
    """Settings of the client library and ``gearpy-client``.

    ``timeout`` None means a foreground job may run as long as it takes; set it to bound every
    ``submit()``/``result()`` that does not pass its own.
    """

    #: Job servers (HOST[:PORT]); a job goes to the one its unique hashes to, else round robin.
    servers: list[str] = field(default_factory=lambda: list(DEFAULT_SERVERS))
    #: Prefix function names as ``KEY-name`` (must match the workers' ``--key``).
    workers_key: str | None = None
    #: Seconds a foreground job may take; none = no limit.
    timeout: float | None = None
    #: Seconds to wait for a TCP connection before trying the next server.
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    #: Payload codec: raw (bytes), json or msgpack.
    codec: str = "raw"
    #: Connect with TLS; the server's certificate is verified (against ``ssl_ca_file`` if set).
    ssl: bool = False
    #: CA bundle that signed the servers' certificates (default: the system's trust store).
    ssl_ca_file: str | None = None
    #: Client certificate (PEM), for servers started with ``--ssl-ca-file``.
    ssl_certificate: str | None = None
    #: The client certificate's private key (PEM).
    ssl_key: str | None = None
    #: Largest packet body (function + unique + payload) sent: a bigger submit is refused before
    #: sending. The server's default; raise both together (``GEARPY_MAX_PACKET_SIZE`` sets both).
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE

    def __post_init__(self) -> None:
        _config.require_ssl_for_tls_files(
            self.ssl,
            ssl_ca_file=self.ssl_ca_file,
            ssl_certificate=self.ssl_certificate,
            ssl_key=self.ssl_key,
        )


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> ClientConfig:
    """Build a :class:`ClientConfig`; ``flags`` set to None are ignored (they do not hide the file)."""
    return _config.load(ClientConfig, "client", config_file=config_file, env=env, flags=flags)
