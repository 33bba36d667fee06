"""Running the job server as a process: start-up, signals, the pid file, the exit status.

:mod:`gearpy.server.cli` parses options and calls :func:`run`; :class:`~gearpy.server.net.GearServer`
knows nothing of signals or files, so embedding a server (tests, an application) needs none of this.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Callable

import gevent

from gearpy import exitcodes
from gearpy.errors import ConfigError, StoreError
from gearpy.logs import NOTICE
from gearpy.server.config import ServerConfig
from gearpy.server.net import GearServer
from gearpy.server.pidfile import remove_pid_file, write_pid_file
from gearpy.server.store import QueueStore

log = logging.getLogger("gearpy.server")


#: Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path; call once start-up is done.

    A queued job is a few GC-tracked objects that live until a worker takes it. With CPython's
    defaults a collection runs every 700 allocations and the older generations are walked again
    and again as the queue grows: measured at about a third of the instructions of a background
    submit with 20,000 jobs queued (benchmarks/core_micro.py under valgrind). ``gc.freeze()`` moves
    everything start-up created (modules, classes, configuration) out of the collector's sight,
    and a higher young threshold makes collections rarer. Reference cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def install_signals(server: GearServer, on_hup: Callable[[], None]) -> None:
    """SIGTERM/SIGINT stop, SIGUSR1 drains gracefully, SIGHUP reopens the log, SIGPIPE ignored."""

    def stop() -> None:
        log.log(NOTICE, "stopping on signal")
        server.stop()

    def interrupt() -> None:
        server.exit_code = exitcodes.INTERRUPTED  # Ctrl-C, as shells report it
        stop()

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, interrupt)
    gevent.signal_handler(signal.SIGUSR1, server.drain)
    gevent.signal_handler(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def run(
    cfg: ServerConfig,
    store: QueueStore,
    on_hup: Callable[[], None],
    ready: Callable[[str | None], None] | None = None,
    after_bind: Callable[[], None] | None = None,
) -> int:
    """Run a server until a signal stops it; returns the exit status.

    ``after_bind`` runs once the port is bound (dropping privileges); ``ready`` is told when the
    server serves, or why it could not (a daemonizing parent waits for it).
    """
    try:
        server = GearServer(cfg, store)
        # Before the port opens: a signal sent as soon as the port answers must find its handler.
        install_signals(server, on_hup)
        server.bind()
        if after_bind is not None:
            after_bind()
        server.start()
    except (OSError, StoreError, ConfigError) as exc:
        if ready is not None:  # a daemonizing parent prints it and exits 1
            ready(f"gearpy-server: {exc}\n")
        else:
            print(f"gearpy-server: {exc}", file=sys.stderr)
        return exitcodes.USAGE if isinstance(exc, ConfigError) else exitcodes.FAILURE
    # The pid file first (the signal handlers are already in place), then ``ready``: a daemonizing
    # parent exits on it, and whoever then reads the pid file or sends a signal must find both.
    if cfg.pid_file:
        try:
            write_pid_file(cfg.pid_file)
        except OSError as exc:
            message = f"gearpy-server: cannot write pid file {cfg.pid_file}: {exc.strerror}\n"
            if ready is not None:
                ready(message)
            else:
                print(message, end="", file=sys.stderr)
            server.stop()
            return exitcodes.FAILURE
    tune_gc()
    if ready is not None:
        ready(None)
    try:
        return server.serve_forever()
    finally:
        if cfg.pid_file:
            remove_pid_file(cfg.pid_file)
