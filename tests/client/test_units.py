"""Codecs, the workers key, config layering and server choice (no server needed)."""

from __future__ import annotations

import zlib

import pytest

from gearpy.client import Client, load_config
from gearpy.codecs import get_codec
from gearpy.errors import ConfigError
from gearpy.keys import apply_key


@pytest.mark.parametrize(
    "name,obj",
    [
        ("json", {"a": [1, "ü", None]}),
        ("msgpack", {"a": [1, "ü", None], "b": b"\x00\xff"}),
        ("raw", b"\x00x"),
    ],
)
def test_codec_round_trip(name, obj):
    codec = get_codec(name)
    assert isinstance(codec.encode(obj), bytes)
    assert codec.decode(codec.encode(obj)) == obj


def test_raw_codec_encodes_str_utf8_and_refuses_objects():
    assert get_codec("raw").encode("ü") == "ü".encode()
    with pytest.raises(TypeError):
        get_codec(None).encode({"a": 1})


def test_unknown_codec_and_no_pickle():
    with pytest.raises(ConfigError):
        get_codec("pickle")
    codec = get_codec("json")
    assert get_codec(codec) is codec


def test_apply_key():
    assert apply_key("resize", None) == b"resize"
    assert apply_key("resize", "") == b"resize"
    assert apply_key("resize", "site1") == b"site1-resize"
    assert apply_key(b"r\xc3\xa9", "k") == "k-ré".encode()


def test_config_layers(tmp_path):
    path = tmp_path / "gearpy.yaml"
    path.write_text("servers: [a:1, b:2]\nworkers_key: fromfile\nclient: {timeout: 7}\n")
    cfg = load_config(path, env={})
    assert (cfg.servers, cfg.workers_key, cfg.timeout) == (["a:1", "b:2"], "fromfile", 7.0)
    cfg = load_config(path, env={"GEARPY_SERVERS": "c:3,d:4", "GEARPY_TIMEOUT": "2"})
    assert (cfg.servers, cfg.timeout) == (["c:3", "d:4"], 2.0)
    cfg = load_config(path, env={"GEARPY_SERVERS": "c:3"}, servers=["e:5"], workers_key=None)
    assert (cfg.servers, cfg.workers_key) == (["e:5"], "fromfile")
    with pytest.raises(ConfigError):
        load_config(path, env={"GEARPY_TIMEOUT": "soon"})


def test_client_servers_from_env(monkeypatch):
    monkeypatch.setenv("GEARPY_SERVERS", "h1:4730, h2")
    assert Client().servers == ["h1:4730", "h2:4730"]
    assert Client("x:1,y:2").servers == ["x:1", "y:2"]


def test_server_choice_hashes_unique_and_round_robins():
    client = Client(["a:1", "b:2", "c:3"])
    for unique in (b"u1", b"job-42", "ü".encode()):
        order = client.server_order(unique)
        assert order[0] == client.servers[zlib.crc32(unique) % 3]
        assert order == client.server_order(unique)
        assert sorted(order) == sorted(client.servers)
    firsts = {client.server_order()[0] for _ in range(3)}
    assert firsts == set(client.servers)


def test_admin_counts_are_ascii_digits_only():
    """``"²".isdigit()`` is true but ``int("²")`` fails: such a row is a name's tail, not a row."""
    from gearpy.client.admin import _counted

    assert _counted("f\t1\t0\t2", 3) == ["f", "1", "0", "2"]
    assert _counted("f\t\u00b2\t0\t0", 3) is None
    assert _counted("f\t1\t\u0663\t0", 3) is None  # ARABIC-INDIC DIGIT THREE
