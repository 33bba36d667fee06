"""``--max-jobs`` / ``--max-memory``: a worker hook that asks for a fresh process.

Long-running Python processes grow (fragmentation, caches, leaks in task code); recycling a process
after N jobs or past a memory ceiling bounds that. The worker stops warmly with reason ``recycle``
(exit code 4); under ``--processes`` the parent forks a replacement, otherwise systemd restarts it.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from typing import TYPE_CHECKING

from gearpy.worker.hooks import Hook, WorkerControl

if TYPE_CHECKING:
    from gearpy.worker.job import JobContext
    from gearpy.worker.tasks import Outcome

__all__ = ["Recycle", "resident_memory_mib"]

log = logging.getLogger("gearpy.worker")


def resident_memory_mib() -> float:
    """Resident memory of this process in MiB (``/proc/self/statm``; peak RSS where that is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


class Recycle(Hook):
    """Stop the worker with reason ``recycle`` after ``max_jobs`` jobs or once its resident memory
    exceeds ``max_memory`` MiB (checked after each job).

    ``max_jobs`` is exact even with concurrency and several servers: a grab in flight counts against
    it (``before_grab``), so the process never takes job N+1.
    """

    def __init__(self, max_jobs: int | None = None, max_memory: float | None = None) -> None:
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        #: grabs sent whose answer has not come yet, and jobs taken
        self.in_flight = 0
        self.taken = 0

    def before_grab(self, worker: WorkerControl) -> bool:
        if self.max_jobs is not None and self.in_flight + self.taken >= self.max_jobs:
            return False
        self.in_flight += 1
        return True

    def after_grab(self, worker: WorkerControl, assigned: bool) -> None:
        self.in_flight -= 1
        if not assigned:
            return
        self.taken += 1
        if self.max_jobs is not None and self.taken >= self.max_jobs:
            log.info("job %d of --max-jobs %d taken; recycling after it", self.taken, self.max_jobs)
            worker.stop("recycle")

    def after_job(self, worker: WorkerControl, job: JobContext, outcome: Outcome, seconds: float) -> None:
        if self.max_memory is None or worker.stopping:
            return
        rss = resident_memory_mib()
        if rss > self.max_memory:
            log.info("resident memory %.1f MiB above --max-memory %g MiB; recycling", rss, self.max_memory)
            worker.stop("recycle")
