#!/usr/bin/env python
"""A raw-socket Gearman worker process for fault tests (``support.workers``) and ``scripts/soak.py``.

Speaks the protocol with :mod:`gearpy.protocol` only (no gearpy worker runtime), so fault tests do
not depend on the code under test beyond the server. It runs by path (``python rawworker.py``), so
it imports nothing from ``support``. What it does with a job depends on the payload, so one binary
covers every scenario:

* ``die...``        -> ``os._exit(1)`` as soon as the job is assigned (a "job of death");
* ``sleep:S:...``   -> sleep S seconds, then complete;
* ``fail...``       -> WORK_FAIL;
* anything else    -> WORK_COMPLETE with ``done:`` + payload.

Before it answers, it appends one JSON line ``{"op": "start"|"done", "payload", "pid", "handle"}``
to ``--log`` with a single ``write()`` (the line survives a SIGKILL that follows). With
``--reconnect`` it reconnects (every 0.1 s) whenever the server goes away.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

from gearpy.protocol import Decoder, Packet, PacketType, encode_request

T = PacketType


def log_line(fd: int | None, **rec: object) -> None:
    if fd is None:
        return
    rec["pid"] = os.getpid()
    os.write(fd, (json.dumps(rec) + "\n").encode())


def serve(
    host: str, port: int, functions: list[bytes], log_fd: int | None, max_jobs: int, no_sleep: bool = False
) -> int:
    sock = socket.create_connection((host, port), timeout=5)
    sock.settimeout(None)
    dec = Decoder(allow_admin=False)
    for fn in functions:
        sock.sendall(encode_request(T.CAN_DO, fn))
    done = 0

    def next_packet() -> Packet:
        while True:
            ev = dec.next_event()
            if ev is not None:
                assert isinstance(ev, Packet)  # allow_admin=False: packets only
                return ev
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            dec.feed(data)

    sock.sendall(encode_request(T.GRAB_JOB_UNIQ))
    while True:
        pkt = next_packet()
        if pkt.kind == T.NO_JOB:
            sock.sendall(encode_request(T.PRE_SLEEP))
        elif pkt.kind == T.NOOP:
            sock.sendall(encode_request(T.GRAB_JOB_UNIQ))
        elif pkt.kind == T.JOB_ASSIGN_UNIQ:
            handle, _fn, _unique, payload = pkt.args
            text = payload.decode("utf-8", "replace")
            log_line(log_fd, op="start", payload=text, handle=handle.decode())
            if payload.startswith(b"die"):
                os._exit(1)
            if payload.startswith(b"sleep:") and not no_sleep:
                time.sleep(float(payload.split(b":")[1]))
            if payload.startswith(b"fail"):
                log_line(log_fd, op="fail", payload=text, handle=handle.decode())
                sock.sendall(encode_request(T.WORK_FAIL, handle))
            else:
                log_line(log_fd, op="done", payload=text, handle=handle.decode())
                sock.sendall(encode_request(T.WORK_COMPLETE, handle, b"done:" + payload))
            done += 1
            if max_jobs and done >= max_jobs:
                return 0
            sock.sendall(encode_request(T.GRAB_JOB_UNIQ))
        # anything else (ERROR for a late result...) is ignored


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--function", "-f", action="append", required=True)
    p.add_argument("--log")
    p.add_argument("--reconnect", action="store_true")
    p.add_argument("--max-jobs", type=int, default=0)
    p.add_argument("--no-sleep", action="store_true", help="ignore sleep: payloads (a fast worker)")
    a = p.parse_args(argv)
    log_fd = os.open(a.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if a.log else None
    functions = [f.encode() for f in a.function]
    while True:
        try:
            return serve(a.host, a.port, functions, log_fd, a.max_jobs, a.no_sleep)
        except OSError:
            if not a.reconnect:
                return 1
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
