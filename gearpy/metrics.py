"""Serving Prometheus metrics and ``/healthz`` from a gearpy process, on the gevent loop.

Opt-in (``--metrics HOST:PORT``) and on loopback unless told otherwise. The HTTP listener is a
gevent WSGI server in the same event loop as the job server or worker, so collectors read state
without threads or locks. ``/healthz`` answers 200 ``ok`` or 503 with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

from prometheus_client import CollectorRegistry, disable_created_metrics, make_wsgi_app

from gearpy.boundedhttp import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, BoundedWSGIServer
from gearpy.config import parse_server_address
from gearpy.errors import ConfigError

log = logging.getLogger("gearpy.metrics")

# ``*_created`` samples double the output and no Gearman dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Default metrics listener of the server (the worker's default is one port above).
DEFAULT_METRICS_PORT = 9418


class _Quiet:
    """pywsgi logs every request; metrics scrapes are not worth a log line."""

    def write(self, *_args: object) -> None:
        pass


def parse_listen(
    text: str, default_port: int = DEFAULT_METRICS_PORT, option: str = "--metrics"
) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (loopback) or ``PORT`` into an address; loopback by default."""
    text = text.strip()
    if text.isdigit():
        return "127.0.0.1", int(text)
    if text.startswith(":"):
        text = "127.0.0.1" + text
    try:
        return parse_server_address(text, default_port)
    except ConfigError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def serve_metrics(
    address: tuple[str, int],
    registry: CollectorRegistry,
    health: Callable[[], tuple[bool, str]],
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    timeout: float = DEFAULT_TIMEOUT,
) -> BoundedWSGIServer:
    """Start serving ``/metrics`` and ``/healthz``; returns the started server.

    At most ``max_connections`` are served at once, each for at most ``timeout`` seconds
    (:mod:`gearpy.boundedhttp`).
    """
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            ok, reason = health()
            body = (reason or "ok").encode() + b"\n"
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        if path in ("/metrics", "/"):
            return cast(Iterable[bytes], metrics_app(environ, start_response))
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    server = BoundedWSGIServer(
        address, app, max_connections=max_connections, timeout=timeout, log=_Quiet(), error_log=log
    )
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {address[0]}:{address[1]}: {exc.strerror or exc}"
        ) from exc
    return server
