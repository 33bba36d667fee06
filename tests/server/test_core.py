"""ServerCore semantics without sockets: Conn objects in, decoded replies out.

Every test drives :class:`ServerCore` the way the gevent layer does (``handle(conn, event)``) and
decodes what the core queued on each connection. Timers and the clock are fakes, so timeouts and
epoch jobs are tested by firing timers and moving the clock, never by sleeping.
"""

from __future__ import annotations

import os

import pytest

from gearpy.protocol import AdminCommand, Decoder, Packet, PacketType, split_admin_line
from gearpy.server.core import CloseConnection, ServerCore
from gearpy.server.state import Conn

from support.schedulers import Clock, FakeScheduler

T = PacketType
H = b"H:test:"


class World:
    """A core plus helpers to talk to it."""

    def __init__(self, **kw):
        self.sched = FakeScheduler()
        self.clock = Clock()
        kw.setdefault("handle_prefix", b"H:test")
        self.core = ServerCore(scheduler=self.sched, clock=self.clock, version="9.9.9", **kw)
        self._ids = 0

    def conn(self) -> Conn:
        self._ids += 1
        c = Conn(self._ids, fd=100 + self._ids)
        self.core.connect(c)
        return c

    def send(self, conn: Conn, kind: int, *args: bytes, request: bool = True) -> list[Packet]:
        self.core.handle(conn, Packet(T(kind), tuple(args), request))
        return self.out(conn)

    def admin(self, conn: Conn, line: bytes, crlf: bool = True) -> bytes:
        self.core.handle(conn, AdminCommand(line, split_admin_line(line), crlf))
        return conn.take_output()

    def out(self, conn: Conn) -> list[Packet]:
        d = Decoder()
        d.feed(conn.take_output())
        events = list(d.events())
        assert d.buffered == 0
        return events

    def submit(self, conn: Conn, name: bytes, unique: bytes = b"", data: bytes = b"x", kind=T.SUBMIT_JOB):
        [p] = self.send(conn, kind, name, unique, data)
        assert p.kind == T.JOB_CREATED, p
        return p.args[0]

    def worker(self, *names: bytes) -> Conn:
        w = self.conn()
        for n in names:
            assert self.send(w, T.CAN_DO, n) == []
        return w

    def grab(self, w: Conn, kind=T.GRAB_JOB) -> Packet:
        [p] = self.send(w, kind)
        return p

    def status(self) -> bytes:
        c = self.conn()
        out = self.admin(c, b"status")
        self.core.disconnect(c)
        return out


def pk(kind, *args, request=False) -> Packet:
    return Packet(T(kind), tuple(args), request)


@pytest.fixture
def w():
    return World()


# ---------------------------------------------------------------- submit and handles


def test_handles_count_from_one_and_all_submit_types_reply_job_created(w):
    c = w.conn()
    handles = [
        w.submit(c, b"f", kind=k)
        for k in (
            T.SUBMIT_JOB,
            T.SUBMIT_JOB_BG,
            T.SUBMIT_JOB_HIGH,
            T.SUBMIT_JOB_HIGH_BG,
            T.SUBMIT_JOB_LOW,
            T.SUBMIT_JOB_LOW_BG,
        )
    ]
    [p] = w.send(c, T.SUBMIT_JOB_EPOCH, b"f", b"", b"0", b"x")
    handles.append(p.args[0])
    [p] = w.send(c, T.SUBMIT_REDUCE_JOB, b"f", b"", b"red", b"", b"x")
    handles.append(p.args[0])
    [p] = w.send(c, T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"", b"red", b"", b"x")
    handles.append(p.args[0])
    assert handles == [H + str(i).encode() for i in range(1, 10)]
    assert w.admin(c, b"prioritystatus") == b"f\t2\t5\t2\t0\n.\n"
    # background ones are "queued" in show jobs' 4th column
    jobs = dict(line.split(b"\t", 1) for line in w.admin(c, b"show jobs").splitlines()[:-1])
    assert [jobs[h].split(b"\t")[2] for h in handles] == [
        b"0",
        b"1",
        b"0",
        b"1",
        b"0",
        b"1",
        b"1",
        b"0",
        b"1",
    ]


def test_unique_too_large_and_reducer_too_large(w):
    c = w.conn()
    assert w.send(c, T.SUBMIT_JOB, b"f", b"u" * 65, b"x") == [
        pk(T.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large")
    ]
    assert w.send(c, T.SUBMIT_REDUCE_JOB, b"f", b"u", b"r" * 65, b"", b"x") == [
        pk(T.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large")
    ]
    assert w.submit(c, b"f", b"u" * 64) == H + b"1"
    assert w.status() == b"f\t1\t0\t0\n.\n"


def test_sched_and_response_only_types_are_not_expected(w):
    c = w.conn()
    err = pk(T.ERROR, b"INVALID_COMMAND", b"Command not expected")
    assert w.send(c, T.SUBMIT_JOB_SCHED, b"f", b"", b"1", b"2", b"3", b"4", b"5", b"x") == [err]
    for kind in (T.NOOP, T.NO_JOB, T.ECHO_RES, T.ALL_YOURS, T.UNUSED, T.ERROR, T.OPTION_RES):
        args = tuple(b"" for _ in range({T.ERROR: 2, T.OPTION_RES: 1, T.ECHO_RES: 1}.get(kind, 0)))
        assert w.send(c, kind, *args) == [err], kind
    # \0RES magic on a valid type: consumed, INVALID_MAGIC
    assert w.send(c, T.ECHO_REQ, b"x", request=False) == [
        pk(T.ERROR, b"INVALID_MAGIC", b"Request magic expected")
    ]
    assert w.status() == b".\n"


def test_echo_option_and_client_id(w):
    c = w.conn()
    assert w.send(c, T.ECHO_REQ, b"a\x00b") == [pk(T.ECHO_RES, b"a\x00b")]
    assert w.send(c, T.OPTION_REQ, b"ExCePtIoNs") == [pk(T.OPTION_RES, b"ExCePtIoNs")]
    assert c.exceptions
    assert w.send(c, T.OPTION_REQ, b"bogus") == [
        pk(T.ERROR, b"UNKNOWN_OPTION", b"Server does not recognize given option")
    ]
    assert w.send(c, T.SET_CLIENT_ID, b"i" * 200) == []
    assert w.admin(c, b"workers") == b"101 127.0.0.1 " + b"i" * 127 + b" :\n.\n"


# ---------------------------------------------------------------- coalescing


def test_coalescing_same_unique_same_function(w):
    c1, c2, c3 = w.conn(), w.conn(), w.conn()
    h = w.submit(c1, b"f", b"u", b"one")
    assert w.submit(c2, b"f", b"u", b"two", kind=T.SUBMIT_JOB_HIGH) == h  # any priority
    assert w.submit(c3, b"f", b"u", b"three", kind=T.SUBMIT_JOB_BG) == h  # and background
    assert w.submit(c3, b"g", b"u") != h  # same unique, other function: another job
    assert sorted(w.status().splitlines()) == [b".", b"f\t1\t0\t0", b"g\t1\t0\t0"]
    wk = w.worker(b"f")
    p = w.grab(wk, T.GRAB_JOB_UNIQ)
    assert p == pk(T.JOB_ASSIGN_UNIQ, h, b"f", b"u", b"one")  # first payload kept
    w.send(wk, T.WORK_COMPLETE, h, b"res")
    done = pk(T.WORK_COMPLETE, h, b"res")
    assert w.out(c1) == [done] and w.out(c2) == [done]
    assert w.out(c3) == []  # the background submitter is not attached


def test_dash_unique_coalesces_on_payload(w):
    c = w.conn()
    h1 = w.submit(c, b"f", b"-", b"payload")
    assert w.submit(c, b"f", b"-", b"payload") == h1
    assert w.submit(c, b"f", b"-", b"other") != h1
    assert w.submit(c, b"g", b"-", b"payload") != h1
    e1 = w.submit(c, b"f", b"-", b"")
    assert w.submit(c, b"f", b"-", b"") != e1  # empty payload never coalesces
    # "-" jobs are not found by GET_STATUS_UNIQUE
    assert w.send(c, T.GET_STATUS_UNIQUE, b"-") == [
        pk(T.STATUS_RES_UNIQUE, b"-", b"0", b"0", b"0", b"0", b"0")
    ]


def test_empty_unique_never_coalesces(w):
    c = w.conn()
    hs = {w.submit(c, b"f", b"", b"same") for _ in range(3)}
    assert len(hs) == 3


def test_same_connection_twice_gets_every_packet_twice(w):
    c = w.conn()
    h = w.submit(c, b"f", b"u")
    assert w.submit(c, b"f", b"u") == h
    assert w.send(c, T.GET_STATUS_UNIQUE, b"u") == [
        pk(T.STATUS_RES_UNIQUE, b"u", b"1", b"0", b"0", b"0", b"2")
    ]
    wk = w.worker(b"f")
    w.grab(wk)
    w.send(wk, T.WORK_DATA, h, b"d")
    assert w.out(c) == [pk(T.WORK_DATA, h, b"d")] * 2


def test_unique_free_again_after_job_ends(w):
    c = w.conn()
    h = w.submit(c, b"f", b"u")
    wk = w.worker(b"f")
    w.grab(wk)
    w.send(wk, T.WORK_COMPLETE, h, b"")
    w.out(c)
    assert w.submit(c, b"f", b"u") != h


# ---------------------------------------------------------------- selection


def test_priority_within_one_function(w):
    c = w.conn()
    low = w.submit(c, b"f", kind=T.SUBMIT_JOB_LOW)
    norm = w.submit(c, b"f")
    high = w.submit(c, b"f", kind=T.SUBMIT_JOB_HIGH)
    wk = w.worker(b"f")
    assert [w.grab(wk).args[0] for _ in range(3)] == [high, norm, low]
    assert w.grab(wk) == pk(T.NO_JOB)


def test_priority_across_functions_gearmand_2_0(w):
    # gearmand 1.1 would serve b (newest registration) first, LOW before a's HIGH.
    c = w.conn()
    b_low = w.submit(c, b"b", kind=T.SUBMIT_JOB_LOW)
    a_high = w.submit(c, b"a", kind=T.SUBMIT_JOB_HIGH)
    b_norm = w.submit(c, b"b")
    wk = w.worker(b"a", b"b")
    assert [w.grab(wk).args[0] for _ in range(3)] == [a_high, b_norm, b_low]


def test_round_robin_between_functions(w):
    c = w.conn()
    a = [w.submit(c, b"a") for _ in range(3)]
    b = [w.submit(c, b"b") for _ in range(3)]
    wk = w.worker(b"a", b"b")  # b registered last: tried first
    got = [w.grab(wk).args[0] for _ in range(6)]
    assert got == [b[0], a[0], b[1], a[1], b[2], a[2]]


def test_fifo_within_priority_and_grab_without_abilities(w):
    c = w.conn()
    hs = [w.submit(c, b"f") for _ in range(4)]
    assert w.grab(w.conn()) == pk(T.NO_JOB)
    wk = w.worker(b"f")
    assert [w.grab(wk).args[0] for _ in range(4)] == hs


def test_grab_variants(w):
    c = w.conn()
    h1 = w.submit(c, b"f", b"u1", b"d1")
    [p] = w.send(c, T.SUBMIT_REDUCE_JOB, b"f", b"u2", b"red", b"", b"d2")
    h2 = p.args[0]
    h3 = w.submit(c, b"f", b"", b"d3")
    [p] = w.send(c, T.SUBMIT_REDUCE_JOB, b"f", b"u4", b"red4", b"", b"d4")
    h4 = p.args[0]
    wk = w.worker(b"f")
    assert w.grab(wk, T.GRAB_JOB_ALL) == pk(T.JOB_ASSIGN_UNIQ, h1, b"f", b"u1", b"d1")
    assert w.grab(wk, T.GRAB_JOB_ALL) == pk(T.JOB_ASSIGN_ALL, h2, b"f", b"u2", b"red", b"d2")
    assert w.grab(wk, T.GRAB_JOB_UNIQ) == pk(T.JOB_ASSIGN_UNIQ, h3, b"f", b"", b"d3")
    assert w.grab(wk, T.GRAB_JOB) == pk(T.JOB_ASSIGN, h4, b"f", b"d4")  # reducer not shown


# ---------------------------------------------------------------- sleep / wake


def test_pre_sleep_with_work_gets_immediate_noop(w):
    c = w.conn()
    w.submit(c, b"f")
    wk = w.worker(b"f")
    assert w.send(wk, T.PRE_SLEEP) == [pk(T.NOOP)]


def test_pre_sleep_then_submit_wakes_once(w):
    c = w.conn()
    wk = w.worker(b"f")
    other = w.worker(b"g")
    busy = w.worker(b"f")  # never sleeps: never NOOPed
    assert w.send(wk, T.PRE_SLEEP) == []
    assert w.send(other, T.PRE_SLEEP) == []
    w.submit(c, b"f")
    assert w.out(wk) == [pk(T.NOOP)]
    w.submit(c, b"f")
    assert w.out(wk) == []  # at most one NOOP until it grabs
    assert w.out(other) == [] and w.out(busy) == []
    w.grab(wk)
    w.submit(c, b"f")
    assert w.out(wk) == []  # awake (not sleeping) after GRAB
    assert w.send(wk, T.PRE_SLEEP) == [pk(T.NOOP)]  # work is still queued


def test_can_do_while_sleeping_registers_for_wakeup(w):
    c = w.conn()
    wk = w.worker(b"f")
    w.send(wk, T.PRE_SLEEP)
    w.send(wk, T.CAN_DO, b"g")
    w.submit(c, b"g")
    assert w.out(wk) == [pk(T.NOOP)]


def test_worker_wakeup_one_rotates():
    w = World(worker_wakeup=1)
    c = w.conn()
    workers = [w.worker(b"f") for _ in range(3)]
    for wk in workers:
        assert w.send(wk, T.PRE_SLEEP) == []
    woken = []
    for _ in range(3):
        w.submit(c, b"f")
        got = [i for i, wk in enumerate(workers) if w.out(wk) == [pk(T.NOOP)]]
        assert len(got) == 1
        woken.append(got[0])
    assert sorted(woken) == [0, 1, 2]


def test_worker_wakeup_zero_wakes_all(w):
    c = w.conn()
    workers = [w.worker(b"f") for _ in range(3)]
    for wk in workers:
        w.send(wk, T.PRE_SLEEP)
    w.submit(c, b"f")
    assert [w.out(wk) for wk in workers] == [[pk(T.NOOP)]] * 3


# ---------------------------------------------------------------- requeue and retries


def _show_jobs(w, c) -> dict[bytes, list[bytes]]:
    lines = w.admin(c, b"show jobs").splitlines()
    assert lines[-1] == b"."
    return {ln.split(b"\t")[0]: ln.split(b"\t")[1:] for ln in lines[:-1]}


def test_worker_disconnect_requeues_and_counts_retry(w):
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.worker(b"f")
    w.send(wk, T.WORK_STATUS, b"nope", b"1", b"2")  # not ours: error, ignored
    w.grab(wk)
    w.send(wk, T.WORK_STATUS, h, b"1", b"2")
    assert w.out(c) == [pk(T.WORK_STATUS, h, b"1", b"2")]
    sleeper = w.worker(b"f")
    w.send(sleeper, T.PRE_SLEEP)
    w.core.disconnect(wk)
    assert w.out(c) == []  # clients are not told
    assert w.out(sleeper) == [pk(T.NOOP)]
    assert _show_jobs(w, c)[h] == [b"1", b"0", b"0"]
    assert w.send(c, T.GET_STATUS, h) == [pk(T.STATUS_RES, h, b"1", b"0", b"0", b"0")]  # progress reset
    assert w.grab(sleeper).args[0] == h
    assert w.status() == b"f\t1\t1\t1\n.\n"


def test_requeue_goes_to_tail_in_reverse_grab_order(w):
    c = w.conn()
    h1, h2, h3 = (w.submit(c, b"f") for _ in range(3))
    wk = w.worker(b"f")
    w.grab(wk)
    w.grab(wk)
    w.core.disconnect(wk)
    wk2 = w.worker(b"f")
    assert [w.grab(wk2).args[0] for _ in range(3)] == [h3, h2, h1]


@pytest.mark.parametrize("how", ["cant_do", "reset"])
def test_cant_do_and_reset_requeue(w, how):
    c = w.conn()
    h = w.submit(c, b"f")
    g = w.submit(c, b"g")
    wk = w.worker(b"f", b"g")
    got = {w.grab(wk).args[0], w.grab(wk).args[0]}
    assert got == {h, g}
    if how == "cant_do":
        w.send(wk, T.CANT_DO, b"f")
        assert sorted(w.status().splitlines()) == [b".", b"f\t1\t0\t0", b"g\t1\t1\t1"]
        assert w.send(wk, T.WORK_COMPLETE, g, b"ok") == []  # g is still held
        assert w.out(c) == [pk(T.WORK_COMPLETE, g, b"ok")]
    else:
        w.send(wk, T.RESET_ABILITIES)
        assert w.send(wk, T.GRAB_JOB) == [pk(T.NO_JOB)]
    assert w.send(wk, T.WORK_COMPLETE, h, b"late") == [
        pk(T.ERROR, b"JOB_NOT_FOUND", b"Job given in work result not found")
    ]
    assert _show_jobs(w, c)[h][0] == b"1"


def test_job_retries_drop_tells_clients():
    w = World(job_retries=2)
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.worker(b"f")
    w.grab(wk)
    w.core.disconnect(wk)
    assert w.out(c) == []
    wk = w.worker(b"f")
    assert w.grab(wk).args[0] == h
    w.core.disconnect(wk)
    assert w.out(c) == [pk(T.WORK_FAIL, h)]
    assert w.status() == b"f\t0\t0\t0\n.\n"
    assert w.send(c, T.GET_STATUS, h) == [pk(T.STATUS_RES, h, b"0", b"0", b"0", b"0")]


def test_job_retries_zero_is_unlimited(w):
    c = w.conn()
    h = w.submit(c, b"f")
    for _ in range(5):
        wk = w.worker(b"f")
        assert w.grab(wk).args[0] == h
        w.core.disconnect(wk)
    assert _show_jobs(w, c)[h][0] == b"5"
    assert w.out(c) == []


# ---------------------------------------------------------------- CAN_DO_TIMEOUT


def test_can_do_timeout_fails_the_job(w):
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.conn()
    w.send(wk, T.CAN_DO_TIMEOUT, b"f", b"500")
    assert w.grab(wk).args[0] == h
    [timer] = w.sched.active()
    assert timer.delay == 1.0  # 1..999 ms raised to one second
    w.sched.fire(timer)
    assert w.out(c) == [pk(T.WORK_FAIL, h)]
    assert w.out(wk) == []  # the worker is not told
    assert w.status() == b"f\t0\t0\t1\n.\n"
    # The worker's late packets are dropped (gearmand answers ERROR JOB_NOT_FOUND, which kills
    # Perl's Gearman::Worker); a handle this worker never held still gets that ERROR.
    assert w.send(wk, T.WORK_STATUS, h, b"1", b"2") == []
    assert w.send(wk, T.WORK_DATA, h, b"partial") == []
    assert w.send(wk, T.WORK_COMPLETE, h, b"late") == []
    assert w.out(c) == []
    assert w.send(wk, T.WORK_COMPLETE, H + b"999", b"x") == [
        pk(T.ERROR, b"JOB_NOT_FOUND", b"Job given in work result not found")
    ]
    # After the terminal packet the handle is forgotten: a second WORK_COMPLETE is an error again.
    assert w.send(wk, T.WORK_COMPLETE, h, b"again") == [
        pk(T.ERROR, b"JOB_NOT_FOUND", b"Job given in work result not found")
    ]


class LateCounter:
    def __init__(self):
        self.late: list[T] = []

    def job_submitted(self, job): ...
    def job_started(self, job): ...
    def job_finished(self, job, outcome): ...

    def late_result(self, kind):
        self.late.append(kind)


def _grabbed_with_timeout(w, value: bytes):
    """A client's job grabbed by a worker registered with CAN_DO_TIMEOUT ``value``."""
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.conn()
    w.send(wk, T.CAN_DO_TIMEOUT, b"f", value)
    w.grab(wk)
    [timer] = w.sched.active()
    return c, wk, h, timer


def test_late_results_are_counted_and_logged_once(caplog):
    obs = LateCounter()
    w = World(observer=obs)
    c, wk, h, timer = _grabbed_with_timeout(w, b"1000")
    w.sched.fire(timer)
    w.out(c)
    caplog.clear()
    assert w.send(wk, T.WORK_EXCEPTION, h, b"boom") == []
    assert w.send(wk, T.WORK_FAIL, h) == []
    assert obs.late == [T.WORK_EXCEPTION, T.WORK_FAIL]
    dropped = [r for r in caplog.records if "already timed out" in r.getMessage()]
    assert len(dropped) == 1 and h.decode() in dropped[0].getMessage()
    assert w.out(c) == []


def test_can_do_timeout_in_seconds():
    _, _, _, timer = _grabbed_with_timeout(World(can_do_timeout_unit="s"), b"3")
    assert timer.delay == 3.0
    with pytest.raises(ValueError):
        World(can_do_timeout_unit="minutes")


def test_can_do_timeout_cancelled_on_completion(w):
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.conn()
    w.send(wk, T.CAN_DO_TIMEOUT, b"f", b"2500")
    w.grab(wk)
    [timer] = w.sched.active()
    assert timer.delay == 2.5
    w.send(wk, T.WORK_COMPLETE, h, b"ok")
    assert w.sched.active() == []
    assert w.out(c) == [pk(T.WORK_COMPLETE, h, b"ok")]


def test_can_do_timeout_zero_or_garbage_means_none(w):
    c = w.conn()
    w.submit(c, b"f")
    wk = w.conn()
    w.send(wk, T.CAN_DO_TIMEOUT, b"f", b"abc")
    w.grab(wk)
    assert w.sched.active() == []
    with pytest.raises(CloseConnection):
        w.send(wk, T.CAN_DO_TIMEOUT, b"f", b"1" * 21)


# ---------------------------------------------------------------- epoch jobs


def test_epoch_job_waits_then_timer_wakes_worker(w):
    c = w.conn()
    due = int(w.clock.now) + 100
    [p] = w.send(c, T.SUBMIT_JOB_EPOCH, b"f", b"", str(due).encode(), b"later")
    h = p.args[0]
    assert w.admin(c, b"prioritystatus") == b"f\t0\t1\t0\t0\n.\n"
    assert w.status() == b"f\t1\t0\t0\n.\n"
    wk = w.worker(b"f")
    assert w.grab(wk) == pk(T.NO_JOB)
    assert w.send(wk, T.PRE_SLEEP) == []  # not-yet-due jobs do not count
    [timer] = w.sched.active()
    w.clock.now = due + 0.5
    w.sched.fire(timer)
    assert w.out(wk) == [pk(T.NOOP)]
    assert w.grab(wk) == pk(T.JOB_ASSIGN, h, b"f", b"later")


def test_epoch_in_past_or_garbage_runs_now(w):
    c = w.conn()
    [p1] = w.send(c, T.SUBMIT_JOB_EPOCH, b"f", b"", b"12345", b"a")
    [p2] = w.send(c, T.SUBMIT_JOB_EPOCH, b"f", b"", b"soon", b"b")
    wk = w.worker(b"f")
    assert w.grab(wk).args[0] == p1.args[0]
    assert w.grab(wk).args[0] == p2.args[0]


def test_due_epoch_job_found_by_polling_grab(w):
    c = w.conn()
    due = int(w.clock.now) + 10
    [p] = w.send(c, T.SUBMIT_JOB_EPOCH, b"f", b"", str(due).encode(), b"a")
    low = w.submit(c, b"f", kind=T.SUBMIT_JOB_LOW)
    wk = w.worker(b"f")
    assert w.grab(wk).args[0] == low  # LOW is not starved behind a future NORMAL epoch job
    w.clock.now = due
    assert w.grab(wk).args[0] == p.args[0]


# ---------------------------------------------------------------- results and exceptions


def test_work_forwarding_to_all_clients(w):
    c1, c2 = w.conn(), w.conn()
    h = w.submit(c1, b"f", b"u")
    w.submit(c2, b"f", b"u")
    wk = w.worker(b"f")
    w.grab(wk)
    for kind, args in [
        (T.WORK_STATUS, (h, b"1", b"3")),
        (T.WORK_DATA, (h, b"d\x00d")),
        (T.WORK_WARNING, (h, b"warn")),
        (T.WORK_COMPLETE, (h, b"done")),
    ]:
        assert w.send(wk, kind, *args) == []
        assert w.out(c1) == [pk(kind, *args)] and w.out(c2) == [pk(kind, *args)]


def test_job_not_found_texts(w):
    wk = w.worker(b"f")
    c = w.conn()
    h = w.submit(c, b"f")
    # a job that exists but is not assigned to this connection is also "not found"
    for kind, args, text in [
        (T.WORK_DATA, (h, b"x"), b"Job does not exist on server"),
        (T.WORK_WARNING, (h, b"x"), b"Job does not exist on server"),
        (T.WORK_STATUS, (h, b"1", b"2"), b"Job given in work result not found"),
        (T.WORK_COMPLETE, (h, b"x"), b"Job given in work result not found"),
        (T.WORK_FAIL, (h,), b"Job given in work result not found"),
        (T.WORK_EXCEPTION, (h, b"x"), b"An exception was received for a job that does not exist"),
    ]:
        assert w.send(wk, kind, *args) == [pk(T.ERROR, b"JOB_NOT_FOUND", text)], kind
    assert w.send(wk, T.WORK_FAIL, b"H" * 64) == [
        pk(
            T.ERROR,
            b"ARGUMENT_TOO_LARGE",
            b"Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf",
        )
    ]
    assert w.out(c) == []


def test_exception_to_opted_in_clients_bare_fail_to_others(w):
    exc_client, plain = w.conn(), w.conn()
    w.send(exc_client, T.OPTION_REQ, b"exceptions")
    h = w.submit(exc_client, b"f", b"u")
    w.submit(plain, b"f", b"u")
    wk = w.worker(b"f")
    w.grab(wk)
    w.send(wk, T.WORK_EXCEPTION, h, b"boom")
    assert w.out(exc_client) == [pk(T.WORK_EXCEPTION, h, b"boom")]
    raw_plain = plain.take_output()
    assert raw_plain[12:] == h  # bare handle: no trailing NUL (gearmand adds one)


def test_exceptions_server_default():
    w = World(exceptions=True)
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.worker(b"f")
    w.grab(wk)
    w.send(wk, T.WORK_EXCEPTION, h, b"e")
    assert w.out(c) == [pk(T.WORK_EXCEPTION, h, b"e")]


def test_work_fail_trailing_nul_is_stripped(w):
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.worker(b"f")
    w.grab(wk)
    assert w.send(wk, T.WORK_FAIL, h + b"\x00") == []
    assert c.take_output()[12:] == h
    assert w.status() == b"f\t0\t0\t1\n.\n"


def test_second_complete_is_not_found(w):
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.worker(b"f")
    w.grab(wk)
    w.send(wk, T.WORK_COMPLETE, h, b"")
    assert w.send(wk, T.WORK_COMPLETE, h, b"")[0].args[0] == b"JOB_NOT_FOUND"


# ---------------------------------------------------------------- status queries


def test_get_status_lifecycle(w):
    c = w.conn()
    assert w.send(c, T.GET_STATUS, b"H:none:1") == [pk(T.STATUS_RES, b"H:none:1", b"0", b"0", b"0", b"0")]
    h = w.submit(c, b"f", kind=T.SUBMIT_JOB_BG)
    assert w.send(c, T.GET_STATUS, h) == [pk(T.STATUS_RES, h, b"1", b"0", b"0", b"0")]
    wk = w.worker(b"f")
    w.grab(wk)
    w.send(wk, T.WORK_STATUS, h, b"3", b"4")
    other = w.conn()
    assert w.send(other, T.GET_STATUS, h) == [pk(T.STATUS_RES, h, b"1", b"1", b"3", b"4")]
    w.send(wk, T.WORK_COMPLETE, h, b"")
    assert w.send(other, T.GET_STATUS, h) == [pk(T.STATUS_RES, h, b"0", b"0", b"0", b"0")]
    with pytest.raises(CloseConnection):
        w.send(other, T.GET_STATUS, b"H" * 64)


def test_get_status_unique_not_scoped_by_function(w):
    c = w.conn()
    w.submit(c, b"g", b"uq", kind=T.SUBMIT_JOB_BG)
    assert w.send(c, T.GET_STATUS_UNIQUE, b"uq") == [
        pk(T.STATUS_RES_UNIQUE, b"uq", b"1", b"0", b"0", b"0", b"0")
    ]
    assert w.send(c, T.GET_STATUS_UNIQUE, b"nope") == [
        pk(T.STATUS_RES_UNIQUE, b"nope", b"0", b"0", b"0", b"0", b"0")
    ]
    with pytest.raises(CloseConnection):
        w.send(c, T.GET_STATUS_UNIQUE, b"u" * 64)


# ---------------------------------------------------------------- client disconnect


def test_abandoned_foreground_job_is_discarded_at_grab(w):
    c = w.conn()
    h = w.submit(c, b"f", b"u")
    w.core.disconnect(c)
    c2 = w.conn()
    assert w.status() == b"f\t1\t0\t0\n.\n"  # counted until a worker pops it
    assert _show_jobs(w, c2)[h] == [b"0", b"1", b"0"]
    wk = w.worker(b"f")
    assert w.grab(wk) == pk(T.NO_JOB)
    assert w.status() == b"f\t0\t0\t1\n.\n"
    assert w.submit(c2, b"f", b"u") != h  # the unique is free


def test_background_job_survives_coalesced_foreground_client_leaving(w):
    # gearmand 1.1.20 drops the job here; gearpy keeps it (documented difference).
    bg, fg = w.conn(), w.conn()
    h = w.submit(bg, b"f", b"u", kind=T.SUBMIT_JOB_BG)
    assert w.submit(fg, b"f", b"u") == h
    w.core.disconnect(fg)
    wk = w.worker(b"f")
    assert w.grab(wk).args[0] == h


def test_abandoned_running_job_result_dropped(w):
    c = w.conn()
    h = w.submit(c, b"f")
    wk = w.worker(b"f")
    w.grab(wk)
    w.core.disconnect(c)
    assert w.send(wk, T.WORK_COMPLETE, h, b"r") == []
    assert w.status() == b"f\t0\t0\t1\n.\n"


# ---------------------------------------------------------------- maxqueue and cancel


def test_maxqueue_limits_new_jobs_not_coalesced(w):
    c = w.conn()
    w.submit(c, b"f", b"u")
    assert w.admin(c, b"maxqueue f 1") == b"OK\r\n"
    full = [pk(T.ERROR, b"QUEUE_ERROR", b"Job queue is full")]
    assert w.send(c, T.SUBMIT_JOB_LOW, b"f", b"", b"x") == full
    assert w.submit(c, b"f", b"u") == H + b"1"  # coalesced: never refused
    # running jobs count too
    wk = w.worker(b"f")
    w.grab(wk)
    assert w.send(c, T.SUBMIT_JOB_HIGH, b"f", b"", b"x") == full
    assert w.admin(c, b"maxqueue f") == b"OK\r\n"  # reset to unlimited
    w.submit(c, b"f")


def test_maxqueue_per_priority_and_unknown_function(w):
    c = w.conn()
    w.admin(c, b"create function f")
    assert w.admin(c, b"maxqueue f 0 1") == b"OK\r\n"  # HIGH unlimited, NORMAL 1, LOW unlimited
    w.submit(c, b"f")
    assert w.send(c, T.SUBMIT_JOB, b"f", b"", b"x")[0].kind == T.ERROR
    w.submit(c, b"f", kind=T.SUBMIT_JOB_HIGH)
    w.submit(c, b"f", kind=T.SUBMIT_JOB_LOW)
    assert w.admin(c, b"maxqueue f 5 5 2") == b"OK\r\n"
    assert w.send(c, T.SUBMIT_JOB_LOW, b"f", b"", b"x")[0].kind == T.ERROR
    assert w.admin(c, b"maxqueue f -3") == b"OK\r\n"  # negative = unlimited
    w.submit(c, b"f", kind=T.SUBMIT_JOB_LOW)
    assert w.admin(c, b"maxqueue nosuch 1") == b"OK\r\n"
    assert b"nosuch" not in w.status()
    assert w.admin(c, b"maxqueue") == (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n"
    )


def test_cancel_job(w):
    c = w.conn()
    h = w.submit(c, b"f")
    a = w.conn()
    assert w.admin(a, b"cancel job " + h) == b"OK\r\n"
    assert c.take_output()[12:] == h and w.out(c) == []
    assert _show_jobs(w, a)[h] == [b"0", b"1", b"0"]
    assert w.admin(a, b"cancel job " + h) == b"OK\r\n"  # still in memory: OK again, as gearmand
    assert w.out(c) == []
    assert w.admin(a, b"cancel job H:nope:1") == b"ERR UNKNOWN_JOB\r\n"
    assert w.admin(a, b"cancel x y") == b"ERR UNKNOWN_ERROR\r\n"
    assert w.admin(a, b"cancel job") == b"ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"
    wk = w.worker(b"f")
    assert w.grab(wk) == pk(T.NO_JOB)
    assert _show_jobs(w, a) == {}


# ---------------------------------------------------------------- admin outputs


def test_admin_listings(w):
    a = w.conn()
    assert w.admin(a, b"status") == b".\n"
    c = w.conn()
    h1 = w.submit(c, b"fa", b"ua")
    h2 = w.submit(c, b"fb", b"", kind=T.SUBMIT_JOB_HIGH_BG)
    wk = w.worker(b"fa", b"fb")
    w.send(wk, T.SET_CLIENT_ID, b"my-worker")
    w.send(wk, T.CAN_DO, b"fa")  # a duplicate registers nothing (gearmand counts it: issue 18.7)
    assert w.grab(wk, T.GRAB_JOB_UNIQ).args[0] == h2  # fb's HIGH job first
    status = w.admin(a, b"status")
    lines = sorted(status.splitlines()[:-1])
    assert status.endswith(b"\n.\n")
    assert lines == [b"fa\t1\t0\t1", b"fb\t1\t1\t1"]
    prio = sorted(w.admin(a, b"PRIORITYSTATUS extra args").splitlines()[:-1])
    assert prio == [b"fa\t0\t1\t0\t1", b"fb\t0\t0\t0\t1"]
    workers = w.admin(a, b"workers")
    assert workers == (
        # newest registration first, then round robin moved fb (which supplied a job) to the end
        b"%d 127.0.0.1 my-worker : fa fb\n" % wk.fd
        + b"%d 127.0.0.1 - :\n" % c.fd
        + b"%d 127.0.0.1 - :\n" % a.fd
        + b".\n"
    )
    jobs = _show_jobs(w, a)
    assert jobs == {h1: [b"0", b"0", b"0"], h2: [b"0", b"0", b"1"]}
    uniq = w.admin(a, b"show unique jobs").splitlines()
    assert sorted(uniq[:-1]) == [b"", b"ua"] and uniq[-1] == b"."
    assert w.admin(a, b"version") == b"OK 9.9.9\n"
    assert w.admin(a, b"verbose") == b"OK ERROR\n"
    assert w.admin(a, b"getpid") == b"OK %d\n" % os.getpid()


def test_admin_listing_order_is_gearmands_hash_order(w):
    # Observed on gearmand 1.1.20 (reference §5): fb, fnl, fa, f1.
    a = w.conn()
    for name in (b"f1", b"fa", b"fnl", b"fb"):
        w.admin(a, b"create function " + name)
    assert w.admin(a, b"status") == b"fb\t0\t0\t0\nfnl\t0\t0\t0\nfa\t0\t0\t0\nf1\t0\t0\t0\n.\n"


def test_admin_errors(w):
    a = w.conn()
    assert w.admin(a, b"bogus") == b"ERR UNKNOWN_COMMAND Unknown+server+commandbogus\r\n"
    assert w.admin(a, b"") == b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"
    assert w.admin(a, b" status") == b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"
    assert w.admin(a, b"show") == b"ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n"
    assert w.admin(a, b"show bogus") == b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    assert w.admin(a, b"shutdown") == b"ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"
    assert w.admin(a, b"create") == (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n"
    )
    assert w.admin(a, b"drop function") == (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+drop\r\n"
    )
    assert w.admin(a, b"a b c d e").startswith(b"ERR UNKNOWN_COMMAND")
    with pytest.raises(CloseConnection):
        w.admin(a, b"a b c d e f")


def test_create_and_drop_function(w):
    a = w.conn()
    assert w.admin(a, b"create function fnlf", crlf=False) == b"OK\r\n"
    assert w.status() == b"fnlf\t0\t0\t0\n.\n"  # gearmand would create "fnl" (LF quirk fixed)
    assert w.admin(a, b"drop function FNLF") == b"OK\r\n"  # case-insensitive
    assert w.status() == b".\n"
    assert w.admin(a, b"drop function fnlf") == b"ERR function not found\r\n"
    busy = b"ERR there are still connected workers or executing clients\r\n"
    wk = w.worker(b"f")
    assert w.admin(a, b"drop function f") == busy
    w.core.disconnect(wk)
    c = w.conn()
    w.submit(c, b"f", kind=T.SUBMIT_JOB_BG)
    assert w.admin(a, b"drop function f") == busy  # gearpy: queued jobs also block the drop
    wk = w.worker(b"f")
    h = w.grab(wk).args[0]
    w.send(wk, T.WORK_COMPLETE, h, b"")
    w.core.disconnect(wk)
    assert w.admin(a, b"drop function f") == b"OK\r\n"


# ---------------------------------------------------------------- graceful drain


def test_drain_signals_idle_when_the_last_job_ends_not_before():
    idle: list[bool] = []
    w = World(on_idle=lambda: idle.append(True))
    c = w.conn()
    h1 = w.submit(c, b"f")
    h2 = w.submit(c, b"f", kind=T.SUBMIT_JOB_BG)
    wk = w.worker(b"f")
    w.core.drain()
    assert w.core.draining and idle == []
    assert w.grab(wk).args[0] == h1
    w.send(wk, T.WORK_COMPLETE, h1, b"done")
    assert idle == []  # the background job is still queued
    assert w.grab(wk).args[0] == h2
    w.send(wk, T.WORK_FAIL, h2)
    assert idle == [True]
    assert w.core.jobs == {}


def test_drain_without_jobs_is_idle_at_once_and_a_cancelled_job_counts_until_popped():
    idle: list[bool] = []
    w = World(on_idle=lambda: idle.append(True))
    w.core.drain()
    assert idle == [True]
    idle.clear()
    w2 = World(on_idle=lambda: idle.append(True))
    c = w2.conn()
    h = w2.submit(c, b"f", kind=T.SUBMIT_JOB_BG)
    a = w2.conn()
    w2.core.drain()
    assert w2.admin(a, b"cancel job " + h) == b"OK\r\n"
    assert idle == []  # gearmand keeps a cancelled job until a worker pops it, and so do we
    assert w2.grab(w2.worker(b"f")) == pk(T.NO_JOB)
    assert idle == [True]
