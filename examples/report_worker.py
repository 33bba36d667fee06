"""A report worker in the spirit of AtoM's ``arGenerateReportJob``: a long job that reports progress,
streams partial output, warns about odd rows, and fails cleanly when it cannot do its work.

Run it (three terminals)::

    gearpy-server --port 4730                      # or gearmand
    gearpy-worker --key atom1 -c 2 examples/report_worker.py
    gearpy-client submit --key atom1 --codec json generate_report \\
        '{"repository": "Archives of Ontario", "rows": 20, "delay": 0.1}'

The client prints each row (JSON) as its WORK_DATA arrives, then the result
(``{"repository": ..., "rows": 20, "path": ...}``). ``gearpy-client submit --background ...`` and
``gearpy-client job-status H:host:N`` show the progress (``numerator/denominator``) of a background job.

Failure paths:

* ``{"repository": ""}`` → ``Fail``: a plain WORK_FAIL, the client reports "job failed";
* ``{"repository": "x", "rows": -1}`` → ``ValueError``: WORK_EXCEPTION ``ValueError: ...`` then
  WORK_FAIL (add ``--no-exceptions`` to the worker when libgearman clients such as PHP's
  GearmanClient wait on gearmand, see ``gearpy.worker.runtime``);
* a report that outruns ``timeout`` fails with ``TaskTimeout`` (``time.sleep`` yields to gevent, so
  the timeout can interrupt it; a CPU-bound loop could not — run such tasks with ``--processes``).

Under systemd: ``WORKER_MODULES=/opt/gearpy/examples/report_worker.py`` in
``/etc/default/gearpy-worker-atom1``, then ``systemctl enable --now gearpy-worker@atom1``.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from typing import Any

from gearpy.worker import Fail, JobContext, task

#: Where finished reports go (AtoM writes them under its downloads directory).
REPORT_DIR = os.environ.get("REPORT_DIR", tempfile.gettempdir())


@task(codec="json", timeout=300)
def generate_report(job: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Write a CSV listing of ``params["rows"]`` holdings of a repository; return where it is."""
    repository = str(params.get("repository") or "").strip()
    if not repository:
        # An expected, permanent failure: no point retrying, nothing exceptional to report.
        raise Fail("no repository given")
    rows = int(params.get("rows", 10))
    if rows < 0:
        raise ValueError(f"rows must be >= 0, not {rows}")
    delay = float(params.get("delay", 0.0))

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["reference", "title", "repository"])
    for i in range(rows):
        time.sleep(delay)  # stands in for a database query; yields to other jobs under gevent
        title = f"Item {i + 1}"
        if i and i % 50 == 0:
            job.warning(f"row {i}: title missing, using a placeholder")
        writer.writerow([f"{repository[:3].upper()}-{i + 1:05d}", title, repository])
        job.data({"row": i + 1, "title": title})
        job.progress(i + 1, rows)

    path = os.path.join(REPORT_DIR, f"report-{job.handle.replace(':', '_')}.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    return {"repository": repository, "rows": rows, "path": path}
