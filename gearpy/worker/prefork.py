"""``--processes N``: a parent that forks N worker processes and keeps N running.

The parent imports the tasks once (so a broken module fails before anything forks, and children
share the imported code copy-on-write), then forks. It never talks to a Gearman server itself.

* A child that exits with :data:`EXIT_RECYCLED` (``--max-jobs``/``--max-memory``) or that crashes is
  replaced; repeated crashes are spaced out with backoff and jitter so a poison job or a broken
  dependency does not turn into a fork storm.
* Each child runs in its own process group, so Ctrl-C in a terminal reaches only the parent, which
  forwards one SIGTERM to every child (each finishes its jobs: warm shutdown). A second signal is
  forwarded again (the children hard-stop) and the parent exits 5. Under systemd use
  ``KillMode=mixed`` so that only the parent gets the stop signal (see ``deploy/``).
* A child whose parent died stops warmly by itself (it watches its parent pid).

Exit status of the parent: 0 when every child stopped cleanly, 5 otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from gearpy.transport import Backoff
from gearpy.worker.config import EXIT_ERROR, EXIT_HARD_STOP, EXIT_INTERRUPTED, EXIT_OK, EXIT_RECYCLED

__all__ = ["Supervisor"]

log = logging.getLogger("gearpy.worker.prefork")

#: A child that lived at least this many seconds is not a crash loop: the backoff starts over.
STABLE_CHILD_SECONDS = 10.0
#: Signals that stop a worker (warm first, hard the second time).
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
#: How often the parent looks for exited children, in seconds.
POLL_INTERVAL = 0.1


class Supervisor:
    """Keep ``processes`` children running ``child_main`` (which returns an exit code)."""

    def __init__(self, processes: int, child_main: Callable[[int, int], int]) -> None:
        self.processes = processes
        #: called in the child as ``child_main(parent_pid, slot)``; ``slot`` (0..processes-1) is
        #: kept by a replacement child, so per-child resources (a metrics port) stay stable
        self.child_main = child_main
        self.children: dict[int, float] = {}  # pid -> start time
        self.slots: dict[int, int] = {}  # pid -> slot
        self.signals = 0
        #: the first stop signal: SIGINT (Ctrl-C) ends a clean stop with EXIT_INTERRUPTED
        self.first_signal: int | None = None
        self.backoff = Backoff(0.5, 30.0)
        self._pending_signal = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.first_signal is None:
            self.first_signal = signum
        self._pending_signal = True

    def _spawn(self) -> None:
        parent = os.getpid()
        taken = set(self.slots.values())
        slot = next(i for i in range(self.processes) if i not in taken)
        # Block the stop signals across the fork: a SIGTERM forwarded to a child that has not yet
        # installed its own handlers stays pending until the Worker installs them and unblocks.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = -1
        try:
            pid = os.fork()
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if pid == 0:  # child: never return into the parent's code
            code = EXIT_ERROR
            try:
                os.setpgid(0, 0)
                for sig in STOP_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                code = self.child_main(parent, slot)
            except BaseException:
                log.exception("worker process crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()
        self.slots[pid] = slot
        log.info("started worker process %d (%d/%d)", pid, len(self.children), self.processes)

    def _forward(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _reap(self) -> list[tuple[int, int]]:
        done = []
        for pid in list(self.children):
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                got, status = pid, 0
            if got == pid:
                done.append((pid, os.waitstatus_to_exitcode(status)))
        return done

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        log.info("supervising %d worker process(es)", self.processes)
        next_spawn = 0.0
        forwarded = 0
        all_clean = True
        while True:
            if self._pending_signal:
                self._pending_signal = False
                while forwarded < min(self.signals, 2):
                    forwarded += 1
                    if forwarded == 1:
                        log.info(
                            "stopping: asking %d worker process(es) to finish their jobs", len(self.children)
                        )
                    else:
                        log.warning("second signal: hard stop of every worker process")
                    self._forward(signal.SIGTERM)
            for pid, code in self._reap():
                lived = time.monotonic() - self.children.pop(pid)
                self.slots.pop(pid, None)
                if self.signals:
                    all_clean = all_clean and code in (EXIT_OK, EXIT_RECYCLED)
                    log.info("worker process %d exited with %d", pid, code)
                    continue
                if code == EXIT_RECYCLED:
                    log.info("worker process %d recycled itself; replacing it", pid)
                    continue
                log.warning("worker process %d exited with %d after %.1f s; replacing it", pid, code, lived)
                if lived >= STABLE_CHILD_SECONDS:
                    self.backoff.reset()
                next_spawn = time.monotonic() + self.backoff.next_delay()
            if self.signals:
                if not self.children:
                    if not all_clean or self.signals >= 2:
                        return EXIT_HARD_STOP
                    return EXIT_INTERRUPTED if self.first_signal == signal.SIGINT else EXIT_OK
            elif len(self.children) < self.processes and time.monotonic() >= next_spawn:
                self._spawn()
                continue
            time.sleep(POLL_INTERVAL)
