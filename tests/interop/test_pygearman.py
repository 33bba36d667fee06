"""Python's gearman library (pygearman 0.2.6, the python-gearman fork that runs on 3.11)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.interop

WORKER = r"""
import sys
import gearman

port, n = sys.argv[1], int(sys.argv[2])
done = []

class Worker(gearman.GearmanWorker):
    def after_poll(self, any_activity):
        return len(done) < n

def rev(worker, job):
    done.append(1)
    return job.data[::-1]

def progress(worker, job):
    worker.send_job_status(job, 1, 2)
    worker.send_job_data(job, b"partial")
    done.append(1)
    return b"done:" + job.data

w = Worker(["127.0.0.1:" + port])
w.register_task(b"py_rev", rev)  # this library wants names as bytes
w.register_task(b"py_progress", progress)
w.work(poll_timeout=0.2)
print("worked", len(done))
"""

CLIENT = r"""
import json, sys
import gearman

port = sys.argv[1]
c = gearman.GearmanClient(["127.0.0.1:" + port])
out = {}
def text(b):
    return b.decode() if isinstance(b, bytes) else b

r = c.submit_job(b"py_rev", b"hello", poll_timeout=20)
out["rev"] = [r.complete, text(r.result)]
p = c.submit_job(b"py_progress", b"x", poll_timeout=20)
out["progress"] = [p.complete, text(p.result), [text(d) for d in p.data_updates]]
b = c.submit_job(b"py_nobody", b"bg", background=True, wait_until_complete=False, unique=b"py-bg-1")
st = c.get_job_status(b, poll_timeout=20)
out["bg_status"] = [st.status["known"], st.status["running"]]
admin = gearman.GearmanAdminClient(["127.0.0.1:" + port])
out["admin"] = sorted(text(f["task"]) for f in admin.get_status())
print(json.dumps(out))
"""


def test_pygearman_client_worker_and_admin(gearman_server):
    pytest.importorskip("gearman", reason="pygearman is a test extra")
    port = str(gearman_server.port)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, port, "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out = subprocess.run([sys.executable, "-c", CLIENT, port], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["rev"] == [True, "olleh"]
        assert result["progress"][:2] == [True, "done:x"]
        assert result["progress"][2] == ["partial"]
        assert result["bg_status"] == [True, False]
        assert {"py_rev", "py_progress", "py_nobody"} <= set(result["admin"])
        wout, werr = worker.communicate(timeout=30)
        assert "worked 2" in wout, werr
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
