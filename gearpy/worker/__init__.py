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
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gearpy.worker.config import WorkerConfig, load_config
    from gearpy.worker.hooks import Hook, WorkerControl, WorkerHook
    from gearpy.worker.job import JobContext
    from gearpy.worker.loader import TaskImportError, load_tasks
    from gearpy.worker.recycle import Recycle
    from gearpy.worker.runtime import Worker
    from gearpy.worker.tasks import Fail, Outcome, Task, TaskTimeout, task

__all__ = [
    "Fail",
    "Hook",
    "JobContext",
    "Outcome",
    "Recycle",
    "Task",
    "TaskImportError",
    "TaskTimeout",
    "Worker",
    "WorkerConfig",
    "WorkerControl",
    "WorkerHook",
    "load_config",
    "load_tasks",
    "task",
]

_WHERE = {
    "Fail": "tasks",
    "Outcome": "tasks",
    "Hook": "hooks",
    "WorkerControl": "hooks",
    "WorkerHook": "hooks",
    "Recycle": "recycle",
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
    if name == "JobFail":  # deprecated second name of Fail: warn at every use, never cache
        warnings.warn(
            "gearpy.worker.JobFail is deprecated; raise gearpy.worker.Fail (the same exception)",
            DeprecationWarning,
            stacklevel=2,
        )
        return __getattr__("Fail")
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'gearpy.worker' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gearpy.worker.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
