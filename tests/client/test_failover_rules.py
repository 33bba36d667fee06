"""Failover never re-runs a created job: scripted fake servers decide exactly what the client saw."""

from __future__ import annotations

import socket
import threading

import pytest

from gearpy.client import Admin, Client
from gearpy.errors import JobOutcomeUnknown
from gearpy.protocol import Decoder, PacketType, encode

T = PacketType


class FakeServer:
    """Accepts connections; for each SUBMIT_* it either closes at once or answers JOB_CREATED then closes."""

    def __init__(self, create: bool) -> None:
        self.create = create
        self.submits = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            decoder = Decoder(allow_admin=False)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                decoder.feed(data)
                for p in decoder.events():
                    if p.kind == T.OPTION_REQ:
                        conn.sendall(encode(T.OPTION_RES, p.args[0]))
                    elif p.kind.name.startswith("SUBMIT_JOB"):
                        self.submits += 1
                        if self.create:
                            conn.sendall(encode(T.JOB_CREATED, b"H:fake:1"))
                        conn.shutdown(socket.SHUT_RDWR)
                        return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.mark.parametrize("background", [True, False])
def test_moves_on_when_no_job_created(gearman_server, background):
    fake = FakeServer(create=False)
    try:
        with Client([fake.address, gearman_server.address], timeout=20) as client:
            client.server_order = lambda unique=b"": [fake.address, gearman_server.address]  # type: ignore
            job = client.submit("f", "x", background=background)
            assert job.server == gearman_server.address and job.handle
    finally:
        fake.close()
    assert fake.submits == 1


def test_created_foreground_job_is_never_resubmitted(gearman_server):
    fake = FakeServer(create=True)
    try:
        with Client([fake.address, gearman_server.address], timeout=20) as client:
            client.server_order = lambda unique=b"": [fake.address, gearman_server.address]  # type: ignore
            job = client.submit("f", "x")
            assert (job.server, job.handle) == (fake.address, "H:fake:1")
            with pytest.raises(JobOutcomeUnknown):
                job.result(10)
    finally:
        fake.close()
    assert fake.submits == 1
    with Admin(gearman_server.address) as admin:
        assert all(f.function != "f" for f in admin.status())
