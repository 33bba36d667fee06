"""The worker runtime: connections to every server, the grab loop, concurrency, shutdown.

Runs on gevent. ``gearpy-worker`` monkey-patches the process first thing; a program that embeds
:class:`Worker` should call ``gevent.monkey.patch_all()`` before it imports anything else, so task
code that does I/O yields to the other jobs and connections.

Per server, one greenlet (:class:`ServerLink`) speaks the worker protocol::

    connect → SET_CLIENT_ID, CAN_DO / CAN_DO_TIMEOUT FUNC\\0N (one per task; N in ms or s)
    loop:  wait for a free concurrency slot → GRAB_JOB_UNIQ
           JOB_ASSIGN_UNIQ → run the job in its own greenlet (it owns the slot), grab again
           NO_JOB          → give the slot back, PRE_SLEEP, wait for NOOP, grab again

* **Never hoard.** A grab is sent only while holding a free slot, so a process holds at most
  ``concurrency`` jobs across all servers, and a job it cannot start yet stays on the server for
  another worker.
* **Reconnect.** A lost connection is retried with exponential backoff and jitter; every new
  connection re-sends the client id and abilities and grabs at once, so a worker resumes within
  seconds of a server restart. The server requeues the jobs that ran on the old connection; their
  results cannot be delivered on a new one (the server would not accept them), so they are dropped
  with a warning.
* **Lost wake-ups.** A sleeping connection grabs again after :data:`IDLE_REGRAB_INTERVAL` seconds
  without a NOOP. TCP keepalive finds a server that vanished without closing the connection.
* **Shutdown.** The first SIGTERM/SIGINT is warm: stop grabbing, let running jobs finish within
  ``shutdown_timeout``, close the connections, exit 0 (5 when jobs had to be abandoned). The second
  is a hard stop: the process exits at once with status 5 and the server requeues its jobs. The
  handlers are plain ``signal.signal`` handlers, so the second signal works even while CPU-bound
  task code keeps the gevent hub from running.
* **Exceptions and gearmand.** A task exception is sent as WORK_EXCEPTION then WORK_FAIL (as
  python-gearman does). gearmand 1.1.20 forwards WORK_EXCEPTION to clients that did not ask for
  exceptions as a WORK_FAIL with a trailing NUL, which the libgearman clients (``gearman`` CLI,
  PHP) never match, so they wait forever. With those clients on gearmand, run with
  ``send_exceptions=False`` (``--no-exceptions``): a raised exception then ends in WORK_FAIL only.
  gearpy-server sends the bare WORK_FAIL and needs no such setting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.pool

from gearpy.errors import GearpyConnectionError, GearpyTimeoutError, PacketTooBig, ProtocolError
from gearpy.keys import apply_key
from gearpy.packetlimit import DEFAULT_MAX_PACKET_SIZE
from gearpy.protocol import Packet, PacketType, encode_request
from gearpy.transport import Backoff, PacketConnection
from gearpy.worker.config import (
    CONNECT_TIMEOUT,
    DEFAULT_SERVERS,
    DEFAULT_SHUTDOWN_TIMEOUT,
    EXIT_HARD_STOP,
    EXIT_OK,
    EXIT_RECYCLED,
    IDLE_REGRAB_INTERVAL,
    RECONNECT_BACKOFF_BASE,
    RECONNECT_BACKOFF_CAP,
    WorkerConfig,
)
from gearpy.worker.job import JobContext
from gearpy.worker.tasks import Task

__all__ = ["ServerLink", "Worker", "resident_memory_mib"]

log = logging.getLogger("gearpy.worker")
P = PacketType


def resident_memory_mib() -> float:
    """Resident memory of this process in MiB (``/proc/self/statm``; peak RSS where that is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


class _Session:
    """One TCP connection to a server plus the lock that keeps packets whole.

    Job greenlets write WORK_* packets while the link greenlet reads; a new session is made for every
    reconnect, so a job can only ever answer on the connection its job came from.
    """

    def __init__(self, conn: PacketConnection) -> None:
        self.conn = conn
        self.lock = gevent.lock.RLock()

    def send(self, data: bytes) -> None:
        with self.lock:
            self.conn.send(data)

    def send_packet(self, kind: int, *args: bytes) -> None:
        self.send(encode_request(kind, *args))


def _keepalive(sock: socket.socket | None) -> None:
    """Notice a server that disappeared without a FIN/RST within a few minutes (Linux options)."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:
        pass


class ServerLink:
    """The worker's connection to one server, and the greenlet that grabs jobs from it."""

    def __init__(self, worker: Worker, address: str) -> None:
        self.worker = worker
        self.address = address
        self.session: _Session | None = None
        self.greenlet: gevent.Greenlet | None = None
        #: False only between sending a grab and reading its answer: killing the greenlet then could
        #: leave a job assigned to us that nobody runs until the connection closes.
        self.interruptible = True

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)
        self.greenlet.name = f"link {self.address}"

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.conn.close()

    def _run(self) -> None:
        w = self.worker
        backoff = Backoff(RECONNECT_BACKOFF_BASE, RECONNECT_BACKOFF_CAP)
        failures = 0
        while not w.stopping:
            self.interruptible = True
            conn = PacketConnection(
                self.address, connect_timeout=CONNECT_TIMEOUT, ssl_context=self.worker.ssl_context
            )
            conn.max_packet_size = w.max_packet_size
            try:
                conn.connect()
                _keepalive(conn.sock)
                self.session = _Session(conn)
                self._register()
                if failures:
                    log.info("reconnected to %s; abilities registered again", self.address)
                else:
                    log.info("connected to %s", self.address)
                failures = 0
                self._serve(backoff)
            except (GearpyConnectionError, ProtocolError) as exc:
                self.close()
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "%s: %s; reconnecting", self.address, exc)
                self.interruptible = True
                gevent.sleep(backoff.next_delay())
            except Exception:
                # A bug of ours must not silently end the serving of this server: log, reconnect.
                self.close()
                failures += 1
                log.exception("unexpected error on the connection to %s; reconnecting", self.address)
                self.interruptible = True
                gevent.sleep(backoff.next_delay())
        # Not closed here: jobs taken on this connection may still be running and must answer on
        # it. Worker._shutdown closes every connection once the jobs are done.

    def _register(self) -> None:
        w = self.worker
        out = [encode_request(P.SET_CLIENT_ID, w.client_id.encode("utf-8"))]
        for wire, t in w.tasks.items():
            timeout = t.announced_timeout(w.can_do_timeout_unit)
            if timeout is None:
                out.append(encode_request(P.CAN_DO, wire))
            else:
                out.append(encode_request(P.CAN_DO_TIMEOUT, wire, str(timeout).encode()))
        assert self.session is not None
        self.session.send(b"".join(out))

    def _read(self, timeout: float | None = None) -> Packet:
        assert self.session is not None
        pkt = self.session.conn.read_packet(timeout)
        if pkt.kind == P.ERROR:
            code, text = (a.decode("utf-8", "replace") for a in pkt.args)
            # gearmand ends a job at WORK_EXCEPTION and answers the WORK_FAIL that python-gearman
            # style workers (and we) send after it with JOB_NOT_FOUND: expected, so not a warning.
            level = logging.DEBUG if code == "JOB_NOT_FOUND" else logging.WARNING
            log.log(level, "%s answered ERROR %s: %s", self.address, code, text)
        return pkt

    def _serve(self, backoff: Backoff) -> None:
        w = self.worker
        session = self.session
        assert session is not None
        while not w.stopping:
            self.interruptible = True
            w.slots.acquire()
            holding = True
            try:
                if w.stopping or not w._reserve():
                    return
                self.interruptible = False
                session.send_packet(P.GRAB_JOB_UNIQ)
                while True:
                    pkt = self._read()
                    if pkt.kind in (P.JOB_ASSIGN_UNIQ, P.NO_JOB):
                        break
                backoff.reset()
                if pkt.kind == P.JOB_ASSIGN_UNIQ:
                    w._start_job(session, self.address, pkt)
                    holding = False
                    continue
                w._unreserve()
            finally:
                self.interruptible = True
                if holding:
                    w.slots.release()
            if w.stopping:
                return
            session.send_packet(P.PRE_SLEEP)
            try:
                while self._read(IDLE_REGRAB_INTERVAL).kind != P.NOOP:
                    pass
            except GearpyTimeoutError:
                log.debug("no NOOP from %s in %.0f s; grabbing anyway", self.address, IDLE_REGRAB_INTERVAL)


class Worker:
    """Serve ``tasks`` from every server in ``servers`` until stopped or recycled.

    ``run()`` blocks and returns the process exit code (see :mod:`gearpy.worker.config`):
    0 after a warm stop, 4 when ``max_jobs``/``max_memory`` asked for a fresh process, 5 after a hard
    stop. ``key`` is the workers key: every task is registered as ``apply_key(name, key)``.
    """

    def __init__(
        self,
        tasks: Iterable[Task],
        *,
        servers: Sequence[str] = DEFAULT_SERVERS,
        key: str | None = None,
        concurrency: int = 1,
        max_jobs: int | None = None,
        max_memory: float | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        client_id: str | None = None,
        send_exceptions: bool = True,
        ssl_context: Any = None,
        can_do_timeout_unit: str = "ms",
        max_packet_size: int | None = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        self.tasks: dict[bytes, Task] = {apply_key(t.name, key): t for t in tasks}
        if not self.tasks:
            raise ValueError("a worker needs at least one task")
        self.key = key
        self.concurrency = concurrency
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.shutdown_timeout = shutdown_timeout
        self.client_id = client_id or f"gearpy-worker:{socket.gethostname()}:{os.getpid()}"
        self.send_exceptions = send_exceptions
        self.ssl_context = ssl_context
        #: the unit the servers read CAN_DO_TIMEOUT in (their ``can_do_timeout_unit``)
        self.can_do_timeout_unit = can_do_timeout_unit
        self.max_packet_size = max_packet_size
        #: set by :mod:`gearpy.worker.metrics` when ``--metrics`` is on
        self.metrics: Any = None
        self.slots = gevent.lock.BoundedSemaphore(concurrency)
        self.links = [ServerLink(self, s) for s in servers]
        self.jobs = gevent.pool.Group()
        self.stopping = False
        self.stop_reason: str | None = None
        self.jobs_done = 0
        self._reserved = 0
        self._stop_event = gevent.event.Event()
        self._signals = 0
        self._parent_pid: int | None = None

    @classmethod
    def from_config(cls, tasks: Iterable[Task], cfg: WorkerConfig) -> Worker:
        ssl_context = None
        if cfg.ssl:
            from gearpy.transport import client_ssl_context

            ssl_context = client_ssl_context(cfg.ssl_ca_file, cfg.ssl_certificate, cfg.ssl_key)
        return cls(
            tasks,
            servers=cfg.servers,
            key=cfg.workers_key,
            concurrency=cfg.concurrency,
            max_jobs=cfg.max_jobs,
            max_memory=cfg.max_memory,
            shutdown_timeout=cfg.shutdown_timeout,
            client_id=cfg.client_id,
            send_exceptions=cfg.send_exceptions,
            ssl_context=ssl_context,
            can_do_timeout_unit=cfg.can_do_timeout_unit,
            max_packet_size=cfg.max_packet_size,
        )

    # -- control --------------------------------------------------------------------------------
    def stop(self, reason: str = "stop") -> None:
        """Begin a warm shutdown: no more grabs; running jobs may finish. Safe from any greenlet
        and from hub callbacks (it never blocks)."""
        if not self.stopping:
            self.stopping = True
            self.stop_reason = reason
        self._stop_event.set()

    def _on_signal(self, signum: int, frame: Any) -> None:
        # A plain signal handler: it runs between bytecodes of whichever greenlet holds the main
        # thread, even CPU-bound task code. It must not log (logging locks) nor block.
        self._signals += 1
        if self._signals >= 2:
            os.write(2, b"gearpy-worker: second signal: hard stop; the server requeues running jobs\n")
            _flush_logs()
            os._exit(EXIT_HARD_STOP)
        gevent.get_hub().loop.run_callback_threadsafe(self.stop, f"signal {signal.Signals(signum).name}")

    def install_signal_handlers(self) -> None:
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        for sig in stop_signals:
            signal.signal(sig, self._on_signal)
        # A prefork child starts with these blocked (see prefork.Supervisor._spawn); a signal that
        # arrived meanwhile is delivered now, to our handler.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)

    def watch_parent(self, pid: int) -> None:
        """Under ``--processes``: stop warmly if the supervising parent goes away (we were orphaned)."""
        self._parent_pid = pid

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, install_signal_handlers: bool = True) -> int:
        """Serve until stopped; return the exit code."""
        if install_signal_handlers:
            self.install_signal_handlers()
        names = ", ".join(sorted(w.decode("utf-8", "replace") for w in self.tasks))
        log.info(
            "worker %s serving %s from %s (concurrency %d)",
            self.client_id,
            names,
            ", ".join(link.address for link in self.links),
            self.concurrency,
        )
        for link in self.links:
            link.start()
        watchdog = gevent.spawn(self._watch_parent) if self._parent_pid else None
        self._stop_event.wait()
        if watchdog is not None:
            watchdog.kill(block=False)
        return self._shutdown()

    def _shutdown(self) -> int:
        running = len(self.jobs)
        log.info(
            "stopping (%s): no more grabs; waiting up to %g s for %d running job(s)",
            self.stop_reason,
            self.shutdown_timeout,
            running,
        )
        deadline = gevent.Timeout(self.shutdown_timeout)
        deadline.start()
        clean = True
        try:
            for link in self.links:
                if link.interruptible and link.greenlet is not None:
                    link.greenlet.kill(block=False)
            gevent.joinall([link.greenlet for link in self.links if link.greenlet is not None])
            self.jobs.join()
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            clean = False
        finally:
            deadline.close()
        for link in self.links:
            if link.greenlet is not None:
                link.greenlet.kill(block=False)
            link.close()
        if not clean:
            log.error(
                "%d job(s) still running after %g s; abandoning them (the server requeues them)",
                len(self.jobs),
                self.shutdown_timeout,
            )
            self.jobs.kill(block=False)
            return EXIT_HARD_STOP
        log.info("stopped after %d job(s)", self.jobs_done)
        return EXIT_RECYCLED if self.stop_reason == "recycle" else EXIT_OK

    def _watch_parent(self) -> None:
        while os.getppid() == self._parent_pid:
            gevent.sleep(1.0)
        log.warning("parent process %s is gone; stopping", self._parent_pid)
        self.stop("orphaned")

    # -- max-jobs accounting -----------------------------------------------------------------------
    def _reserve(self) -> bool:
        """Count a grab in flight against ``max_jobs`` so concurrent grabs never overshoot it."""
        if self.max_jobs is not None and self._reserved >= self.max_jobs:
            return False
        self._reserved += 1
        return True

    def _unreserve(self) -> None:
        self._reserved -= 1

    # -- jobs -------------------------------------------------------------------------------------
    def _start_job(self, session: _Session, address: str, pkt: Packet) -> None:
        if self.max_jobs is not None and self._reserved >= self.max_jobs:
            log.info("job %d of --max-jobs %d taken; recycling after it", self._reserved, self.max_jobs)
            self.stop("recycle")
        self.jobs.spawn(self._run_job, session, address, pkt)

    def _run_job(self, session: _Session, address: str, pkt: Packet) -> None:
        handle, wire, unique, payload = pkt.args
        try:
            t = self.tasks.get(wire)
            if t is None:  # the server assigned a function we never registered
                log.error("job %r for unknown function %r; failing it", handle, wire)
                session.send_packet(P.WORK_FAIL, handle)
                return
            ctx = JobContext(
                handle=handle,
                function=t.name,
                wire_function=wire,
                unique=unique,
                payload=payload,
                server=address,
                send=session.send_packet,
                codec=t.codec,
            )
            log.debug("job %s (%s) started, %d byte(s)", ctx.handle, t.name, len(payload))
            started = time.monotonic()
            outcome = t.execute(ctx)
            if self.metrics is not None:
                self.metrics.job_done(t.name, outcome.kind, time.monotonic() - started)
            if outcome.kind == "complete":
                session.send_packet(P.WORK_COMPLETE, handle, outcome.data)
            elif outcome.kind == "exception" and self.send_exceptions:
                session.send(
                    encode_request(P.WORK_EXCEPTION, handle, outcome.data)
                    + encode_request(P.WORK_FAIL, handle)
                )
            else:
                session.send_packet(P.WORK_FAIL, handle)
            log.info("job %s (%s) %s", ctx.handle, t.name, outcome.kind)
        except GearpyConnectionError as exc:
            log.warning("result of job %r not delivered (%s); the server requeues the job", handle, exc)
        except PacketTooBig as exc:  # sending it would only get the job requeued and run again
            log.error("job %r failed: its result was %s", handle, exc)
            with contextlib.suppress(GearpyConnectionError):
                session.send_packet(P.WORK_FAIL, handle)
        finally:
            self.jobs_done += 1
            self.slots.release()
            self._check_memory()

    def _check_memory(self) -> None:
        if self.max_memory is None or self.stopping:
            return
        rss = resident_memory_mib()
        if rss > self.max_memory:
            log.info("resident memory %.1f MiB above --max-memory %g MiB; recycling", rss, self.max_memory)
            self.stop("recycle")


def _flush_logs() -> None:
    for h in logging.getLogger("gearpy").handlers:
        try:
            h.flush()
        except Exception:
            pass
