"""Find the tasks named on the command line: ``MODULE``, ``MODULE:ATTR`` or ``path/to/file.py``.

``MODULE`` contributes every :class:`~gearpy.worker.tasks.Task` among its attributes (including tasks
it imported from elsewhere, so one module can gather a whole application's tasks). ``MODULE:ATTR``
names one task, or a list/tuple/dict of tasks. The current directory is put on ``sys.path`` first,
as gunicorn and celery do, so ``gearpy-worker myjobs`` works from a project checkout.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gearpy.errors import GearpyError
from gearpy.worker.tasks import Task

__all__ = ["TaskImportError", "load_tasks", "select_tasks"]


class TaskImportError(GearpyError):
    """A task module cannot be imported, holds no task, or a requested task does not exist."""


def _import(spec: str) -> Any:
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise TaskImportError(f"no such file: {spec}")
        name = "_gearpy_tasks_" + path.stem
        mspec = importlib.util.spec_from_file_location(name, path)
        if mspec is None or mspec.loader is None:
            raise TaskImportError(f"cannot load {spec}")
        module = importlib.util.module_from_spec(mspec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.resolve().parent))
        mspec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _tasks_in(obj: Any, label: str) -> list[Task]:
    if isinstance(obj, Task):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        found = [t for t in obj if isinstance(t, Task)]
        if len(found) == len(obj) and found:
            return found
    raise TaskImportError(f"{label} is not a @task (nor a list of tasks)")


def load_tasks(specs: Sequence[str]) -> list[Task]:
    """Import every spec and return the tasks, each once, in a stable order.

    Two different functions registered under the same name are an error: the server would hand a
    job to whichever it liked.
    """
    if not specs:
        raise TaskImportError("no task module given (MODULE[:ATTR] argument or 'modules' in the config)")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    by_name: dict[str, Task] = {}
    for spec in specs:
        modname, _, attr = spec.partition(":")
        try:
            module = _import(modname)
        except TaskImportError:
            raise
        except Exception as exc:
            raise TaskImportError(f"cannot import {modname}: {type(exc).__name__}: {exc}") from exc
        if attr:
            obj: Any = module
            try:
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                raise TaskImportError(f"{modname} has no attribute {attr!r}") from None
            found = _tasks_in(obj, spec)
        else:
            found = [v for v in vars(module).values() if isinstance(v, Task)]
            if not found:
                raise TaskImportError(f"{modname} holds no @task")
        for t in found:
            other = by_name.get(t.name)
            if other is not None and other is not t:
                raise TaskImportError(f"two different tasks are named {t.name!r}")
            by_name[t.name] = t
    return list(by_name.values())


def select_tasks(tasks: Iterable[Task], names: Sequence[str]) -> list[Task]:
    """Keep only the tasks named in ``names`` (``--function``); an unknown name is an error."""
    tasks = list(tasks)
    if not names:
        return tasks
    known = {t.name: t for t in tasks}
    missing = [n for n in names if n not in known]
    if missing:
        raise TaskImportError(
            f"no task named {', '.join(map(repr, missing))} (known: {', '.join(sorted(known))})"
        )
    return [known[n] for n in dict.fromkeys(names)]
