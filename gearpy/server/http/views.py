"""Read-only views of the job server's state, as plain JSON-ready data: the dashboard's one window.

Everything the HTTP layer shows is read here and nowhere else, so a change in the core's tables
touches this module only. Nothing here mutates server state; every listing is bounded (jobs are
paged with :func:`itertools.islice` over the core's own containers, which skips in C, so a million
queued jobs cost a page no more than a few milliseconds and never a Python-level scan).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gearpy import __version__, _accel
from gearpy.server.interfaces import NullObserver
from gearpy.server.state import HIGH, LOW, NORMAL, Conn, Function, Job

if TYPE_CHECKING:
    from gearpy.server.core import ServerCore

PRIORITY_NAMES = {HIGH: "high", NORMAL: "normal", LOW: "low"}
PRIORITY_BY_NAME = {v: k for k, v in PRIORITY_NAMES.items()}
#: Largest page of jobs one request may ask for.
MAX_PAGE = 500
#: Seconds of submit/finish history kept for the charts (one sample a second).
HISTORY_SECONDS = 120

JSON = dict[str, Any]


def text(data: bytes) -> str:
    """Bytes from the wire as display text (names, handles and uniques are usually ASCII)."""
    return data.decode("utf-8", "replace")


def accelerator_mode() -> str:
    """The hot path's mode, as ``gearpy-server --version`` says it (``compiled (mypyc)``/``pure``)."""
    return _accel.mode()


class Tally:
    """Counts submits and ends, overall and per function, for the rate charts.

    An observer of the core that passes every call on to the one it wraps (the Prometheus metrics,
    with ``--metrics``), so installing it costs one extra call and a dict update per job.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner if inner is not None else NullObserver()
        self.submitted = 0
        self.finished = 0
        #: function name -> [submitted, finished]
        self.by_function: dict[bytes, list[int]] = {}

    def job_submitted(self, job: Job) -> None:
        self.submitted += 1
        counts = self.by_function.get(job.function.name)
        if counts is None:
            counts = self.by_function[job.function.name] = [0, 0]
        counts[0] += 1
        self.inner.job_submitted(job)

    def job_started(self, job: Job) -> None:
        self.inner.job_started(job)

    def job_finished(self, job: Job, outcome: str) -> None:
        self.finished += 1
        counts = self.by_function.get(job.function.name)
        if counts is None:
            counts = self.by_function[job.function.name] = [0, 0]
        counts[1] += 1
        self.inner.job_finished(job, outcome)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(slots=True)
class Sample:
    at: float
    submitted: int
    finished: int
    by_function: dict[bytes, tuple[int, int]]


class History:
    """One sample of the tally a second (taken by the HTTP layer's timer), for rates and charts."""

    def __init__(self, tally: Tally, clock: Any = time.time) -> None:
        self.tally = tally
        self.clock = clock
        self.samples: deque[Sample] = deque(maxlen=HISTORY_SECONDS + 1)

    def sample(self) -> None:
        t = self.tally
        by_fn = {name: (c[0], c[1]) for name, c in t.by_function.items()}
        self.samples.append(Sample(self.clock(), t.submitted, t.finished, by_fn))

    def series(self) -> list[JSON]:
        """Per-second submit and finish rates, oldest first."""
        out: list[JSON] = []
        for prev, cur in itertools.pairwise(self.samples):
            dt = cur.at - prev.at or 1.0
            out.append(
                {
                    "t": round(cur.at, 3),
                    "submitted": round((cur.submitted - prev.submitted) / dt, 2),
                    "finished": round((cur.finished - prev.finished) / dt, 2),
                }
            )
        return out

    def function_rates(self, window: int = 10) -> dict[bytes, tuple[float, float]]:
        """Submits and ends per second of each function over the last ``window`` seconds."""
        if len(self.samples) < 2:
            return {}
        cur = self.samples[-1]
        prev = self.samples[max(0, len(self.samples) - 1 - window)]
        dt = cur.at - prev.at or 1.0
        out = {}
        for name, (s, f) in cur.by_function.items():
            ps, pf = prev.by_function.get(name, (0, 0))
            out[name] = (round((s - ps) / dt, 2), round((f - pf) / dt, 2))
        return out


class Views:
    """The read-only views; given the core, the start time and the rate history at construction."""

    def __init__(self, core: ServerCore, started_at: float, history: History) -> None:
        self.core = core
        self.started_at = started_at
        self.history = history
        self._health: tuple[float, bool] = (0.0, True)

    # ---------------------------------------------------------------- overview

    def store_healthy(self) -> bool:
        """The store's health, asked at most once a second (a SQL store answers with a query)."""
        now = time.monotonic()
        at, ok = self._health
        if now - at > 1.0:
            ok = bool(self.core.store.healthy())
            self._health = (now, ok)
        return ok

    def overview(self) -> JSON:
        core = self.core
        queued = running = scheduled = 0
        for fn in list(core.functions.values()):
            q = fn.queues
            queued += len(q[0]) + len(q[1]) + len(q[2])
            scheduled += len(fn.scheduled)
            running += fn.running
        workers = clients = 0
        total = 0
        for c in list(core.conns.values()):
            if c.fd < 0:
                continue  # an HTTP submit in progress, not a connection
            total += 1
            if c.is_worker:
                workers += 1
            elif c.is_client:
                clients += 1
        store = core.store
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "uptime": round(time.time() - self.started_at, 1),
            "connections": {"total": total, "workers": workers, "clients": clients},
            "functions": len(core.functions),
            "jobs": {"queued": queued, "scheduled": scheduled, "running": running, "total": len(core.jobs)},
            "queued_bytes": core.book.queued_bytes,
            "store": {
                "name": store.name,
                "durable": bool(store.durable),
                "healthy": self.store_healthy(),
            },
            "mode": accelerator_mode(),
            "draining": core.draining,
            "rates": self.history.series(),
        }

    # ---------------------------------------------------------------- functions

    def function_names(self) -> list[bytes]:
        return sorted(self.core.functions)

    def function(self, fn: Function, rates: dict[bytes, tuple[float, float]], now: float) -> JSON:
        oldest = 0.0
        for q in fn.queues:
            if q and q[0].submitted_at:
                age = now - q[0].submitted_at
                oldest = max(oldest, age)
        submit_rate, finish_rate = rates.get(fn.name, (0.0, 0.0))
        return {
            "name": text(fn.name),
            "queued": {
                "high": len(fn.queues[HIGH]),
                "normal": len(fn.queues[NORMAL]),
                "low": len(fn.queues[LOW]),
            },
            "scheduled": len(fn.scheduled),
            "running": fn.running,
            "total": fn.total,
            "workers": fn.workers,
            "oldest_queued_age": round(oldest, 3),
            "submit_rate": submit_rate,
            "finish_rate": finish_rate,
            "maxqueue": {
                "high": fn.max_queue[HIGH],
                "normal": fn.max_queue[NORMAL],
                "low": fn.max_queue[LOW],
            },
        }

    def functions(self) -> list[JSON]:
        rates = self.history.function_rates()
        now = time.time()
        fns = sorted(self.core.functions.values(), key=lambda f: f.name)
        return [self.function(fn, rates, now) for fn in fns]

    def find_function(self, name: bytes) -> Function | None:
        return self.core.functions.get(name)

    # ---------------------------------------------------------------- workers

    def workers(self) -> list[JSON]:
        now = time.time()
        out = []
        for c in sorted(self.core.conns.values(), key=lambda c: c.id):
            if not c.is_worker or c.fd < 0:
                continue
            out.append(
                {
                    "id": c.id,
                    "fd": c.fd,
                    "peer": f"{c.ip}:{c.port}",
                    "client_id": text(c.client_id),
                    "functions": sorted({text(a.function.name) for a in c.abilities}),
                    "sleeping": c.sleeping,
                    "jobs": [
                        {
                            "handle": text(j.handle),
                            "function": text(j.function.name),
                            "running_for": round(now - j.started_at, 3) if j.started_at else None,
                        }
                        for j in c.jobs
                    ],
                }
            )
        return out

    # ---------------------------------------------------------------- jobs

    def job_state(self, job: Job) -> str:
        if job.worker is not None:
            return "running"
        if job.ignore:
            return "cancelled"
        if job.when and job.when > int(self.core.clock()):
            return "scheduled"
        return "queued"

    def job(self, job: Job, now: float) -> JSON:
        return {
            "handle": text(job.handle),
            "function": text(job.function.name),
            "unique": text(job.unique),
            "priority": PRIORITY_NAMES[job.priority],
            "background": job.background,
            "state": self.job_state(job),
            "age": round(now - job.submitted_at, 3) if job.submitted_at else None,
            "size": len(job.payload),
            "due": job.when or None,
            "retries": job.retries,
        }

    def _running(self, fn: Function | None) -> Iterator[Job]:
        for c in list(self.core.conns.values()):
            for j in c.jobs:
                if fn is None or j.function is fn:
                    yield j

    def _queued(self, fns: Iterable[Function], priority: int | None) -> Iterator[Job]:
        prios = (HIGH, NORMAL, LOW) if priority is None else (priority,)
        for fn in fns:
            for p in prios:
                yield from fn.queues[p]
            if priority in (None, NORMAL):
                yield from (entry[2] for entry in fn.scheduled)

    def jobs(
        self,
        function: bytes | None = None,
        state: str | None = None,
        priority: int | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> JSON:
        """One page of jobs, newest submissions last; filters pick the containers to walk.

        Every filter maps to the core's own containers (a function's per-priority deques, the
        running jobs of the workers), so the page is an islice over them, never a filtering scan.
        ``total`` is exact for every filter (the containers know their lengths).
        """
        core = self.core
        limit = max(1, min(MAX_PAGE, limit))
        offset = max(0, offset)
        fns: list[Function]
        if function is not None:
            fn = core.functions.get(function)
            fns = [fn] if fn is not None else []
        else:
            fns = list(core.functions.values())
        if function is not None and not fns:
            return {"total": 0, "offset": offset, "limit": limit, "jobs": []}
        only = fns[0] if function is not None else None
        source: Iterable[Job]
        if state == "running":
            running = list(self._running(only))
            total, source = len(running), running
        elif state == "queued":
            total = sum(
                (fn.queued(priority) if priority is not None else fn.total - fn.running) for fn in fns
            )
            source = self._queued(fns, priority)
        elif priority is not None:
            running = [j for j in self._running(only) if j.priority == priority]
            total = len(running) + sum(fn.queued(priority) for fn in fns)
            source = itertools.chain(running, self._queued(fns, priority))
        elif function is None:
            total, source = len(core.jobs), core.jobs.values()
        else:
            running = list(self._running(only))
            total = len(running) + sum(fn.total - fn.running for fn in fns)
            source = itertools.chain(running, self._queued(fns, None))
        now = time.time()
        page = [self.job(j, now) for j in itertools.islice(source, offset, offset + limit)]
        return {"total": total, "offset": offset, "limit": limit, "jobs": page}

    def find_job(self, handle: bytes) -> Job | None:
        return self.core.jobs.get(handle)

    def job_detail(self, job: Job) -> JSON:
        now = time.time()
        out = self.job(job, now)
        out["progress"] = {"numerator": job.numerator, "denominator": job.denominator}
        out["clients"] = [_peer(c) for c in job.clients]
        out["worker"] = _peer(job.worker) if job.worker is not None else None
        out["running_for"] = round(now - job.started_at, 3) if job.worker and job.started_at else None
        return out


def _peer(c: Conn) -> JSON:
    return {"id": c.id, "peer": f"{c.ip}:{c.port}", "client_id": text(c.client_id), "http": c.fd < 0}
