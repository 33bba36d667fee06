"""Plain objects holding the job server's state: jobs, functions and connections.

No I/O here. The core (:mod:`gearpy.server.core`) mutates these; the gevent layer only moves
bytes in and out of :class:`Conn` buffers. ``__slots__`` everywhere: a server may hold a million
queued jobs, and every byte per job counts.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque

HIGH, NORMAL, LOW = 0, 1, 2
PRIORITIES = (HIGH, NORMAL, LOW)


def gm_hash(data: bytes) -> int:
    """gearmand's string hash (Jenkins one-at-a-time over *signed* chars); orders admin listings.

    Reproducing it lets ``status`` and friends list entries in exactly gearmand's order, so tools
    that diff outputs see no difference.
    """
    v = 0
    for b in data:
        v = (v + (b - 256 if b > 127 else b)) & 0xFFFFFFFF
        v = (v + (v << 10)) & 0xFFFFFFFF
        v ^= (v >> 6) | (0xFC000000 if v & 0x80000000 else 0)
    v = (v + (v << 3)) & 0xFFFFFFFF
    v ^= (v >> 11) | (0xFFE00000 if v & 0x80000000 else 0)
    v = (v + (v << 15)) & 0xFFFFFFFF
    return v or 1


class Job:
    """One job, queued or running.

    ``clients`` maps each connection waiting on the job to how many times it submitted it: one
    entry per connection (issue 18.1: a connection attached a thousand times made a thousand list
    entries, and its leaving quadratic work), and a dict, so that a leaving client is detached in
    O(1).
    """

    __slots__ = (
        "handle",
        "function",
        "unique",
        "payload",
        "priority",
        "when",
        "reducer",
        "background",
        "clients",
        "worker",
        "numerator",
        "denominator",
        "retries",
        "ignore",
        "store_id",
        "timer",
        "submitted_at",
        "started_at",
        "submitter",
    )

    def __init__(
        self,
        handle: bytes,
        function: Function,
        unique: bytes,
        payload: bytes,
        priority: int,
        background: bool,
        when: int = 0,
        reducer: bytes = b"",
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.payload = payload
        self.priority = priority
        self.when = when
        self.reducer = reducer
        self.background = background
        #: ``()`` until a foreground client attaches (saves a dict per background job)
        self.clients: dict[Conn, int] | tuple[()] = ()
        self.worker: Conn | None = None
        self.numerator = 0
        self.denominator = 0
        self.retries = 0
        self.ignore = False
        self.store_id: str | None = None
        self.timer: object | None = None
        #: set only when metrics are on (a float per job costs 24 bytes)
        self.submitted_at = 0.0
        self.started_at = 0.0
        #: the connection that created the job, while ``max_jobs_per_connection`` counts it
        self.submitter: Conn | None = None

    @property
    def number(self) -> int:
        """The handle's counter (``H:host:N`` → N): the job's age order, without storing it twice."""
        tail = self.handle.rpartition(b":")[2]
        return int(tail) if tail.isdigit() else 0

    def __repr__(self) -> str:
        return f"<Job {self.handle!r} {self.function.name!r} p={self.priority}>"


class Function:
    """A function name known to the server, with its queues and the workers that can do it.

    ``queues`` holds runnable jobs per priority (FIFO; abandoned jobs are skipped when popped);
    ``scheduled`` is a heap of epoch jobs not yet due. ``workers`` counts the connections that
    registered it (once each: a connection sending CAN_DO twice is one worker, where gearmand counts
    two; issue 18.7), and ``sleepers`` holds sleeping connections in wake-up order, so a submit
    wakes workers in O(woken). ``idle`` is True while the function has no worker, job or
    ``maxqueue`` limit (:class:`~gearpy.server.index.JobIndex` forgets the oldest idle ones).
    """

    __slots__ = (
        "name",
        "queues",
        "scheduled",
        "running",
        "workers",
        "sleepers",
        "max_queue",
        "seq",
        "hash",
        "due_timer",
        "due_at",
        "idle",
        "live",
    )

    def __init__(self, name: bytes, seq: int) -> None:
        self.name = name
        self.queues: tuple[deque[Job], deque[Job], deque[Job]] = (deque(), deque(), deque())
        self.scheduled: list[tuple[int, int, Job]] = []
        self.running = 0
        self.workers = 0
        self.sleepers: OrderedDict[Conn, None] = OrderedDict()
        self.max_queue = [0, 0, 0]
        self.seq = seq
        self.hash = gm_hash(name)
        self.due_timer: object | None = None
        self.due_at = 0
        self.idle = False
        #: jobs of this function the server holds (queued, scheduled, running, awaiting a commit)
        self.live = 0

    def queued(self, priority: int) -> int:
        n = len(self.queues[priority])
        if priority == NORMAL:
            n += len(self.scheduled)
        return n

    @property
    def total(self) -> int:
        """Queued (all priorities, incl. not-yet-due epoch jobs) plus running: ``status`` TOTAL."""
        q = self.queues
        return len(q[0]) + len(q[1]) + len(q[2]) + len(self.scheduled) + self.running

    def schedule(self, job: Job) -> None:
        heapq.heappush(self.scheduled, (job.when, job.number, job))

    def promote_due(self, now: int) -> None:
        """Move epoch jobs whose time has come onto their priority's queue."""
        sched = self.scheduled
        while sched and sched[0][0] <= now:
            job = heapq.heappop(sched)[2]
            self.queues[job.priority].append(job)

    def unused(self) -> bool:
        """No worker, no job (queued, scheduled or running) and no ``maxqueue``: safe to forget."""
        return not (self.workers or self.live or any(self.max_queue))

    def has_runnable(self, now: int) -> bool:
        if self.scheduled and self.scheduled[0][0] <= now:
            return True
        return bool(self.queues[0] or self.queues[1] or self.queues[2])


class Ability:
    """One registration of a worker connection: CAN_DO (``timeout_ms`` 0) or CAN_DO_TIMEOUT."""

    __slots__ = ("function", "timeout_ms")

    def __init__(self, function: Function, timeout_ms: int) -> None:
        self.function = function
        self.timeout_ms = timeout_ms


class Pending:
    """A reply slot in a connection's output whose bytes are not known yet.

    A durable background submit reserves one; JOB_CREATED (or ERROR) fills it once the store has
    committed. Output queued behind it waits, so replies keep their request order.
    """

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: bytes | None = None


class Conn:
    """Server-side state of one TCP connection (client, worker, admin, or all three at once)."""

    __slots__ = (
        "id",
        "fd",
        "ip",
        "port",
        "client_id",
        "exceptions",
        "sleeping",
        "noop_sent",
        "abilities",
        "registered",
        "jobs",
        "waiting",
        "submitted",
        "out",
        "out_bytes",
        "has_pending",
        "pending",
        "closing",
        "is_worker",
        "is_client",
        "peer_cert_subject",
        "last_exception",
        "late",
        "admin_only",
    )

    def __init__(self, conn_id: int, fd: int = -1, ip: str = "127.0.0.1", port: int = 0) -> None:
        self.id = conn_id
        self.fd = fd
        self.ip = ip
        self.port = port
        self.client_id = b"-"
        self.exceptions = False
        self.sleeping = False
        self.noop_sent = False
        #: registrations, newest first, one per function
        self.abilities: list[Ability] = []
        #: the same registrations by function (a repeated CAN_DO finds its own in O(1))
        self.registered: dict[Function, Ability] = {}
        #: jobs assigned to this connection as a worker, in grab order
        self.jobs: list[Job] = []
        #: jobs this connection waits on as a client (once each, whatever it submitted)
        self.waiting: dict[Job, None] = {}
        #: jobs this connection created that have not ended (``max_jobs_per_connection``)
        self.submitted = 0
        self.out: list[bytes | Pending] = []
        self.out_bytes = 0
        self.has_pending = False
        #: reply slots not sent yet (submits waiting for their durable commit); the I/O layer stops
        #: reading from a connection with too many, which is the back-pressure of a slow store
        self.pending = 0
        #: set by the core when the connection must be closed once its output is flushed
        self.closing = False
        self.is_worker = False
        self.is_client = False
        self.peer_cert_subject: str | None = None
        #: handle of the last job this worker ended with WORK_EXCEPTION (its WORK_FAIL may follow)
        self.last_exception: bytes | None = None
        #: handles of jobs that timed out on this worker -> whether a late packet was logged
        self.late: dict[bytes, bool] | None = None
        #: the one connection admitted beyond ``max_connections`` for a loopback admin: a binary
        #: packet closes it (a worker or client must not take the operator's slot)
        self.admin_only = False

    def push(self, data: bytes) -> None:
        """Queue bytes to send."""
        self.out.append(data)
        self.out_bytes += len(data)

    def push_times(self, data: bytes, times: int) -> None:
        """Queue the same bytes object ``times`` times (no copy until it is sent)."""
        self.out.extend([data] * times)
        self.out_bytes += len(data) * times

    def reserve(self) -> Pending:
        """Reserve an ordered reply slot to be filled later (see :class:`Pending`)."""
        slot = Pending()
        self.out.append(slot)
        self.has_pending = True
        self.pending += 1
        return slot

    def take_output(self) -> bytes:
        """Remove and return the bytes ready to send (up to the first unfilled reply slot)."""
        out = self.out
        if not self.has_pending:
            if len(out) == 1:
                data = out[0]
            else:
                data = b"".join(out)  # type: ignore[arg-type]
            out.clear()
            self.out_bytes = 0
            return data  # type: ignore[return-value]
        ready: list[bytes] = []
        i = 0
        for i, item in enumerate(out):  # noqa: B007
            if isinstance(item, Pending):
                if item.data is None:
                    break
                ready.append(item.data)
                self.pending -= 1
            else:
                ready.append(item)
        else:
            i = len(out)
        del out[:i]
        self.has_pending = any(isinstance(x, Pending) for x in out)
        data = b"".join(ready)
        self.out_bytes = max(0, self.out_bytes - len(data))
        return data

    def __repr__(self) -> str:
        return f"<Conn {self.id} {self.ip}:{self.port}>"
