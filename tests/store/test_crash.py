"""SIGKILL the server while it acknowledges background jobs: none of them may be lost.

Runs ``scripts/crash_test.py`` (small N) as a subprocess against every durable store: a real
``gearpy.server`` process, raw-socket submitters and workers, a SIGKILL at a random moment, a
restart on the same store, and a drain that checks every acknowledged job ran at least once.
The script prints its result as JSON (``--json``); the assertions are on those figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "crash_test.py"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_acknowledged_job_is_lost_to_sigkill(service) -> None:
    argv = [sys.executable, str(SCRIPT), "--url", service.url, "-n", "300", "--connections", "4"]
    argv += ["--window", "16", "--workers", "4", "--kills", "1", "--timeout", "120", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=280, stdin=subprocess.DEVNULL)
    assert proc.stdout.strip(), f"no result (exit {proc.returncode}):\n{proc.stderr}"
    result = json.loads(proc.stdout)
    print(json.dumps({k: v for k, v in result.items() if k not in ("lost", "unexpected", "duplicates")}))
    assert result["kills_done"] == 1
    assert result["acked"] > 0
    assert result["lost"] == [], f"acknowledged jobs lost (seed {result['seed']}): {result['lost'][:20]}"
    assert result["unexpected"] == []
    assert result["rows_left"] == 0  # every finished job was deleted from the store
    assert result["errors"] == 0
    assert result["ok"] and proc.returncode == 0, proc.stderr
