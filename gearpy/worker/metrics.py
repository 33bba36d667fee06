"""The worker's Prometheus metrics and health check (``gearpy-worker --metrics HOST:PORT``).

Jobs by function and outcome, job duration, jobs in flight and connected servers; ``/healthz``
answers 200 while the worker is connected to at least one server. Served from the worker's own
gevent loop, opt-in, loopback unless told otherwise. :class:`WorkerMetrics` is a worker hook
(:mod:`gearpy.worker.hooks`): add it with ``worker.add_hook(metrics)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gearpy.boundedhttp import BoundedWSGIServer
from gearpy.metrics import parse_listen, serve_metrics
from gearpy.worker.hooks import Hook, WorkerControl

if TYPE_CHECKING:
    from gearpy.worker.job import JobContext
    from gearpy.worker.tasks import Outcome

#: The worker's default metrics port (the server's is 9418).
DEFAULT_WORKER_METRICS_PORT = 9419


class WorkerMetrics(Hook):
    """Metrics of one worker process: counts every job in ``after_job``, stops serving ``on_stop``."""

    def __init__(self, worker: WorkerControl, registry: CollectorRegistry | None = None) -> None:
        self.worker = worker
        self.registry = r = registry or CollectorRegistry()
        self.jobs = Counter(
            "gearpy_worker_jobs", "Jobs run, by task and outcome.", ["function", "outcome"], registry=r
        )
        self.duration = Histogram(
            "gearpy_worker_job_duration_seconds",
            "Time a task took, by task.",
            ["function"],
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        in_flight = Gauge("gearpy_worker_jobs_in_flight", "Jobs running now.", registry=r)
        in_flight.set_function(lambda: worker.jobs_running)
        connected = Gauge("gearpy_worker_connected_servers", "Servers connected now.", registry=r)
        connected.set_function(lambda: worker.connected_servers)
        self._server: BoundedWSGIServer | None = None

    def after_job(self, worker: WorkerControl, job: JobContext, outcome: Outcome, seconds: float) -> None:
        self.jobs.labels(job.function, outcome.kind).inc()
        self.duration.labels(job.function).observe(seconds)

    def on_stop(self, worker: WorkerControl, exit_code: int) -> None:
        self.close()

    def health(self) -> tuple[bool, str]:
        if self.worker.connected_servers:
            return True, "ok"
        return False, "not connected to any server"

    def serve(self, listen: str | tuple[str, int]) -> None:
        address = listen if isinstance(listen, tuple) else parse_listen(listen, DEFAULT_WORKER_METRICS_PORT)
        self._server = serve_metrics(address, self.registry, self.health)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout=1)
