"""Two tiny tasks used by docs/guide.md: ``reverse`` (raw bytes) and ``add`` (JSON).

Run them with ``gearpy-worker examples/tasks.py`` (add ``--key atom1`` to serve ``atom1-reverse`` and
``atom1-add`` instead), then ``gearpy-client submit reverse hello`` prints ``olleh`` and
``gearpy-client submit --codec json add '{"a": 2, "b": 3}'`` prints ``{"sum": 5}``.
"""

from __future__ import annotations

from typing import Any

from gearpy.worker import task


@task
def reverse(job, data: bytes) -> bytes:
    """Return the payload reversed."""
    return data[::-1]


@task(codec="json")
def add(job, payload: dict[str, Any]) -> dict[str, Any]:
    """Add ``a`` and ``b``; reports progress on the way, as long jobs should."""
    job.progress(1, 2)
    total = payload["a"] + payload["b"]
    job.progress(2, 2)
    return {"sum": total}
