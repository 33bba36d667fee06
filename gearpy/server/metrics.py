"""The job server's Prometheus metrics.

Two families:

* Gauges existing Gearman dashboards read (the names of the community gearman exporters):
  ``gearman_up``, ``gearman_jobs``, ``gearman_jobs_running``, ``gearman_jobs_waiting``,
  ``gearman_workers``, labelled by function. Computed from the core's tables at scrape time, so
  they cost nothing between scrapes. Function names are chosen by peers, so the series are
  bounded (issue 18.3): functions the server forgot have none, and beyond ``max_functions`` those
  with the fewest jobs and workers are summed under the label ``__other__``. A scrape is then a
  bounded amount of text, whatever peers registered.
* ``gearpy_*`` counters and histograms updated as jobs move: submitted (by priority, background),
  finished (by outcome), queue wait and run time, connections by role, packets and bytes, store
  commit latency and batch size. Base units (seconds, bytes), ``_total`` counters.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from gearpy.protocol import PacketType
from gearpy.server.core import ServerCore
from gearpy.server.state import HIGH, LOW, NORMAL, Function, Job

_PRIORITY = {HIGH: "high", NORMAL: "normal", LOW: "low"}
#: The function label of the series summing the functions beyond ``max_functions``.
OTHER = "__other__"
DEFAULT_MAX_FUNCTIONS = 500
_TIME_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600)


class ServerMetrics:
    """Observer of the core (:class:`~gearpy.server.interfaces.Observer`) feeding a Prometheus registry.

    Built before the core (which is given it as its observer); :meth:`watch` then adds the gauges
    read from that core's tables.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        max_functions: int = DEFAULT_MAX_FUNCTIONS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.clock = clock
        self.max_functions = max(0, max_functions)
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.submitted = Counter(
            "gearpy_jobs_submitted",
            "New jobs accepted (coalesced submits not counted).",
            ["priority", "background"],
            registry=r,
        )
        self.finished = Counter(
            "gearpy_jobs_finished",
            "Jobs ended, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.wait_time = Histogram(
            "gearpy_job_queue_wait_seconds",
            "Time from submit to a worker taking the job.",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            "gearpy_job_run_seconds",
            "Time from a worker taking a job to its end.",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.connections = Counter(
            "gearpy_connections_accepted",
            "Connections accepted.",
            registry=r,
        )
        self.packets_in = Counter("gearpy_packets_received", "Packets and admin lines received.", registry=r)
        self.bytes_in = Counter("gearpy_received_bytes", "Bytes received.", registry=r)
        self.bytes_out = Counter("gearpy_sent_bytes", "Bytes sent.", registry=r)
        self.commit_seconds = Histogram(
            "gearpy_store_commit_seconds",
            "Durable store commit latency.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.commit_batch = Histogram(
            "gearpy_store_commit_batch_jobs",
            "Jobs written per durable store commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.late_results = Counter(
            "gearpy_late_results_dropped",
            "WORK_* packets dropped because their job had already timed out (CAN_DO_TIMEOUT).",
            ["packet"],
            registry=r,
        )

    def watch(self, core: ServerCore) -> None:
        """Publish the gauges of ``core``'s tables (read at scrape time)."""
        self.registry.register(_StateCollector(core, self.max_functions))

    # Observer hooks (called by the core)
    def job_submitted(self, job: Job) -> None:
        self.submitted.labels(_PRIORITY[job.priority], "true" if job.background else "false").inc()

    def job_started(self, job: Job) -> None:
        self.wait_time.observe(max(0.0, job.started_at - job.submitted_at))

    def job_finished(self, job: Job, outcome: str) -> None:
        self.finished.labels(outcome).inc()
        if job.started_at:
            self.run_time.observe(max(0.0, self.clock() - job.started_at))

    def late_result(self, kind: PacketType) -> None:
        self.late_results.labels(kind.name).inc()

    def store_committed(self, seconds: float, jobs: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(jobs)


class _StateCollector:
    """Gauges read from the core's tables at scrape time."""

    def __init__(self, core: ServerCore, max_functions: int) -> None:
        self.core = core
        self.max_functions = max_functions

    def collect(self) -> Iterator[Metric]:
        core = self.core
        up = GaugeMetricFamily("gearman_up", "1 when the job server answers.")
        up.add_metric([], 1.0)
        jobs = GaugeMetricFamily("gearman_jobs", "Jobs queued or running, by function.", labels=["function"])
        running = GaugeMetricFamily("gearman_jobs_running", "Jobs running, by function.", labels=["function"])
        waiting = GaugeMetricFamily(
            "gearman_jobs_waiting", "Jobs queued, by function and priority.", labels=["function", "priority"]
        )
        workers = GaugeMetricFamily(
            "gearman_workers", "Worker registrations, by function.", labels=["function"]
        )
        functions = list(core.functions.values())
        shown = functions
        if len(functions) > self.max_functions:
            shown = heapq.nlargest(self.max_functions, functions, key=_weight)
        for fn in shown:
            name = fn.name.decode("utf-8", "replace")
            jobs.add_metric([name], fn.total)
            running.add_metric([name], fn.running)
            for p, label in _PRIORITY.items():
                waiting.add_metric([name, label], fn.queued(p))
            workers.add_metric([name], fn.workers)
        if shown is not functions:
            rest = set(functions).difference(shown)
            jobs.add_metric([OTHER], sum(fn.total for fn in rest))
            running.add_metric([OTHER], sum(fn.running for fn in rest))
            for p, label in _PRIORITY.items():
                waiting.add_metric([OTHER, label], sum(fn.queued(p) for fn in rest))
            workers.add_metric([OTHER], sum(fn.workers for fn in rest))
        conns = GaugeMetricFamily("gearpy_connections", "Open connections, by role.", labels=["role"])
        roles = {"worker": 0, "client": 0, "other": 0}
        for c in list(core.conns.values()):
            roles["worker" if c.is_worker else "client" if c.is_client else "other"] += 1
        for role, n in roles.items():
            conns.add_metric([role], n)
        healthy = GaugeMetricFamily("gearpy_store_up", "1 when the queue store is reachable.")
        healthy.add_metric([], 1.0 if core.store.healthy() else 0.0)
        yield from (up, jobs, running, waiting, workers, conns, healthy)


def _weight(fn: Function) -> tuple[int, int, int]:
    """Which functions keep their own series: the most jobs, then the most workers, then the oldest."""
    return (fn.total, fn.workers, -fn.seq)
