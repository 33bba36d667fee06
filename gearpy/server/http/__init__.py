"""gearpy-server's web dashboard and JSON HTTP API (``--http HOST:PORT``, off by default).

Served by gevent's own WSGI server in the job server's process and event loop, so views read the
core's tables directly, without threads or locks. Modules: :mod:`.views` (the only reader of
server state), :mod:`.actions` (changes, through the core's entry point), :mod:`.auth` (users,
tokens, sessions), :mod:`.fleet` (other servers), :mod:`.app` (routing), ``static/`` (the pages).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import gevent
from gevent.pywsgi import WSGIHandler
from gevent.timeout import Timeout
from prometheus_client import CollectorRegistry, make_wsgi_app

from gearpy.boundedhttp import BoundedWSGIServer
from gearpy.errors import ConfigError
from gearpy.logs import NOTICE
from gearpy.metrics import parse_listen
from gearpy.server.config import ServerConfig
from gearpy.server.http.actions import Host
from gearpy.server.http.app import App
from gearpy.server.http.auth import Credentials
from gearpy.server.http.fleet import Fleet
from gearpy.server.http.views import History, Tally, Views
from gearpy.server.metrics import _StateCollector  # the scrape-time half of ServerMetrics

log = logging.getLogger("gearpy.server.http")

DEFAULT_HTTP_PORT = 8470


class ServerLike(Protocol):
    """What the dashboard needs from the running server (:class:`gearpy.server.net.GearServer`)."""

    cfg: ServerConfig
    core: Any
    metrics: Any
    started_at: float
    socketless: dict[int, Callable[[], None]]

    def health(self) -> tuple[bool, str]: ...
    def _request_flush(self) -> None: ...


class _SlowRequest(Exception):
    """A client took longer than ``http_request_timeout`` to send its request's headers."""


_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _Handler(WSGIHandler):  # type: ignore[misc]
    """pywsgi's handler with deadlines: no half-sent request holds a connection for long."""

    request_timeout = 10.0

    def handle(self) -> None:
        # Each read (the idle wait for a keep-alive request included) times out.
        self.socket.settimeout(self.request_timeout)
        super().handle()

    def read_request(self, raw_requestline: str) -> Any:
        # All the headers within the deadline, however slowly they are dripped.
        with Timeout(self.request_timeout, _SlowRequest("request headers not received in time")):
            return super().read_request(raw_requestline)

    def _handle_client_error(self, ex: Exception) -> Any:
        if isinstance(ex, _SlowRequest):
            log.info("HTTP client %s: %s", self.client_address, ex)
            return ("408", _TIMEOUT_RESPONSE)
        return super()._handle_client_error(ex)

    def log_request(self) -> None:
        log.debug("%s", self.format_request())


def _registry(server: ServerLike) -> CollectorRegistry:
    """What ``/metrics`` shows: everything with ``--metrics``; else the gauges read at scrape time
    (``gearman_*``, connections, store health), which cost nothing between scrapes."""
    if server.metrics is not None:
        registry: CollectorRegistry = server.metrics.registry
        return registry
    registry = CollectorRegistry()
    registry.register(_StateCollector(server.core, server.cfg.metrics_max_functions))
    return registry


def parse_http_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (loopback); the port defaults to 8470."""
    return parse_listen(text, DEFAULT_HTTP_PORT, "--http")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_ssl_context(cfg: ServerConfig) -> ssl.SSLContext:
    """The Gearman port's certificate and key, without asking browsers for client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cfg.ssl_certificate), str(cfg.ssl_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--http with --ssl: cannot load the certificate/key: {exc}") from exc
    return ctx


class Dashboard:
    """The dashboard of one server: configured (and checked) with the server, started with it.

    The server builds it before binding anything, so a refused setting (a non-loopback address
    without credentials, an unreadable auth file) stops the start; passes its metrics observer
    through :meth:`observe` (the rate charts count jobs there); then calls :meth:`start`.
    """

    def __init__(self, cfg: ServerConfig) -> None:
        assert cfg.http
        self.cfg = cfg
        self.address = parse_http_listen(cfg.http)
        self.credentials = Credentials.load(cfg.http_auth_file) if cfg.http_auth_file else None
        if self.credentials is None and not is_loopback(self.address[0]):
            raise ConfigError(
                f"--http {cfg.http}: a non-loopback address needs --http-auth-file (users or tokens)"
            )
        self.ssl_context = http_ssl_context(cfg) if cfg.ssl else None
        self.tally: Any = None
        self._wsgi: Any = None
        self._sampler: Any = None

    def observe(self, inner: Any) -> Any:
        """The core's observer: counts submits and ends for the charts, then calls ``inner``."""
        self.tally = Tally(inner)
        return self.tally

    def start(self, server: ServerLike) -> tuple[str, int]:
        """Serve (in the server's event loop); returns the bound address."""
        cfg = self.cfg
        core = server.core
        assert self.tally is not None, "observe() first"
        history = History(self.tally)
        history.sample()
        self._sampler = gevent.get_hub().loop.timer(1.0, 1.0)
        self._sampler.start(history.sample)
        app = App(
            host=Host(core, server._request_flush, server.socketless),
            views=Views(core, server.started_at, history),
            fleet=Fleet([p for p in cfg.http_peers if p]),
            credentials=self.credentials,
            metrics=make_wsgi_app(_registry(server)),
            health=server.health,
            max_packet_size=cfg.max_packet_size,
            request_timeout=cfg.http_request_timeout,
            tls=self.ssl_context is not None,
            bound_host=self.address[0],
        )
        handler = type("Handler", (_Handler,), {"request_timeout": cfg.http_request_timeout})
        kwargs: dict[str, Any] = {}
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        # No whole-connection deadline (a foreground submit may wait minutes for its result):
        # the handler bounds each request's headers and body, and the idle wait between requests.
        self._wsgi = BoundedWSGIServer(
            self.address,
            app,
            max_connections=cfg.http_max_connections,
            timeout=0,
            handler_class=handler,
            log=None,
            error_log=log,
            **kwargs,
        )
        try:
            self._wsgi.start()
        except OSError as exc:
            self.stop()
            host, port = self.address
            raise ConfigError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from exc
        bound = self._wsgi.address
        log.log(
            NOTICE,
            "dashboard on %s://%s:%d/%s",
            "https" if self.ssl_context is not None else "http",
            bound[0],
            bound[1],
            "" if self.credentials else " (no credentials: loopback only)",
        )
        return bound[0], bound[1]

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None
        if self._wsgi is not None:
            self._wsgi.stop(timeout=1)
            self._wsgi = None
