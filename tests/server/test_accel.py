"""The optional compiled hot path: which modules load, how GEARPY_PURE_PYTHON forces the sources,
what ``--version`` and the start-up log say, and how a stale build is set aside.

CI runs the suite once as installed and once with GEARPY_PURE_PYTHON=1; with GEARPY_EXPECT_ACCEL=1
(set by CI's accelerated run) a build that silently fell back to pure Python fails here.
"""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gearpy
from gearpy import _accel
from gearpy.testing import ServerProcess, gearpy_server_argv

PACKAGE_DIR = Path(gearpy.__file__).resolve().parent


def _extensions_installed() -> bool:
    """True when a compiled file sits beside every hot module's source."""
    for name in _accel.HOT_MODULES:
        stem = PACKAGE_DIR.parent.joinpath(*name.split("."))
        if not any(stem.with_name(stem.name + s).exists() for s in importlib.machinery.EXTENSION_SUFFIXES):
            return False
    return True


def _python(code: str, pure: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != _accel.PURE_ENV}
    if pure:
        env[_accel.PURE_ENV] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def _compiled_usable() -> bool:
    return _extensions_installed() and not _accel.compiled_is_stale(str(PACKAGE_DIR))


def _expected_mode(pure: bool) -> str:
    """What a process reports, started with GEARPY_PURE_PYTHON=1 (``pure``) or without it."""
    return _accel.COMPILED if not pure and _compiled_usable() else _accel.PURE


SHOW_FILES = (
    "import importlib; from gearpy import _accel; "
    "print(_accel.mode()); "
    "print('\\n'.join(importlib.import_module(m).__file__ for m in _accel.HOT_MODULES))"
)


def test_pure_python_env_loads_every_hot_module_from_source() -> None:
    mode, *files = _python(SHOW_FILES, pure=True).splitlines()
    assert mode == "pure"
    assert len(files) == len(_accel.HOT_MODULES)
    assert all(f.endswith(".py") for f in files), files


def test_default_mode_uses_the_compiled_modules_when_installed() -> None:
    mode, *files = _python(SHOW_FILES, pure=False).splitlines()
    if os.environ.get("GEARPY_EXPECT_ACCEL") == "1":
        assert mode == _accel.COMPILED, "the accelerator should have been built by pip install"
    if _compiled_usable():
        assert mode == _accel.COMPILED
        assert not any(f.endswith(".py") for f in files), files
    else:
        assert mode.startswith(_accel.PURE)
        assert all(f.endswith(".py") for f in files), files


def test_pure_mode_behaves_like_compiled_on_a_decode_and_submit() -> None:
    """The same bytes in give the same bytes out in both modes (one source of truth)."""
    code = (
        "from gearpy.protocol import Decoder, encode_request, PacketType as T\n"
        "from gearpy.server.core import ServerCore\n"
        "from gearpy.server.state import Conn\n"
        "class S:\n"
        "    def call_later(self, d, fn): return None\n"
        "    def cancel(self, t): pass\n"
        "core = ServerCore(scheduler=S(), handle_prefix=b'H:x')\n"
        "c, w = Conn(1), Conn(2)\n"
        "core.connect(c); core.connect(w)\n"
        "d = Decoder()\n"
        "d.feed(encode_request(T.CAN_DO, b'f') + encode_request(T.GRAB_JOB_UNIQ))\n"
        "[core.handle(w, e) for e in d.events()]\n"
        "d.feed(encode_request(T.SUBMIT_JOB, b'f', b'u', b'data')\n"
        "       + encode_request(T.SUBMIT_JOB_BG, b'f', b'', b'x'))\n"
        "[core.handle(c, e) for e in d.events()]\n"
        "d.feed(encode_request(T.GRAB_JOB_UNIQ))\n"
        "[core.handle(w, e) for e in d.events()]\n"
        "print(b''.join(bytes(x) for x in c.out).hex(), b''.join(bytes(x) for x in w.out).hex())\n"
    )
    pure = _python(code, pure=True)
    assert pure == _python(code, pure=False)
    client_out = bytes.fromhex(pure.split()[0])
    assert client_out.count(b"\x00RES\x00\x00\x00\x08") == 2  # two JOB_CREATED
    assert b"H:x:1" in client_out and b"H:x:2" in client_out


def test_version_says_which_hot_path_runs() -> None:
    exe = Path(sys.executable).with_name("gearpy-server")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "gearpy.server"]
    for pure in (True, False):
        env = {k: v for k, v in os.environ.items() if k != _accel.PURE_ENV}
        if pure:
            env[_accel.PURE_ENV] = "1"
        out = subprocess.run([*argv, "--version"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        expected = _expected_mode(pure)
        assert out.stdout.startswith(f"gearpy-server {gearpy.__version__} (hot path: {expected}")


def test_startup_log_line_says_which_hot_path_runs(tmp_path: Path) -> None:
    server = ServerProcess(gearpy_server_argv("--verbose", "INFO"), log_path=tmp_path / "server.log")
    server.start()
    try:
        deadline = time.monotonic() + 30
        while "hot path:" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(ln for ln in server.log().splitlines() if "listening on" in ln)
        assert f"hot path: {_expected_mode(_accel.pure_requested())}" in line
    finally:
        server.stop()


def _tree(root: Path) -> Path:
    """A copy of the hot modules' sources under ``root/gearpy``, as an installed package has them."""
    for name in _accel.HOT_MODULES:
        rel = Path(*name.split(".")).with_suffix(".py")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((PACKAGE_DIR.parent / rel).read_bytes())
    return root / "gearpy"


def test_a_build_record_matching_the_sources_is_not_stale(tmp_path: Path) -> None:
    pkg = _tree(tmp_path)
    assert not _accel.compiled_is_stale(str(pkg))  # no record: nothing was compiled here
    (pkg / _accel.RECORD_NAME).write_text(_accel.source_record(str(tmp_path)))
    assert not _accel.compiled_is_stale(str(pkg))


def test_an_edited_source_makes_the_compiled_set_stale(tmp_path: Path) -> None:
    pkg = _tree(tmp_path)
    (pkg / _accel.RECORD_NAME).write_text(_accel.source_record(str(tmp_path)))
    core = pkg / "server" / "core.py"
    core.write_text(core.read_text() + "\n# edited after the build\n")
    assert _accel.compiled_is_stale(str(pkg))


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_pure_requested_reads_the_environment(value: str, expected: bool) -> None:
    assert _accel.pure_requested({_accel.PURE_ENV: value}) is expected
