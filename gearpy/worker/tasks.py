"""``@task``: turn a plain function into a Gearman function a worker can serve.

A task is ``def fn(job, payload)``: ``job`` is the :class:`~gearpy.worker.job.JobContext` (progress,
data, warning, handle, unique, raw payload) and ``payload`` is the workload decoded with the task's
codec. What the function returns is encoded with the same codec and sent as WORK_COMPLETE.

How a job ends:

* return value → WORK_COMPLETE;
* ``raise Fail("why")`` → a plain WORK_FAIL (a deliberate, expected failure: not retried, no
  exception text; ``why`` is only logged);
* any other exception → retried up to ``retries`` times (exponential backoff with jitter), then
  WORK_EXCEPTION ``ExcType: message`` followed by WORK_FAIL;
* running longer than ``timeout`` seconds (per attempt) → treated like an exception
  (``TaskTimeout: ...``), so it is retried too.

Retries happen inside the worker, before anything is reported, because Gearman servers never retry
a job a worker failed (gearmand #251) and the client would otherwise see the first failure.

**What a timeout cannot interrupt.** The timeout is a ``gevent.Timeout``: it fires only when the task
yields to the gevent hub (socket I/O, ``time.sleep``, ``job.progress`` ...). CPU-bound code that never
yields (a tight loop, a long C call such as a big regex or image conversion) runs past its timeout;
the worker notices only when it returns. The server-side CAN_DO_TIMEOUT (announced in the unit the
server reads, the worker's ``can_do_timeout_unit``) is then the backstop, and
CPU-bound tasks should run with ``--processes`` (one process per concurrent job) and
``--concurrency 1``, so a runaway job blocks only its own process.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

import gevent

from gearpy.codecs import Codec, get_codec
from gearpy.errors import ConfigError, GearpyError, GearpyTimeoutError

if TYPE_CHECKING:
    from gearpy.worker.job import JobContext

__all__ = ["Fail", "Outcome", "Task", "TaskTimeout", "task"]

log = logging.getLogger("gearpy.worker.tasks")

#: Seconds before the first local retry; doubled for each further retry (with jitter, up to the cap).
DEFAULT_RETRY_BACKOFF = 1.0
#: Longest pause between two local retries, in seconds.
DEFAULT_RETRY_BACKOFF_MAX = 60.0
#: Added to the time budget announced with CAN_DO_TIMEOUT so the worker's own timer fires first
#: (the server starts its timer when it sends JOB_ASSIGN, a little before the worker receives it).
#: gearmand silently *requeues* a job whose server timer fired, so losing that race would run the
#: job again instead of failing it.
SERVER_TIMEOUT_GRACE_MS = 2000

F = TypeVar("F", bound=Callable[..., Any])


class Fail(GearpyError):
    """Raise inside a task to end the job with a plain WORK_FAIL (no retry, no exception text)."""


class TaskTimeout(GearpyTimeoutError):
    """A task attempt ran longer than its ``timeout``."""


class Outcome(NamedTuple):
    """How a job ended: ``kind`` is ``complete`` (``data`` = encoded result), ``fail`` or
    ``exception`` (``data`` = the ``ExcType: message`` text, UTF-8)."""

    kind: str
    data: bytes = b""
    reason: str = ""


@dataclass(frozen=True)
class Task:
    """A function registered under a Gearman function name, with its options.

    Calling the task calls the function directly (handy in unit tests).
    """

    fn: Callable[..., Any]
    name: str
    timeout: float | None = None
    retries: int = 0
    backoff: float = DEFAULT_RETRY_BACKOFF
    backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    codec: Codec = field(default_factory=get_codec)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a task needs a non-empty name")
        if "\0" in self.name:
            raise ConfigError(f"task name {self.name!r} contains a NUL byte")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"task {self.name}: timeout must be > 0 seconds")
        if self.retries < 0:
            raise ConfigError(f"task {self.name}: retries must be >= 0")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def server_timeout_ms(self) -> int | None:
        """Milliseconds announced with CAN_DO_TIMEOUT, or None (plain CAN_DO).

        It covers every local attempt and the longest backoff between them, plus a grace period,
        so the server only steps in when the worker itself is stuck (e.g. CPU-bound code that a
        gevent timeout cannot interrupt).
        """
        if self.timeout is None:
            return None
        attempts = self.retries + 1
        pauses = sum(min(self.backoff_max, self.backoff * 2**i) for i in range(self.retries))
        return int(math.ceil((attempts * self.timeout + pauses) * 1000)) + SERVER_TIMEOUT_GRACE_MS

    def announced_timeout(self, unit: str = "ms") -> int | None:
        """The CAN_DO_TIMEOUT value in the server's unit (``ms`` or ``s``, rounded up), or None.

        The worker's own timer stays the authority; this backstop only has to be no shorter than it,
        so seconds round up.
        """
        ms = self.server_timeout_ms
        if ms is None or unit == "ms":
            return ms
        return -(-ms // 1000)

    def retry_delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Pause before local retry number ``retry`` (0-based): half to full of the capped doubling."""
        delay = min(self.backoff_max, self.backoff * 2**retry)
        return (rng or random).uniform(delay / 2, delay)

    def execute(self, job: JobContext) -> Outcome:
        """Run the job to its end (decode, attempts with timeout and retries, encode) and say how
        it ended. Never raises an ``Exception``; the runtime turns the outcome into packets."""
        try:
            payload = self.codec.decode(job.payload)
        except Exception as exc:
            return _exception_outcome(self, job, exc, "cannot decode the payload")
        attempt = 0
        while True:
            job.attempt = attempt
            try:
                result = self._attempt(job, payload)
            except Fail as exc:
                log.info("job %s (%s) failed: %s", job.handle, self.name, exc or "Fail raised")
                return Outcome("fail", reason=str(exc))
            except Exception as exc:
                if attempt < self.retries:
                    delay = self.retry_delay(attempt)
                    log.warning(
                        "job %s (%s) attempt %d/%d raised %s: %s; retrying in %.2f s",
                        job.handle,
                        self.name,
                        attempt + 1,
                        self.retries + 1,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    _sleep(delay)
                    attempt += 1
                    continue
                return _exception_outcome(self, job, exc, "raised")
            try:
                return Outcome("complete", self.codec.encode(result))
            except Exception as exc:
                return _exception_outcome(self, job, exc, "returned a value its codec cannot encode")

    def _attempt(self, job: JobContext, payload: Any) -> Any:
        if self.timeout is None:
            return self.fn(job, payload)
        timer = gevent.Timeout(self.timeout)
        timer.start()
        try:
            return self.fn(job, payload)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise TaskTimeout(f"task {self.name!r} exceeded its timeout of {self.timeout:g} s") from None
        finally:
            timer.close()


def _sleep(seconds: float) -> None:
    gevent.sleep(seconds)


def _exception_outcome(t: Task, job: JobContext, exc: Exception, what: str) -> Outcome:
    text = f"{type(exc).__name__}: {exc}"
    log.error("job %s (%s) %s: %s", job.handle, t.name, what, text, exc_info=not isinstance(exc, TaskTimeout))
    return Outcome("exception", text.encode("utf-8", "replace"), reason=text)


@overload
def task(fn: F, /) -> Task: ...


@overload
def task(
    *,
    name: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    backoff: float = DEFAULT_RETRY_BACKOFF,
    backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
    codec: str | Codec | None = None,
) -> Callable[[F], Task]: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    backoff: float = DEFAULT_RETRY_BACKOFF,
    backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX,
    codec: str | Codec | None = None,
) -> Task | Callable[[F], Task]:
    """Declare a task: ``@task`` or ``@task(name=..., timeout=..., retries=..., codec=...)``.

    ``name`` defaults to the function's ``__name__``; the workers key (``--key``) is added by the
    worker at registration, never here, so one module serves any site. ``codec`` is ``raw``
    (bytes; the default, what PHP, Perl and the ``gearman`` CLI send), ``json`` or ``msgpack``.
    """

    def wrap(f: Callable[..., Any]) -> Task:
        t = Task(
            fn=f,
            name=name or f.__name__,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            backoff_max=backoff_max,
            codec=get_codec(codec),
        )
        # A frozen dataclass refuses setattr; copy the wrapper attributes the documented way round.
        for attr in ("__module__", "__doc__", "__qualname__"):
            object.__setattr__(t, attr, getattr(f, attr, None))
        object.__setattr__(t, "__wrapped__", f)
        return t

    if fn is not None:
        return wrap(fn)
    return wrap
