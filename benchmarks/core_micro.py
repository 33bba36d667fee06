"""CPU per job of the server's hot path in-process: decoding plus the core, no sockets, no gevent.

    python benchmarks/core_micro.py                      # as installed (compiled when built)
    GEARPY_PURE_PYTHON=1 python benchmarks/core_micro.py # the .py sources

Feeds pre-encoded request bytes to :meth:`~gearpy.server.core.ServerCore.receive` (decoding and
dispatch), as the connection layer does, and clears the output
buffers the connection layer would send. Two loads: background submits (``bg``), and a foreground
cycle (``fg``: SUBMIT_JOB, the worker's GRAB_JOB_UNIQ, WORK_COMPLETE, PRE_SLEEP/NOOP). The result
is the best of ``--repeat`` runs in microseconds per job: the in-process floor under what
``benchmarks/loadgen.py`` measures over the network, steady enough to compare builds on a loaded
machine (it was how mypyc and Cython were compared, see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gearpy import _accel
from gearpy.protocol import Decoder, PacketType, encode_request
from gearpy.server.core import ServerCore
from gearpy.server.interfaces import TimerHandle
from gearpy.server.process import tune_gc
from gearpy.server.state import Conn

T = PacketType


class _Timer:
    def cancel(self) -> None:
        pass


class NoTimers:
    """The core asks for timers only for epoch jobs and CAN_DO_TIMEOUT; neither is used here."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        return _Timer()

    def cancel(self, timer: TimerHandle) -> None:
        pass


def _feed(core: ServerCore, conn: Conn, dec: Decoder, data: bytes) -> None:
    core.receive(conn, dec, data)  # as the connection layer does, once per read


def bg(jobs: int, batch: int = 1000) -> float:
    """Seconds for ``jobs`` background submits in pipelined batches (they stay queued)."""
    core = ServerCore(scheduler=NoTimers(), handle_prefix=b"H:bench")
    client = Conn(1)
    core.connect(client)
    dec = Decoder()
    chunk = encode_request(T.SUBMIT_JOB_BG, b"bench", b"", b"p" * 64) * batch
    t0 = time.perf_counter()
    for _ in range(jobs // batch):
        _feed(core, client, dec, chunk)
        client.out.clear()
    return time.perf_counter() - t0


def fg(jobs: int) -> float:
    """Seconds for ``jobs`` foreground jobs: submit, grab, complete, one job at a time."""
    core = ServerCore(scheduler=NoTimers(), handle_prefix=b"H:bench")
    client, worker = Conn(1), Conn(2)
    core.connect(client)
    core.connect(worker)
    cdec, wdec = Decoder(), Decoder()
    _feed(core, worker, wdec, encode_request(T.CAN_DO, b"bench"))
    submit = encode_request(T.SUBMIT_JOB, b"bench", b"", b"x" * 32)
    grab = encode_request(T.GRAB_JOB_UNIQ)
    pre_sleep = encode_request(T.PRE_SLEEP)
    t0 = time.perf_counter()
    for _ in range(jobs):
        _feed(core, worker, wdec, pre_sleep)
        _feed(core, client, cdec, submit)  # JOB_CREATED to the client, NOOP to the worker
        client.out.clear()
        worker.out.clear()
        _feed(core, worker, wdec, grab)
        handle = bytes(worker.out[-1])[12:].split(b"\0", 1)[0]
        worker.out.clear()
        _feed(core, worker, wdec, encode_request(T.WORK_COMPLETE, handle, b"done"))
        client.out.clear()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--default-gc", action="store_true", help="CPython's GC settings, not the server's")
    ap.add_argument("--only", choices=("bg", "fg"), help="one load (e.g. under valgrind: see BENCHMARKS.md)")
    args = ap.parse_args()
    print(f"hot path: {_accel.mode()}")
    if not args.default_gc:
        tune_gc()  # as gearpy-server does once started
    for name, fn, n in (("bg", bg, args.jobs), ("fg", fg, args.jobs // 4)):
        if args.only not in (None, name):
            continue
        best = min(fn(n) for _ in range(args.repeat))
        print(f"{name}: {best / n * 1e6:.2f} us/job")


if __name__ == "__main__":
    main()
