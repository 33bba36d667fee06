"""Which implementation of the hot path runs: the mypyc-compiled modules or their ``.py`` sources.

``pip install .`` compiles the modules in :data:`HOT_MODULES` with mypyc when a C compiler works
(see ``setup.py``); the ``.py`` files are installed beside the extensions and stay the one source of
truth. Python's import system prefers an extension module to a ``.py`` file of the same name, so
without help the compiled modules win whenever they are present.

``GEARPY_PURE_PYTHON=1`` (read once, when ``gearpy`` is first imported) puts :class:`PureFinder`
first on ``sys.meta_path``: it loads the hot modules from their ``.py`` sources even when compiled
ones are installed. That is how CI runs the whole suite in both modes from one install, and how an
operator rules the accelerator out when chasing a bug.

:func:`mode` says what actually got loaded; ``gearpy-server --version`` and the start-up log line
show it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: The modules setup.py compiles (keep in step with ``setup.py``'s list).
HOT_MODULES = (
    "gearpy.protocol.packets",
    "gearpy.protocol.codec",
    "gearpy.server.wire",
    "gearpy.server.state",
    "gearpy.server.index",
    "gearpy.server.queues",
    "gearpy.server.jobs",
    "gearpy.server.core",
)

PURE_ENV = "GEARPY_PURE_PYTHON"

#: Written by setup.py beside the compiled modules: the SHA-256 of each source they were built from.
RECORD_NAME = "_accel_build.txt"

#: Set when the compiled modules were built from other sources than the ones beside them.
stale = False

COMPILED = "compiled (mypyc)"
PURE = "pure"


def pure_requested(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """True when the environment asks for the pure-Python modules."""
    return environ.get(PURE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class PureFinder:
    """A meta-path finder that resolves the hot modules to their ``.py`` source files."""

    def __init__(self, names: Sequence[str] = HOT_MODULES) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.names or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, leaf + ".py")
            if os.path.isfile(source):
                loader = importlib.machinery.SourceFileLoader(fullname, source)
                return importlib.util.spec_from_file_location(fullname, source, loader=loader)
        return None


def source_record(root: str) -> str:
    """One ``module sha256`` line per hot module, hashing the ``.py`` files under ``root``."""
    lines = []
    for name in HOT_MODULES:
        with open(os.path.join(root, *name.split(".")) + ".py", "rb") as f:
            lines.append(f"{name} {hashlib.sha256(f.read()).hexdigest()}\n")
    return "".join(lines)


def compiled_is_stale(package_dir: str) -> bool:
    """True when a build record exists and the sources have changed since that build.

    This is the editable-install case (``pip install -e .``): the extensions sit beside the sources,
    and Python would keep loading the old compiled code after an edit. All or nothing: the compiled
    modules link to each other directly, so one stale module makes the whole set unusable.
    """
    try:
        with open(os.path.join(package_dir, RECORD_NAME)) as f:
            recorded = f.read()
    except OSError:
        return False
    try:
        return recorded != source_record(os.path.dirname(package_dir))
    except OSError:
        return True


def install_pure_finder() -> None:
    """Make the hot modules load from source (idempotent); call before they are imported."""
    if not any(isinstance(f, PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PureFinder())


def is_compiled(module: ModuleType) -> bool:
    """True when ``module`` was loaded from an extension (compiled) file."""
    origin = getattr(module, "__file__", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def mode() -> str:
    """``"compiled (mypyc)"`` when every hot module runs compiled, ``"pure"`` when none does.

    Imports the hot modules (they are what any server process runs anyway). A partial state (some
    extensions missing, e.g. a half-finished build) is reported as such, with the pure ones named.
    """
    modules = [importlib.import_module(name) for name in HOT_MODULES]
    pure = [m.__name__ for m in modules if not is_compiled(m)]
    if not pure:
        return COMPILED
    if len(pure) == len(modules):
        return PURE + (" (the compiled modules are stale: rebuild with pip install)" if stale else "")
    return f"partly compiled (mypyc; pure: {', '.join(pure)})"
