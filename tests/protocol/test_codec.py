"""The sans-I/O codec: round trips, split points, bounds, malformed input, admin lines."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gearpy.errors import LocalProtocolError, RemoteProtocolError
from gearpy.protocol import (
    FIELD_COUNT,
    LAYOUT,
    REQ,
    RES,
    AdminCommand,
    AdminLineTooLong,
    BadMagic,
    Decoder,
    MalformedPacket,
    Packet,
    PacketTooLarge,
    PacketType,
    UnknownPacketType,
    encode,
    encode_packet,
    encode_request,
    encode_unchecked,
    encode_unchecked_one,
    split_admin_line,
)

T = PacketType
ALL_TYPES = list(range(1, 43))


def decode_all(data: bytes, **kw) -> list:
    d = Decoder(**kw)
    d.feed(data)
    events = list(d.events())
    assert d.buffered == 0
    return events


def sample_args(kind: int) -> tuple[bytes, ...]:
    """Distinct, non-trivial arguments for ``kind``: terminated ones without NUL, a tail with NULs."""
    argc, tail = LAYOUT[kind]
    if tail:
        return tuple(b"arg%d-%d" % (kind, i) for i in range(argc)) + (b"tail\x00with\x00nuls\x00",)
    if argc == 0:
        return ()
    # Without a tail the last argument is the remainder of the body: it may hold NULs.
    last = b"last\x00rest" if argc > 1 else b"only"
    return tuple(b"a%d-%d" % (kind, i) for i in range(argc - 1)) + (last,)


# ---------------------------------------------------------------- layout table


def test_layout_covers_exactly_types_1_to_42():
    assert sorted(int(k) for k in LAYOUT) == ALL_TYPES
    assert [int(t) for t in PacketType] == ALL_TYPES


@pytest.mark.parametrize(
    "kind,argc,tail",
    [
        (T.SUBMIT_JOB, 2, True),
        (T.SUBMIT_JOB_EPOCH, 3, True),
        (T.SUBMIT_REDUCE_JOB, 4, True),  # four terminated fields (gearmand), not three (PROTOCOL text)
        (T.SUBMIT_REDUCE_JOB_BACKGROUND, 4, True),
        (T.SUBMIT_JOB_SCHED, 7, True),
        (T.JOB_ASSIGN_ALL, 4, True),
        (T.STATUS_RES, 5, False),
        (T.STATUS_RES_UNIQUE, 6, False),
        (T.WORK_STATUS, 3, False),
        (T.WORK_FAIL, 1, False),
        (T.ECHO_REQ, 0, True),
        (T.CAN_DO_TIMEOUT, 2, False),
    ],
)
def test_layout_matches_gearmand_command_table(kind, argc, tail):
    assert LAYOUT[kind] == (argc, tail)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("request_magic", [True, False], ids=["REQ", "RES"])
@pytest.mark.parametrize("kind", ALL_TYPES, ids=[T(k).name for k in ALL_TYPES])
def test_round_trip_every_type(kind, request_magic):
    args = sample_args(kind)
    assert len(args) == FIELD_COUNT[kind]
    data = encode(kind, *args, request=request_magic)
    assert data[:4] == (REQ if request_magic else RES)
    assert struct.unpack(">II", data[4:12]) == (kind, len(data) - 12)
    [pkt] = decode_all(data)
    assert pkt == Packet(T(kind), args, request_magic)
    assert isinstance(pkt.kind, PacketType)
    assert encode_packet(pkt) == data


@pytest.mark.parametrize("kind", ALL_TYPES, ids=[T(k).name for k in ALL_TYPES])
def test_unchecked_encoder_matches_the_checked_one_on_valid_fields(kind):
    """The server's fast path writes exactly the bytes :func:`encode` would for the same fields."""
    args = sample_args(kind)
    assert encode_unchecked(kind, *args) == encode(kind, *args)
    if len(args) == 1:
        assert encode_unchecked_one(kind, args[0]) == encode(kind, *args)


def test_unchecked_one_field_reply():
    assert encode_unchecked_one(T.JOB_CREATED, b"H:lap:1") == encode(T.JOB_CREATED, b"H:lap:1")
    assert encode_unchecked_one(T.WORK_FAIL, b"") == encode(T.WORK_FAIL, b"")


def test_wire_bytes_of_known_examples():
    assert encode_request(T.CAN_DO, b"reverse") == b"\x00REQ\x00\x00\x00\x01\x00\x00\x00\x07reverse"
    assert encode_request(T.SUBMIT_JOB, b"reverse", b"", b"test")[12:] == b"reverse\x00\x00test"
    assert encode(T.JOB_CREATED, b"H:lap:1") == b"\x00RES\x00\x00\x00\x08\x00\x00\x00\x07H:lap:1"
    assert encode(T.STATUS_RES, b"H:x:1", b"1", b"0", b"3", b"4")[12:] == b"H:x:1\x001\x000\x003\x004"
    assert encode(T.WORK_FAIL, b"H:x:1")[12:] == b"H:x:1"
    assert encode(T.NOOP) == b"\x00RES\x00\x00\x00\x06\x00\x00\x00\x00"
    reduce = encode_request(T.SUBMIT_REDUCE_JOB, b"f", b"u", b"r", b"", b"data")
    assert reduce[12:] == b"f\x00u\x00r\x00\x00data"


def test_tail_may_be_empty_and_keeps_trailing_nuls():
    [p] = decode_all(encode_request(T.SUBMIT_JOB, b"f", b"", b""))
    assert p.args == (b"f", b"", b"")
    [p] = decode_all(encode_request(T.SUBMIT_JOB, b"f", b"u", b"\x00\x00"))
    assert p.args == (b"f", b"u", b"\x00\x00")


def test_argc0_without_tail_ignores_body_bytes():
    [p] = decode_all(b"\x00REQ" + struct.pack(">II", T.GRAB_JOB, 3) + b"xyz")
    assert p == Packet(T.GRAB_JOB, (), True)


def test_encode_refuses_misuse():
    with pytest.raises(LocalProtocolError):
        encode(T.SUBMIT_JOB, b"f", b"u")  # missing the tail
    with pytest.raises(LocalProtocolError):
        encode(T.SUBMIT_JOB, b"f\x00", b"u", b"x")  # NUL in a terminated argument
    with pytest.raises(LocalProtocolError):
        encode(0)
    with pytest.raises(LocalProtocolError):
        encode(43)


# ---------------------------------------------------------------- split points

STREAM_PARTS = [
    encode_request(T.CAN_DO, b"reverse"),
    b"status\r\n",
    encode_request(T.SUBMIT_JOB, b"reverse", b"u1", b"payload\x00with nul"),
    b"show unique jobs\n",
    encode_request(T.ECHO_REQ, b""),
    encode_request(T.GRAB_JOB_ALL),
    b"  maxqueue  f 1\n",
    encode(T.STATUS_RES, b"H:x:1", b"1", b"1", b"50", b"100"),
    encode_request(T.SUBMIT_REDUCE_JOB, b"f", b"u", b"red", b"", b"\x00d"),
    b"\n",
    encode_request(T.WORK_FAIL, b"H:x:2"),
]
STREAM = b"".join(STREAM_PARTS)


def expected_stream_events() -> list:
    return decode_all(STREAM)


def test_stream_decodes_as_expected_in_one_piece():
    events = expected_stream_events()
    assert len(events) == len(STREAM_PARTS)
    assert events[1] == AdminCommand(b"status", (b"status",), True)
    assert events[3] == AdminCommand(b"show unique jobs", (b"show", b"unique", b"jobs"), False)
    assert events[6].tokens == (b"", b"maxqueue", b"f", b"1")
    assert events[9] == AdminCommand(b"", (b"",), False)
    assert events[8].args == (b"f", b"u", b"red", b"", b"\x00d")
    assert events[7].request is False


def test_stream_byte_by_byte():
    d = Decoder()
    events = []
    for i in range(len(STREAM)):
        d.feed(STREAM[i : i + 1])
        events.extend(d.events())
    assert events == expected_stream_events()
    assert d.buffered == 0


def test_stream_every_single_split_point():
    expected = expected_stream_events()
    for cut in range(len(STREAM) + 1):
        d = Decoder()
        d.feed(STREAM[:cut])
        events = list(d.events())
        d.feed(STREAM[cut:])
        events.extend(d.events())
        assert events == expected, f"split at {cut}"


def test_stream_every_pair_of_split_points_on_prefix():
    expected = expected_stream_events()
    n = 80  # pairs of cuts inside the first packets, plus the remainder
    for a in range(n):
        for b in range(a, n):
            d = Decoder()
            events = []
            for chunk in (STREAM[:a], STREAM[a:b], STREAM[b:]):
                d.feed(chunk)
                events.extend(d.events())
            assert events == expected, (a, b)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_stream_any_chunking(cuts):
    cuts = sorted(set(cuts))
    d = Decoder()
    events = []
    prev = 0
    for c in [*cuts, len(STREAM)]:
        d.feed(STREAM[prev:c])
        events.extend(d.events())
        prev = c
    assert events == expected_stream_events()


# ---------------------------------------------------------------- bad input


def test_size_cap_refuses_4gib_header_before_buffering():
    d = Decoder()
    d.feed(b"\x00REQ" + struct.pack(">II", T.ECHO_REQ, 0xFFFFFFFF))
    with pytest.raises(PacketTooLarge):
        d.next_event()
    # Nothing of the body was waited for: the header alone is enough to refuse.
    assert d.buffered == 12


def test_size_cap_is_configurable_and_inclusive():
    small = Decoder(max_packet_size=10)
    small.feed(encode_request(T.ECHO_REQ, b"x" * 10))
    assert small.next_event().args == (b"x" * 10,)
    small.feed(b"\x00REQ" + struct.pack(">II", T.ECHO_REQ, 11))
    with pytest.raises(PacketTooLarge):
        small.next_event()


def test_large_body_within_cap_decodes():
    body = bytes(range(256)) * 1000
    [p] = decode_all(encode_request(T.ECHO_REQ, body))
    assert p.args == (body,)


def test_bad_magic_is_detected_from_the_first_bytes():
    d = Decoder()
    d.feed(b"\x00RE")
    assert d.next_event() is None  # still a possible magic
    d.feed(b"X")
    with pytest.raises(BadMagic):
        d.next_event()
    d = Decoder()
    d.feed(b"\x00\x00")
    with pytest.raises(BadMagic):
        d.next_event()


@pytest.mark.parametrize("kind", [0, 43, 1000, 0xFFFFFFFF])
def test_unknown_type(kind):
    d = Decoder()
    d.feed(b"\x00REQ" + struct.pack(">II", kind, 0))
    with pytest.raises(UnknownPacketType):
        d.next_event()


@pytest.mark.parametrize(
    "kind,body",
    [
        (T.SUBMIT_JOB, b"func"),
        (T.SUBMIT_JOB, b"func\x00uniq"),
        (T.SUBMIT_JOB_EPOCH, b"f\x00u\x00"),
        (T.SUBMIT_REDUCE_JOB, b"f\x00u\x00r\x00data"),  # only 3 terminated fields
        (T.WORK_COMPLETE, b"H:x:1"),
        (T.WORK_STATUS, b"H:x:1\x001"),
        (T.CAN_DO_TIMEOUT, b"f"),
        (T.JOB_ASSIGN_UNIQ, b"h\x00f\x00"),
        (T.STATUS_RES, b"h\x001\x000\x000"),
        (T.ERROR, b"CODE"),
    ],
)
def test_missing_nul_is_malformed(kind, body):
    d = Decoder()
    d.feed(b"\x00REQ" + struct.pack(">II", kind, len(body)) + body)
    with pytest.raises(MalformedPacket):
        d.next_event()


def test_missing_nul_does_not_swallow_the_next_packet():
    body = b"func"
    nxt = encode_request(T.ECHO_REQ, b"\x00u\x00x")  # NULs right after the short body
    d = Decoder()
    d.feed(b"\x00REQ" + struct.pack(">II", T.SUBMIT_JOB, len(body)) + body + nxt)
    with pytest.raises(MalformedPacket):
        d.next_event()


def test_admin_line_too_long():
    d = Decoder(max_admin_line=16)
    d.feed(b"s" * 15)
    assert d.next_event() is None
    d.feed(b"s")
    with pytest.raises(AdminLineTooLong):
        d.next_event()
    ok = Decoder(max_admin_line=16)
    ok.feed(b"s" * 15 + b"\n")
    assert ok.next_event().line == b"s" * 15


def test_admin_disallowed_is_bad_magic():
    d = Decoder(allow_admin=False)
    d.feed(b"status\n")
    with pytest.raises(BadMagic):
        d.next_event()


def test_protocol_errors_are_remote_errors():
    for cls in (BadMagic, UnknownPacketType, PacketTooLarge, MalformedPacket, AdminLineTooLong):
        assert issubclass(cls, RemoteProtocolError)


# ---------------------------------------------------------------- admin token splitting


@pytest.mark.parametrize(
    "line,tokens",
    [
        (b"status", (b"status",)),
        (b"show unique jobs", (b"show", b"unique", b"jobs")),
        (b"maxqueue   f    1", (b"maxqueue", b"f", b"1")),  # runs collapse
        (b" status", (b"", b"status")),  # leading space: empty first token
        (b"   status  x", (b"", b"status", b"x")),
        (b"", (b"",)),
        (b"status\tx", (b"status\tx",)),  # tabs do not separate
        (b"status ", (b"status",)),
        (b"a b c d e f", (b"a", b"b", b"c", b"d", b"e", b"f")),
    ],
)
def test_admin_tokens(line, tokens):
    assert split_admin_line(line) == tokens


def test_admin_line_crlf_stripping():
    [a, b, c] = decode_all(b"version\r\nversion\nx\r\r\n")
    assert (a.line, a.crlf) == (b"version", True)
    assert (b.line, b.crlf) == (b"version", False)
    assert (c.line, c.crlf) == (b"x\r", True)  # only one \r is stripped


# ---------------------------------------------------------------- properties


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_any_bytes_give_events_or_remote_protocol_error(data, chunk):
    d = Decoder(max_packet_size=1 << 16, max_admin_line=128)
    try:
        for i in range(0, len(data), chunk):
            d.feed(data[i : i + chunk])
            for ev in d.events():
                assert isinstance(ev, (Packet, AdminCommand))
                if isinstance(ev, Packet):
                    assert len(ev.args) == FIELD_COUNT[ev.kind]
    except RemoteProtocolError:
        pass


_headerish = st.builds(
    lambda magic, kind, body: magic + struct.pack(">II", kind, len(body)) + body,
    st.sampled_from([REQ, RES]),
    st.integers(min_value=0, max_value=45),
    st.binary(max_size=40).map(lambda b: b.replace(b"\x01", b"\x00")),
)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_headerish, st.binary(max_size=8), st.just(b"status\n")), max_size=8))
def test_plausible_packets_give_events_or_remote_protocol_error(parts):
    d = Decoder(max_packet_size=1 << 16, max_admin_line=128)
    d.feed(b"".join(parts))
    try:
        for ev in d.events():
            if isinstance(ev, Packet):
                assert 1 <= ev.kind <= 42
                assert encode_packet(ev)[:4] in (REQ, RES)
    except RemoteProtocolError:
        pass


_terminated = st.binary(max_size=20).filter(lambda b: b"\x00" not in b)


@st.composite
def packets(draw):
    kind = draw(st.sampled_from(ALL_TYPES))
    argc, tail = LAYOUT[kind]
    if tail:
        args = [draw(_terminated) for _ in range(argc)] + [draw(st.binary(max_size=40))]
    elif argc == 0:
        args = []
    else:
        args = [draw(_terminated) for _ in range(argc - 1)] + [draw(st.binary(max_size=40))]
    return Packet(T(kind), tuple(args), draw(st.booleans()))


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(st.lists(packets(), min_size=1, max_size=6), st.integers(min_value=1, max_value=17))
def test_generated_packets_round_trip(pkts, chunk):
    data = b"".join(encode_packet(p) for p in pkts)
    d = Decoder()
    out = []
    for i in range(0, len(data), chunk):
        d.feed(data[i : i + chunk])
        out.extend(d.events())
    assert out == pkts


# ---------------------------------------------------------------- the unboxed fast path (advance)


def test_advance_leaves_each_packets_fields_on_the_decoder():
    from gearpy.protocol import ADMIN_LINE, NEED_MORE

    d = Decoder()
    submit = encode_request(T.SUBMIT_JOB, b"fn", b"u1", b"pay\x00load")
    d.feed(submit + encode(T.NOOP) + b"status\r\n" + submit[:7])
    assert d.advance() == T.SUBMIT_JOB
    assert d.args == (b"fn", b"u1", b"pay\x00load") and d.request is True
    assert d.advance() == T.NOOP
    assert d.args == () and d.request is False
    assert d.advance() == ADMIN_LINE
    assert d.admin == AdminCommand(b"status", (b"status",), True)
    assert d.advance() == NEED_MORE  # half a header is not an event
    assert d.buffered == 7
    d.feed(submit[7:])
    assert d.advance() == T.SUBMIT_JOB and d.args[0] == b"fn"
    assert d.advance() == NEED_MORE and d.buffered == 0


def test_advance_raises_what_events_raises():
    for data, error in (
        (b"\x00REX" + struct.pack(">II", 7, 0), BadMagic),
        (REQ + struct.pack(">II", 99, 0), UnknownPacketType),
        (REQ + struct.pack(">II", 7, 4) + b"fnfn", MalformedPacket),
    ):
        d = Decoder()
        d.feed(data)
        with pytest.raises(error):
            d.advance()
    d = Decoder(max_packet_size=10)
    d.feed(REQ + struct.pack(">II", 7, 11))
    with pytest.raises(PacketTooLarge):
        d.advance()


@pytest.mark.parametrize("size", [0, 1, 254, 255, 256, 257, 70_000])
def test_cached_small_headers_frame_as_encode_does(size):
    body = b"h" * size
    for _ in range(2):  # the second call is served from the header cache
        assert encode_unchecked_one(T.JOB_CREATED, body) == encode(T.JOB_CREATED, body)
        assert encode_unchecked(T.WORK_COMPLETE, b"H:x:1", body) == encode(T.WORK_COMPLETE, b"H:x:1", body)


def test_a_malformed_packet_is_consumed_before_it_is_refused():
    d = Decoder()
    d.feed(REQ + struct.pack(">II", 7, 4) + b"fnfn" + encode_request(T.ECHO_REQ, b"next"))
    with pytest.raises(MalformedPacket):
        d.advance()
    assert d.advance() == T.ECHO_REQ and d.args == (b"next",)
