"""The worker's pieces without sockets: @task, outcomes, retries, timeouts, job context, loader."""

from __future__ import annotations

import sys

import gevent
import pytest

from gearpy.codecs import get_codec
from gearpy.errors import ConfigError
from gearpy.protocol import PacketType
from gearpy.worker import Fail, JobContext, JobFail, Task, TaskImportError, Worker, load_tasks, task
from gearpy.worker.loader import select_tasks
from gearpy.worker.tasks import SERVER_TIMEOUT_GRACE_MS

T = PacketType


def ctx(payload: bytes = b"", sent: list | None = None, codec: str = "raw") -> JobContext:
    def send(kind, *args):
        sent.append((kind, *args))

    return JobContext(
        handle=b"H:test:1",
        function="f",
        wire_function=b"f",
        unique=b"u1",
        payload=payload,
        send=send if sent is not None else None,
        codec=get_codec(codec),
    )


def test_task_defaults_and_options():
    @task
    def plain(job, payload):
        """Docs survive."""
        return payload

    assert isinstance(plain, Task)
    assert plain.name == "plain" and plain.codec.name == "raw" and plain.timeout is None
    assert plain.__doc__ == "Docs survive." and plain.__wrapped__ is not None
    assert plain(None, b"direct call") == b"direct call"

    @task(name="renamed", codec="json", timeout=2, retries=1)
    def other(job, payload):
        return payload

    assert (other.name, other.codec.name, other.timeout, other.retries) == ("renamed", "json", 2, 1)


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"timeout": -1}, {"retries": -1}, {"codec": "pickle"}, {"name": "a\0b"}]
)
def test_task_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError):
        task(**kwargs)(lambda job, payload: None)


def test_server_timeout_covers_every_attempt_plus_grace():
    one = task(timeout=1.5)(lambda j, p: None)
    assert one.server_timeout_ms == 1500 + SERVER_TIMEOUT_GRACE_MS
    three = task(timeout=2, retries=2, backoff=1, backoff_max=1.5)(lambda j, p: None)
    # 3 attempts of 2 s, pauses of at most 1 s and 1.5 s
    assert three.server_timeout_ms == 6000 + 2500 + SERVER_TIMEOUT_GRACE_MS
    assert task(lambda j, p: None).server_timeout_ms is None


def test_outcomes():
    assert task(lambda j, p: p.upper()).execute(ctx(b"abc")) == ("complete", b"ABC", "")
    assert task(codec="json")(lambda j, p: {"n": p["n"] + 1}).execute(ctx(b'{"n":1}')).data == b'{"n":2}'

    def refuse(job, payload):
        raise Fail("no")

    assert task(refuse).execute(ctx()) == ("fail", b"", "no")
    assert Fail is JobFail

    def boom(job, payload):
        raise KeyError("k")

    out = task(boom).execute(ctx())
    assert out.kind == "exception" and out.data == b"KeyError: 'k'"


def test_codec_errors_are_exceptions_not_crashes():
    out = task(codec="json")(lambda j, p: p).execute(ctx(b"{not json"))
    assert out.kind == "exception" and out.data.startswith(b"JSONDecodeError")
    out = task(lambda j, p: 42).execute(ctx())  # raw codec cannot encode an int
    assert out.kind == "exception" and out.data.startswith(b"TypeError")


def test_retries_then_success_and_fail_is_not_retried():
    calls = []

    def flaky(job, payload):
        calls.append(job.attempt)
        if job.attempt < 2:
            raise RuntimeError("again")
        return b"ok"

    assert task(retries=3, backoff=0.001)(flaky).execute(ctx()).kind == "complete"
    assert calls == [0, 1, 2]

    calls.clear()

    def refuse(job, payload):
        calls.append(job.attempt)
        raise Fail()

    assert task(retries=3, backoff=0.001)(refuse).execute(ctx()).kind == "fail"
    assert calls == [0]

    calls.clear()

    def always(job, payload):
        calls.append(job.attempt)
        raise RuntimeError(f"attempt {job.attempt}")

    out = task(retries=2, backoff=0.001)(always).execute(ctx())
    assert calls == [0, 1, 2] and out.data == b"RuntimeError: attempt 2"


def test_retry_delay_has_jitter_and_cap():
    t = task(backoff=1.0, backoff_max=4.0)(lambda j, p: None)
    delays = [t.retry_delay(5) for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 1
    assert 0.5 <= t.retry_delay(0) <= 1.0


def test_timeout_fails_a_cooperative_task_and_cannot_be_swallowed():
    def swallow(job, payload):
        try:
            gevent.sleep(10)
        except Exception:  # gevent.Timeout is a BaseException: this does not catch it
            return b"swallowed"
        return b"late"

    out = task(timeout=0.05)(swallow).execute(ctx())
    assert out.kind == "exception"
    assert out.data == b"TaskTimeout: task 'swallow' exceeded its timeout of 0.05 s"


def test_job_context_sends_updates():
    sent: list = []
    job = ctx(sent=sent, codec="json")
    job.progress(3, 10)
    job.data({"a": 1})
    job.warning("hot")
    assert sent == [
        (T.WORK_STATUS, b"H:test:1", b"3", b"10"),
        (T.WORK_DATA, b"H:test:1", b'{"a":1}'),
        (T.WORK_WARNING, b"H:test:1", b"hot"),
    ]
    assert (job.handle, job.unique, job.function) == ("H:test:1", "u1", "f")
    ctx().progress(1, 2)  # a context with nowhere to send is a no-op (unit tests of tasks)


def test_worker_applies_the_key_once():
    t = task(lambda j, p: p)
    t2 = task(name="other")(lambda j, p: p)
    assert set(Worker([t, t2], key="site1").tasks) == {b"site1-<lambda>", b"site1-other"}
    assert set(Worker([t2]).tasks) == {b"other"}


def test_loader(tmp_path, monkeypatch):
    (tmp_path / "mods_a.py").write_text(
        "from gearpy.worker import task\n"
        "@task\ndef one(job, p): return p\n"
        "@task\ndef two(job, p): return p\n"
        "BOTH = [one, two]\n"
        "NOT_TASKS = [1, 2]\n"
    )
    (tmp_path / "mods_b.py").write_text(
        "from gearpy.worker import task\n"
        "from mods_a import one\n"
        "@task(name='one')\ndef clash(job, p): return p\n"
    )
    (tmp_path / "mods_c.py").write_text("from mods_a import one, two\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in ("mods_a", "mods_b", "mods_c"):
        sys.modules.pop(m, None)
    assert [t.name for t in load_tasks(["mods_a"])] == ["one", "two"]
    assert [t.name for t in load_tasks(["mods_a:one"])] == ["one"]
    assert [t.name for t in load_tasks(["mods_a:BOTH", "mods_c"])] == ["one", "two"]  # same objects once
    assert [t.name for t in load_tasks([str(tmp_path / "mods_a.py")])] == ["one", "two"]
    with pytest.raises(TaskImportError, match="is not a @task"):
        load_tasks(["mods_a:NOT_TASKS"])
    with pytest.raises(TaskImportError, match="two different tasks are named 'one'"):
        load_tasks(["mods_a", "mods_b"])
    tasks = load_tasks(["mods_a"])
    assert [t.name for t in select_tasks(tasks, ["two"])] == ["two"]
    with pytest.raises(TaskImportError, match="no task named 'three'"):
        select_tasks(tasks, ["three"])


def test_a_grab_interrupted_inside_a_hook_gives_its_slot_back():
    """link.interrupt() may kill the grab while a hook's before_grab waits: GreenletExit is a
    BaseException; the slot must come back and hooks that allowed the grab hear after_grab(False)."""
    from gearpy.worker import Hook

    calls: list[tuple[str, object]] = []

    class Allows(Hook):
        def before_grab(self, worker):
            calls.append(("before", "allows"))
            return True

        def after_grab(self, worker, assigned):
            calls.append(("after", assigned))

    class Waits(Hook):
        def before_grab(self, worker):
            gevent.sleep(30)
            return True

    w = Worker([task(lambda j, p: p)], concurrency=1, hooks=[Allows(), Waits()])
    g = gevent.spawn(w.acquire_grab)
    gevent.sleep(0.05)
    g.kill()
    assert calls == [("before", "allows"), ("after", False)]
    assert w.slots.acquire(timeout=1), "the concurrency slot was never released"
