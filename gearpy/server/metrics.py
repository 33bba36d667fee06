"""The job server's Prometheus metrics.

Two families:

* Gauges existing Gearman dashboards read (the names of the community gearman exporters):
  ``gearman_up``, ``gearman_jobs``, ``gearman_jobs_running``, ``gearman_jobs_waiting``,
  ``gearman_workers``, labelled by function. Computed from the core's tables at scrape time, so
  they cost nothing between scrapes.
* ``gearpy_*`` counters and histograms updated as jobs move: submitted (by priority, background),
  finished (by outcome), queue wait and run time, connections by role, packets and bytes, store
  commit latency and batch size. Base units (seconds, bytes), ``_total`` counters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from gearpy.protocol import PacketType
from gearpy.server.core import Observer
from gearpy.server.state import HIGH, LOW, NORMAL, Job

if TYPE_CHECKING:
    from gearpy.server.core import ServerCore

_PRIORITY = {HIGH: "high", NORMAL: "normal", LOW: "low"}
_TIME_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600)


class ServerMetrics(Observer):
    """Observer of the core that feeds a Prometheus registry."""

    def __init__(self, core: ServerCore, registry: CollectorRegistry | None = None) -> None:
        self.core = core
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
        r.register(_StateCollector(core))

    # Observer hooks (called by the core)
    def job_submitted(self, job: Job) -> None:
        self.submitted.labels(_PRIORITY[job.priority], "true" if job.background else "false").inc()

    def job_started(self, job: Job) -> None:
        self.wait_time.observe(max(0.0, job.started_at - job.submitted_at))

    def job_finished(self, job: Job, outcome: str) -> None:
        self.finished.labels(outcome).inc()
        if job.started_at:
            self.run_time.observe(max(0.0, self.core.clock() - job.started_at))

    def late_result(self, kind: PacketType) -> None:
        self.late_results.labels(kind.name).inc()

    def store_committed(self, seconds: float, jobs: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(jobs)


class _StateCollector:
    """Gauges read from the core's tables at scrape time."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    def collect(self):
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
        for fn in list(core.functions.values()):
            name = fn.name.decode("utf-8", "replace")
            jobs.add_metric([name], fn.total)
            running.add_metric([name], fn.running)
            for p, label in _PRIORITY.items():
                waiting.add_metric([name, label], fn.queued(p))
            workers.add_metric([name], fn.workers)
        conns = GaugeMetricFamily("gearpy_connections", "Open connections, by role.", labels=["role"])
        roles = {"worker": 0, "client": 0, "other": 0}
        for c in list(core.conns.values()):
            roles["worker" if c.is_worker else "client" if c.is_client else "other"] += 1
        for role, n in roles.items():
            conns.add_metric([role], n)
        healthy = GaugeMetricFamily("gearpy_store_up", "1 when the queue store is reachable.")
        healthy.add_metric([], 1.0 if core.store.healthy() else 0.0)
        yield from (up, jobs, running, waiting, workers, conns, healthy)
