#!/usr/bin/env python
"""Crash test for durable queue stores: no acknowledged background job may be lost to SIGKILL.

What it does (reliability.md §6 T1, on one store):

1. Starts ``python -m gearpy.server -q URL`` on a loopback port.
2. Submits N background jobs (empty unique, payload = a sequence number) from several raw-socket
   connections, each pipelining up to ``--window`` submits, and records every JOB_CREATED.
3. SIGKILLs the server at random moments (when a random number of acks has been reached),
   ``--kills`` times, restarting it on the same store each time; submitters reconnect and go on
   with their remaining numbers (un-acked ones are "indeterminate", never resubmitted).
4. Restarts once more and drains with raw-socket workers (CAN_DO, GRAB_JOB_UNIQ, WORK_COMPLETE)
   that record every execution; stops the server cleanly and counts the rows left in the store.

Verdict: ``lost`` (acked but never run) and ``unexpected`` (run but never submitted) must be
empty and no row may be left; duplicates are reported (at-least-once allows them).

Examples::

    python scripts/crash_test.py -n 100000 --connections 8 --kills 3
    python scripts/crash_test.py --url 'mysql://root@127.0.0.1/test?table=crash' -n 20000
    python scripts/crash_test.py -n 50000 --no-kill        # durable submits/s without faults

Also run (small N, ``--json``) by ``tests/store/test_crash.py`` against every durable store.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field

from gearpy.protocol import Decoder, PacketType, encode_request
from gearpy.testing import ServerProcess, gearpy_server_argv

T = PacketType


@dataclass
class CrashResult:
    """Everything measured in one run; ``ok`` is the verdict."""

    url: str
    n: int
    seed: int
    kills_done: int = 0
    attempted: int = 0
    acked: int = 0
    errors: int = 0
    indeterminate: int = 0
    executed: int = 0
    recovered: int = 0  # indeterminate submits that were stored and ran anyway
    lost: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    duplicates: dict[int, int] = field(default_factory=dict)
    rows_left: int = -1
    submit_seconds: float = 0.0
    acks_per_second: float = 0.0
    restart_seconds: list[float] = field(default_factory=list)
    drain_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.lost and not self.unexpected and self.rows_left == 0

    def summary(self) -> str:
        return (
            f"{'PASS' if self.ok else 'FAIL'} {self.url}: n={self.n} kills={self.kills_done} "
            f"attempted={self.attempted} acked={self.acked} errors={self.errors} "
            f"indeterminate={self.indeterminate} executed={self.executed} recovered={self.recovered} "
            f"lost={len(self.lost)} unexpected={len(self.unexpected)} duplicated={len(self.duplicates)} "
            f"rows_left={self.rows_left} acks/s={self.acks_per_second:.0f} "
            f"restart_s={[round(s, 2) for s in self.restart_seconds]} drain_s={self.drain_seconds:.2f}"
        )


class _Shared:
    """State the submitter threads share with the killer (sets/ints: atomic enough under the GIL)."""

    def __init__(self) -> None:
        self.attempted: set[int] = set()
        self.acked: set[int] = set()
        self.errors: set[int] = set()
        self.indeterminate: set[int] = set()
        self.down = threading.Event()  # set while the server is being killed / restarted


def _recv_packets(sock: socket.socket, decoder: Decoder):
    data = sock.recv(1 << 16)
    if not data:
        raise ConnectionError("server closed the connection")
    decoder.feed(data)
    return list(decoder.events())


def _submitter(addr, function: bytes, seqs: list[int], window: int, shared: _Shared, deadline: float) -> None:
    """Submit ``seqs`` in order, pipelined; reconnect after a crash and go on with the rest."""
    todo = deque(seqs)
    while todo and time.monotonic() < deadline:
        try:
            sock = socket.create_connection(addr, timeout=5)
        except OSError:
            time.sleep(0.02)
            continue
        sock.settimeout(30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        decoder = Decoder(allow_admin=False)
        outstanding: deque[int] = deque()
        try:
            while todo or outstanding:
                burst = []
                while todo and len(outstanding) < window:
                    seq = todo.popleft()
                    shared.attempted.add(seq)
                    outstanding.append(seq)
                    burst.append(encode_request(T.SUBMIT_JOB_BG, function, b"", str(seq).encode()))
                if burst:
                    sock.sendall(b"".join(burst))
                for packet in _recv_packets(sock, decoder):
                    seq = outstanding.popleft()
                    if packet.kind == T.JOB_CREATED:
                        shared.acked.add(seq)
                    else:
                        shared.errors.add(seq)
        except (OSError, ConnectionError):
            shared.indeterminate.update(outstanding)
        finally:
            sock.close()


def _worker(addr, function: bytes, executed: Counter, lock: threading.Lock) -> None:
    """Grab and complete jobs until the server has none left for ``function``."""
    sock = socket.create_connection(addr, timeout=30)
    decoder = Decoder(allow_admin=False)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = encode_request(T.CAN_DO, function) + encode_request(T.GRAB_JOB_UNIQ)
        while True:
            sock.sendall(request)  # WORK_COMPLETE and the next GRAB in one segment (no Nagle wait)
            packets: list = []
            while not packets:
                packets = _recv_packets(sock, decoder)
            packet = packets[0]
            if packet.kind == T.NO_JOB:
                return
            if packet.kind == T.JOB_ASSIGN_UNIQ:
                handle, _, _, payload = packet.args
                with lock:
                    executed[int(payload)] += 1  # recorded before the server hears of completion
                request = encode_request(T.WORK_COMPLETE, handle, b"") + encode_request(T.GRAB_JOB_UNIQ)
            else:
                request = encode_request(T.GRAB_JOB_UNIQ)
    finally:
        sock.close()


def _drain(addr, function: bytes, workers: int) -> Counter:
    executed: Counter = Counter()
    lock = threading.Lock()
    for _ in range(2):  # a second pass proves the queue stayed empty
        threads = [
            threading.Thread(target=_worker, args=(addr, function, executed, lock)) for _ in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.2)
    return executed


def _rows_left(url: str) -> int:
    from gearpy.server.stores import open_store

    store = open_store(url)
    store.open()
    try:
        return len(list(store.replay()))
    finally:
        store.close()


def run(
    url: str,
    n: int = 300,
    *,
    connections: int = 4,
    window: int = 32,
    workers: int = 4,
    kills: int = 1,
    seed: int | None = None,
    function: bytes = b"crash_test",
    timeout: float = 300.0,
    server_args: tuple[str, ...] = (),
) -> CrashResult:
    """One crash-test run against the store at ``url`` (which must start empty)."""
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    result = CrashResult(url=url, n=n, seed=seed)
    if _rows_left(url):
        raise RuntimeError(f"the store at {url} is not empty; use a fresh table/file")
    server = ServerProcess(gearpy_server_argv("-q", url, *server_args))
    server.start()
    addr = (server.host, server.port)
    shared = _Shared()
    deadline = time.monotonic() + timeout
    targets = sorted(rng.randint(n // 10, n * 9 // 10) for _ in range(kills))
    try:
        threads = [
            threading.Thread(
                target=_submitter,
                args=(addr, function, list(range(i, n, connections)), window, shared, deadline),
            )
            for i in range(connections)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for target in targets:
            while len(shared.acked) < target and any(t.is_alive() for t in threads):
                time.sleep(0.0005)
            if len(shared.acked) < target:
                break  # the submitters ended early (their errors are counted): no kill point
            # (Reached even when a fast server let the submitters finish between two polls: the
            # kill then hits every acknowledged job still queued, before the drain.)
            server.kill()
            result.kills_done += 1
            t0 = time.monotonic()
            server.start()
            result.restart_seconds.append(time.monotonic() - t0)
        for t in threads:
            t.join()
        result.submit_seconds = time.monotonic() - started
        t0 = time.monotonic()
        executed = _drain(addr, function, workers)
        result.drain_seconds = time.monotonic() - t0
    finally:
        server.stop()
    result.rows_left = _rows_left(url)
    attempted, acked = shared.attempted, shared.acked
    result.attempted, result.acked = len(attempted), len(acked)
    result.errors, result.indeterminate = len(shared.errors), len(shared.indeterminate)
    result.executed = len(executed)
    result.recovered = len(set(executed) & shared.indeterminate)
    result.lost = sorted(acked - set(executed))
    result.unexpected = sorted(set(executed) - attempted)
    result.duplicates = {seq: count for seq, count in executed.items() if count > 1}
    result.acks_per_second = len(acked) / result.submit_seconds if result.submit_seconds else 0.0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="queue store URL (default: a fresh SQLite file in a temp dir)")
    parser.add_argument("-n", type=int, default=10000, help="background jobs to submit")
    parser.add_argument("--connections", type=int, default=8, help="submitting connections")
    parser.add_argument("--window", type=int, default=32, help="un-acked submits per connection")
    parser.add_argument("--workers", type=int, default=4, help="draining workers")
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs during submission")
    parser.add_argument("--no-kill", action="store_true", help="no fault: measure durable submits/s")
    parser.add_argument("--seed", type=int, help="random seed (printed; reuse it to repeat a run)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    url = args.url or f"sqlite://{tempfile.mkdtemp(prefix='gearpy-crash-')}/queue.db"
    result = run(
        url,
        args.n,
        connections=args.connections,
        window=args.window,
        workers=args.workers,
        kills=0 if args.no_kill else args.kills,
        seed=args.seed,
        timeout=args.timeout,
    )
    if args.json:
        print(json.dumps({**asdict(result), "ok": result.ok}))
    else:
        print(f"seed={result.seed}")
        print(result.summary())
        if result.lost:
            print(f"lost (first 20): {result.lost[:20]}")
        if result.duplicates:
            print(f"duplicated (first 20): {dict(list(result.duplicates.items())[:20])}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
