"""Build gearpy, compiling the hot path with mypyc when a C compiler works.

Everything else about the package is declared in pyproject.toml; this file only adds the optional
extension modules. The modules in ``gearpy._accel.HOT_MODULES`` (the protocol codec, the server
core and its job records) are compiled from their ``.py`` sources, which stay the one source of
truth and are installed beside the extensions. Whenever the accelerator cannot be built - no
working C compiler (e.g. ``CC=false``), mypyc missing or refusing the code, a compiler error - the
install goes on without it and gearpy runs as pure Python. ``GEARPY_BUILD_ACCEL=0`` skips it on
purpose. Why mypyc rather than Cython: BENCHMARKS.md ("Choosing the compiler").
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
import traceback
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gearpy._accel import HOT_MODULES, RECORD_NAME, source_record  # noqa: E402  (stdlib only; the package is not imported)


def _say(msg: str) -> None:
    print(f"gearpy accelerator: {msg}", file=sys.stderr, flush=True)


def _compiler_works() -> bool:
    """Compile and link a tiny extension source with the configured compiler (honours CC)."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    cc = new_compiler()
    customize_compiler(cc)  # type: ignore[no-untyped-call]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <Python.h>\nint gearpy_probe(void) { return Py_IsInitialized(); }\n")
        try:
            objs = cc.compile([src], output_dir=tmp, include_dirs=[sysconfig.get_paths()["include"]])
            cc.link_shared_object(objs, os.path.join(tmp, "probe.so"))
        except Exception as exc:  # CompileError, LinkError, a missing executable...
            _say(f"no working C compiler ({exc.__class__.__name__}: {exc}); installing pure Python")
            return False
    return True


def _extensions() -> list[Any]:
    if os.environ.get("GEARPY_BUILD_ACCEL", "1").strip().lower() in ("0", "false", "no", "off"):
        _say("GEARPY_BUILD_ACCEL=0; installing pure Python")
        return []
    if not _compiler_works():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypyc is not installed; installing pure Python")
        return []
    paths = [os.path.join(*name.split(".")) + ".py" for name in HOT_MODULES]
    try:
        # The build environment has mypy but not the stubs of gearpy's dependencies: check the
        # compiled modules, and follow the rest of the package only for its types.
        options = ["--ignore-missing-imports", "--follow-imports=silent"]
        return list(mypycify([*options, *paths], opt_level="3", group_name="gearpy_accel"))
    except BaseException as exc:  # mypyc exits through SystemExit on type errors
        traceback.print_exc()
        _say(f"mypyc failed ({exc!r}); installing pure Python")
        return []


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python when compiling the accelerator fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            _say(f"building the extensions failed ({exc}); installing pure Python")
            for ext in self.extensions:  # a shim without its shared library would not import
                built = self.get_ext_fullpath(ext.name)
                if os.path.exists(built):
                    os.remove(built)
            self.extensions = []
            self.distribution.ext_modules = []

        else:
            if self.extensions:
                self._record_sources()

    def _record_sources(self) -> None:
        """Write the hashes of the compiled sources, so gearpy can tell a stale build (_accel.py)."""
        record = source_record(HERE)
        dirs = {os.path.join(self.build_lib, "gearpy")}
        if self.inplace or getattr(self, "editable_mode", False):
            dirs.add(os.path.join(HERE, "gearpy"))  # editable: the extensions sit beside the sources
        for d in dirs:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, RECORD_NAME), "w") as f:
                f.write(record)

    def get_outputs(self) -> list[str]:
        return super().get_outputs() if self.extensions else []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
