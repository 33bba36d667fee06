"""The job server's semantics as plain method calls: packets in, bytes queued on connections out.

:class:`ServerCore` owns every table (functions, jobs by handle, the unique index, connections)
and implements gearmand's behaviour (reference: ``gearman-protocol.md`` §3-4). It does no I/O: it
appends encoded replies to :class:`~gearpy.server.state.Conn` buffers and notes which connections
have output, and it asks an injected scheduler for timers. The gevent layer moves the bytes.

Decisions where gearpy differs from gearmand 1.1.20 on purpose (each is a fix of a known bug):

* Job selection is gearmand 2.0's: HIGH before NORMAL before LOW across all of a worker's
  functions, round robin between functions; epoch jobs are woken by a timer when due.
* WORK_FAIL sent in place of WORK_EXCEPTION carries the bare handle (gearmand adds a NUL that
  hangs libgearman clients); a trailing NUL on a worker's WORK_FAIL is stripped.
* A CAN_DO_TIMEOUT expiry *fails* the job (compat-notes §5), with one timer per assigned job.
* A background job is never dropped because a foreground client that coalesced onto it left.
* A WORK_FAIL right after the same worker's WORK_EXCEPTION for that job is ignored (gearmand
  answers ERROR JOB_NOT_FOUND, and Perl's Gearman::Worker dies of it).
* CAN_DO_TIMEOUT's number is milliseconds (gearmand >= 1.1.19) or, with ``can_do_timeout_unit="s"``,
  seconds (gearmand <= 1.1.18, PHP's manual, Perl's tests). A WORK_* packet a worker sends for a job
  that already timed out on it is dropped with one log line and counted (``Observer.late_result``);
  gearmand answers ERROR JOB_NOT_FOUND, which kills Perl's Gearman::Worker.
* ``create function`` takes the name as sent (gearmand drops the last byte after a bare ``\\n``).
* ``drop function`` also refuses while the function has queued jobs (gearmand drops it and strands
  them).
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from gearpy.protocol import RES, AdminCommand, Packet, PacketType, encode
from gearpy.server.state import HIGH, LOW, NORMAL, PRIORITIES, Conn, Function, Job, Pending
from gearpy.server.store import MemoryStore, QueueStore, StoredJob

log = logging.getLogger("gearpy.server.core")

T = PacketType
_enc = encode
_HEADER = struct.Struct(">4sII").pack


def _frame(kind: int, *fields: bytes) -> bytes:
    """Encode a response whose fields are known to be well formed (the hot path).

    Every field but the last is NUL-terminated by the join; the caller passes only values that
    came out of the decoder or the core (handles, names, uniques), which hold no NUL where one
    would break the framing, so :func:`encode`'s checks are skipped.
    """
    body = b"\x00".join(fields)
    return _HEADER(RES, kind, len(body)) + body


MAX_UNIQUE = 64
#: CAN_DO_TIMEOUT unit name -> milliseconds per unit
TIMEOUT_UNITS = {"ms": 1, "s": 1000}
#: Timed-out jobs remembered per worker connection, so their late results are dropped quietly.
MAX_LATE_HANDLES = 64
MAX_HANDLE = 63
MAX_CLIENT_ID = 127

_SUBMITS: dict[int, tuple[int, bool]] = {
    T.SUBMIT_JOB: (NORMAL, False),
    T.SUBMIT_JOB_BG: (NORMAL, True),
    T.SUBMIT_JOB_HIGH: (HIGH, False),
    T.SUBMIT_JOB_HIGH_BG: (HIGH, True),
    T.SUBMIT_JOB_LOW: (LOW, False),
    T.SUBMIT_JOB_LOW_BG: (LOW, True),
    T.SUBMIT_JOB_EPOCH: (NORMAL, True),
    T.SUBMIT_REDUCE_JOB: (NORMAL, False),
    T.SUBMIT_REDUCE_JOB_BACKGROUND: (NORMAL, True),
}

NOOP = _enc(T.NOOP)
NO_JOB = _enc(T.NO_JOB)
ERR_NOT_EXPECTED = _enc(T.ERROR, b"INVALID_COMMAND", b"Command not expected")
ERR_BAD_MAGIC = _enc(T.ERROR, b"INVALID_MAGIC", b"Request magic expected")
ERR_UNIQUE_TOO_LARGE = _enc(T.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large")
ERR_QUEUE_FULL = _enc(T.ERROR, b"QUEUE_ERROR", b"Job queue is full")
ERR_QUEUE_MEMORY = _enc(T.ERROR, b"QUEUE_ERROR", b"Server queue memory limit reached (max_queued_bytes)")
ERR_PERMISSION = _enc(T.ERROR, b"PERMISSION_DENIED", b"Not allowed for this client certificate")
ERR_UNKNOWN_OPTION = _enc(T.ERROR, b"UNKNOWN_OPTION", b"Server does not recognize given option")
_NOT_FOUND_TEXT = {
    T.WORK_DATA: b"Job does not exist on server",
    T.WORK_WARNING: b"Job does not exist on server",
    T.WORK_STATUS: b"Job given in work result not found",
    T.WORK_COMPLETE: b"Job given in work result not found",
    T.WORK_FAIL: b"Job given in work result not found",
    T.WORK_EXCEPTION: b"An exception was received for a job that does not exist",
}
ERR_HANDLE_TOO_LARGE = _enc(
    T.ERROR,
    b"ARGUMENT_TOO_LARGE",
    b"Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf",
)


class CloseConnection(Exception):
    """Raised inside the core when gearmand would drop the connection without a reply."""


class Scheduler:
    """Timer interface the core needs; the gevent layer provides the real one."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def cancel(self, timer: Any) -> None:  # pragma: no cover
        raise NotImplementedError


class Observer:
    """Hooks for metrics; the default does nothing (no per-packet work beyond a call)."""

    def job_submitted(self, job: Job) -> None: ...
    def job_started(self, job: Job) -> None: ...
    def job_finished(self, job: Job, outcome: str) -> None: ...
    def late_result(self, kind: PacketType) -> None: ...


def default_handle_prefix() -> bytes:
    return b"H:" + socket.gethostname().split(".")[0].encode()


class ServerCore:
    """All job-server state and behaviour; see the module docstring."""

    def __init__(
        self,
        *,
        scheduler: Scheduler,
        store: QueueStore | None = None,
        handle_prefix: bytes | None = None,
        job_retries: int = 0,
        worker_wakeup: int = 0,
        exceptions: bool = False,
        version: str = "",
        verbose: str = "ERROR",
        clock: Callable[[], float] = time.time,
        observer: Observer | None = None,
        max_queued_bytes: int = 0,
        can_do_timeout_unit: str = "ms",
    ) -> None:
        self.scheduler = scheduler
        if can_do_timeout_unit not in TIMEOUT_UNITS:
            raise ValueError(f"can_do_timeout_unit must be one of {sorted(TIMEOUT_UNITS)}")
        #: milliseconds per unit of a CAN_DO_TIMEOUT value
        self.can_do_timeout_scale = TIMEOUT_UNITS[can_do_timeout_unit]
        self.store = store or MemoryStore()
        self.handle_prefix = (handle_prefix or default_handle_prefix()) + b":"
        self.job_retries = job_retries
        self.worker_wakeup = worker_wakeup
        self.exceptions_default = exceptions
        self.version = version
        self.verbose = verbose
        self.clock = clock
        self.observer = observer or Observer()
        #: per-function ACL by certificate subject (gearpy.server.acl), or None: everyone may
        self.acl: Any = None
        #: cap on payload bytes held by jobs in memory (0 = none), and what they hold now
        self.max_queued_bytes = max_queued_bytes
        self.queued_bytes = 0
        #: record submit/start times on jobs (only metrics need them)
        self.timing = observer is not None
        self.functions: dict[bytes, Function] = {}
        self.jobs: dict[bytes, Job] = {}
        #: (function name, unique) -> job, and (function name, b"-", payload) for payload coalescing
        self.uniques: dict[tuple, Job] = {}
        #: unique -> jobs with it (any function), for GET_STATUS_UNIQUE
        self.by_unique: dict[bytes, list[Job]] = {}
        self.conns: dict[int, Conn] = {}
        self.dirty: set[Conn] = set()
        #: handle -> (connection, reply slot) of background submits waiting for its durable commit
        self.uncommitted: dict[bytes, list[tuple[Conn, Pending]]] = {}
        self._handle_counter = 0
        self._seq = 0
        self.draining = False
        #: set by the I/O layer: called when output became ready outside a read loop
        self.request_flush: Callable[[], None] = lambda: None
        self._dispatch = self._build_dispatch()

    # ---------------------------------------------------------------- connections

    def connect(self, conn: Conn) -> None:
        conn.exceptions = self.exceptions_default
        self.conns[conn.id] = conn

    def disconnect(self, conn: Conn) -> None:
        """Forget a connection: requeue the jobs it ran, detach it from the jobs it waited on."""
        if self.conns.pop(conn.id, None) is None:
            return
        self._drop_abilities(conn, None)
        self._unsleep(conn)
        for job in conn.waiting:
            clients = job.clients
            while conn in clients:
                clients.remove(conn)  # type: ignore[union-attr]
            if not clients and not job.background and job.handle in self.jobs:
                job.ignore = True
                self._forget_unique(job)
                self._drop_payload(job)
        conn.waiting.clear()
        conn.out.clear()
        self.dirty.discard(conn)

    def _send(self, conn: Conn, data: bytes) -> None:
        conn.push(data)
        self.dirty.add(conn)

    # ---------------------------------------------------------------- dispatch

    def handle(self, conn: Conn, event: Packet | AdminCommand) -> None:
        """Apply one decoded event from ``conn``. May raise :class:`CloseConnection`."""
        if isinstance(event, Packet):
            kind = event.kind
            if not event.request:
                # gearmand consumes a \0RES packet of a valid type and answers INVALID_MAGIC.
                self._send(conn, ERR_BAD_MAGIC)
                return
            self._dispatch[kind](conn, event.args, kind)
        else:
            from gearpy.server.admin import handle_admin

            handle_admin(self, conn, event)

    def _build_dispatch(self) -> dict[int, Callable[[Conn, tuple[bytes, ...], int], None]]:
        d: dict[int, Callable[[Conn, tuple[bytes, ...], int], None]] = {
            t: self._not_expected for t in PacketType
        }
        d.update(
            {
                T.CAN_DO: self._can_do,
                T.CAN_DO_TIMEOUT: self._can_do_timeout,
                T.CANT_DO: self._cant_do,
                T.RESET_ABILITIES: self._reset_abilities,
                T.PRE_SLEEP: self._pre_sleep,
                T.GRAB_JOB: self._grab,
                T.GRAB_JOB_UNIQ: self._grab,
                T.GRAB_JOB_ALL: self._grab,
                T.WORK_STATUS: self._work_status,
                T.WORK_COMPLETE: self._work_end,
                T.WORK_FAIL: self._work_end,
                T.WORK_EXCEPTION: self._work_end,
                T.WORK_DATA: self._work_data,
                T.WORK_WARNING: self._work_data,
                T.GET_STATUS: self._get_status,
                T.GET_STATUS_UNIQUE: self._get_status_unique,
                T.ECHO_REQ: self._echo,
                T.SET_CLIENT_ID: self._set_client_id,
                T.OPTION_REQ: self._option,
            }
        )
        for t in _SUBMITS:
            d[t] = self._submit
        return d

    def _not_expected(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        self._send(conn, ERR_NOT_EXPECTED)

    # ---------------------------------------------------------------- misc packets

    def _echo(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        self._send(conn, _enc(T.ECHO_RES, args[0]))

    def _set_client_id(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        conn.client_id = args[0][:MAX_CLIENT_ID] or b"-"

    def _option(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        name = args[0]
        if len(name) < 64 and name.lower() == b"exceptions":
            conn.exceptions = True
            self._send(conn, _enc(T.OPTION_RES, name))
        else:
            self._send(conn, ERR_UNKNOWN_OPTION)

    # ---------------------------------------------------------------- functions

    def function(self, name: bytes) -> Function:
        fn = self.functions.get(name)
        if fn is None:
            self._seq += 1
            fn = self.functions[name] = Function(name, self._seq)
        return fn

    # ---------------------------------------------------------------- submit

    def _submit(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        priority, background = _SUBMITS[kind]
        name, unique = args[0], args[1]
        if self.acl is not None and not self.acl.allowed(conn.peer_cert_subject, "invoke", name):
            self._send(conn, ERR_PERMISSION)
            return
        when = 0
        reducer = b""
        if kind == T.SUBMIT_JOB_EPOCH:
            when = _parse_epoch(args[2])
            payload = args[3]
        elif kind == T.SUBMIT_REDUCE_JOB or kind == T.SUBMIT_REDUCE_JOB_BACKGROUND:
            reducer = args[2]
            payload = args[4]
            if len(reducer) > MAX_UNIQUE:
                self._send(conn, ERR_UNIQUE_TOO_LARGE)
                return
        else:
            payload = args[2]
        if len(unique) > MAX_UNIQUE:
            self._send(conn, ERR_UNIQUE_TOO_LARGE)
            return
        self.submit(conn, name, unique, payload, priority, background, when, reducer)

    def submit(
        self,
        conn: Conn | None,
        name: bytes,
        unique: bytes,
        payload: bytes,
        priority: int,
        background: bool,
        when: int = 0,
        reducer: bytes = b"",
    ) -> Job | None:
        """Create (or coalesce onto) a job and reply JOB_CREATED to ``conn``.

        ``conn`` is None for replayed jobs. Returns the job, or None when it was refused.
        """
        fn = self.functions.get(name) or self.function(name)
        if not unique:
            key = None
        elif len(unique) >= MAX_UNIQUE:
            # gearmand keeps 63 bytes of a 64-byte unique, and such a submit never coalesces.
            key = None
            unique = unique[: MAX_UNIQUE - 1]
        else:
            key = _unique_key(name, unique, payload)
            job = self.uniques.get(key)
            if job is not None and not job.ignore:
                return self._coalesce(conn, job, background)
        limit = fn.max_queue[priority]
        if limit > 0 and fn.total >= limit:
            if conn is not None:
                self._send(conn, ERR_QUEUE_FULL)
            return None
        size = len(payload)
        if self.max_queued_bytes and self.queued_bytes + size > self.max_queued_bytes and conn is not None:
            self._send(conn, ERR_QUEUE_MEMORY)
            return None
        self.queued_bytes += size
        self._handle_counter += 1
        handle = self.handle_prefix + str(self._handle_counter).encode()
        job = Job(handle, fn, unique, payload, priority, background, when, reducer)
        if self.timing:
            job.submitted_at = self.clock()
        if conn is not None:
            conn.is_client = True
            if not background:
                job.clients = [conn]
                conn.waiting.append(job)
        self.jobs[handle] = job
        if unique:
            if key is not None:
                self.uniques[key] = job
            if unique != b"-":
                self.by_unique.setdefault(unique, []).append(job)
        if background and conn is not None and self.store.durable:
            # Queue only once durable: a crash before the commit must not run a job we never acked.
            self._persist(conn, job, new=True)
            return job
        if when or fn.sleepers:
            self._enqueue(job)
        else:
            fn.queues[priority].append(job)  # the common case, without the calls
        if self.timing:
            self.observer.job_submitted(job)
        if conn is not None:
            data = _HEADER(RES, T.JOB_CREATED, len(handle)) + handle
            conn.out.append(data)
            conn.out_bytes += len(data)
            self.dirty.add(conn)
        return job

    def _coalesce(self, conn: Conn | None, job: Job, background: bool) -> Job:
        """A submit whose unique matches a live job: attach to it and answer with its handle."""
        waiters = self.uncommitted.get(job.handle)
        if waiters is not None and background and conn is not None:
            # The job's durable write is still pending: acknowledge with the same commit.
            conn.is_client = True
            waiters.append((conn, conn.reserve()))
            return job
        if not background and conn is not None:
            if job.clients:
                job.clients.insert(0, conn)  # type: ignore[union-attr]
            else:
                job.clients = [conn]
            conn.waiting.append(job)
            conn.is_client = True
        if background and not job.background:
            job.background = True
            if self.store.durable and conn is not None:
                self._persist(conn, job)
                return job
        if conn is not None:
            self._send(conn, _enc(T.JOB_CREATED, job.handle))
        return job

    def _persist(self, conn: Conn, job: Job, new: bool = False) -> None:
        """Write a background job to the durable store; reply JOB_CREATED once committed.

        Background submits that coalesce onto the job while its commit is pending wait for the
        same commit (see :meth:`_coalesce`); if it fails they get the same ERROR, and foreground
        clients already attached get WORK_FAIL: nobody is left believing in a job that is gone.
        """
        import uuid

        slot = conn.reserve()
        waiters: list[tuple[Conn, Pending]] = [(conn, slot)]
        self.uncommitted[job.handle] = waiters
        job.store_id = uuid.uuid4().hex
        record = StoredJob(
            job.store_id, job.function.name, job.unique, job.payload, job.priority, job.when, job.reducer
        )

        def on_durable(exc: BaseException | None) -> None:
            self.uncommitted.pop(job.handle, None)
            if exc is None:
                reply = _enc(T.JOB_CREATED, job.handle)
                if new:
                    self._enqueue(job)
                    self.observer.job_submitted(job)
            else:
                job.store_id = None
                log.warning("queue store write failed: %s", exc)
                text = f"queue store unavailable: {exc}".encode("utf-8", "replace")[:200]
                reply = _enc(T.ERROR, b"QUEUE_ERROR", text)
                if new:
                    for c in job.clients:
                        self._send(c, _enc(T.WORK_FAIL, job.handle))
                    self._discard(job)
                else:
                    job.background = False
            for c, pending in waiters:
                pending.data = reply
                if c.id in self.conns:
                    self.dirty.add(c)
            self.request_flush()

        self.store.add(record, on_durable)

    def replay(self, stored: StoredJob) -> Job | None:
        """Queue a job read back from the store at start (keeps its store row)."""
        job = self.submit(
            None,
            stored.function,
            stored.unique,
            stored.payload,
            stored.priority,
            True,
            stored.when,
            stored.reducer,
        )
        if job is not None:
            if job.store_id is not None and job.store_id != stored.store_id:
                # Coalesced onto a job already replayed: this row is a duplicate; drop it.
                self.store.remove(stored.store_id)
            else:
                job.store_id = stored.store_id
        return job

    def _enqueue(self, job: Job) -> None:
        fn = job.function
        if job.when and job.when > int(self.clock()):
            fn.schedule(job)
            self._arm_due_timer(fn)
            return
        fn.queues[job.priority].append(job)
        self._wake(fn)

    def _arm_due_timer(self, fn: Function) -> None:
        """Wake sleeping workers when the earliest epoch job of ``fn`` falls due (gearmand 2.0)."""
        if not fn.scheduled:
            return
        due = fn.scheduled[0][0]
        if fn.due_timer is not None:
            if fn.due_at <= due:
                return
            self.scheduler.cancel(fn.due_timer)
        fn.due_at = due
        delay = max(0.0, due - self.clock())
        fn.due_timer = self.scheduler.call_later(delay + 0.001, lambda: self._due(fn))

    def _due(self, fn: Function) -> None:
        fn.due_timer = None
        fn.promote_due(int(self.clock()))
        if fn.has_runnable(int(self.clock())):
            self._wake(fn)
        self._arm_due_timer(fn)

    def _wake(self, fn: Function) -> None:
        """Send NOOP to sleeping workers of ``fn`` (all, or ``worker_wakeup`` of them in turn)."""
        sleepers = fn.sleepers
        if not sleepers:
            return
        n = self.worker_wakeup
        woken = 0
        while sleepers:
            conn = sleepers.popitem(last=False)[0]
            if conn.noop_sent or not conn.sleeping:
                continue
            conn.noop_sent = True
            self._unsleep(conn)
            self._send(conn, NOOP)
            woken += 1
            if n and woken >= n:
                break

    def _unsleep(self, conn: Conn) -> None:
        for ability in conn.abilities:
            ability[0].sleepers.pop(conn, None)

    # ---------------------------------------------------------------- workers

    def _can_do(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        self._add_ability(conn, args[0], 0)

    def _can_do_timeout(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        text = args[1]
        if len(text) > 20:
            raise CloseConnection("CAN_DO_TIMEOUT value too long")
        ms = _atoi(text) * self.can_do_timeout_scale
        if ms <= 0:
            ms = 0
        elif ms < 1000:
            ms = 1000
        self._add_ability(conn, args[0], ms)

    def _add_ability(self, conn: Conn, name: bytes, timeout_ms: int) -> None:
        if self.acl is not None and not self.acl.allowed(conn.peer_cert_subject, "register", name):
            self._send(conn, ERR_PERMISSION)
            return
        fn = self.function(name)
        conn.abilities.insert(0, [fn, timeout_ms])
        conn.is_worker = True
        fn.workers += 1
        if conn.sleeping and not conn.noop_sent:
            fn.sleepers[conn] = None

    def _cant_do(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        fn = self.functions.get(args[0])
        if fn is not None:
            self._drop_abilities(conn, fn)

    def _reset_abilities(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        self._drop_abilities(conn, None)

    def _drop_abilities(self, conn: Conn, only: Function | None) -> None:
        """Remove registrations (all, or those of one function) and requeue their jobs."""
        keep = []
        for ability in conn.abilities:
            fn = ability[0]
            if only is None or fn is only:
                fn.workers -= 1
                fn.sleepers.pop(conn, None)
            else:
                keep.append(ability)
        conn.abilities = keep
        if not conn.jobs:
            return
        held = [j for j in conn.jobs if only is None or j.function is only]
        conn.jobs = [j for j in conn.jobs if not (only is None or j.function is only)]
        for job in reversed(held):
            self._requeue(job)

    def _requeue(self, job: Job) -> None:
        """Put a job whose worker went away back on its queue (retry counted), or drop it."""
        self._stop_job_timer(job)
        job.worker = None
        job.function.running -= 1
        job.retries += 1
        if job.ignore:
            self._discard(job)
            return
        if self.job_retries > 0 and job.retries >= self.job_retries:
            log.info("dropped job %s after %d attempts (--job-retries)", job.handle.decode(), job.retries)
            for c in job.clients:
                self._send(c, _enc(T.WORK_FAIL, job.handle))
            self._finish(job, "dropped")
            return
        job.numerator = job.denominator = 0
        job.function.queues[job.priority].append(job)
        self._wake(job.function)

    def _pre_sleep(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        now = int(self.clock())
        for ability in conn.abilities:
            if ability[0].has_runnable(now):
                conn.noop_sent = True
                conn.sleeping = True
                self._send(conn, NOOP)
                return
        conn.sleeping = True
        conn.noop_sent = False
        for ability in conn.abilities:
            ability[0].sleepers[conn] = None

    def _grab(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        if conn.sleeping:
            conn.sleeping = False
            conn.noop_sent = False
            self._unsleep(conn)
        job, ability = self._select(conn)
        if job is None:
            self._send(conn, NO_JOB)
            return
        fn = job.function
        fn.running += 1
        job.worker = conn
        conn.jobs.append(job)
        timeout_ms = ability[1]
        if timeout_ms:
            job.timer = self.scheduler.call_later(timeout_ms / 1000.0, lambda: self._timed_out(job, conn))
        if self.timing:
            job.started_at = self.clock()
            self.observer.job_started(job)
        if kind == T.GRAB_JOB:
            self._send(conn, _frame(T.JOB_ASSIGN, job.handle, fn.name, job.payload))
        elif kind == T.GRAB_JOB_ALL and job.reducer:
            self._send(
                conn, _frame(T.JOB_ASSIGN_ALL, job.handle, fn.name, job.unique, job.reducer, job.payload)
            )
        else:
            self._send(conn, _frame(T.JOB_ASSIGN_UNIQ, job.handle, fn.name, job.unique, job.payload))

    def _select(self, conn: Conn) -> tuple[Job | None, list | None]:
        """gearmand 2.0 selection: highest priority across all functions, round robin."""
        abilities = conn.abilities
        if not abilities:
            return None, None
        now = int(self.clock())
        for ability in abilities:
            fn = ability[0]
            if fn.scheduled and fn.scheduled[0][0] <= now:
                fn.promote_due(now)
        for p in PRIORITIES:
            for i, ability in enumerate(abilities):
                q = ability[0].queues[p]
                while q:
                    job = q.popleft()
                    if job.ignore:
                        self._discard(job)
                        continue
                    if len(abilities) > 1:
                        abilities.append(abilities.pop(i))
                    return job, ability
        return None, None

    def _timed_out(self, job: Job, conn: Conn) -> None:
        """CAN_DO_TIMEOUT expired: the job fails (compat-notes §5), its worker keeps its slot."""
        job.timer = None
        if job.worker is not conn or job.handle not in self.jobs:
            return
        log.info("job %s timed out on its worker", job.handle.decode())
        if job in conn.jobs:
            conn.jobs.remove(job)
        job.function.running -= 1
        job.worker = None
        for c in job.clients:
            self._send(c, _enc(T.WORK_FAIL, job.handle))
        late = conn.late
        if late is None:
            late = conn.late = {}
        elif len(late) >= MAX_LATE_HANDLES:
            del late[next(iter(late))]
        late[job.handle] = False
        self._finish(job, "timeout")

    def _stop_job_timer(self, job: Job) -> None:
        if job.timer is not None:
            self.scheduler.cancel(job.timer)
            job.timer = None

    # ---------------------------------------------------------------- work results

    def _owned_job(self, conn: Conn, handle: bytes, kind: int) -> Job | None:
        job = self.jobs.get(handle)
        if job is None and kind == T.WORK_FAIL and handle == conn.last_exception:
            # Workers (Perl's, gearpy's, libgearman's) follow WORK_EXCEPTION with WORK_FAIL for
            # servers that ignore exceptions. The job already ended: swallow it rather than answer
            # ERROR JOB_NOT_FOUND, which makes Perl's Gearman::Worker die.
            conn.last_exception = None
            return None
        if job is None or job.worker is not conn:
            late = conn.late
            if late is not None and handle in late:
                self._drop_late(conn, late, handle, kind)
            else:
                self._send(conn, _enc(T.ERROR, b"JOB_NOT_FOUND", _NOT_FOUND_TEXT[kind]))
            return None
        return job

    def _drop_late(self, conn: Conn, late: dict[bytes, bool], handle: bytes, kind: int) -> None:
        """A worker's packet for a job that timed out on it: drop it (logged once per job)."""
        if not late[handle]:
            late[handle] = True
            log.warning(
                "dropped %s for job %s from worker %s:%d: the job had already timed out "
                "(CAN_DO_TIMEOUT); further late packets for it are dropped silently",
                T(kind).name, handle.decode("utf-8", "replace"), conn.ip, conn.port,
            )
        if kind == T.WORK_COMPLETE or kind == T.WORK_FAIL:
            del late[handle]
        self.observer.late_result(T(kind))

    def _work_status(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        job = self._owned_job(conn, args[0], kind)
        if job is None:
            return
        job.numerator = _atoi(args[1])
        job.denominator = _atoi(args[2])
        if job.clients:
            data = _frame(T.WORK_STATUS, *args)
            for c in job.clients:
                self._send(c, data)

    def _work_data(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        job = self._owned_job(conn, args[0], kind)
        if job is None or not job.clients:
            return
        data = _frame(kind, *args)
        for c in job.clients:
            self._send(c, data)

    def _work_end(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        handle = args[0]
        if kind == T.WORK_FAIL:
            if handle.endswith(b"\x00"):
                handle = handle.rstrip(b"\x00")
            if len(handle) > MAX_HANDLE:
                self._send(conn, ERR_HANDLE_TOO_LARGE)
                return
        job = self._owned_job(conn, handle, kind)
        if job is None:
            return
        self._stop_job_timer(job)
        conn.jobs.remove(job)
        job.function.running -= 1
        job.worker = None
        if job.clients:
            if kind == T.WORK_COMPLETE:
                data = _frame(T.WORK_COMPLETE, handle, args[1])
                for c in job.clients:
                    self._send(c, data)
            elif kind == T.WORK_FAIL:
                data = _frame(T.WORK_FAIL, handle)
                for c in job.clients:
                    self._send(c, data)
            else:
                exc = _frame(T.WORK_EXCEPTION, handle, args[1])
                fail = _frame(T.WORK_FAIL, handle)
                for c in job.clients:
                    self._send(c, exc if c.exceptions else fail)
        if kind == T.WORK_EXCEPTION:
            conn.last_exception = handle
        outcome = "complete" if kind == T.WORK_COMPLETE else "fail" if kind == T.WORK_FAIL else "exception"
        self._finish(job, outcome)

    def _finish(self, job: Job, outcome: str) -> None:
        """A job ended: forget it everywhere (its clients were told by the caller)."""
        self.observer.job_finished(job, outcome)
        self._discard(job)

    def _discard(self, job: Job) -> None:
        if self.jobs.pop(job.handle, None) is not None:
            self.queued_bytes -= len(job.payload)
        self._forget_unique(job)
        for c in job.clients:
            try:
                c.waiting.remove(job)
            except ValueError:
                pass
        job.clients = ()
        if job.store_id is not None:
            self.store.remove(job.store_id)
            job.store_id = None

    def _drop_payload(self, job: Job) -> None:
        """Free an abandoned queued job's payload now; its empty shell waits to be popped.

        gearmand keeps abandoned jobs counted until a worker pops them, and so do we (``status``
        stays comparable), but their payloads need not hold memory meanwhile.
        """
        if job.worker is None and job.payload:
            self.queued_bytes -= len(job.payload)
            job.payload = b""

    def _forget_unique(self, job: Job) -> None:
        key = _unique_key(job.function.name, job.unique, job.payload)
        if key is not None and self.uniques.get(key) is job:
            del self.uniques[key]
        lst = self.by_unique.get(job.unique)
        if lst is not None:
            try:
                lst.remove(job)
            except ValueError:
                pass
            if not lst:
                del self.by_unique[job.unique]

    # ---------------------------------------------------------------- status

    def _get_status(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        handle = args[0].split(b"\x00", 1)[0]  # a C string to gearmand: it ends at the first NUL
        if len(handle) > MAX_HANDLE:
            raise CloseConnection("GET_STATUS handle too long")
        job = self.jobs.get(handle)
        if job is None:
            self._send(conn, _enc(T.STATUS_RES, handle, b"0", b"0", b"0", b"0"))
            return
        self._send(conn, _enc(T.STATUS_RES, handle, *_known_status(job)))

    def _get_status_unique(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        unique = args[0].split(b"\x00", 1)[0]
        if len(unique) >= MAX_UNIQUE:
            raise CloseConnection("GET_STATUS_UNIQUE unique too long")
        jobs = self.by_unique.get(unique)
        if not jobs:
            self._send(conn, _enc(T.STATUS_RES_UNIQUE, unique, b"0", b"0", b"0", b"0", b"0"))
            return
        # gearmand's unique hash buckets are newest first: the most recent job with this unique wins.
        job = jobs[-1]
        self._send(
            conn, _enc(T.STATUS_RES_UNIQUE, unique, *_known_status(job), str(len(job.clients)).encode())
        )

    # ---------------------------------------------------------------- admin helpers

    def cancel(self, handle: bytes) -> bool:
        """Admin ``cancel job``: tell clients WORK_FAIL, forget the stored row, abandon the job."""
        job = self.jobs.get(handle)
        if job is None:
            return False
        if job.ignore:
            return True  # gearmand: the job is still in memory, so OK again (nothing left to tell)
        for c in job.clients:
            self._send(c, _enc(T.WORK_FAIL, job.handle))
        for c in job.clients:
            try:
                c.waiting.remove(job)
            except ValueError:
                pass
        job.clients = ()
        job.ignore = True
        job.background = False
        self._forget_unique(job)
        self._drop_payload(job)
        if job.store_id is not None:
            self.store.remove(job.store_id)
            job.store_id = None
        self.observer.job_finished(job, "cancelled")
        return True

    def idle(self) -> bool:
        """True when no job is queued or running (graceful shutdown waits for this)."""
        return not self.jobs


def _known_status(job: Job) -> tuple[bytes, bytes, bytes, bytes]:
    """The known/running/numerator/denominator fields STATUS_RES and STATUS_RES_UNIQUE share."""
    running = b"1" if job.worker is not None else b"0"
    return b"1", running, str(job.numerator).encode(), str(job.denominator).encode()


def _unique_key(name: bytes, unique: bytes, payload: bytes) -> tuple | None:
    if not unique:
        return None
    if unique == b"-":
        return (name, b"-", payload) if payload else None
    return (name, unique)


def _atoi(text: bytes) -> int:
    """C ``atoi``: optional sign and leading digits; anything else counts as 0."""
    text = text.strip()
    end = 0
    if text[:1] in (b"-", b"+"):
        end = 1
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def _parse_epoch(text: bytes) -> int:
    value = _atoi(text)
    if not -(2**63) <= value < 2**63:
        raise CloseConnection("epoch out of range")
    return max(0, value)
