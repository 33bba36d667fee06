"""Runnable jobs and the workers waiting for them: selection, wake-ups, epoch timers.

Each :class:`~gearpy.server.state.Function` holds its own queues; this module decides which job a
grabbing worker gets (gearmand 2.0: HIGH before NORMAL before LOW across all of the worker's
functions, round robin between functions), which sleeping workers a new job wakes (all, or
``worker_wakeup`` of them in turn), and when a not-yet-due epoch job is promoted (one timer per
function, armed for the earliest).
"""

from __future__ import annotations

from collections.abc import Callable

from gearpy.server.interfaces import Scheduler
from gearpy.server.state import PRIORITIES, Ability, Conn, Function, Job
from gearpy.server.wire import NOOP


class JobQueues:
    """Queueing decisions over the functions' queues; replies go into ``dirty`` connections."""

    __slots__ = ("scheduler", "clock", "worker_wakeup", "dirty", "discard")

    def __init__(
        self,
        scheduler: Scheduler,
        clock: Callable[[], float],
        worker_wakeup: int,
        dirty: set[Conn],
        discard: Callable[[Job], None],
    ) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self.worker_wakeup = worker_wakeup
        #: the core's set of connections with output to flush
        self.dirty = dirty
        #: called for an abandoned job popped off a queue (the core forgets it)
        self.discard = discard

    def enqueue(self, job: Job) -> None:
        """Queue a job: at once (waking workers), or on its function's heap until it is due."""
        fn = job.function
        if job.when and job.when > int(self.clock()):
            fn.schedule(job)
            self.arm_due_timer(fn)
            return
        fn.queues[job.priority].append(job)
        self.wake(fn)

    def arm_due_timer(self, fn: Function) -> None:
        """Wake sleeping workers when the earliest epoch job of ``fn`` falls due (gearmand 2.0)."""
        if not fn.scheduled:
            return
        due = fn.scheduled[0][0]
        if fn.due_timer is not None:
            if fn.due_at <= due:
                return
            self.scheduler.cancel(fn.due_timer)
        fn.due_at = due
        delay = max(0.0, due - self.clock())
        fn.due_timer = self.scheduler.call_later(delay + 0.001, lambda: self._due(fn))

    def _due(self, fn: Function) -> None:
        fn.due_timer = None
        fn.promote_due(int(self.clock()))
        if fn.has_runnable(int(self.clock())):
            self.wake(fn)
        self.arm_due_timer(fn)

    def wake(self, fn: Function) -> None:
        """Send NOOP to sleeping workers of ``fn`` (all, or ``worker_wakeup`` of them in turn)."""
        sleepers = fn.sleepers
        if not sleepers:
            return
        n = self.worker_wakeup
        woken = 0
        while sleepers:
            conn = sleepers.popitem(last=False)[0]
            if conn.noop_sent or not conn.sleeping:
                continue
            conn.noop_sent = True
            self.unsleep(conn)
            conn.push(NOOP)
            self.dirty.add(conn)
            woken += 1
            if n and woken >= n:
                break

    def unsleep(self, conn: Conn) -> None:
        for ability in conn.abilities:
            ability.function.sleepers.pop(conn, None)

    def pre_sleep(self, conn: Conn) -> None:
        """PRE_SLEEP: NOOP at once if a job is waiting, else sleep until one is queued."""
        now = int(self.clock())
        for ability in conn.abilities:
            if ability.function.has_runnable(now):
                conn.noop_sent = True
                conn.sleeping = True
                conn.push(NOOP)
                self.dirty.add(conn)
                return
        conn.sleeping = True
        conn.noop_sent = False
        for ability in conn.abilities:
            ability.function.sleepers[conn] = None

    def select(self, conn: Conn) -> tuple[Job | None, Ability | None]:
        """gearmand 2.0 selection: highest priority across all functions, round robin."""
        abilities = conn.abilities
        if not abilities:
            return None, None
        now = int(self.clock())
        for ability in abilities:
            fn = ability.function
            if fn.scheduled and fn.scheduled[0][0] <= now:
                fn.promote_due(now)
        for p in PRIORITIES:
            for i, ability in enumerate(abilities):
                q = ability.function.queues[p]
                while q:
                    job = q.popleft()
                    if job.ignore:
                        self.discard(job)
                        continue
                    if len(abilities) > 1:
                        abilities.append(abilities.pop(i))
                    return job, ability
        return None, None

    def stop_job_timer(self, job: Job) -> None:
        """Cancel a running job's CAN_DO_TIMEOUT timer, if it has one."""
        if job.timer is not None:
            self.scheduler.cancel(job.timer)
            job.timer = None
