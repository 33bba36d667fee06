"""The same python-gearman program run with the real library (pygearman 0.2.6, the fork that runs on
Python 3.11) and with ``gearpy.compat.gearman`` observes the same things: states, results, status
dicts, admin replies. Run against gearpy-server and gearmand."""

from __future__ import annotations

import importlib
import threading

import pytest

from support.waits import wait_for_worker

pytestmark = [pytest.mark.interop, pytest.mark.slow]  # the real python-gearman


def scenario(mod, address: str, tag: str) -> dict:
    """An Archivematica-shaped session written against module ``mod`` (``gearman`` or the compat)."""

    class Encoder(mod.DataEncoder):
        @classmethod
        def encode(cls, obj):
            import json

            return json.dumps(obj)

        @classmethod
        def decode(cls, data):
            import json

            return json.loads(data)

    stop = threading.Event()

    class Worker(mod.GearmanWorker):
        data_encoder = Encoder

        def after_poll(self, any_activity):
            return not stop.is_set()

    def rev(worker, job):
        worker.send_job_status(job, 1, 2)
        return {"rev": job.data["s"][::-1], "task": job.task.decode(), "unique": job.unique.decode()}

    def fail(worker, job):
        raise RuntimeError("no")

    worker = Worker([address])
    worker.set_client_id(f"diff-{tag}".encode())
    worker.register_task(f"{tag}_rev".encode(), rev)
    worker.register_task(f"{tag}_fail".encode(), fail)
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.5}, daemon=True)
    thread.start()
    wait_for_worker(address, f"{tag}_fail")

    class Client(mod.GearmanClient):
        data_encoder = Encoder

    out: dict = {}
    client = Client([address])
    r = client.submit_job(f"{tag}_rev".encode(), {"s": "abc"}, unique=b"u-1", poll_timeout=30)
    out["foreground"] = (r.state, r.result, r.timed_out, r.complete, r.status["numerator"], r.status["known"])
    f = client.submit_job(f"{tag}_fail".encode(), {"s": ""}, poll_timeout=30)
    out["fail"] = (f.state, f.result, f.timed_out, f.complete)
    many = client.submit_multiple_jobs(
        [{"task": f"{tag}_rev".encode(), "data": {"s": str(i) * 2 + "x"}} for i in range(3)], poll_timeout=30
    )
    out["many"] = [(m.state, m.result["rev"]) for m in many]
    bg = client.submit_job(f"{tag}_nobody".encode(), {"s": "bg"}, background=True, poll_timeout=30)
    out["background"] = (bg.state, bg.complete, bg.timed_out)
    st = client.get_job_status(bg, poll_timeout=30)
    out["bg_status"] = {k: st.status[k] for k in ("known", "running", "numerator", "denominator")}
    late = client.submit_job(f"{tag}_nobody".encode(), {"s": "fg"}, poll_timeout=1.0)
    out["deadline"] = (late.state, late.timed_out, late.complete)
    pending = client.submit_job(f"{tag}_rev".encode(), {"s": "later"}, wait_until_complete=False)
    out["no_wait"] = pending.state in ("CREATED", "COMPLETE")
    client.wait_until_jobs_completed([pending], poll_timeout=30)
    out["waited"] = (pending.state, pending.result["rev"])
    admin = mod.GearmanAdminClient([address])
    out["status"] = sorted(
        (s["task"], s["queued"], s["workers"]) for s in admin.get_status() if s["task"].startswith(tag)
    )
    out["workers"] = sorted(
        (w["client_id"], tuple(sorted(w["tasks"])))
        for w in admin.get_workers()
        if w["client_id"] == f"diff-{tag}"
    )
    out["version"] = admin.get_version().split(" ")[0]
    stop.set()
    thread.join(15)
    client.shutdown()
    admin.shutdown()
    return out


@pytest.fixture
def pygearman():
    mod = pytest.importorskip("gearman")  # the test extra installs pygearman
    assert not hasattr(mod, "JSONDataEncoder")  # the real library, not ours
    return mod


def test_same_observations_as_pygearman(gearman_server, pygearman):
    compat = importlib.import_module("gearpy.compat.gearman")
    real = scenario(pygearman, gearman_server.address, "real")
    ours = scenario(compat, gearman_server.address, "ours")
    replace = {"real": "ours"}

    def renamed(value):
        text = repr(value)
        for a, b in replace.items():
            text = text.replace(a, b)
        return text

    assert real["foreground"][0] == "COMPLETE"
    for key in real:
        assert renamed(real[key]) == repr(ours[key]), key
