"""The server embedded in a Python process through the public ``gearpy.server`` API."""

from __future__ import annotations

import socket

import gevent

import gearpy.server
from gearpy.protocol import Decoder, PacketType, encode_request
from gearpy.server import GearServer, ServerConfig, open_store

T = PacketType


def _roundtrip(port: int, data: bytes) -> list:
    # A real client socket in a real OS thread: the server's greenlets keep running meanwhile.
    def talk() -> list:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
            dec = Decoder()
            events: list = []
            while len(events) < 2:
                chunk = s.recv(4096)
                assert chunk, "server closed the connection"
                dec.feed(chunk)
                events += list(dec.events())
            return events

    pool = gevent.get_hub().threadpool
    return pool.apply(talk)


def test_embedded_server_serves_and_stops(tmp_path) -> None:
    assert set(gearpy.server.__all__) >= {"GearServer", "ServerConfig", "open_store", "run"}
    store = open_store(f"sqlite://{tmp_path / 'q.db'}")
    server = GearServer(ServerConfig(port=0), store)
    [(host, port)] = server.bind()
    assert host == "127.0.0.1" and port > 0
    server.start()
    try:
        events = _roundtrip(
            port, encode_request(T.ECHO_REQ, b"ping") + encode_request(T.SUBMIT_JOB_BG, b"f", b"u", b"x")
        )
        assert events[0].kind == T.ECHO_RES and events[0].args == (b"ping",)
        assert events[1].kind == T.JOB_CREATED  # acknowledged after the durable commit
        assert list(server.core.jobs) == [events[1].args[0]]
    finally:
        server.stop()
    assert server.serve_forever() == 0  # returns at once: the server has stopped
    reopened = open_store(f"sqlite://{tmp_path / 'q.db'}")
    reopened.open()
    try:
        assert [(j.function, j.unique, j.payload) for j in reopened.replay()] == [(b"f", b"u", b"x")]
    finally:
        reopened.close()
