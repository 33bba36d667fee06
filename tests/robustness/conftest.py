"""Robustness tests (issue #8): limits, fuzzing, faults with real processes.

Puts this directory on ``sys.path`` so the test modules can import ``robustness_support``
(pytest runs with ``--import-mode=importlib``, which does not).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
