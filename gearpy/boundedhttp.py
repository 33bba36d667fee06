"""A gevent WSGI server that one peer cannot exhaust: a cap on connections, a deadline for each.

gevent's ``pywsgi`` holds every accepted connection for as long as the peer likes: 200 half-sent
requests kept 200 descriptors open indefinitely (issue 18.6). :class:`BoundedWSGIServer` serves at
most ``max_connections`` at once (the rest wait in the kernel's listen backlog, not in our
descriptors: gevent stops accepting while its pool is full) and gives each connection
``timeout`` seconds for everything it does, however slowly it drips its bytes. The metrics
listener uses it; any other HTTP listener of a gearpy process should too.
"""

from __future__ import annotations

import socket
from typing import Any

from gevent.pool import Pool
from gevent.pywsgi import WSGIServer
from gevent.timeout import Timeout

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_TIMEOUT", "BoundedWSGIServer"]

#: Connections served at once, by default (a scraper or two, a browser's handful).
DEFAULT_MAX_CONNECTIONS = 16
#: Seconds a connection may take for its requests and responses, by default.
DEFAULT_TIMEOUT = 10.0


class BoundedWSGIServer(WSGIServer):  # type: ignore[misc]
    """``WSGIServer`` with ``max_connections`` and a per-connection ``timeout`` (seconds)."""

    def __init__(
        self,
        listener: Any,
        application: Any,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(listener, application, spawn=Pool(max(1, max_connections)), **kwargs)
        self.connection_timeout = timeout

    def handle(self, sock: socket.socket, address: Any) -> None:
        # The socket is closed by gevent once this returns, the timeout's way included.
        with Timeout(self.connection_timeout if self.connection_timeout > 0 else None, False):
            super().handle(sock, address)
