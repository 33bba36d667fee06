"""Find the tasks named on the command line: ``MODULE``, ``MODULE:ATTR`` or ``path/to/file.py``,
and the hooks named by ``--hook MODULE:ATTR``.

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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from gearpy.errors import GearpyError
from gearpy.worker.hooks import WorkerHook
from gearpy.worker.tasks import Task

__all__ = ["HookFactory", "TaskImportError", "load_hooks", "load_tasks", "select_tasks"]

#: Makes the hook a worker process adds (a class is instantiated once per process).
HookFactory = Callable[[], WorkerHook]

#: The methods an object needs to be used as a hook (see gearpy.worker.hooks.WorkerHook).
HOOK_METHODS = ("on_start", "before_grab", "after_grab", "before_job", "on_failure", "after_job", "on_stop")


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


def _cwd_on_path() -> None:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _import_module(modname: str) -> Any:
    try:
        return _import(modname)
    except TaskImportError:
        raise
    except Exception as exc:
        raise TaskImportError(f"cannot import {modname}: {type(exc).__name__}: {exc}") from exc


def _attribute(module: Any, modname: str, attr: str) -> Any:
    obj: Any = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise TaskImportError(f"{modname} has no attribute {attr!r}") from None
    return obj


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
    _cwd_on_path()
    by_name: dict[str, Task] = {}
    for spec in specs:
        modname, _, attr = spec.partition(":")
        module = _import_module(modname)
        if attr:
            found = _tasks_in(_attribute(module, modname, attr), spec)
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


def _is_hook(obj: Any) -> bool:
    return all(callable(getattr(obj, m, None)) for m in HOOK_METHODS)


def _hook_factory(obj: Any, spec: str) -> HookFactory:
    if isinstance(obj, type):
        if not _is_hook(obj):
            raise TaskImportError(f"{spec} is not a worker hook class (subclass gearpy.worker.Hook)")
        cls: type[WorkerHook] = obj
        return cls
    if not _is_hook(obj):
        raise TaskImportError(f"{spec} is not a worker hook (subclass gearpy.worker.Hook)")
    hook: WorkerHook = obj
    return lambda: hook


def load_hooks(specs: Sequence[str]) -> list[HookFactory]:
    """Import every ``MODULE:ATTR`` of ``--hook``: a hook object, a hook class (made once per worker
    process, with no arguments), or a list/tuple of them. Returns factories, in order."""
    _cwd_on_path()
    factories: list[HookFactory] = []
    for spec in specs:
        modname, _, attr = spec.partition(":")
        if not attr:
            raise TaskImportError(f"--hook {spec}: name the hook as MODULE:ATTR")
        obj = _attribute(_import_module(modname), modname, attr)
        items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
        factories.extend(_hook_factory(item, spec) for item in items)
    return factories
