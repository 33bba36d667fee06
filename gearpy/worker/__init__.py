"""gearpy's worker runtime: ``@task`` functions served to Gearman servers on gevent.

::

    from gearpy.worker import Fail, task

    @task(codec="json", timeout=600, retries=2)
    def build_report(job, payload):
        for i, row in enumerate(payload["rows"]):
            job.progress(i, len(payload["rows"]))
            ...
        return {"path": "/srv/reports/1.csv"}

Run it with ``gearpy-worker myapp.jobs`` (see :mod:`gearpy.worker.cli`), or embed a
:class:`Worker` after ``gevent.monkey.patch_all()``.

The names are loaded lazily so that ``gearpy-worker`` can monkey-patch the process before the
runtime imports ``socket`` and ``ssl``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gearpy.worker.config import WorkerConfig, load_config
    from gearpy.worker.job import JobContext
    from gearpy.worker.loader import TaskImportError, load_tasks
    from gearpy.worker.runtime import Worker
    from gearpy.worker.tasks import Fail, JobFail, Task, TaskTimeout, task

__all__ = [
    "Fail",
    "JobContext",
    "JobFail",
    "Task",
    "TaskImportError",
    "TaskTimeout",
    "Worker",
    "WorkerConfig",
    "load_config",
    "load_tasks",
    "task",
]

_WHERE = {
    "Fail": "tasks",
    "JobFail": "tasks",
    "Task": "tasks",
    "TaskTimeout": "tasks",
    "task": "tasks",
    "JobContext": "job",
    "Worker": "runtime",
    "WorkerConfig": "config",
    "load_config": "config",
    "TaskImportError": "loader",
    "load_tasks": "loader",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'gearpy.worker' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gearpy.worker.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
