"""Stateful fuzzing of :class:`ServerCore`, without sockets (hypothesis ``RuleBasedStateMachine``).

Random interleavings of submits (foreground/background, all priorities, uniques with repeats,
empty and ``-``), registrations (with and without CAN_DO_TIMEOUT), grabs, PRE_SLEEP, completions,
failures, worker and client disconnects, admin ``cancel job`` and timer expiries. After every
step the invariants below must hold:

* no background job is lost: every handle acknowledged to a background submit is either ended by
  an event the model saw (completed, failed, cancelled, timed out, dropped after ``--job-retries``
  requeues) or still in ``core.jobs``;
* no job is held by two workers at once, and a queued job sits in exactly one queue, once;
* a waiting foreground client is never forgotten: it was told an outcome or its job still exists;
* ``status`` (the admin command, parsed) equals reality: per function, queued + running jobs in
  ``core.jobs``, running jobs, registrations;
* a connection is attached to a job once however often it submitted it, and both sides of that
  attachment agree; a function is registered once per connection however often CAN_DO came;
* the bytes counted against ``max_queued_bytes`` are exactly the footprints of the jobs held;
* a name with a control byte is refused (an ERROR) and never becomes a function.
"""

from __future__ import annotations

from collections import Counter, deque

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gearpy.protocol import Decoder, Packet, PacketType
from gearpy.server.core import ServerCore
from gearpy.server.jobs import footprint
from gearpy.server.state import Conn
from gearpy.server.store import MemoryStore, QueueStore

from support.schedulers import FakeScheduler

T = PacketType
FUNCS = [b"a", b"b"]
SUBMIT_KINDS = [
    T.SUBMIT_JOB,
    T.SUBMIT_JOB_BG,
    T.SUBMIT_JOB_HIGH,
    T.SUBMIT_JOB_HIGH_BG,
    T.SUBMIT_JOB_LOW,
    T.SUBMIT_JOB_LOW_BG,
]
BACKGROUND = {T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_LOW_BG}
JOB_RETRIES = 2


def _decode(data: bytes) -> list:
    dec = Decoder(max_packet_size=1 << 30)
    dec.feed(data)
    return list(dec.events())


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sched = FakeScheduler()
        self.store = self.make_store()
        self.core = ServerCore(
            scheduler=self.sched, store=self.store, handle_prefix=b"H:t", job_retries=JOB_RETRIES
        )
        self.next_id = 0
        self.clients = [self._new_conn() for _ in range(3)]
        self.workers = [self._new_conn() for _ in range(3)]
        self.admin = self._new_conn()
        self.accepted_bg: set[bytes] = set()
        self.ended: set[bytes] = set()  # handles the model saw end
        self.held: dict[bytes, int] = {}  # handle -> id of the worker conn holding it (model)
        self.attempts: Counter[bytes] = Counter()
        self.waiting: set[tuple[int, bytes]] = set()  # (client conn id, handle) awaiting an outcome
        self.cancelled: set[bytes] = set()
        self.expect: dict[int, deque[bool]] = {}  # client conn id -> submits awaiting a reply
        self.store_ids: dict[bytes, str] = {}  # handle -> store id given at its durable write

    def make_store(self) -> QueueStore:
        return MemoryStore()

    # ------------------------------------------------------------------ plumbing

    def _new_conn(self) -> Conn:
        self.next_id += 1
        conn = Conn(self.next_id)
        self.core.connect(conn)
        return conn

    def _send(self, conn: Conn, kind: int, *args: bytes) -> None:
        self.core.handle(conn, Packet(T(kind), args, True))
        self._pump()

    def _pump(self) -> list:
        """Drain every connection's output, updating the model; return the admin connection's events."""
        admin_events: list = []
        for conn in list(self.core.dirty):
            data = conn.take_output()
            self.core.dirty.discard(conn)
            for ev in _decode(data):
                if conn is self.admin:
                    admin_events.append(ev)
                    continue
                if not isinstance(ev, Packet):
                    continue
                if ev.kind in (T.JOB_ASSIGN, T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL):
                    handle = ev.args[0]
                    assert handle not in self.held, f"{handle!r} assigned to two workers"
                    assert handle not in self.ended, f"{handle!r} assigned after it ended"
                    self.held[handle] = conn.id
                    self.attempts[handle] += 1
                elif ev.kind in (T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION):
                    self.waiting.discard((conn.id, ev.args[0]))
                elif ev.kind in (T.JOB_CREATED, T.ERROR) and self.expect.get(conn.id):
                    self._submit_answered(conn, self.expect[conn.id].popleft(), ev)
        self.core.dirty.clear()
        return admin_events

    def _submit_answered(self, conn: Conn, background: bool, ev: Packet) -> None:
        if ev.kind == T.ERROR:
            assert background and self.store.durable, f"unexpected refusal {ev!r}"
            assert ev.args[0] == b"QUEUE_ERROR", ev
            return
        handle = ev.args[0]
        if not self.store.durable:  # (durable: replies wait behind a pending commit, job may be done)
            assert handle in self.core.jobs, f"JOB_CREATED for {handle!r}, which the server forgot"
        if background:
            self.accepted_bg.add(handle)
            job = self.core.jobs.get(handle)  # (may have run already: the ack came late)
            if self.store.durable and job is not None and not job.ignore:
                # acknowledged only once durable: its row is committed (P1)
                assert job.store_id in self.store.rows, f"{handle!r} acknowledged before its commit"
        else:
            self.waiting.add((conn.id, handle))

    def _awaiting_commit(self) -> set[bytes]:
        """Handles of jobs whose durable write is not committed yet (none for a memory store)."""
        pending = {job.store_id for job, _ in getattr(self.store, "pending", ())}
        return {h for h, sid in self.store_ids.items() if sid in pending and h in self.core.jobs}

    def _note_store_ids(self) -> None:
        for h, j in self.core.jobs.items():
            if j.store_id is not None and self.store_ids.get(h) != j.store_id:
                self.store_ids[h] = j.store_id

    def _placed(self) -> set[bytes]:
        placed = {j.handle for fn in self.core.functions.values() for q in fn.queues for j in q}
        return placed | {j.handle for c in self.core.conns.values() for j in c.jobs}

    def _job_ended(self, handle: bytes) -> None:
        self.ended.add(handle)
        self.held.pop(handle, None)

    # ------------------------------------------------------------------ rules

    @rule(
        c=st.integers(0, 2),
        fn=st.sampled_from(FUNCS),
        kind=st.sampled_from(SUBMIT_KINDS),
        unique=st.sampled_from([b"", b"", b"u1", b"u2", b"-"]),
        payload=st.sampled_from([b"", b"p", b"q"]),
    )
    def submit(self, c, fn, kind, unique, payload):
        conn = self.clients[c]
        self.expect.setdefault(conn.id, deque()).append(kind in BACKGROUND)
        self.core.handle(conn, Packet(kind, (fn, unique, payload), True))
        self._note_store_ids()
        self._pump()
        if not self.store.durable:
            assert not self.expect[conn.id], "a submit was not answered at once"

    @rule(w=st.integers(0, 2), fn=st.sampled_from(FUNCS), timeout=st.booleans())
    def can_do(self, w, fn, timeout):
        if timeout:
            self._send(self.workers[w], T.CAN_DO_TIMEOUT, fn, b"1000")
        else:
            self._send(self.workers[w], T.CAN_DO, fn)

    @rule(
        name=st.sampled_from([b"a\tb", b"x\n.\n", b"real\t0\t0\t0\nfake\t9\t9\t9", b"\x1b[2J"]),
        kind=st.sampled_from([T.SUBMIT_JOB, T.SUBMIT_JOB_BG, T.CAN_DO]),
    )
    def control_bytes_in_a_name(self, name, kind):
        conn = self._new_conn()  # (a client's replies may wait behind a durable commit)
        args = (name,) if kind == T.CAN_DO else (name, b"u1", b"p")
        self.core.handle(conn, Packet(kind, args, True))
        [reply] = _decode(conn.take_output())
        self.core.dirty.discard(conn)
        assert reply.kind == T.ERROR and reply.args[0] == b"INVALID_FUNCTION_NAME", reply
        assert name not in self.core.functions
        self.core.disconnect(conn)

    @rule(w=st.integers(0, 2), fn=st.sampled_from(FUNCS))
    def cant_do(self, w, fn):
        worker = self.workers[w]
        self._send(worker, T.CANT_DO, fn)
        self._after_requeue(worker, only=fn)

    @rule(w=st.integers(0, 2), kind=st.sampled_from([T.GRAB_JOB, T.GRAB_JOB_UNIQ, T.GRAB_JOB_ALL]))
    def grab(self, w, kind):
        self._send(self.workers[w], kind)

    @rule(w=st.integers(0, 2))
    def pre_sleep(self, w):
        self._send(self.workers[w], T.PRE_SLEEP)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), outcome=st.sampled_from([T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION]))
    def finish(self, data, outcome):
        handle = data.draw(st.sampled_from(sorted(self.held)))
        worker = next(w for w in self.workers if w.id == self.held[handle])
        args = (handle,) if outcome == T.WORK_FAIL else (handle, b"result")
        self._job_ended(handle)
        self._send(worker, outcome, *args)
        assert handle not in self.core.jobs

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def progress(self, data):
        handle = data.draw(st.sampled_from(sorted(self.held)))
        worker = next(w for w in self.workers if w.id == self.held[handle])
        self._send(worker, T.WORK_STATUS, handle, b"1", b"2")
        self._send(worker, T.WORK_DATA, handle, b"d")

    @rule(w=st.integers(0, 2))
    def late_result_from_wrong_worker(self, w):
        """A WORK_COMPLETE for a job this worker does not hold changes nothing."""
        worker = self.workers[w]
        for handle, wid in sorted(self.held.items()):
            if wid != worker.id:
                self._send(worker, T.WORK_COMPLETE, handle, b"stolen")
                assert handle in self.core.jobs and self.core.jobs[handle].worker is not worker
                return

    def _after_requeue(self, worker: Conn, only: bytes | None = None) -> None:
        """Jobs a worker lost go back to the queue, unless dropped for --job-retries or abandoned."""
        for handle, wid in list(self.held.items()):
            if wid != worker.id:
                continue
            job = self.core.jobs.get(handle)
            if only is not None and job is not None and job.function.name != only:
                continue
            if job is not None and job.worker is worker:
                continue  # still held (CANT_DO of another function)
            del self.held[handle]
            if job is None:
                # dropped: allowed only after --job-retries attempts, or for an abandoned job
                assert (
                    self.attempts[handle] >= JOB_RETRIES
                    or handle in self.cancelled
                    or handle not in self.accepted_bg
                ), f"{handle!r} vanished after {self.attempts[handle]} attempt(s)"
                self.ended.add(handle)

    @rule(w=st.integers(0, 2))
    def worker_disconnects(self, w):
        worker = self.workers[w]
        self.core.disconnect(worker)
        self._pump()
        self._after_requeue(worker)
        self.workers[w] = self._new_conn()

    @rule(c=st.integers(0, 2))
    def client_disconnects(self, c):
        client = self.clients[c]
        self.core.disconnect(client)
        self._pump()
        self.waiting = {(cid, h) for cid, h in self.waiting if cid != client.id}
        self.expect.pop(client.id, None)
        self.clients[c] = self._new_conn()

    @precondition(lambda self: self.core.jobs)
    @rule(data=st.data())
    def admin_cancel(self, data):
        handle = data.draw(st.sampled_from(sorted(self.core.jobs)))
        self.core.handle(self.admin, _decode(b"cancel job " + handle + b"\n")[0])
        events = self._pump()
        assert events and events[-1].line == b"OK", events
        self.cancelled.add(handle)
        self.ended.add(handle)
        # the worker may still hold it (it keeps running, result ignored)

    @precondition(lambda self: self.sched.active())
    @rule(data=st.data())
    def timer_fires(self, data):
        timer = data.draw(st.sampled_from(self.sched.active()))
        before = set(self.core.jobs)
        self.sched.fire(timer)
        self._pump()
        for handle in before - set(self.core.jobs):
            self._job_ended(handle)  # CAN_DO_TIMEOUT expiry fails the job

    # ------------------------------------------------------------------ invariants

    @invariant()
    def no_background_job_lost(self):
        lost = {h for h in self.accepted_bg if h not in self.ended and h not in self.core.jobs}
        assert not lost, f"background jobs lost: {sorted(lost)}"

    @invariant()
    def no_foreground_client_forgotten(self):
        # (a connection whose output waits behind a pending commit has its outcome queued, not lost)
        held_back = {c.id for c in self.clients if c.has_pending}
        forgotten = {(c, h) for c, h in self.waiting if h not in self.core.jobs and c not in held_back}
        assert not forgotten, f"clients never told the outcome of: {sorted(forgotten)}"

    @invariant()
    def each_job_in_one_place(self):
        seen: Counter[bytes] = Counter()
        for fn in self.core.functions.values():
            for q in fn.queues:
                for job in q:
                    seen[job.handle] += 1
                    assert job.worker is None, f"{job!r} queued while held by a worker"
        for conn in self.core.conns.values():
            for job in conn.jobs:
                seen[job.handle] += 1
                assert job.worker is conn
        dup = {h: n for h, n in seen.items() if n > 1}
        assert not dup, f"jobs in two places at once: {dup}"
        awaiting = self._awaiting_commit()
        for handle, job in self.core.jobs.items():
            if seen[handle] == 0 and handle in awaiting:
                continue  # a new background job is queued only once its commit succeeds
            assert seen[handle] == 1, f"{job!r} in core.jobs but neither queued nor running"
        # the model's view of who holds what matches the server's
        for handle, wid in self.held.items():
            job = self.core.jobs.get(handle)
            if job is not None:
                assert job.worker is not None and job.worker.id == wid

    @invariant()
    def attached_once_and_consistently(self):
        for job in self.core.jobs.values():
            for conn in job.clients:
                assert job in conn.waiting, f"{job!r} lists {conn!r}, which does not wait on it"
        for conn in self.core.conns.values():
            for job in conn.waiting:
                assert conn in job.clients, f"{conn!r} waits on {job!r}, which does not list it"
            fns = [a.function for a in conn.abilities]
            assert len(fns) == len(set(fns)) == len(conn.registered), f"{conn!r} registered twice"

    @invariant()
    def queued_bytes_are_the_jobs_footprints(self):
        assert self.core.book.queued_bytes == sum(footprint(j) for j in self.core.jobs.values())

    @invariant()
    def admin_status_matches_reality(self):
        self.core.handle(self.admin, _decode(b"status\n")[0])
        lines = self._pump()
        got = {}
        for ev in lines:
            if ev.line == b".":
                break
            name, total, running, workers = ev.line.split(b"\t")
            got[name] = (int(total), int(running), int(workers))
        want = {}
        unacked = self._awaiting_commit() - self._placed()
        for name, fn in self.core.functions.items():
            jobs = [j for j in self.core.jobs.values() if j.function is fn and j.handle not in unacked]
            regs = sum(1 for c in self.core.conns.values() for a in c.abilities if a.function is fn)
            want[name] = (len(jobs), sum(1 for j in jobs if j.worker is not None), regs)
        for name, counts in want.items():
            if counts != (0, 0, 0) or name in got:
                assert got.get(name) == counts, f"status {name!r}: says {got.get(name)}, reality {counts}"


class FakeDurableStore(QueueStore):
    """A durable store whose commits happen (or fail) when the test says so, in order of arrival.

    Like the real group-commit stores it applies operations in the order they were issued, so a
    ``remove`` of a row whose ``add`` is not committed yet means the row does not survive.
    """

    durable = True

    def __init__(self) -> None:
        self.rows: dict[str, object] = {}
        self.pending: list[tuple[object, object]] = []
        self.removed_early: set[str] = set()

    def replay(self):
        return []

    def add(self, job, on_durable) -> None:
        self.pending.append((job, on_durable))

    def remove(self, store_id: str) -> None:
        if store_id in self.rows:
            del self.rows[store_id]
        elif any(job.store_id == store_id for job, _ in self.pending):
            self.removed_early.add(store_id)

    def commit(self, i: int, ok: bool) -> None:
        job, on_durable = self.pending.pop(i)
        if ok:
            if job.store_id in self.removed_early:
                self.removed_early.discard(job.store_id)
            else:
                self.rows[job.store_id] = job
            on_durable(None)
        else:
            self.removed_early.discard(job.store_id)
            on_durable(RuntimeError("disk full"))


class DurableCoreMachine(CoreMachine):
    """The same machine over a durable store: acks wait for commits, and commits may fail (P1, P5)."""

    def make_store(self) -> QueueStore:
        return FakeDurableStore()

    @precondition(lambda self: self.store.pending)
    @rule(data=st.data(), ok=st.sampled_from([True, True, True, False]))
    def store_commits(self, data, ok):
        i = data.draw(st.integers(0, len(self.store.pending) - 1))
        self.store.commit(i, ok)
        self._pump()

    @invariant()
    def durable_rows_match_live_background_jobs(self):
        live = {j.store_id for j in self.core.jobs.values() if j.store_id is not None and not j.ignore}
        pending = {job.store_id for job, _ in self.store.pending}
        # every committed row belongs to a live job: nothing ended comes back after a restart
        leaked = set(self.store.rows) - live
        assert not leaked, f"rows of ended jobs left in the store: {sorted(leaked)}"
        # every acknowledged, live background job is in the store
        for handle in self.accepted_bg - self.ended:
            job = self.core.jobs.get(handle)
            if job is not None and not job.ignore:
                assert job.store_id in self.store.rows or job.store_id in pending, f"{job!r} has no row"


SETTINGS = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CoreMachine.TestCase.settings = SETTINGS
DurableCoreMachine.TestCase.settings = SETTINGS
# 200 random programs each: seconds, so outside the fast lane (the regressions below stay in it)
TestCoreFuzz = pytest.mark.slow(CoreMachine.TestCase)
TestDurableCoreFuzz = pytest.mark.slow(DurableCoreMachine.TestCase)


# ---------------------------------------------------------------------------- bugs found above


def _durable_core():
    store = FakeDurableStore()
    core = ServerCore(scheduler=FakeScheduler(), store=store, handle_prefix=b"H:t")
    conns = [Conn(i) for i in (1, 2)]
    for c in conns:
        core.connect(c)
    return core, store, conns


def _replies(conn: Conn) -> list:
    return [e for e in _decode(conn.take_output()) if isinstance(e, Packet)]


def test_second_background_submit_is_acknowledged_only_once_durable():
    core, store, (a, b) = _durable_core()
    core.handle(a, Packet(T.SUBMIT_JOB_BG, (b"f", b"u1", b"x"), True))
    core.handle(b, Packet(T.SUBMIT_JOB_BG, (b"f", b"u1", b"x"), True))
    assert _replies(b) == [], "JOB_CREATED before the job was committed"
    store.commit(0, ok=False)
    assert [p.kind for p in _replies(b)] == [T.ERROR]


def test_foreground_client_is_told_when_the_commit_it_waited_on_fails():
    core, store, (a, b) = _durable_core()
    core.handle(a, Packet(T.SUBMIT_JOB_BG, (b"f", b"u1", b"x"), True))
    core.handle(b, Packet(T.SUBMIT_JOB, (b"f", b"u1", b"x"), True))
    [created] = _replies(b)
    assert created.kind == T.JOB_CREATED
    store.commit(0, ok=False)
    assert created.args[0] not in core.jobs  # the job is gone...
    assert [p.kind for p in _replies(b)] == [T.WORK_FAIL]  # ...so its client must be told


def test_second_background_submit_is_acknowledged_by_the_same_commit():
    core, store, (a, b) = _durable_core()
    core.handle(a, Packet(T.SUBMIT_JOB_BG, (b"f", b"u1", b"x"), True))
    core.handle(b, Packet(T.SUBMIT_JOB_BG, (b"f", b"u1", b"x"), True))
    assert _replies(a) == [] and _replies(b) == []
    store.commit(0, ok=True)
    [ca], [cb] = _replies(a), _replies(b)
    assert ca.kind == cb.kind == T.JOB_CREATED and ca.args == cb.args
