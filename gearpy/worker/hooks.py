"""Worker hooks: code that runs around every job and at the worker's start and stop.

Modelled on dramatiq's middleware. A hook is any object with the methods of :class:`WorkerHook`;
subclass :class:`Hook` to write only the ones you need::

    from gearpy.worker import Hook, Worker

    class Timing(Hook):
        def after_job(self, worker, job, outcome, seconds):
            print(f"{job.function} {outcome.kind} in {seconds:.3f} s")

    Worker(tasks, hooks=[Timing()]).run()

The runtime's own features plug in the same way: ``--metrics`` is
:class:`~gearpy.worker.metrics.WorkerMetrics`, ``--max-jobs``/``--max-memory`` is
:class:`~gearpy.worker.recycle.Recycle`.

When each method runs (all in the worker's gevent loop; hooks run in the order they were added):

* ``on_start(worker)`` — once, before the first connection is opened.
* ``before_grab(worker) -> bool`` — before a connection asks a server for a job, holding a free
  concurrency slot. Return False to take no job now (a job budget): the connection asks again a
  little later, or stops once the worker stops. ``after_grab(worker, assigned)`` follows every
  ``before_grab`` that returned True, whether the server assigned a job, had none, or the
  connection was lost.
* ``before_job(worker, job)`` — in the job's greenlet, before the task function runs.
* ``on_failure(worker, job, outcome, seconds)`` — when the job ended in ``fail`` or ``exception``
  (after local retries), right before ``after_job``.
* ``after_job(worker, job, outcome, seconds)`` — after every job, once its outcome was sent to the
  server (or could not be: the connection was lost), before its concurrency slot is given back.
  ``seconds`` is the time the task took, retries included.
* ``on_stop(worker, exit_code)`` — once, when the worker has stopped, before ``run()`` returns
  (not after a hard stop by a second signal: the process exits at once).

A hook that raises is logged and skipped: it never fails a job nor stops the worker (an exception
in ``before_grab`` counts as True). Hooks get the worker as :class:`WorkerControl`: enough to read
its state and to ask it to stop (``worker.stop("recycle")`` makes ``run()`` return exit code 4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gearpy.worker.job import JobContext
    from gearpy.worker.tasks import Outcome

__all__ = ["Hook", "HookRunner", "WorkerControl", "WorkerHook"]

log = logging.getLogger("gearpy.worker.hooks")


class WorkerControl(Protocol):
    """What a hook sees of the running worker."""

    @property
    def client_id(self) -> str: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def stop_reason(self) -> str | None: ...

    @property
    def jobs_done(self) -> int:
        """Jobs finished by this process so far."""

    @property
    def jobs_running(self) -> int: ...

    @property
    def connected_servers(self) -> int: ...

    def stop(self, reason: str = "stop") -> None:
        """Begin a warm shutdown; ``"recycle"`` makes the worker exit with code 4."""


class WorkerHook(Protocol):
    """The methods a hook has; see the module docs for when each runs."""

    def on_start(self, worker: WorkerControl) -> None: ...

    def before_grab(self, worker: WorkerControl) -> bool: ...

    def after_grab(self, worker: WorkerControl, assigned: bool) -> None: ...

    def before_job(self, worker: WorkerControl, job: JobContext) -> None: ...

    def on_failure(
        self, worker: WorkerControl, job: JobContext, outcome: Outcome, seconds: float
    ) -> None: ...

    def after_job(self, worker: WorkerControl, job: JobContext, outcome: Outcome, seconds: float) -> None: ...

    def on_stop(self, worker: WorkerControl, exit_code: int) -> None: ...


class Hook:
    """A :class:`WorkerHook` that does nothing: subclass it and override what you need."""

    def on_start(self, worker: WorkerControl) -> None:
        pass

    def before_grab(self, worker: WorkerControl) -> bool:
        return True

    def after_grab(self, worker: WorkerControl, assigned: bool) -> None:
        pass

    def before_job(self, worker: WorkerControl, job: JobContext) -> None:
        pass

    def on_failure(self, worker: WorkerControl, job: JobContext, outcome: Outcome, seconds: float) -> None:
        pass

    def after_job(self, worker: WorkerControl, job: JobContext, outcome: Outcome, seconds: float) -> None:
        pass

    def on_stop(self, worker: WorkerControl, exit_code: int) -> None:
        pass


class HookRunner:
    """Calls every hook in order, isolating the worker from a hook that raises."""

    __slots__ = ("hooks", "worker")

    def __init__(self, worker: WorkerControl, hooks: Sequence[WorkerHook] = ()) -> None:
        self.worker = worker
        self.hooks: list[WorkerHook] = list(hooks)

    def _each(self, hooks: Sequence[WorkerHook], name: str, call: Callable[[WorkerHook], object]) -> None:
        for h in hooks:
            try:
                call(h)
            except Exception:
                log.exception("worker hook %s.%s raised; ignored", type(h).__name__, name)

    def on_start(self) -> None:
        self._each(self.hooks, "on_start", lambda h: h.on_start(self.worker))

    def before_grab(self) -> bool:
        """True when every hook allows a grab. Hooks that allowed it before one refused are told
        ``after_grab(False)``, so every True is matched by exactly one ``after_grab``."""
        allowed: list[WorkerHook] = []
        for h in self.hooks:
            try:
                ok = h.before_grab(self.worker)
            except Exception:
                log.exception("worker hook %s.before_grab raised; ignored", type(h).__name__)
                ok = True
            if not ok:
                self._each(allowed, "after_grab", lambda h: h.after_grab(self.worker, False))
                return False
            allowed.append(h)
        return True

    def after_grab(self, assigned: bool) -> None:
        self._each(self.hooks, "after_grab", lambda h: h.after_grab(self.worker, assigned))

    def before_job(self, job: JobContext) -> None:
        self._each(self.hooks, "before_job", lambda h: h.before_job(self.worker, job))

    def after_job(self, job: JobContext, outcome: Outcome, seconds: float) -> None:
        if outcome.kind != "complete":
            self._each(self.hooks, "on_failure", lambda h: h.on_failure(self.worker, job, outcome, seconds))
        self._each(self.hooks, "after_job", lambda h: h.after_job(self.worker, job, outcome, seconds))

    def on_stop(self, exit_code: int) -> None:
        self._each(self.hooks, "on_stop", lambda h: h.on_stop(self.worker, exit_code))
