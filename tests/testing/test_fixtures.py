"""The pytest plugin's fixtures work together: a worker and a client on a live server."""

from __future__ import annotations

TASKS = """
from gearpy.worker import task

@task
def shout(job, payload):
    return payload.upper() + b"!"
"""


def test_gearpy_worker_and_client_fixtures(
    gearpy_server, gearpy_worker, gearpy_client, tmp_path, monkeypatch
):
    module = tmp_path / "fixture_tasks.py"
    module.write_text(TASKS)
    gearpy_worker(str(module))
    assert gearpy_client.submit("shout", b"hey").result(30) == b"HEY!"
