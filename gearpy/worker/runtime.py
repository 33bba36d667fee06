"""The worker runtime: connections to every server, the grab loop, concurrency, shutdown.

Runs on gevent. ``gearpy-worker`` monkey-patches the process first thing; a program that embeds
:class:`Worker` should call ``gevent.monkey.patch_all()`` before it imports anything else, so task
code that does I/O yields to the other jobs and connections.

Per server, one greenlet (:class:`~gearpy.worker.link.ServerLink`) speaks the worker protocol and
hands assigned jobs to the runtime, which runs each in its own greenlet. Hooks
(:mod:`gearpy.worker.hooks`) run around every job and at start and stop; metrics and recycling are
hooks too.

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

import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from types import FrameType

import gevent
import gevent.event
import gevent.lock
import gevent.pool

from gearpy.errors import GearpyConnectionError, PacketTooBig
from gearpy.keys import apply_key
from gearpy.packetlimit import DEFAULT_MAX_PACKET_SIZE
from gearpy.protocol import Packet, PacketType, encode_request
from gearpy.transport import client_ssl_context
from gearpy.worker.config import (
    DEFAULT_SERVERS,
    DEFAULT_SHUTDOWN_TIMEOUT,
    EXIT_HARD_STOP,
    EXIT_OK,
    EXIT_RECYCLED,
    WorkerConfig,
)
from gearpy.worker.hooks import HookRunner, WorkerHook
from gearpy.worker.job import JobContext
from gearpy.worker.link import ServerLink, Session
from gearpy.worker.recycle import Recycle
from gearpy.worker.tasks import Task

__all__ = ["Worker"]

log = logging.getLogger("gearpy.worker")
P = PacketType


class Worker:
    """Serve ``tasks`` from every server in ``servers`` until stopped or recycled.

    ``run()`` blocks and returns the process exit code (see :mod:`gearpy.worker.config`):
    0 after a warm stop, 4 when ``max_jobs``/``max_memory`` asked for a fresh process, 5 after a hard
    stop. ``key`` is the workers key: every task is registered as ``apply_key(name, key)``.
    ``hooks`` (see :mod:`gearpy.worker.hooks`) run in order, after the built-in
    :class:`~gearpy.worker.recycle.Recycle` hook that ``max_jobs``/``max_memory`` install.
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
        ssl_context: ssl.SSLContext | None = None,
        max_packet_size: int | None = DEFAULT_MAX_PACKET_SIZE,
        hooks: Sequence[WorkerHook] = (),
        can_do_timeout_unit: str = "ms",
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
        self.max_packet_size = max_packet_size
        #: the unit the servers read CAN_DO_TIMEOUT in (their ``can_do_timeout_unit``)
        self.can_do_timeout_unit = can_do_timeout_unit
        self._hooks = HookRunner(self)
        if max_jobs is not None or max_memory is not None:
            self._hooks.hooks.append(Recycle(max_jobs, max_memory))
        for hook in hooks:
            self.add_hook(hook)
        self.slots = gevent.lock.BoundedSemaphore(concurrency)
        abilities = [(wire, t.announced_timeout(can_do_timeout_unit)) for wire, t in self.tasks.items()]
        self.links = [
            ServerLink(
                s,
                self,
                client_id=self.client_id,
                abilities=abilities,
                ssl_context=ssl_context,
                max_packet_size=max_packet_size,
            )
            for s in servers
        ]
        self.jobs = gevent.pool.Group()
        self.stopping = False
        self.stop_reason: str | None = None
        self.jobs_done = 0
        self._stop_event = gevent.event.Event()
        self._signals = 0
        self._parent_pid: int | None = None

    @classmethod
    def from_config(cls, tasks: Iterable[Task], cfg: WorkerConfig) -> Worker:
        ssl_context = None
        if cfg.ssl:
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
            max_packet_size=cfg.max_packet_size,
            can_do_timeout_unit=cfg.can_do_timeout_unit,
        )

    def add_hook(self, hook: WorkerHook) -> None:
        """Add a hook (before :meth:`run`); it runs after the hooks added before it."""
        self._hooks.hooks.append(hook)

    # -- state (what hooks see: gearpy.worker.hooks.WorkerControl) --------------------------------
    @property
    def jobs_running(self) -> int:
        return len(self.jobs)

    @property
    def connected_servers(self) -> int:
        return sum(1 for link in self.links if link.connected)

    # -- control --------------------------------------------------------------------------------
    def stop(self, reason: str = "stop") -> None:
        """Begin a warm shutdown: no more grabs; running jobs may finish. Safe from any greenlet
        and from hub callbacks (it never blocks)."""
        if not self.stopping:
            self.stopping = True
            self.stop_reason = reason
        self._stop_event.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
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
        self._hooks.on_start()
        for link in self.links:
            link.start()
        watchdog = gevent.spawn(self._watch_parent) if self._parent_pid else None
        self._stop_event.wait()
        if watchdog is not None:
            watchdog.kill(block=False)
        code = self._shutdown()
        self._hooks.on_stop(code)
        return code

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
                link.interrupt()
            gevent.joinall([link.greenlet for link in self.links if link.greenlet is not None])
            self.jobs.join()
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            clean = False
        finally:
            deadline.close()
        for link in self.links:
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

    # -- what the links call (gearpy.worker.link.GrabPolicy) --------------------------------------
    def acquire_grab(self) -> bool:
        self.slots.acquire()
        if not self.stopping and self._hooks.before_grab():
            return True
        self.slots.release()
        return False

    def release_grab(self, assigned: bool) -> None:
        if not assigned:
            self.slots.release()
        self._hooks.after_grab(assigned)

    def assign(self, session: Session, packet: Packet) -> None:
        self.jobs.spawn(self._run_job, session, packet)

    # -- jobs -------------------------------------------------------------------------------------
    def _run_job(self, session: Session, pkt: Packet) -> None:
        handle, wire, unique, payload = pkt.args
        try:
            t = self.tasks.get(wire)
            if t is None:  # the server assigned a function we never registered
                log.error("job %r for unknown function %r; failing it", handle, wire)
                self._deliver(session, handle, "fail", b"")
                self.jobs_done += 1
                return
            ctx = JobContext(
                handle=handle,
                function=t.name,
                wire_function=wire,
                unique=unique,
                payload=payload,
                server=session.address,
                send=session.send_packet,
                codec=t.codec,
            )
            self._hooks.before_job(ctx)
            log.debug("job %s (%s) started, %d byte(s)", ctx.handle, t.name, len(payload))
            started = time.monotonic()
            outcome = t.execute(ctx)
            seconds = time.monotonic() - started
            if self._deliver(session, handle, outcome.kind, outcome.data):
                log.info("job %s (%s) %s", ctx.handle, t.name, outcome.kind)
            self.jobs_done += 1
            self._hooks.after_job(ctx, outcome, seconds)
        finally:
            self.slots.release()

    def _deliver(self, session: Session, handle: bytes, kind: str, data: bytes) -> bool:
        """Send a job's outcome on the connection it came from; False when that connection is gone."""
        try:
            if kind == "complete":
                session.send_packet(P.WORK_COMPLETE, handle, data)
            elif kind == "exception" and self.send_exceptions:
                session.send(
                    encode_request(P.WORK_EXCEPTION, handle, data) + encode_request(P.WORK_FAIL, handle)
                )
            else:
                session.send_packet(P.WORK_FAIL, handle)
        except GearpyConnectionError as exc:
            log.warning("result of job %r not delivered (%s); the server requeues the job", handle, exc)
            return False
        except PacketTooBig as exc:  # sending it would only get the job requeued and run again
            log.error("job %r failed: its result was %s", handle, exc)
            self._deliver(session, handle, "fail", b"")
            return False
        return True


def _flush_logs() -> None:
    for h in logging.getLogger("gearpy").handlers:
        try:
            h.flush()
        except Exception:
            pass
