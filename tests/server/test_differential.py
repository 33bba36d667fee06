"""The same raw-packet scenarios against gearmand 1.1.20 and gearpy-server, replies compared.

Both servers run with ``--job-handle-prefix=H:diff`` so handles (``H:diff:N`` from 1) match
byte for byte. Each scenario returns a transcript; where gearpy differs from gearmand on purpose
(core.py's docstring), the test asserts gearpy's documented behaviour and checks that gearmand
still behaves the way we say it does, so the note stays true.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gearpy.protocol import FIELD_COUNT, Packet, PacketType, encode
from gearpy.testing import ServerProcess

from support.raw import Session
from support.servers import server_of

pytestmark = pytest.mark.interop

T = PacketType
PREFIX = "H:diff"
TIMEOUT = 10.0


def H(n: int) -> bytes:
    return f"{PREFIX}:{n}".encode()


class Target:
    def __init__(self, name: str, server: ServerProcess) -> None:
        self.name = name
        self.server = server
        self.sessions: list[Session] = []

    def session(self) -> Session:
        s = Session(self.server)
        self.sessions.append(s)
        return s

    def close(self) -> None:
        for s in self.sessions:
            s.close()


def _start(name: str, tmp_path: Path, *extra: str) -> Iterator[Target]:
    server = server_of(name, tmp_path, f"--job-handle-prefix={PREFIX}", "--verbose=INFO", *extra).start()
    target = Target(name, server)
    try:
        yield target
    finally:
        target.close()
        server.stop()
        assert "Traceback" not in server.log(), server.log()


@pytest.fixture
def gearpy(tmp_path) -> Iterator[Target]:
    yield from _start("gearpy", tmp_path)


@pytest.fixture
def gearmand(tmp_path) -> Iterator[Target]:
    yield from _start("gearmand", tmp_path)


def both(gearpy: Target, gearmand: Target, scenario: Callable[[Target], object]) -> object:
    """Run ``scenario`` on each server; assert equal transcripts; return gearpy's."""
    ours = scenario(gearpy)
    theirs = scenario(gearmand)
    assert ours == theirs
    return ours


def pk(kind, *args) -> Packet:
    return Packet(T(kind), tuple(args), False)


# ---------------------------------------------------------------- submits


SUBMITS = [
    (T.SUBMIT_JOB, (b"f", b"u1", b"a")),
    (T.SUBMIT_JOB_BG, (b"f", b"u2", b"b")),
    (T.SUBMIT_JOB_HIGH, (b"f", b"u3", b"c")),
    (T.SUBMIT_JOB_HIGH_BG, (b"g", b"u4", b"d")),
    (T.SUBMIT_JOB_LOW, (b"g", b"", b"e")),
    (T.SUBMIT_JOB_LOW_BG, (b"g", b"-", b"payload")),
    (T.SUBMIT_JOB_EPOCH, (b"f", b"u7", b"0", b"g")),
    (T.SUBMIT_JOB_EPOCH, (b"f", b"u8", b"4000000000", b"future")),
    (T.SUBMIT_REDUCE_JOB, (b"f", b"u9", b"red", b"", b"h")),
    (T.SUBMIT_REDUCE_JOB_BACKGROUND, (b"g", b"u10", b"red", b"", b"i")),
]


def test_every_submit_type_and_listings(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        out = [c.call(kind, *args) for kind, args in SUBMITS]
        a = t.session()
        out += [
            a.admin(cmd) for cmd in (b"status\n", b"prioritystatus\n", b"show jobs\n", b"show unique jobs\n")
        ]
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[: len(SUBMITS)] == [[pk(T.JOB_CREATED, H(i))] for i in range(1, len(SUBMITS) + 1)]


def test_coalescing(gearpy, gearmand):
    def scenario(t: Target):
        c1, c2 = t.session(), t.session()
        out = [
            c1.call(T.SUBMIT_JOB, b"f", b"u", b"one"),
            c2.call(T.SUBMIT_JOB_HIGH, b"f", b"u", b"two"),
            c2.call(T.SUBMIT_JOB_BG, b"f", b"u", b"three"),
            c2.call(T.SUBMIT_JOB, b"g", b"u", b"x"),
            c1.call(T.SUBMIT_JOB_BG, b"f", b"-", b"same"),
            c2.call(T.SUBMIT_JOB_BG, b"f", b"-", b"same"),
            c2.call(T.SUBMIT_JOB_BG, b"f", b"-", b"other"),
            c1.call(T.SUBMIT_JOB_BG, b"f", b"-", b""),
            c1.call(T.SUBMIT_JOB_BG, b"f", b"-", b""),
            c1.call(T.SUBMIT_JOB_BG, b"f", b"", b"same"),
            c1.call(T.SUBMIT_JOB_BG, b"f", b"", b"same"),
            c1.call(T.GET_STATUS_UNIQUE, b"u"),
            c1.call(T.GET_STATUS_UNIQUE, b"-"),
        ]
        w = t.session()
        w.send(T.CAN_DO, b"f")
        out.append(w.call(T.GRAB_JOB_UNIQ))
        out.append(w.call(T.WORK_COMPLETE, H(1), b"res"))
        out += [c1.sync(), c2.sync()]
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[1] == [pk(T.JOB_CREATED, H(1))]
    assert out[-2] == [pk(T.WORK_COMPLETE, H(1), b"res")]


def test_unique_limits(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        return [
            c.call(T.SUBMIT_JOB_BG, b"f", b"u" * 65, b"x"),
            c.call(T.SUBMIT_JOB_BG, b"f", b"u" * 64, b"x"),
            c.call(T.SUBMIT_JOB_BG, b"f", b"u" * 64, b"y"),
            c.call(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"v", b"r" * 65, b"", b"x"),
            c.call(T.SUBMIT_JOB_BG, b"f", b"u" * 63, b"z"),
            c.call(T.SUBMIT_JOB_BG, b"f", b"u" * 63, b"z2"),
            c.call(T.GET_STATUS_UNIQUE, b"u" * 63),
            c.admin(b"show unique jobs\n"),
        ]

    out = both(gearpy, gearmand, scenario)
    assert out[0] == [pk(T.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large")]
    # a 64-byte unique is accepted, kept as 63 bytes, and never coalesced
    assert [x[0].args[0] for x in out[1:3]] == [H(1), H(2)]
    assert out[-1] == (b"u" * 63 + b"\n") * 3 + b".\n"


# ---------------------------------------------------------------- workers


def test_grab_variants(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        c.call(T.SUBMIT_JOB_BG, b"f", b"u1", b"d1")
        c.call(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"u2", b"red", b"", b"d2")
        c.call(T.SUBMIT_JOB_BG, b"f", b"", b"d3")
        c.call(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"u4", b"red", b"", b"d4")
        c.call(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"u5", b"red", b"", b"d5")
        w = t.session()
        out = [w.call(T.GRAB_JOB), w.call(T.GRAB_JOB_UNIQ)]  # no abilities: NO_JOB
        w.send(T.CAN_DO, b"f")
        out += [
            w.call(k)
            for k in (
                T.GRAB_JOB_ALL,
                T.GRAB_JOB_ALL,
                T.GRAB_JOB_UNIQ,
                T.GRAB_JOB,
                T.GRAB_JOB_UNIQ,
                T.GRAB_JOB_ALL,
            )
        ]
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[2] == [pk(T.JOB_ASSIGN_UNIQ, H(1), b"f", b"u1", b"d1")]
    assert out[3] == [pk(T.JOB_ASSIGN_ALL, H(2), b"f", b"u2", b"red", b"d2")]
    assert out[-1] == [pk(T.NO_JOB)]


def test_work_forwarding_and_status(gearpy, gearmand):
    def scenario(t: Target):
        c, other = t.session(), t.session()
        w = t.session()
        w.send(T.CAN_DO, b"f")
        out = [w.call(T.PRE_SLEEP)]
        out.append(c.call(T.SUBMIT_JOB, b"f", b"u", b"work"))
        out.append(w.sync())  # NOOP
        out.append(w.call(T.GRAB_JOB_ALL))
        out.append(other.call(T.GET_STATUS, H(1)))
        for kind, args in [
            (T.WORK_STATUS, (H(1), b"1", b"4")),
            (T.WORK_DATA, (H(1), b"da\x00ta")),
            (T.WORK_WARNING, (H(1), b"warn")),
            (T.WORK_STATUS, (H(1), b"3", b"4")),
        ]:
            out.append(w.call(kind, *args))
        out.append(other.call(T.GET_STATUS, H(1)))
        out.append(other.call(T.GET_STATUS_UNIQUE, b"u"))
        out.append(w.call(T.WORK_COMPLETE, H(1), b"result\x00bytes"))
        out.append(c.sync())
        out.append(w.call(T.WORK_COMPLETE, H(1), b"again"))
        out.append(other.call(T.GET_STATUS, H(1)))
        out.append(other.call(T.GET_STATUS_UNIQUE, b"u"))
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[2] == [pk(T.NOOP)]
    assert out[-4] == [
        pk(T.WORK_STATUS, H(1), b"1", b"4"),
        pk(T.WORK_DATA, H(1), b"da\x00ta"),
        pk(T.WORK_WARNING, H(1), b"warn"),
        pk(T.WORK_STATUS, H(1), b"3", b"4"),
        pk(T.WORK_COMPLETE, H(1), b"result\x00bytes"),
    ]


def test_work_fail_and_not_found_texts(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        w = t.session()
        w.send(T.CAN_DO, b"f")
        out = [c.call(T.SUBMIT_JOB, b"f", b"", b"x")]
        # not assigned yet: every WORK_* is "not found", each with its own text
        for kind, args in [
            (T.WORK_DATA, (H(1), b"x")),
            (T.WORK_WARNING, (H(1), b"x")),
            (T.WORK_STATUS, (H(1), b"1", b"2")),
            (T.WORK_COMPLETE, (H(1), b"x")),
            (T.WORK_FAIL, (H(1),)),
            (T.WORK_EXCEPTION, (H(1), b"x")),
            (T.WORK_FAIL, (b"H" * 64,)),
        ]:
            out.append(w.call(kind, *args))
        out.append(w.call(T.GRAB_JOB))
        out.append(w.call(T.WORK_FAIL, H(1)))
        out.append(c.sync())
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[-1] == [pk(T.WORK_FAIL, H(1))]


def test_requeue_on_disconnect_cant_do_reset(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        a = t.session()
        for i in range(3):
            c.call(T.SUBMIT_JOB_BG, b"f", b"u%d" % i, b"d%d" % i)
        w1 = t.session()
        w1.send(T.CAN_DO, b"f")
        out = [w1.call(T.GRAB_JOB), w1.call(T.GRAB_JOB)]
        w1.close()
        a.wait_admin(b"status\n", b"f\t3\t0\t0\n")  # until the server has seen the close
        w2 = t.session()
        w2.send(T.CAN_DO, b"f")
        out += [w2.call(T.GRAB_JOB_UNIQ) for _ in range(2)]
        out.append(w2.call(T.CANT_DO, b"f"))
        out.append(w2.call(T.WORK_COMPLETE, H(3), b"late"))
        w2.send(T.CAN_DO, b"f")
        out.append(w2.call(T.GRAB_JOB_UNIQ))
        out.append(w2.call(T.RESET_ABILITIES))
        out.append(w2.call(T.GRAB_JOB))
        out.append(a.admin(b"show jobs\n"))
        out.append(a.admin(b"status\n"))
        return out

    out = both(gearpy, gearmand, scenario)
    # jobs held by a lost worker come back last-grabbed first, at the tail
    assert out[2] == [pk(T.JOB_ASSIGN_UNIQ, H(3), b"f", b"u2", b"d2")]
    assert out[3] == [pk(T.JOB_ASSIGN_UNIQ, H(2), b"f", b"u1", b"d1")]
    assert out[5] == [pk(T.ERROR, b"JOB_NOT_FOUND", b"Job given in work result not found")]
    assert out[-2] == b"H:diff:1\t2\t0\t1\nH:diff:3\t1\t0\t1\nH:diff:2\t2\t0\t1\n.\n"


def test_sleep_and_wake(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        w1, w2, w3 = t.session(), t.session(), t.session()
        w1.send(T.CAN_DO, b"f")
        w2.send(T.CAN_DO, b"f")
        w3.send(T.CAN_DO, b"g")
        out = [w1.call(T.PRE_SLEEP), w2.call(T.PRE_SLEEP), w3.call(T.PRE_SLEEP)]
        out.append(c.call(T.SUBMIT_JOB_BG, b"f", b"", b"1"))
        out += [w1.sync(), w2.sync(), w3.sync()]
        out.append(c.call(T.SUBMIT_JOB_BG, b"f", b"", b"2"))
        out += [w1.sync(), w2.sync()]  # one NOOP until the next grab
        out.append(w1.call(T.GRAB_JOB))
        out.append(w1.call(T.PRE_SLEEP))  # a job is still queued: NOOP at once
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[4:6] == [[pk(T.NOOP)], [pk(T.NOOP)]] and out[6] == []


# ---------------------------------------------------------------- errors, echo, options


def test_errors_echo_and_options(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        out = []
        for kind in (5, 6, 8, 10, 11, 17, 19, 20, 24, 27, 31, 40, 42):
            # well-formed bodies: an empty body of a type with NUL-terminated fields makes gearmand
            # search on into the next packet (and gearpy close), see test_bad_input
            args = [b"a%d" % i for i in range(FIELD_COUNT[kind])]
            c.send(kind, *args)
            out.append(c.sync())
        out.append(c.call(T.SUBMIT_JOB_SCHED, b"f", b"", b"1", b"2", b"3", b"4", b"5", b"x"))
        c.raw(encode(T.ECHO_REQ, b"res-magic"))  # \0RES magic
        out.append(c.sync())
        c.raw(encode(T.SUBMIT_JOB, b"f", b"", b"res magic submit"))
        out.append(c.sync())
        out.append(c.call(T.ECHO_REQ, b""))
        out.append(c.call(T.ECHO_REQ, bytes(range(256)) * 400))
        out.append(c.call(T.OPTION_REQ, b"exceptions"))
        out.append(c.call(T.OPTION_REQ, b"EXCEPTIONS"))
        out.append(c.call(T.OPTION_REQ, b"nonsense"))
        out.append(c.call(T.OPTION_REQ, b"x" * 70))
        out.append(c.call(T.SET_CLIENT_ID, b"id"))
        out.append(c.call(T.GET_STATUS, H(99)))
        out.append(c.call(T.GET_STATUS_UNIQUE, b"nope"))
        out.append(c.admin(b"status\n"))
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[0] == [pk(T.ERROR, b"INVALID_COMMAND", b"Command not expected")]
    assert out[14] == [pk(T.ERROR, b"INVALID_MAGIC", b"Request magic expected")]


def test_epoch_parsing(gearpy, gearmand):
    def scenario(t: Target):
        c = t.session()
        out = [
            c.call(T.SUBMIT_JOB_EPOCH, b"f", b"", b"garbage", b"a"),
            c.call(T.SUBMIT_JOB_EPOCH, b"f", b"", b"-5", b"b"),
            c.call(T.SUBMIT_JOB_EPOCH, b"f", b"", b"4000000000", b"c"),
        ]
        w = t.session()
        w.send(T.CAN_DO, b"f")
        out += [w.call(T.GRAB_JOB), w.call(T.GRAB_JOB), w.call(T.GRAB_JOB), w.call(T.PRE_SLEEP)]
        out.append(c.admin(b"prioritystatus\n"))
        return out

    out = both(gearpy, gearmand, scenario)
    assert out[5] == [pk(T.NO_JOB)] and out[6] == []


# ---------------------------------------------------------------- admin protocol


def _norm_workers(text: bytes) -> bytes:
    return re.sub(rb"(?m)^\d+ ", b"FD ", text)


def test_admin_commands_byte_for_byte(gearpy, gearmand):
    def scenario(t: Target):
        a = t.session()
        c = t.session()
        w = t.session()
        w.send(T.SET_CLIENT_ID, b"my-worker")
        for name in (b"fa", b"fb"):  # (a repeated CAN_DO differs on purpose: test_core, issue 18.7)
            w.send(T.CAN_DO, name)
        c.call(T.SUBMIT_JOB_BG, b"fa", b"ua", b"x")
        c.call(T.SUBMIT_JOB_HIGH_BG, b"fb", b"ub", b"x")
        c.call(T.SUBMIT_JOB_LOW_BG, b"fc", b"", b"x")
        w.sync()
        out = []
        for line in [
            b"status\n",
            b"STATUS extra args\r\n",
            b"prioritystatus\n",
            b"show jobs\n",
            b"show unique jobs\n",
            b"show\n",
            b"show bogus\n",
            b"show jobs please\n",
            b"show unique jobs please\n",
            b"SHOW Unique JOBS\n",
            b"create function newf\r\n",
            b"create\n",
            b"create function\n",
            b"create something f\n",
            b"drop\n",
            b"drop function\n",
            b"drop function nosuch\n",
            b"drop function FA\n",
            b"drop function NEWF\r\n",
            b"maxqueue\n",
            b"maxqueue fa\n",
            b"maxqueue fa 1\n",
            b"maxqueue fa 1 2\n",
            b"maxqueue fa 1 2 3\n",
            b"maxqueue fa -1 x 3\n",
            b"maxqueue nosuch 5\n",
            b"cancel\n",
            b"cancel job\n",
            b"cancel job H:diff:99\n",
            b"cancel x y\n",
            b"cancel job H:diff:3\n",
            b"cancel job H:diff:3\n",
            b"bogus\n",
            b"bogus with args\r\n",
            b"\n",
            b"\r\n",
            b"  status\n",
            b"shutdown\n",
            b"shutdown graceful\n",
            b"getpid now\n",
            b"status\n",
            b"show jobs\n",
            b"show unique jobs\n",
        ]:
            reply = a.admin(line)
            if line.startswith(b"getpid"):
                assert re.fullmatch(rb"OK \d+\n", reply), reply
                reply = b"OK <pid>\n"
            out.append((line, reply))
        out.append((b"workers", _norm_workers(a.admin(b"workers\n"))))
        return out

    out = both(gearpy, gearmand, scenario)
    replies = dict(out)
    assert replies[b"show jobs please\n"] == b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    assert replies[b"cancel job H:diff:99\n"] == b"ERR UNKNOWN_JOB\r\n"
    assert out[0][1].endswith(b"\n.\n") and out[0][1].count(b"\n") == 4


def test_admin_pipelined_on_one_write(gearpy, gearmand):
    def scenario(t: Target):
        a = t.session()
        a.raw(b"create function p\r\nstatus\nversion\nbogus\n")
        replies = [a.admin(b"") for _ in range(4)]
        replies[2] = b"OK <version>\n" if replies[2].startswith(b"OK ") else replies[2]
        return replies

    out = both(gearpy, gearmand, scenario)
    assert out == [
        b"OK\r\n",
        b"p\t0\t0\t0\n.\n",
        b"OK <version>\n",
        b"ERR UNKNOWN_COMMAND Unknown+server+commandbogus\r\n",
    ]


def test_version_and_verbose(gearpy, gearmand):
    ours = gearpy.session()
    theirs = gearmand.session()
    assert ours.admin(b"verbose\n") == theirs.admin(b"verbose\n") == b"OK INFO\n"
    v_ours, v_theirs = ours.admin(b"version\n"), theirs.admin(b"version\n")
    assert v_theirs.startswith(b"OK 1.1.20")
    assert re.fullmatch(rb"OK \S+\n", v_ours) and v_ours != v_theirs  # same shape, our own version


def test_workers_listing(gearpy, gearmand):
    def scenario(t: Target):
        a = t.session()
        w = t.session()
        w.send(T.SET_CLIENT_ID, b"wid")
        w.send(T.CAN_DO, b"x")
        w.send(T.CAN_DO_TIMEOUT, b"y", b"5000")
        w.sync()
        c = t.session()
        c.call(T.ECHO_REQ, b"")
        return _norm_workers(a.admin(b"workers\n"))

    out = both(gearpy, gearmand, scenario)
    assert out == b"FD 127.0.0.1 - :\nFD 127.0.0.1 wid : y x\nFD 127.0.0.1 - :\n.\n"


# ---------------------------------------------------------------- deliberate differences


def test_selection_priority_across_functions_differs(gearpy, gearmand):
    """gearpy: HIGH first across all functions (gearmand 2.0). gearmand 1.1: newest registration first."""

    def scenario(t: Target):
        c = t.session()
        c.call(T.SUBMIT_JOB_LOW_BG, b"b", b"", b"b-low")
        c.call(T.SUBMIT_JOB_HIGH_BG, b"a", b"", b"a-high")
        c.call(T.SUBMIT_JOB_BG, b"b", b"", b"b-normal")
        w = t.session()
        w.send(T.CAN_DO, b"a")
        w.send(T.CAN_DO, b"b")
        return [w.call(T.GRAB_JOB)[0].args[2] for _ in range(3)]

    assert scenario(gearpy) == [b"a-high", b"b-normal", b"b-low"]
    assert scenario(gearmand) == [b"b-normal", b"b-low", b"a-high"]


def test_exception_to_plain_client_bare_handle_differs(gearpy, gearmand):
    """gearpy sends WORK_FAIL with the bare handle; gearmand appends a NUL (hangs libgearman)."""

    def scenario(t: Target):
        exc, plain = t.session(), t.session()
        exc.call(T.OPTION_REQ, b"exceptions")
        exc.call(T.SUBMIT_JOB, b"f", b"u", b"x")
        plain.call(T.SUBMIT_JOB, b"f", b"u", b"x")
        w = t.session()
        w.send(T.CAN_DO, b"f")
        w.call(T.GRAB_JOB)
        w.call(T.WORK_EXCEPTION, H(1), b"boom")
        exc_got = exc.sync()
        plain.send(T.ECHO_REQ, b"end")
        end = encode(T.ECHO_RES, b"end")
        while end not in plain.buf:
            plain._recv()
        return exc_got, plain.buf.partition(end)[0]

    ours, theirs = scenario(gearpy), scenario(gearmand)
    assert ours[0] == theirs[0] == [pk(T.WORK_EXCEPTION, H(1), b"boom")]
    assert ours[1] == encode(T.WORK_FAIL, H(1))
    assert (
        theirs[1]
        == b"\x00RES" + (14).to_bytes(4, "big") + (len(H(1)) + 1).to_bytes(4, "big") + H(1) + b"\x00"
    )


def test_create_function_lf_quirk_differs(gearpy, gearmand):
    def scenario(t: Target):
        a = t.session()
        return a.admin(b"create function fnlf\n"), a.admin(b"status\n")

    assert scenario(gearpy) == (b"OK\r\n", b"fnlf\t0\t0\t0\n.\n")
    assert scenario(gearmand) == (b"OK\r\n", b"fnl\t0\t0\t0\n.\n")


def test_drop_function_with_queued_jobs_differs(gearpy, gearmand):
    def scenario(t: Target):
        a = t.session()
        a.call(T.SUBMIT_JOB_BG, b"q", b"", b"x")
        return a.admin(b"drop function q\n")

    assert scenario(gearpy) == b"ERR there are still connected workers or executing clients\r\n"
    assert scenario(gearmand) == b"OK\r\n"  # gearmand drops the function and strands the job


def test_can_do_timeout_differs(gearpy, gearmand):
    """gearpy fails a timed-out job (compat-notes §5); gearmand requeues it silently."""

    def scenario(t: Target, settled: bytes):
        c = t.session()
        c.call(T.SUBMIT_JOB, b"f", b"", b"slow")
        w = t.session()
        w.send(T.CAN_DO_TIMEOUT, b"f", b"1000")
        assert w.call(T.GRAB_JOB)[0].kind == T.JOB_ASSIGN
        a = t.session()
        status = a.wait_admin(b"status\n", settled)  # once the one-second timer has fired
        return c.sync(), w.sync(), status, a.admin(b"show jobs\n")

    got, worker, status, jobs = scenario(gearpy, b"f\t0\t")
    assert got == [pk(T.WORK_FAIL, H(1))] and worker == []
    assert (status, jobs) == (b"f\t0\t0\t1\n.\n", b".\n")
    got, worker, status, jobs = scenario(gearmand, b"f\t1\t0\t1\n")
    assert got == [] and worker == []  # nobody is told
    assert jobs == b"H:diff:1\t1\t0\t0\n.\n"  # requeued, retry counted


def test_job_retries_drop(tmp_path):
    def scenario(t: Target):
        c = t.session()
        a = t.session()
        out = [c.call(T.SUBMIT_JOB, b"f", b"", b"x")]
        for attempt in range(2):
            w = t.session()
            w.send(T.CAN_DO, b"f")
            out.append(w.call(T.GRAB_JOB))
            w.close()
            a.wait_admin(b"status\n", b"f\t%d\t0\t0\n" % (1 - attempt))
        out.append(c.sync())
        out.append(a.admin(b"show jobs\n"))
        return out

    results = []
    for name in ("gearpy", "gearmand"):
        (tmp_path / name).mkdir()
        gen = _start(name, tmp_path / name, "--job-retries=2")
        t = next(gen)
        try:
            results.append(scenario(t))
        finally:
            next(gen, None)
    assert results[0] == results[1]
    assert results[0][-2:] == [[pk(T.WORK_FAIL, H(1))], b".\n"]


def test_worker_wakeup_one(tmp_path):
    def scenario(t: Target):
        c = t.session()
        workers = [t.session() for _ in range(3)]
        for w in workers:
            w.send(T.CAN_DO, b"f")
            assert w.call(T.PRE_SLEEP) == []
        woken = []
        for i in range(3):
            c.call(T.SUBMIT_JOB_BG, b"f", b"", b"%d" % i)
            woken.append([i for i, w in enumerate(workers) if w.sync() == [pk(T.NOOP)]])
        return woken

    results = []
    for name in ("gearpy", "gearmand"):
        (tmp_path / name).mkdir()
        gen = _start(name, tmp_path / name, "--worker-wakeup=1")
        t = next(gen)
        try:
            results.append(scenario(t))
        finally:
            next(gen, None)
    # one worker per job, a different one each time
    for woken in results:
        assert sorted(sum(woken, [])) == [0, 1, 2] and all(len(x) == 1 for x in woken)
    assert results[0] == results[1]
