"""The server's tables: functions by name, every live job by handle, and the unique keys.

Two unique tables, because gearmand answers two questions with them: ``uniques`` finds the job a
new submit should coalesce onto (keyed by function and unique, or by function and payload for
the unique ``-``), ``by_unique`` finds the jobs GET_STATUS_UNIQUE asks about (any function).

Functions nobody uses are forgotten, oldest first, once more than ``max_idle_functions`` of them
are known (issue 18.2-3: names chosen by peers outlived them, in ``status`` and in ``/metrics``).
gearmand keeps every name forever; below the limit gearpy does too, so ``status`` still shows a
function whose last worker just left.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from gearpy.server.state import Function, Job

DropOutcome = Literal["dropped", "busy", "missing"]

#: (function name, unique) or (function name, b"-", payload)
UniqueKey = tuple[bytes, ...]

#: Functions with no worker, job or ``maxqueue`` kept (gearmand-like ``status``) before the oldest go.
DEFAULT_MAX_IDLE_FUNCTIONS = 1000


def unique_key(name: bytes, unique: bytes, payload: bytes) -> UniqueKey | None:
    """The coalescing key of a submit, or None when it never coalesces."""
    if not unique:
        return None
    if unique == b"-":
        return (name, b"-", payload) if payload else None
    return (name, unique)


class JobIndex:
    """Functions, and jobs by handle and by unique; the core adds and removes, admin reads."""

    __slots__ = ("functions", "jobs", "uniques", "by_unique", "_seq", "idle", "max_idle")

    def __init__(self, max_idle_functions: int = DEFAULT_MAX_IDLE_FUNCTIONS) -> None:
        self.functions: dict[bytes, Function] = {}
        #: unused functions, the longest unused first
        self.idle: OrderedDict[Function, None] = OrderedDict()
        self.max_idle = max(1, max_idle_functions)  # (never the function just created)
        #: functions created so far (admin listings order functions of one bucket by it)
        self._seq = 0
        self.jobs: dict[bytes, Job] = {}
        self.uniques: dict[UniqueKey, Job] = {}
        #: unique -> jobs with it (any function), oldest first, for GET_STATUS_UNIQUE
        self.by_unique: dict[bytes, list[Job]] = {}

    def function(self, name: bytes) -> Function:
        """The function named ``name``, created if new."""
        fn = self.functions.get(name)
        if fn is None:
            self._seq += 1
            fn = self.functions[name] = Function(name, self._seq)
            self.mark_idle(fn)  # until a job or a worker uses it
        return fn

    def mark_idle(self, fn: Function) -> None:
        """``fn`` is unused now: remember it, and forget the longest-unused beyond the limit."""
        fn.idle = True
        idle = self.idle
        idle[fn] = None
        while len(idle) > self.max_idle:
            old = idle.popitem(last=False)[0]
            old.idle = False
            if old.unused() and self.functions.get(old.name) is old:
                del self.functions[old.name]

    def check_idle(self, fn: Function) -> None:
        """Called where ``fn`` may have lost its last worker, job or limit."""
        if not fn.idle and fn.unused():
            self.mark_idle(fn)

    def busy(self, fn: Function) -> None:
        """``fn`` got a worker, a job or a limit: it is no longer a candidate to forget."""
        fn.idle = False
        self.idle.pop(fn, None)

    def drop_function(self, name: bytes) -> DropOutcome:
        """Forget a function (name matched without case), unless it is in use."""
        wanted = name.lower()
        for known, fn in self.functions.items():
            if known.lower() == wanted:
                if fn.workers or fn.running or fn.total or fn.live:
                    return "busy"
                del self.functions[known]
                self.busy(fn)  # (out of the idle list)
                return "dropped"
        return "missing"

    def add_unique(self, job: Job, key: UniqueKey | None) -> None:
        """Index a new job (already in :attr:`jobs`) that has a unique."""
        if key is not None:
            self.uniques[key] = job
        if job.unique != b"-":
            self.by_unique.setdefault(job.unique, []).append(job)

    def newest_with_unique(self, unique: bytes) -> Job | None:
        """gearmand's unique hash buckets are newest first: the most recent job with it wins."""
        jobs = self.by_unique.get(unique)
        return jobs[-1] if jobs else None

    def forget_unique(self, job: Job) -> None:
        """Stop coalescing onto ``job`` and stop reporting it by unique (it may stay by handle)."""
        key = unique_key(job.function.name, job.unique, job.payload)
        if key is not None and self.uniques.get(key) is job:
            del self.uniques[key]
        lst = self.by_unique.get(job.unique)
        if lst is not None:
            try:
                lst.remove(job)
            except ValueError:
                pass
            if not lst:
                del self.by_unique[job.unique]
