"""Reliability round 2 (issue #16): network faults, store outages and a fleet, with real processes.

Puts this directory on ``sys.path`` so test modules can import ``reliability_support`` (pytest runs
with ``--import-mode=importlib``), and re-exports its fixtures.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from reliability_support import joblog, proxy, server, worker  # noqa: E402,F401
