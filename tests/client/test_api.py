"""The client API's contract (types, states, names) pinned against a live gearpy-server."""

from __future__ import annotations

import dataclasses
import re
import threading
import warnings

import pytest

import gearpy.client
from gearpy.client import Client, ClientConfig, JobState, StatusReply, UniqueStatusReply, submit
from gearpy.errors import GearpyError, JobFailed
from gearpy.protocol import PacketType

T = PacketType
TIMEOUT = 20.0


def test_background_job_is_submitted_not_complete(gearpy_server):
    with Client([gearpy_server.address]) as client:
        job = client.submit("nobody", b"x", background=True)
        assert job.state is JobState.SUBMITTED and job.state == "submitted" and str(job.state) == "submitted"
        assert job.state != "complete"
        assert job.done and job.exception() is None  # nothing more reaches this client
        with pytest.raises(GearpyError, match="a background job has no result"):
            job.result()
        st = job.status()
        assert isinstance(st, StatusReply) and st.known and not st.running and st.handle == job.handle


def test_foreground_states_and_str_enum(gearpy_server, raw_worker):
    release = threading.Event()

    def script(w, handle, payload):
        release.wait(10)
        w.send(T.WORK_COMPLETE, handle, payload.upper())

    raw_worker(gearpy_server, "slow_upper", script)
    with Client([gearpy_server.address]) as client:
        job = client.submit("slow_upper", b"abc")
        assert job.state is JobState.CREATED and not job.done
        release.set()
        assert job.result(TIMEOUT) == b"ABC"
        assert job.state is JobState.COMPLETE and job.done
    assert [s.value for s in JobState] == [
        "pending",
        "created",
        "submitted",
        "complete",
        "failed",
        "exception",
        "unknown",
        "error",
    ]


def test_submit_rule_result_or_handle(gearpy_server, raw_worker):
    raw_worker(gearpy_server, "rev", lambda w, h, p: w.send(T.WORK_COMPLETE, h, p[::-1]))
    servers = [gearpy_server.address]
    assert submit("rev", b"abc", servers=servers, timeout=TIMEOUT) == b"cba"
    handle = submit("rev", b"abc", background=True, servers=servers, timeout=TIMEOUT)
    assert isinstance(handle, str) and handle.startswith("H:")


def test_client_submit_has_explicit_keywords():
    with Client(["127.0.0.1:1"]) as client, pytest.raises(TypeError, match="bogus"):
        client.submit("f", b"x", bogus=1)  # type: ignore[call-arg]


def test_client_does_not_mutate_the_callers_config(gearpy_server):
    cfg = ClientConfig(servers=["127.0.0.1:1"], workers_key="site", timeout=3.0)
    before = dataclasses.asdict(cfg)
    with Client([gearpy_server.address], config=cfg, key="other", timeout=9.0, connect_timeout=2.0) as client:
        assert client.config is not cfg
        assert (client.config.servers, client.config.workers_key) == ([gearpy_server.address], "other")
        assert (client.config.timeout, client.config.connect_timeout) == (9.0, 2.0)
        assert client.submit("nobody", b"x", background=True).handle
    assert dataclasses.asdict(cfg) == before


def test_status_unique_reply(gearpy_server):
    with Client([gearpy_server.address]) as client:
        client.submit("nobody", b"x", background=True, unique="api-u1")
        st = client.status_unique("api-u1")
    assert isinstance(st, UniqueStatusReply) and st.known and st.unique == "api-u1"


def test_old_names_warn_and_still_work():
    with pytest.warns(DeprecationWarning, match="JobStatus is deprecated; use gearpy.client.StatusReply"):
        assert gearpy.client.JobStatus is StatusReply
    with pytest.warns(DeprecationWarning, match="UniqueStatus is deprecated"):
        from gearpy.client import UniqueStatus
    assert UniqueStatus is UniqueStatusReply
    with pytest.warns(DeprecationWarning, match="JobFail is deprecated; raise gearpy.worker.Fail"):
        from gearpy.worker import Fail, JobFail
    assert JobFail is Fail
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from gearpy.worker import Fail as _  # the kept name does not warn  # noqa: F401


def test_failed_job_state(gearpy_server, raw_worker):
    raw_worker(gearpy_server, "nope", lambda w, h, p: w.send(T.WORK_FAIL, h))
    with Client([gearpy_server.address]) as client:
        job = client.submit("nope", b"x")
        with pytest.raises(JobFailed):
            job.result(TIMEOUT)
        assert job.state is JobState.FAILED and isinstance(job.exception(), JobFailed)


TYPED = """
from gearpy.client import Client, submit

handle = submit("f", b"x", background=True)
result = submit("f", b"x")
flag: bool = bool(len("x"))
either = submit("f", b"x", background=flag)
reveal_type(handle)
reveal_type(result)
reveal_type(either)
with Client() as client:
    reveal_type(client.submit("f", priority="high"))
    client.submit("f", priority="urgent")
    client.submit_many([("f", b"x")], background=True)
    client.submit_many([("f", b"x")], nonsense=True)
"""


def test_submit_types_for_mypy(tmp_path):
    api = pytest.importorskip("mypy.api")
    path = tmp_path / "typed_use.py"
    path.write_text(TYPED)
    out, _, _ = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(path)])
    lines = [ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith(str(path))]
    assert re.fullmatch(r'note: Revealed type is "(builtins\.)?str"', lines[0]), out
    assert lines[1:3] == ['note: Revealed type is "Any"', 'note: Revealed type is "Any"'], out
    assert lines[3] == 'note: Revealed type is "gearpy.client.job.Job"', out
    assert any('Argument "priority" to "submit" of "Client" has incompatible type' in ln for ln in lines)
    assert any('Unexpected keyword argument "nonsense" for "submit_many" of "Client"' in ln for ln in lines)
    assert len([ln for ln in lines if ln.startswith("error:")]) == 2, out
