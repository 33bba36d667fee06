"""External tools and services, and the rule that CI may not skip a test for lack of one.

On a developer's machine a missing tool or service skips the test; with ``GEARPY_REQUIRE_EXTERNAL=1``
(``.ci/run`` sets it) :func:`require_tool` fails instead, and ``tests/conftest.py`` reports every other
skip as a failure too, so nothing is silently untested in CI.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "GEARPY_REQUIRE_EXTERNAL"


def external_required() -> bool:
    """True when skips must become failures (CI)."""
    return os.environ.get(REQUIRE_ENV, "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Return the path of an external program, or skip (fail under CI) when it is missing."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        msg = f"external tool {name!r} is not installed"
        if external_required():
            pytest.fail(msg + f" ({REQUIRE_ENV} is set)")
        pytest.skip(msg)
    return path
