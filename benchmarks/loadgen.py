"""Raw-socket Gearman load generator (does not use gearpy's client or worker).

Each shape runs its clients and workers as separate processes speaking the wire protocol directly,
so the same load can be played against gearpy-server and gearmand. Only ``gearpy.protocol`` is
used, for encoding and decoding, which is the same work any client library does.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import time
from dataclasses import dataclass

from gearpy.protocol import Decoder, PacketType, encode_request

T = PacketType


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _packets(sock: socket.socket, dec: Decoder):
    """Yield packets forever, reading as needed."""
    while True:
        yield from dec.events()
        data = sock.recv(1 << 20)
        if not data:
            return
        dec.feed(data)


# ---------------------------------------------------------------- workers


def worker_proc(port: int, function: bytes, stop_at: float, ready) -> None:
    """A plain worker: GRAB_JOB_UNIQ, WORK_COMPLETE with the payload, PRE_SLEEP when idle."""
    s = _connect(port)
    s.settimeout(1.0)
    s.sendall(encode_request(T.CAN_DO, function))
    ready.set()
    dec = Decoder(allow_admin=False)
    grab = encode_request(T.GRAB_JOB_UNIQ)
    pre_sleep = encode_request(T.PRE_SLEEP)
    s.sendall(grab)
    while time.monotonic() < stop_at:
        try:
            data = s.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            return
        dec.feed(data)
        out = []
        for ev in dec.events():
            k = ev.kind
            if k == T.JOB_ASSIGN_UNIQ:
                out.append(encode_request(T.WORK_COMPLETE, ev.args[0], ev.args[3]))
                out.append(grab)
            elif k == T.NO_JOB:
                out.append(pre_sleep)
            elif k == T.NOOP:
                out.append(grab)
        if out:
            s.sendall(b"".join(out))
    s.close()


# ---------------------------------------------------------------- clients


def bg_client_proc(port: int, function: bytes, count: int, window: int, payload: bytes, q) -> None:
    """Submit ``count`` background jobs keeping ``window`` in flight; report (done, seconds)."""
    s = _connect(port)
    dec = Decoder(allow_admin=False)
    pkt = encode_request(T.SUBMIT_JOB_BG, function, b"", payload)
    sent = done = 0
    t0 = time.perf_counter()
    batch = min(window, count)
    s.sendall(pkt * batch)
    sent = batch
    pk = _packets(s, dec)
    while done < count:
        ev = next(pk)
        if ev.kind == T.JOB_CREATED:
            done += 1
            if sent < count and sent - done < window // 2:
                n = min(window - (sent - done), count - sent)
                s.sendall(pkt * n)
                sent += n
        elif ev.kind == T.ERROR:
            raise RuntimeError(f"server error: {ev.args}")
    q.put((done, time.perf_counter() - t0))
    s.close()


def fg_client_proc(port: int, function: bytes, count: int, window: int, q, latencies: bool = False) -> None:
    """Foreground jobs, ``window`` outstanding at a time; report (done, seconds, latency list)."""
    s = _connect(port)
    dec = Decoder(allow_admin=False)
    payload = b"x" * 32
    sent = done = 0
    lats: list[float] = []
    starts: dict[bytes, float] = {}
    pending_starts: list[float] = []
    t0 = time.perf_counter()
    pk = _packets(s, dec)

    def send(n: int) -> None:
        nonlocal sent
        now = time.perf_counter()
        s.sendall(encode_request(T.SUBMIT_JOB, function, b"", payload) * n)
        pending_starts.extend([now] * n)
        sent += n

    send(min(window, count))
    while done < count:
        ev = next(pk)
        k = ev.kind
        if k == T.JOB_CREATED:
            starts[ev.args[0]] = pending_starts.pop(0)
        elif k == T.WORK_COMPLETE:
            done += 1
            st = starts.pop(ev.args[0], None)
            if latencies and st is not None:
                lats.append(time.perf_counter() - st)
            if sent < count:
                send(1)
        elif k in (T.WORK_FAIL, T.ERROR):
            raise RuntimeError(f"job failed: {ev}")
    q.put((done, time.perf_counter() - t0, lats))
    s.close()


# ---------------------------------------------------------------- shapes


@dataclass
class Result:
    jobs: int
    seconds: float
    extra: dict

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def admin(port: int, line: bytes) -> bytes:
    with _connect(port) as s:
        s.sendall(line)
        data = b""
        while not data.endswith(b".\n") and not data.startswith(b"OK") and not data.startswith(b"ERR"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        return data


def drop_function(port: int, function: bytes) -> None:
    admin(port, b"drop function " + function + b"\r\n")


def _run_clients(server_pid: int, clients: int, target, args: tuple, **kwargs) -> tuple[list, float, float]:
    """Run ``clients`` client processes (each reports on a queue); return results, wall s, server CPU s."""
    q: mp.Queue = mp.Queue()
    cpu0 = _cpu_seconds(server_pid)
    t0 = time.perf_counter()
    procs = [mp.Process(target=target, args=(*args, q), kwargs=kwargs) for _ in range(clients)]
    for p in procs:
        p.start()
    results = [q.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds(server_pid) - cpu0
    for p in procs:
        p.join()
    return results, wall, cpu


def shape_background(
    port: int,
    server_pid: int,
    clients: int,
    per_client: int,
    window: int,
    payload_size: int = 64,
    function: bytes = b"bench_bg",
) -> Result:
    payload = b"p" * payload_size
    results, wall, cpu = _run_clients(
        server_pid, clients, bg_client_proc, (port, function, per_client, window, payload)
    )
    jobs = sum(r[0] for r in results)
    return Result(jobs, wall, {"server_cpu_us_per_job": cpu / jobs * 1e6})


def shape_foreground(
    port: int,
    server_pid: int,
    clients: int,
    workers: int,
    per_client: int,
    window: int,
    function: bytes = b"bench_fg",
    latencies: bool = False,
) -> Result:
    ctx_stop = time.monotonic() + 600
    readies = [mp.Event() for _ in range(workers)]
    wprocs = [
        mp.Process(target=worker_proc, args=(port, function, ctx_stop, r), daemon=True) for r in readies
    ]
    for p in wprocs:
        p.start()
    for r in readies:
        r.wait(30)
    time.sleep(0.2)
    results, wall, cpu = _run_clients(
        server_pid, clients, fg_client_proc, (port, function, per_client, window), latencies=latencies
    )
    for p in wprocs:
        p.kill()
        p.join()
    jobs = sum(r[0] for r in results)
    extra: dict = {"server_cpu_us_per_job": cpu / jobs * 1e6}
    if latencies:
        lats = sorted(x for r in results for x in r[2])
        extra["p50_us"] = lats[len(lats) // 2] * 1e6
        extra["p99_us"] = lats[int(len(lats) * 0.99)] * 1e6
    return Result(jobs, wall, extra)


def shape_memory(
    port: int, server_pid: int, jobs: int, payload_size: int = 64, function: bytes = b"bench_mem"
) -> Result:
    """Server RSS growth per queued background job (jobs stay queued: no worker)."""
    before = rss_bytes(server_pid)
    clients = 2
    r = shape_background(port, server_pid, clients, jobs // clients, 2000, payload_size, function)
    time.sleep(0.5)
    after = rss_bytes(server_pid)
    return Result(r.jobs, r.seconds, {"bytes_per_job": (after - before) / r.jobs})


def _echo_rtt(port: int, n: int = 200) -> float:
    """Median ECHO round trip on a fresh connection, in microseconds."""
    s = _connect(port)
    dec = Decoder(allow_admin=False)
    pkt = encode_request(T.ECHO_REQ, b"x" * 16)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(pkt)
        while dec.next_event() is None:
            dec.feed(s.recv(65536))
        times.append(time.perf_counter() - t0)
    s.close()
    times.sort()
    return times[len(times) // 2] * 1e6


def shape_idle(port: int, server_pid: int, connections: int) -> Result:
    """Hold ``connections`` idle connections: server memory per connection, and ECHO latency then."""
    before = rss_bytes(server_pid)
    socks = []
    ping = encode_request(T.ECHO_REQ, b"")
    t0 = time.perf_counter()
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(ping)
        socks.append(s)
    for s in socks:  # every connection was really served
        dec = Decoder(allow_admin=False)
        while dec.next_event() is None:
            dec.feed(s.recv(4096))
    wall = time.perf_counter() - t0
    time.sleep(0.5)
    after = rss_bytes(server_pid)
    rtt = _echo_rtt(port)
    for s in socks:
        s.close()
    return Result(connections, wall, {"bytes_per_conn": (after - before) / connections, "echo_p50_us": rtt})


def shape_drain(
    port: int, server_pid: int, jobs: int, workers: int, function: bytes = b"bench_drain"
) -> Result:
    """Queue ``jobs`` background jobs, then drain them; compare the first and last tenth's rates."""
    shape_background(port, server_pid, 2, jobs // 2, 2000, 64, function)
    queued = jobs // 2 * 2
    stop_at = time.monotonic() + 1200
    readies = [mp.Event() for _ in range(workers)]
    procs = [mp.Process(target=worker_proc, args=(port, function, stop_at, r), daemon=True) for r in readies]
    t_start = time.perf_counter()
    for p in procs:
        p.start()
    marks: dict[str, float] = {}
    while True:
        line = [
            ln for ln in admin(port, b"status\n").decode().splitlines() if ln.startswith(function.decode())
        ]
        left = int(line[0].split("\t")[1]) if line else 0
        now = time.perf_counter()
        if "first" not in marks and left <= queued * 0.9:
            marks["first"] = now
        if "last_start" not in marks and left <= queued * 0.1:
            marks["last_start"] = now
        if left == 0:
            marks["end"] = now
            break
        time.sleep(0.05)
    for p in procs:
        p.kill()
        p.join()
    first_rate = queued * 0.1 / (marks["first"] - t_start)
    last_rate = queued * 0.1 / (marks["end"] - marks["last_start"])
    return Result(
        queued,
        marks["end"] - t_start,
        {
            "first_tenth_jobs_s": first_rate,
            "last_tenth_jobs_s": last_rate,
            "last_over_first": last_rate / first_rate,
        },
    )
