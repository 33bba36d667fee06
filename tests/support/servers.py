"""gearmand, the reference server, as a :class:`gearpy.testing.ServerProcess` (for differential tests).

gearpy-server itself comes from the public plugin (:func:`gearpy.testing.gearpy_server_argv`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gearpy.testing import ServerProcess, gearpy_server_argv

from support.external import require_tool


def gearmand_argv(tmpdir: Path, *args: str) -> Callable[[int], list[str]]:
    """argv factory for the real gearmand on loopback, logging to stderr, its pid file in ``tmpdir``."""
    gearmand = require_tool("gearmand")

    def factory(port: int) -> list[str]:
        return [
            gearmand,
            "--listen=127.0.0.1",
            f"--port={port}",
            "--log-file=stderr",
            f"--pid-file={tmpdir / f'gearmand-{port}.pid'}",
            "--threads=0",
            *args,
        ]

    return factory


def server_of(kind: str, tmpdir: Path, *args: str) -> ServerProcess:
    """An unstarted server of ``kind`` ("gearpy" or "gearmand") with the same extra arguments."""
    factory = gearpy_server_argv(*args) if kind == "gearpy" else gearmand_argv(tmpdir, *args)
    return ServerProcess(factory)
