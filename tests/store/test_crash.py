"""SIGKILL the server while it acknowledges background jobs: none of them may be lost.

Runs ``scripts/crash_test.py`` (small N) against every durable store: a real ``gearpy.server``
process, raw-socket submitters and workers, a SIGKILL at a random moment, a restart on the same
store, and a drain that checks every acknowledged job ran at least once.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "crash_test.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gearpy_crash_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _require_server_with_queue_option() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gearpy.server", "--help"], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0 or "--queue" not in proc.stdout:
        pytest.skip("python -m gearpy.server with -q/--queue is not available yet")


@pytest.mark.timeout(300)
def test_no_acknowledged_job_is_lost_to_sigkill(service) -> None:
    _require_server_with_queue_option()
    crash = _load_script()
    result = crash.run(service.url, 300, connections=4, window=16, workers=4, kills=1, timeout=120)
    print(result.summary())
    assert result.kills_done == 1
    assert result.acked > 0
    assert result.lost == [], f"acknowledged jobs lost (seed {result.seed}): {result.lost[:20]}"
    assert result.unexpected == []
    assert result.rows_left == 0  # every finished job was deleted from the store
    assert result.errors == 0
