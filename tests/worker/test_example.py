"""examples/report_worker.py works as its docstring says, run by path with a workers key."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gearpy.client import Client
from gearpy.errors import JobException, JobFailed

from support.waits import wait_for_worker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "report_worker.py"
TIMEOUT = 30.0


@pytest.mark.slow
def test_report_worker(gearman_server, start_worker, tmp_path):
    start_worker(
        "-s",
        gearman_server.address,
        "--key",
        "atom1",
        "-c",
        "2",
        str(EXAMPLE),
        env={"REPORT_DIR": str(tmp_path)},
    )
    wait_for_worker(gearman_server, "atom1-generate_report")
    with Client([gearman_server.address], key="atom1", codec="json") as client:
        job = client.submit("generate_report", {"repository": "Archives of Ontario", "rows": 60})
        result = job.result(TIMEOUT)
        events = list(job.events(TIMEOUT))
        assert result["rows"] == 60
        with open(result["path"], newline="") as f:
            table = list(csv.reader(f))
        assert table[0] == ["reference", "title", "repository"] and len(table) == 61
        assert table[60][0] == "ARC-00060"
        progress = [(e.numerator, e.denominator) for e in events if e.kind == "progress"]
        assert progress[0] == (1, 60) and progress[-1] == (60, 60) and len(progress) == 60
        assert sum(e.kind == "data" for e in events) == 60
        assert [e.data for e in events if e.kind == "warning"] == [
            b"row 50: title missing, using a placeholder"
        ]

        with pytest.raises(JobFailed):
            client.submit("generate_report", {"repository": ""}).result(TIMEOUT)
        with pytest.raises(JobException) as exc:
            client.submit("generate_report", {"repository": "x", "rows": -1}).result(TIMEOUT)
        assert exc.value.payload == b"ValueError: rows must be >= 0, not -1"
