"""A fault-injecting TCP proxy for tests: the network between a gearpy part and its peer.

Put it between a client or worker and ``gearpy-server``, or between the server and its store
(MariaDB, PostgreSQL, Redis). Faults switch at run time from the test, on every connection at once
(methods of :class:`FaultProxy`, which also apply to connections made later) or on one
(methods of :class:`Link`, found in :attr:`FaultProxy.links`):

* :meth:`~FaultProxy.delay` - added latency per direction (bytes keep their order);
* :meth:`~FaultProxy.slow` - a link of N bytes per second;
* :meth:`~FaultProxy.blackhole` - a partition: bytes are neither delivered nor acknowledged and
  no RST is sent; new connections get no SYN-ACK. :meth:`~FaultProxy.heal` ends it and the TCP
  connections carry on (retransmission delivers what was sent meanwhile), or find they were
  given up by a peer's keepalive or user timeout;
* :meth:`~FaultProxy.reset` - RST both ends now, or after N more bytes in one direction (a reset
  in the middle of a packet);
* :meth:`~FaultProxy.half_open` - one end is told the connection is gone (RST), the other end
  keeps a connection that silently leads nowhere (a crashed or rebooted host);
* :meth:`~FaultProxy.stop` / :meth:`~FaultProxy.start` - the peer goes away (connections cut,
  new ones refused) and comes back on the same port.

**Why a blackhole is a real one.** A userspace proxy's kernel acknowledges every segment, so a
peer's TCP keepalive would never notice a "blackhole" that merely stops forwarding. Here a
blackholed socket gets a classic BPF socket filter that drops every incoming segment before TCP
sees it (``SO_ATTACH_FILTER``, no privilege needed): keepalive probes and data go unanswered
exactly as across a dead network, so the server's keepalive and ``TCP_USER_TIMEOUT`` are what is
tested. Linux only.

Plain OS threads (four per connection): the proxy runs whatever the code under test does with
its own event loop, and it works in processes that never imported gevent (``scripts/soak.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
import threading
import time
from collections import deque

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)
#: One classic-BPF instruction, ``ret #0``: accept nothing.
_DROP_ALL = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))
_DROP_PROG = struct.pack("HL", 1, ctypes.addressof(_DROP_ALL))

UP, DOWN = "up", "down"  # client -> target, target -> client
BOTH = (UP, DOWN)
CHUNK = 65536


def _directions(direction: str) -> tuple[str, ...]:
    if direction == "both":
        return BOTH
    if direction not in BOTH:
        raise ValueError(f"direction must be 'up', 'down' or 'both', not {direction!r}")
    return (direction,)


def drop_incoming(sock: socket.socket, on: bool) -> None:
    """Make the kernel drop (``on``) or accept again every segment arriving on ``sock``."""
    try:
        if on:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _DROP_PROG)
        else:
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError:
        pass  # closed meanwhile, or no filter attached


def hard_close(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), waking a thread blocked in ``recv`` on it first."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class Faults:
    """What is done to traffic; a proxy's defaults, copied into each new :class:`Link`."""

    __slots__ = ("latency", "rate", "blackholed")

    def __init__(self) -> None:
        self.latency = {UP: 0.0, DOWN: 0.0}
        self.rate: dict[str, float | None] = {UP: None, DOWN: None}
        self.blackholed: set[str] = set()

    def copy(self) -> Faults:
        other = Faults()
        other.latency = dict(self.latency)
        other.rate = dict(self.rate)
        other.blackholed = set(self.blackholed)
        return other


class Link:
    """One proxied connection: ``client`` (accepted) and ``upstream`` (to the target)."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.faults = proxy.faults.copy()
        self.cond = threading.Condition()
        self.queues: dict[str, deque[tuple[float, bytes | None]]] = {UP: deque(), DOWN: deque()}
        #: one-shot trips: direction -> [bytes still to forward, action]
        self.armed: dict[str, list] = {}
        self.forwarded = {UP: 0, DOWN: 0}
        self.dead = False
        for d in self.faults.blackholed:
            drop_incoming(self._source(d), True)
        for counting, trip in proxy.trips.items():
            self.armed[counting] = [trip[0], trip[1], trip[2]]

    def _source(self, direction: str) -> socket.socket:
        return self.client if direction == UP else self.upstream

    def _sink(self, direction: str) -> socket.socket:
        return self.upstream if direction == UP else self.client

    def start(self) -> None:
        for d in BOTH:
            for target in (self._read, self._write):
                threading.Thread(target=target, args=(d,), daemon=True, name=f"proxy-{d}").start()

    # -- faults -------------------------------------------------------------------------------

    def delay(self, seconds: float, direction: str = "both") -> None:
        with self.cond:
            for d in _directions(direction):
                self.faults.latency[d] = seconds
            self.cond.notify_all()

    def slow(self, bytes_per_second: float | None, direction: str = "both") -> None:
        with self.cond:
            for d in _directions(direction):
                self.faults.rate[d] = bytes_per_second
            self.cond.notify_all()

    def blackhole(self, direction: str = "both", after: int | None = None, counting: str = UP) -> None:
        """Swallow traffic (no ACK, no RST); with ``after``, once that many more bytes went ``counting``."""
        if after is not None:
            with self.cond:
                self.armed[_directions(counting)[0]] = [after, "blackhole", _directions(direction)]
                self.cond.notify_all()
            return
        with self.cond:
            for d in _directions(direction):
                self._blackhole_locked(d)
            self.cond.notify_all()

    def _blackhole_locked(self, d: str) -> None:
        if d not in self.faults.blackholed:
            self.faults.blackholed.add(d)
            drop_incoming(self._source(d), True)

    def heal(self) -> None:
        """No more faults on this link; held bytes flow again."""
        with self.cond:
            for d in list(self.faults.blackholed):
                drop_incoming(self._source(d), False)
            self.faults = Faults()
            self.armed.clear()
            self.cond.notify_all()

    def reset(self, after: int | None = None, counting: str = UP) -> None:
        """RST both ends now, or once ``after`` more bytes went ``counting`` (mid-packet)."""
        if after is None:
            self.kill()
            return
        with self.cond:
            self.armed[_directions(counting)[0]] = [after, "reset", BOTH]
            self.cond.notify_all()

    def half_open(self, keep: str = "client") -> None:
        """``keep`` (client or upstream) keeps a silent connection; the other end gets an RST."""
        if keep not in ("client", "upstream"):
            raise ValueError("keep must be 'client' or 'upstream'")
        with self.cond:
            kept, gone = (self.client, self.upstream) if keep == "client" else (self.upstream, self.client)
            drop_incoming(kept, True)
            self.faults.blackholed.update(BOTH)
            self.dead = True
            self.cond.notify_all()
        hard_close(gone)
        self.proxy._forget(self, keep_open=kept)

    def kill(self) -> None:
        """RST both ends."""
        with self.cond:
            self.dead = True
            self.cond.notify_all()
        hard_close(self.client)
        hard_close(self.upstream)
        self.proxy._forget(self)

    # -- pumps --------------------------------------------------------------------------------

    def _read(self, d: str) -> None:
        src = self._source(d)
        while True:
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = None  # reset: the other end is reset too
            with self.cond:
                if self.dead:
                    return
                self.queues[d].append((time.monotonic() + self.faults.latency[d], data or None))
                self.cond.notify_all()
            if not data:
                if data is None:
                    self.kill()
                return

    def _next(self, d: str) -> bytes | None | bool:
        """Wait for the next chunk ``d`` may send now; False when the link is dead."""
        with self.cond:
            while True:
                if self.dead:
                    return False
                queue = self.queues[d]
                if queue and d not in self.faults.blackholed:
                    due, data = queue[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        queue.popleft()
                        return data
                    self.cond.wait(wait)
                else:
                    self.cond.wait()

    def _write(self, d: str) -> None:
        dst = self._sink(d)
        while True:
            data = self._next(d)
            if data is False:
                return
            if data is None:  # end of stream from the source: pass the FIN on
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            assert isinstance(data, bytes)
            trip = None
            with self.cond:
                armed = self.armed.get(d)
                if armed is not None:
                    if len(data) >= armed[0]:
                        data, rest = data[: armed[0]], data[armed[0] :]
                        trip = self.armed.pop(d)
                        if rest:  # held (blackhole) or never sent (reset)
                            self.queues[d].appendleft((0.0, rest))
                    else:
                        armed[0] -= len(data)
            if data and not self._send(d, dst, data):
                return
            if trip is not None and trip[1] == "reset":
                self.kill()
                return
            if trip is not None:
                with self.cond:
                    for other in trip[2]:
                        self._blackhole_locked(other)
                    self.cond.notify_all()

    def _send(self, d: str, dst: socket.socket, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            rate = self.faults.rate[d]
            piece = view if not rate else view[: max(1, int(rate / 20))]
            try:
                dst.sendall(piece)
            except OSError:
                self.kill()
                return False
            self.forwarded[d] += len(piece)
            view = view[len(piece) :]
            if rate:
                time.sleep(len(piece) / rate)
        return True


class FaultProxy:
    """A TCP forwarder on a fixed loopback port in front of ``target`` (a port or (host, port))."""

    def __init__(self, target: int | tuple[str, int], port: int = 0) -> None:
        self.target = ("127.0.0.1", target) if isinstance(target, int) else target
        if not port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port = port
        self.faults = Faults()
        #: trips armed for every connection, made later too: counting direction -> [after, action, dirs]
        self.trips: dict[str, list] = {}
        self.links: list[Link] = []
        #: half-open ends kept alive (a silent connection must not be closed by the GC)
        self._kept: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self.accepted = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        if self.faults.blackholed:
            drop_incoming(listener, True)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept").start()
        return self

    def stop(self) -> None:
        """The peer goes away: every connection is cut (RST) and new ones are refused."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown first: close() alone leaves a listener that a blocked accept() keeps alive
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for link in list(self.links):
            link.kill()
        with self._lock:
            kept, self._kept = self._kept, []
        for sock in kept:
            hard_close(sock)

    close = stop

    def __enter__(self) -> FaultProxy:
        return self if self._listener is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                hard_close(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = Link(self, client, upstream)
            with self._lock:
                self.links.append(link)
                self.accepted += 1
            link.start()

    def _forget(self, link: Link, keep_open: socket.socket | None = None) -> None:
        with self._lock:
            if link in self.links:
                self.links.remove(link)
            if keep_open is not None:
                self._kept.append(keep_open)

    # -- faults on every connection, now and later ----------------------------------------------

    def _each(self) -> list[Link]:
        with self._lock:
            return list(self.links)

    def delay(self, seconds: float, direction: str = "both") -> None:
        """Add ``seconds`` of latency to each chunk in ``direction``."""
        for d in _directions(direction):
            self.faults.latency[d] = seconds
        for link in self._each():
            link.delay(seconds, direction)

    def slow(self, bytes_per_second: float | None, direction: str = "both") -> None:
        """Forward at most ``bytes_per_second`` in ``direction`` (None: unlimited)."""
        for d in _directions(direction):
            self.faults.rate[d] = bytes_per_second
        for link in self._each():
            link.slow(bytes_per_second, direction)

    def blackhole(self, direction: str = "both", after: int | None = None, counting: str = UP) -> None:
        """A partition (see the module doc). With ``after``, each link (made later too, until
        :meth:`heal`) goes dark once ``after`` more bytes went ``counting`` (e.g. just after a
        request reached the target, before its answer).

        A full blackhole also stops new connections: their SYNs go unanswered.
        """
        if after is None:
            self.faults.blackholed.update(_directions(direction))
            if direction == "both" and self._listener is not None:
                drop_incoming(self._listener, True)
        else:
            self.trips[_directions(counting)[0]] = [after, "blackhole", _directions(direction)]
        for link in self._each():
            link.blackhole(direction, after, counting)

    def heal(self) -> None:
        """Remove every fault; blackholed connections carry on if their peers kept them."""
        self.faults = Faults()
        self.trips.clear()
        if self._listener is not None:
            drop_incoming(self._listener, False)
        for link in self._each():
            link.heal()

    def reset(self, after: int | None = None, counting: str = UP) -> None:
        """RST every connection now, or each once ``after`` more bytes went ``counting`` (connections
        made later too: the trip stays armed until :meth:`heal`)."""
        if after is not None:
            self.trips[_directions(counting)[0]] = [after, "reset", BOTH]
        for link in self._each():
            link.reset(after, counting)

    def half_open(self, keep: str = "client") -> None:
        """Every connection: ``keep``'s end stays open and silent, the other end gets an RST."""
        for link in self._each():
            link.half_open(keep)

    def wait_links(self, n: int, timeout: float = 10.0) -> list[Link]:
        """Wait until at least ``n`` connections are proxied; return them."""
        deadline = time.monotonic() + timeout
        while len(self.links) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.links)} of {n} connections proxied after {timeout} s")
            time.sleep(0.01)
        return self._each()
