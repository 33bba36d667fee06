"""The thin gevent layer around :class:`ServerCore`: listeners, connections, timers.

A plain TCP connection has no greenlet: the loop calls :meth:`GearServer._on_readable` from the
connection's read watcher, which reads once (large chunks) and hands the bytes to
:meth:`ServerCore.receive` (decoding and dispatch, compiled when the accelerator is built). Once the
loop has run every ready connection, one flush sends the output of every connection the core
touched: a non-blocking ``send`` in the common case, a writer greenlet only when a peer's socket
buffer is full. Measured against a greenlet per connection (BENCHMARKS.md), this saves the switch
into the hub and back and the ``recv`` that failed with EAGAIN before each wait. A TLS connection
keeps a reader greenlet (the handshake, and SSL's want-read/want-write). Timers of the loop bound
a half-sent packet (``packet_timeout``) and a connection that holds nothing (``idle_timeout``).
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable
from time import monotonic
from typing import Any

import gevent
from gevent.event import Event
from gevent.socket import wait_read, wait_write
from gevent.timeout import Timeout

from gearpy import __version__, _accel
from gearpy.logs import NOTICE
from gearpy.metrics import parse_listen, serve_metrics
from gearpy.protocol import Decoder
from gearpy.server.acl import AdminPolicy, FunctionAcl
from gearpy.server.config import ServerConfig
from gearpy.server.core import ServerCore
from gearpy.server.http import Dashboard
from gearpy.server.interfaces import Observer
from gearpy.server.metrics import ServerMetrics
from gearpy.server.refusals import RateLimitedLog
from gearpy.server.sockets import is_loopback, open_listeners, tune_connection
from gearpy.server.state import Conn
from gearpy.server.store import MemoryStore, QueueStore
from gearpy.server.timers import GeventScheduler
from gearpy.server.tls import handshake, make_server_ssl_context

log = logging.getLogger("gearpy.server")
#: How long a connection being closed by the server may take to send its last output.
CLOSING_DRAIN_SECONDS = 2.0

RECV_SIZE = 256 * 1024
#: Output queued for one connection above which it is sent at once instead of at the loop's end.
FLUSH_NOW_BYTES = 256 * 1024
#: A connection that is readable this many times in a row yields to the others once.
YIELD_EVERY_READS = 64

#: One log line per burst of connections refused at ``max_connections``, not one per refusal.
_refused = RateLimitedLog(log)


class _Link:
    """I/O side of one connection: the socket, how it is read, a pending partial write."""

    __slots__ = (
        "sock",
        "conn",
        "decoder",
        "reader",
        "watcher",
        "timer",
        "writer",
        "backlog",
        "closed",
        "resume",
        "paused",
        "last_read",
        "reason",
        "slot",
    )

    def __init__(self, sock: socket.socket, conn: Conn, decoder: Decoder) -> None:
        self.sock = sock
        self.conn = conn
        self.decoder = decoder
        #: the reader greenlet of a TLS connection
        self.reader: gevent.Greenlet | None = None
        #: the read watcher of a plain TCP connection (served by callbacks, no greenlet)
        self.watcher: Any = None
        #: the loop timer bounding a half-received packet, or the last output's drain at close
        self.timer: Any = None
        self.writer: gevent.Greenlet | None = None
        self.backlog = b""
        self.closed = False
        #: set while a TLS reader waits for the store to answer some of this connection's submits
        self.resume: Event | None = None
        #: a plain connection not read until the store answered some of its submits
        self.paused = False
        #: when the connection was last read or last seen holding something (``idle_timeout``)
        self.last_read = monotonic()
        #: why the connection is closing, logged once when it closes
        self.reason: str | None = None
        #: closing gives back the connection's place under ``max_connections`` (plain TCP; a TLS
        #: connection's greenlet gives it back, the handshake included)
        self.slot = False


class GearServer:
    """A running gearpy job server: ``start()``, then ``serve_forever()`` or ``stop()``."""

    def __init__(self, cfg: ServerConfig, store: QueueStore | None = None) -> None:
        self.cfg = cfg
        self.scheduler = GeventScheduler(self.flush)
        store = store or MemoryStore()
        #: the web dashboard (``http`` set), configured first so that a bad setting stops the start
        self.dashboard: Dashboard | None = Dashboard(cfg) if cfg.http else None
        #: Prometheus metrics (``metrics`` listen address set), served once :meth:`start` runs
        self.metrics = ServerMetrics(time.time, cfg.metrics_max_functions) if cfg.metrics else None
        # The dashboard counts jobs and shows their ages: a call per job. Prometheus' per-job
        # counters and histograms cost much more and come only with --metrics.
        observer: Observer | None = self.metrics
        if self.dashboard is not None:
            observer = self.dashboard.observe(self.metrics)
        self.core = ServerCore(
            scheduler=self.scheduler,
            store=store,
            handle_prefix=cfg.job_handle_prefix.encode() if cfg.job_handle_prefix else None,
            job_retries=cfg.job_retries,
            worker_wakeup=cfg.worker_wakeup,
            exceptions=cfg.exceptions,
            version=__version__,
            verbose=cfg.verbose.upper(),
            clock=time.time,
            observer=observer,
            max_queued_bytes=cfg.max_queued_bytes,
            max_jobs_per_connection=cfg.max_jobs_per_connection,
            max_function_name=cfg.max_function_name,
            max_idle_functions=cfg.max_idle_functions,
            acl=FunctionAcl.load(cfg.acl_file) if cfg.acl_file else None,
            admin_gate=AdminPolicy(cfg.admin_allow) if cfg.admin_allow else None,
            flush=self._request_flush,
            on_idle=self._drained,
            can_do_timeout_unit=cfg.can_do_timeout_unit,
        )
        if self.metrics is not None:
            self.metrics.watch(self.core)
            store.watch_commits(self.metrics.store_committed)
        self.ssl_context = make_server_ssl_context(cfg) if cfg.ssl else None
        self._metrics_server: Any = None
        #: when the server started (the dashboard shows its uptime)
        self.started_at = time.time()
        #: output callbacks of connections without a socket (the dashboard's submits), by id
        self.socketless: dict[int, Callable[[], None]] = {}
        self.links: dict[int, _Link] = {}
        self.listeners: list[socket.socket] = []
        self._acceptors: list[gevent.Greenlet] = []
        self._next_id = 0
        #: connections accepted and not yet closed, TLS handshakes included (``max_connections``)
        self.open_connections = 0
        #: the one connection admitted beyond ``max_connections`` for a loopback admin is in use
        self._admin_slot_used = False
        self._flush_scheduled = False
        self._loop = gevent.get_hub().loop
        self._idle_sweeper: Any = None
        self._stopped = Event()
        self.exit_code = 0

    # ---------------------------------------------------------------- lifecycle

    def bind(self) -> list[tuple[str, int]]:
        """Open the listening sockets (before replay: the port is ours, nothing is accepted yet)."""
        cfg = self.cfg
        self.listeners += open_listeners(cfg.listen, cfg.port, cfg.backlog)
        return [sock.getsockname()[:2] for sock in self.listeners]

    def start(self) -> None:
        """Bind, replay the durable store, then start accepting."""
        bound = [s.getsockname()[:2] for s in self.listeners] if self.listeners else self.bind()
        store = self.core.store
        store.open()
        replayed = 0
        for rec in store.replay():
            if self.core.replay(rec) is not None:
                replayed += 1
        log.log(NOTICE, "queue store %s: %d job(s) replayed", store.name, replayed)
        # Bad metrics or dashboard addresses fail before "listening" is logged.
        if self.metrics is not None and self.cfg.metrics:
            self._start_metrics(self.metrics, self.cfg.metrics)
        if self.dashboard is not None:
            self.dashboard.start(self)
        for sock in self.listeners:
            self._acceptors.append(gevent.spawn(self._accept_loop, sock))
        if self.cfg.idle_timeout:
            # One sweep for every connection, not a timer re-armed at each read.
            every = min(1.0, max(0.05, self.cfg.idle_timeout / 4))
            self._idle_sweeper = self._loop.timer(every, every)
            self._idle_sweeper.start(self._sweep_idle)
        for host, port in bound:
            log.log(
                NOTICE,
                "gearpy-server %s listening on %s:%d%s; hot path: %s",
                __version__,
                host,
                port,
                " (TLS)" if self.ssl_context else "",
                _accel.mode(),
            )

    def _start_metrics(self, metrics: ServerMetrics, listen: str) -> None:
        """Serve /metrics and /healthz (opt-in)."""
        address = parse_listen(listen)
        self._metrics_server = serve_metrics(
            address,
            metrics.registry,
            self.health,
            max_connections=self.cfg.metrics_max_connections,
            timeout=self.cfg.metrics_timeout,
        )
        log.log(NOTICE, "metrics on http://%s:%d/metrics", *address)

    def health(self) -> tuple[bool, str]:
        """Healthy when listening (or draining on purpose) and the queue store is reachable."""
        if not self.listeners and not self.core.draining:
            return False, "not listening"
        if not self.core.store.healthy():
            return False, "queue store unreachable"
        return True, "ok"

    def serve_forever(self) -> int:
        self._stopped.wait()
        return self.exit_code

    def stop(self) -> None:
        """Stop now: close listeners and connections (queued in-memory jobs are lost)."""
        if self._stopped.is_set():
            return
        self._close_listeners()
        if self._idle_sweeper is not None:
            self._idle_sweeper.close()
            self._idle_sweeper = None
        if self._metrics_server is not None:
            self._metrics_server.stop(timeout=1)
        if self.dashboard is not None:
            self.dashboard.stop()
        self.flush()
        for link in list(self.links.values()):
            self._close_link(link)
        try:
            self.core.store.close()
        except Exception as exc:  # pragma: no cover
            log.warning("closing queue store: %s", exc)
        log.log(NOTICE, "shutdown complete")
        self._stopped.set()

    def drain(self) -> None:
        """Graceful stop (SIGUSR1, like gearmand): refuse new connections, exit once no job is left."""
        log.log(NOTICE, "graceful shutdown: no new connections; waiting for %d job(s)", len(self.core.jobs))
        self._close_listeners()
        self.core.drain()

    def _drained(self) -> None:
        """The core's signal that a drain found no job left: stop, outside the caller's greenlet."""
        gevent.spawn(self.stop)

    def _close_listeners(self) -> None:
        for g in self._acceptors:
            g.kill(block=False)
        self._acceptors.clear()
        for sock in self.listeners:
            sock.close()
        self.listeners.clear()

    # ---------------------------------------------------------------- accepting

    def _accept_loop(self, lsock: socket.socket) -> None:
        fd = lsock.fileno()
        while True:
            try:
                sock, addr = lsock.accept()
            except BlockingIOError:
                wait_read(fd)
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept failed: %s; retrying", exc.strerror)
                    gevent.sleep(0.1)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EINTR):
                    continue
                return
            admin_only = False
            if self.open_connections >= self.cfg.max_connections:
                if self._admin_slot_used or not is_loopback(addr):
                    _refused.warning(
                        "refusing connection from %s: %d connections open (max_connections)",
                        addr[0] if isinstance(addr, tuple) else addr,
                        self.open_connections,
                    )
                    sock.close()
                    continue
                admin_only = self._admin_slot_used = True
            self.open_connections += 1
            if self.ssl_context is None:
                self._attach(sock, addr, admin_only)
            else:
                gevent.spawn(self._serve_counted, sock, addr, admin_only)

    def _serve_counted(self, sock: socket.socket, addr: Any, admin_only: bool) -> None:
        """Serve one connection, counted from accept to close (the TLS handshake included)."""
        try:
            self._serve(sock, addr, admin_only)
        finally:
            self._release_slot(admin_only)

    def _release_slot(self, admin_only: bool) -> None:
        self.open_connections -= 1
        if admin_only:
            self._admin_slot_used = False

    # ---------------------------------------------------------------- one connection

    def _open_link(self, sock: socket.socket, addr: Any, subject: str | None, admin_only: bool) -> _Link:
        """Register an accepted (and, with TLS, handshaken) connection with the core."""
        self._next_id += 1
        ip = addr[0] if isinstance(addr, tuple) else "-"
        port = addr[1] if isinstance(addr, tuple) and len(addr) > 1 else 0
        conn = Conn(self._next_id, sock.fileno(), ip, port)
        conn.peer_cert_subject = subject
        conn.admin_only = admin_only
        link = _Link(sock, conn, Decoder(self.cfg.max_packet_size, self.cfg.max_admin_line))
        self.links[conn.id] = link
        if self.metrics is not None:
            self.metrics.connections.inc()
        self.core.connect(conn)
        log.info("connection %d from %s:%s opened", conn.id, ip, port)
        return link

    def _attach(self, sock: socket.socket, addr: Any, admin_only: bool) -> None:
        """Serve a plain TCP connection from the loop's read watcher (see the module docstring).

        Called by the accept loop, which must survive whatever happens here: a failure closes
        this connection and gives its place back, with one log line.
        """
        link: _Link | None = None
        try:
            tune_connection(sock, self.cfg)
            link = self._open_link(sock, addr, None, admin_only)
            link.slot = True
            link.watcher = self._loop.io(sock.fileno(), 1)
            link.watcher.start(self._on_readable, link)
        except Exception as exc:
            log.error("connection from %s: internal error: %s: %s", addr, type(exc).__name__, exc)
            if link is None:
                sock.close()
                self._release_slot(admin_only)
            else:
                link.reason = f"closed: internal error: {type(exc).__name__}: {exc}"
                self._close_link(link)
            return
        # What arrived with the connection, or its end, is read now: a peer that connected and
        # left is gone before the next accepted connection is served (its own errors are caught).
        self._on_readable(link)

    def _on_readable(self, link: _Link) -> None:
        """One read of a plain TCP connection, applied to the core (called by the loop).

        Whatever fails here closes this connection with one log line, as a failing reader
        greenlet did: the loop itself would print a traceback and keep the connection open.
        """
        try:
            self._read_once(link)
        except Exception as exc:
            reason = f"closed: internal error: {type(exc).__name__}: {exc}"
            log.error("connection %d from %s: %s", link.conn.id, link.conn.ip, reason[8:])
            if not link.closed:
                link.reason = reason
                self._close_link(link)

    def _read_once(self, link: _Link) -> None:
        try:
            data = link.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            link.reason = exc.strerror or str(exc)
            self._close_link(link)
            return
        if not data:
            link.reason = "closed by peer"
            self._close_link(link)
            return
        conn = link.conn
        n = self._receive(link, data)
        if conn.closing or link.closed:
            self._finish_closing(link)
            return
        if self.cfg.packet_timeout:
            if not link.decoder.buffered:
                self._stop_timer(link)
            elif n or link.timer is None:
                # Half a packet: all of it must arrive within packet_timeout of its first byte,
                # however the peer drips it (no slowloris).
                self._start_packet_timer(link)
        if conn.pending > self.cfg.max_pending_commits:
            # Stop reading until the store answered half of its waiting submits (``flush``
            # resumes): its further requests stay in the socket buffers and TCP slows the peer
            # down, so a slow store costs a pipelining client latency, not the server memory.
            link.watcher.stop()
            link.paused = True
            self._stop_timer(link)  # the rest of a half-read packet waits in the socket: no timeout
            self.flush()
        elif conn.out_bytes > FLUSH_NOW_BYTES:
            self.flush()  # send (and enforce the output cap) before reading more
        elif not self._flush_scheduled:
            # Flush once the loop has run every connection that is ready: replies to many
            # peers, and several replies to one peer, then go out in as few sends as possible.
            self._flush_scheduled = True
            self._loop.run_callback(self.flush)

    def _receive(self, link: _Link, data: bytes) -> int:
        """Apply ``data`` to the core: the events it held (a close reason is kept on the link)."""
        conn = link.conn
        if self.cfg.idle_timeout:
            link.last_read = monotonic()
        try:
            n, reason = self.core.receive(conn, link.decoder, data)
        except Exception as exc:  # a bug of ours: one log line and a close, never a traceback
            n, reason = 0, f"closed: internal error: {type(exc).__name__}: {exc}"
            log.error("connection %d from %s: %s", conn.id, conn.ip, reason[8:])
            conn.closing = True
        if reason is not None:
            link.reason = reason
        if self.metrics is not None:
            self.metrics.packets_in.inc(n)
            self.metrics.bytes_in.inc(len(data))
        return n

    def _finish_closing(self, link: _Link) -> None:
        """The core closes the connection: send its last words (an ERROR, say), then close."""
        if link.reason is None:
            link.reason = "closed by server"
        self.flush()
        if link.closed:
            return
        if link.writer is None:
            self._close_link(link)
            return
        # The last words may sit behind a backlog: the writer sends them and closes the link
        # itself once done, within a bounded time.
        if link.watcher is not None:
            link.watcher.stop()
        self._stop_timer(link)
        link.timer = self._loop.timer(CLOSING_DRAIN_SECONDS)
        link.timer.start(self._close_link, link)

    def _start_packet_timer(self, link: _Link) -> None:
        self._stop_timer(link)
        link.timer = self._loop.timer(self.cfg.packet_timeout)
        link.timer.start(self._packet_timed_out, link)

    def _packet_timed_out(self, link: _Link) -> None:
        link.timer = None
        link.reason = "closed: incomplete packet timed out"
        self._close_link(link)

    def _stop_timer(self, link: _Link) -> None:
        if link.timer is not None:
            link.timer.close()
            link.timer = None

    def _sweep_idle(self) -> None:
        """Close connections that held nothing for ``idle_timeout`` (neither a worker nor waiting
        for a result, a durable commit or unsent output): each holds a slot for nothing."""
        now = monotonic()
        limit = self.cfg.idle_timeout
        half_packets = self.cfg.packet_timeout > 0  # a half-read packet has its own timeout
        for link in list(self.links.values()):
            conn = link.conn
            if (
                conn.abilities
                or conn.waiting
                or conn.jobs
                or conn.pending
                or conn.out_bytes
                or link.backlog
                or (half_packets and link.decoder.buffered)
            ):
                link.last_read = now  # busy: its idle time starts when it holds nothing
            elif now - link.last_read >= limit and not link.closed:
                link.reason = "closed: idle timeout"
                self._close_link(link)

    def _serve(self, sock: socket.socket, addr: Any, admin_only: bool = False) -> None:
        """Serve a TLS connection from its own greenlet: handshake, then read until it ends."""
        tune_connection(sock, self.cfg)
        assert self.ssl_context is not None
        shaken = handshake(self.ssl_context, sock, addr, self.cfg.handshake_timeout)
        if shaken is None:
            return
        sock, subject = shaken
        link = self._open_link(sock, addr, subject, admin_only)
        link.reader = gevent.getcurrent()
        conn = link.conn
        packet_timeout = self.cfg.packet_timeout  # 0: no limit
        hub = gevent.get_hub()
        # One read watcher for the connection's life: wait_read() would make (and register with
        # epoll) a new one at every wait.
        readable = hub.loop.io(sock.fileno(), 1)
        hub_wait = hub.wait
        recv = sock.recv
        partial_since: float | None = None
        reads = 0
        try:
            while True:
                # Read again before waiting: SSL may hold decrypted bytes the socket no longer
                # signals, and pipelining peers often have sent more meanwhile.
                try:
                    data = recv(RECV_SIZE)
                except (BlockingIOError, ssl.SSLWantReadError):
                    if partial_since is not None:
                        left = partial_since + packet_timeout - monotonic()
                        try:
                            if left <= 0:
                                raise _PacketTimeout
                            with Timeout(left, _PacketTimeout):
                                hub_wait(readable)
                        except _PacketTimeout:
                            link.reason = "closed: incomplete packet timed out"
                            break
                    else:
                        hub_wait(readable)  # (idle connections: ``_sweep_idle``)
                    continue
                except OSError as exc:
                    link.reason = exc.strerror or str(exc)
                    break
                if not data:
                    link.reason = "closed by peer"
                    break
                n = self._receive(link, data)
                if not packet_timeout or not link.decoder.buffered:
                    partial_since = None
                elif n or partial_since is None:
                    partial_since = monotonic()
                if conn.closing or link.closed:
                    if link.reason is None:
                        link.reason = "closed by server"
                    self.flush()
                    writer = link.writer
                    if writer is not None and not link.closed:
                        # The last words (an ERROR) may sit behind a backlog: let the writer send
                        # them, for a bounded time; it closes the link itself once done.
                        link.reader = None  # (so that closing does not kill this greenlet)
                        writer.join(timeout=CLOSING_DRAIN_SECONDS)
                    break
                reads += 1
                if conn.pending > self.cfg.max_pending_commits:
                    self._await_commits(link)
                    continue
                if conn.out_bytes > FLUSH_NOW_BYTES or not reads % YIELD_EVERY_READS:
                    # A peer that floods us keeps this loop busy: send (and enforce the output
                    # cap) now, and let other connections run now and then.
                    self.flush()
                    gevent.sleep(0)
                    continue
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    hub.loop.run_callback(self.flush)
        except gevent.GreenletExit:
            pass
        finally:
            readable.close()
            self._close_link(link, from_reader=True)

    def _await_commits(self, link: _Link) -> None:
        """Stop reading from a TLS peer until the store answered half of its waiting submits
        (the same back-pressure as a paused plain connection's)."""
        self.flush()
        link.resume = Event()
        try:
            while link.conn.pending > self.cfg.max_pending_commits // 2 and not link.closed:
                link.resume.wait()
                link.resume.clear()
        finally:
            link.resume = None

    def _close_link(self, link: _Link, from_reader: bool = False) -> None:
        if link.closed and not from_reader:
            return
        first = not link.closed
        link.closed = True
        conn = link.conn
        if first:
            reason = link.reason or "closed by server"
            log.info("connection %d from %s:%s %s", conn.id, conn.ip, conn.port, reason)
            if link.slot:
                self._release_slot(conn.admin_only)
        if first or from_reader:
            if self.links.pop(conn.id, None) is not None:
                self.core.disconnect(conn)
                self.flush()
        if link.watcher is not None:
            link.watcher.close()
            link.watcher = None
        self._stop_timer(link)
        if link.writer is not None and link.writer is not gevent.getcurrent():
            link.writer.kill(block=False)
        try:
            link.sock.close()
        except OSError:
            pass
        if not from_reader and link.reader is not None and link.reader is not gevent.getcurrent():
            link.reader.kill(block=False)

    # ---------------------------------------------------------------- output

    def _request_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            gevent.get_hub().loop.run_callback(self.flush)

    def flush(self) -> None:
        """Send what the core queued, to every connection it touched."""
        self._flush_scheduled = False
        dirty = self.core.dirty
        while dirty:
            conn = dirty.pop()
            link = self.links.get(conn.id)
            if link is None or link.closed:
                if link is None and conn.id in self.socketless:
                    self.socketless[conn.id]()
                continue
            if link.resume is not None:
                link.resume.set()  # the reader re-checks once this output is taken
            if link.writer is not None:
                # The writer greenlet picks the new output up, unless the peer stopped reading.
                if conn.out_bytes + len(link.backlog) > self.cfg.max_output_buffer:
                    log.warning("connection %d stopped reading; disconnecting", conn.id)
                    self._close_link(link)
                continue
            if conn.out_bytes > self.cfg.max_output_buffer:
                # Checked before the join: output queued as many references to one result (a job
                # submitted a thousand times on this connection) must not become a thousand copies.
                log.warning(
                    "connection %d: %d bytes of output queued; disconnecting", conn.id, conn.out_bytes
                )
                self._close_link(link)
                continue
            data = conn.take_output()
            if link.paused:
                self._maybe_resume(link)
            if not data:
                continue
            try:
                sent = link.sock.send(data)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            except OSError:
                self._close_link(link)
                continue
            if self.metrics is not None:
                self.metrics.bytes_out.inc(sent)
            if sent < len(data):
                link.backlog = data[sent:]
                if len(link.backlog) + conn.out_bytes > self.cfg.max_output_buffer:
                    log.warning("connection %d stopped reading; disconnecting", conn.id)
                    self._close_link(link)
                    continue
                link.writer = gevent.spawn(self._write_backlog, link)
            elif conn.closing:
                self._close_link(link)

    def _maybe_resume(self, link: _Link) -> None:
        """Read a paused plain connection again once the store answered half of its submits."""
        if link.conn.pending <= self.cfg.max_pending_commits // 2 and link.watcher is not None:
            link.paused = False
            link.watcher.start(self._on_readable, link)
            if self.cfg.packet_timeout and link.decoder.buffered:
                self._start_packet_timer(link)

    def _write_backlog(self, link: _Link) -> None:
        sock = link.sock
        conn = link.conn
        fd = sock.fileno()
        try:
            while True:
                data = link.backlog
                if not data:
                    data = conn.take_output()
                    if link.resume is not None:
                        link.resume.set()
                    if link.paused:
                        self._maybe_resume(link)
                    if not data:
                        break
                try:
                    sent = sock.send(data)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    sent = 0
                if self.metrics is not None:
                    self.metrics.bytes_out.inc(sent)
                link.backlog = data[sent:]
                if len(link.backlog) + conn.out_bytes > self.cfg.max_output_buffer:
                    log.warning("connection %d stopped reading; disconnecting", conn.id)
                    raise OSError("output buffer limit")
                if link.backlog:
                    wait_write(fd)
        except OSError:
            link.writer = None
            self._close_link(link)
            return
        link.writer = None
        if conn.closing:
            self._close_link(link)


class _PacketTimeout(Exception):
    """A peer left a packet unfinished, or a connection idle, for too long."""
