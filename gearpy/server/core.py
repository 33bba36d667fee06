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

Limits gearmand lacks (issue 18), each a fix of what one hostile peer could do to everyone:

* A connection is attached to a job once, however often it submits it (one dict entry with a
  count, so a leaving client is detached in O(1)); each packet for the job is framed once and the
  same bytes object is queued once per submit, as gearmand sends it (libgearman clients with two
  tasks of one unique wait for two results). The gevent layer checks ``max_output_buffer``
  before it joins anything, so a thousand submits of one job cannot make a result a thousand
  copies.
* A repeated CAN_DO (or CAN_DO_TIMEOUT, whose timeout then replaces the old one) registers nothing
  new: ``status`` counts the connection once, where gearmand counts every CAN_DO.
* A function name is at most ``max_function_name`` bytes (``ERROR ARGUMENT_TOO_LARGE``) and has
  no control byte (``ERROR INVALID_FUNCTION_NAME``): checked when a name is first seen, so the
  submit of a known function pays nothing. Client ids and uniques stay as sent; the admin protocol
  escapes their control bytes (:func:`~gearpy.server.wire.escape`).
* Functions nobody uses are forgotten beyond ``max_idle_functions`` (:mod:`.index`).
"""


from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Final

from gearpy.errors import RemoteProtocolError
from gearpy.protocol import (
    ADMIN_LINE,
    NEED_MORE,
    AdminCommand,
    Decoder,
    Packet,
    PacketTooLarge,
    PacketType,
    encode,
    encode_unchecked,
    encode_unchecked_one,
)
from gearpy.server.admin import answer_admin
from gearpy.server.index import DEFAULT_MAX_IDLE_FUNCTIONS, DropOutcome, JobIndex
from gearpy.server.interfaces import (
    AdminGate,
    FlushHook,
    FunctionPolicy,
    IdleHook,
    NullObserver,
    Observer,
    Scheduler,
)
from gearpy.server.jobs import JobBook
from gearpy.server.state import HIGH, LOW, NORMAL, Ability, Conn, Function, Job
from gearpy.server.store import MemoryStore, QueueStore, StoredJob
from gearpy.server.wire import (
    DEFAULT_MAX_FUNCTION_NAME,
    ERR_BAD_MAGIC,
    ERR_HANDLE_TOO_LARGE,
    ERR_NOT_EXPECTED,
    ERR_PERMISSION,
    ERR_UNIQUE_TOO_LARGE,
    ERR_UNKNOWN_OPTION,
    MAX_CLIENT_ID,
    MAX_HANDLE,
    MAX_UNIQUE,
    NO_JOB,
    NOT_FOUND_TEXT,
    CloseConnection,
    atoi,
    function_name_error,
    packet_too_large_reply,
    parse_epoch,
)

__all__ = ["CloseConnection", "Scheduler", "ServerCore", "default_handle_prefix"]

log = logging.getLogger("gearpy.server.core")

T = PacketType
_enc = encode
_frame = encode_unchecked
Handler = Callable[[Conn, tuple[bytes, ...], int], None]
#: CAN_DO_TIMEOUT unit name -> milliseconds per unit
TIMEOUT_UNITS = {"ms": 1, "s": 1000}
#: Timed-out jobs remembered per worker connection, so their late results are dropped quietly.
MAX_LATE_HANDLES = 64

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


#: ``_SUBMITS`` as tuples indexed by packet type (compiled: an index, not a dict lookup).
_PRIORITY_OF: Final = tuple(_SUBMITS[t][0] if t in _SUBMITS else NORMAL for t in range(max(_SUBMITS) + 1))
_BACKGROUND_OF: Final = tuple(_SUBMITS[t][1] if t in _SUBMITS else False for t in range(max(_SUBMITS) + 1))

# The packet types of the job cycle as Final ints: compiled (mypyc), a comparison with one is a
# machine-integer compare, where ``T.X`` is an attribute lookup on the enum class at every use.
_SUBMIT_JOB: Final = int(T.SUBMIT_JOB)
_SUBMIT_JOB_BG: Final = int(T.SUBMIT_JOB_BG)
_SUBMIT_JOB_EPOCH: Final = int(T.SUBMIT_JOB_EPOCH)
_SUBMIT_REDUCE_JOB: Final = int(T.SUBMIT_REDUCE_JOB)
_SUBMIT_REDUCE_JOB_BACKGROUND: Final = int(T.SUBMIT_REDUCE_JOB_BACKGROUND)
_GRAB_JOB: Final = int(T.GRAB_JOB)
_GRAB_JOB_UNIQ: Final = int(T.GRAB_JOB_UNIQ)
_GRAB_JOB_ALL: Final = int(T.GRAB_JOB_ALL)
_PRE_SLEEP: Final = int(T.PRE_SLEEP)
_WORK_COMPLETE: Final = int(T.WORK_COMPLETE)
_WORK_FAIL: Final = int(T.WORK_FAIL)
_WORK_EXCEPTION: Final = int(T.WORK_EXCEPTION)
_JOB_ASSIGN: Final = int(T.JOB_ASSIGN)
_JOB_ASSIGN_UNIQ: Final = int(T.JOB_ASSIGN_UNIQ)
_JOB_ASSIGN_ALL: Final = int(T.JOB_ASSIGN_ALL)


def default_handle_prefix() -> bytes:
    return b"H:" + socket.gethostname().split(".")[0].encode()


def _ignore() -> None:
    pass


class ServerCore:
    """All job-server state and behaviour; see the module docstring.

    Every collaborator is given here: ``scheduler`` (timers), ``store`` (durable background
    jobs), ``flush`` (called when output became ready outside a read loop), ``on_idle`` (called
    when a graceful drain has no job left), ``acl`` (per-function permissions), ``admin_gate``
    (who may run mutating admin commands) and ``observer`` (metrics; with one, jobs carry their
    submit and start times).
    """

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
        max_jobs_per_connection: int = 0,
        max_function_name: int = DEFAULT_MAX_FUNCTION_NAME,
        max_idle_functions: int = DEFAULT_MAX_IDLE_FUNCTIONS,
        acl: FunctionPolicy | None = None,
        admin_gate: AdminGate | None = None,
        flush: FlushHook = _ignore,
        on_idle: IdleHook = _ignore,
        can_do_timeout_unit: str = "ms",
    ) -> None:
        self.scheduler = scheduler
        if can_do_timeout_unit not in TIMEOUT_UNITS:
            raise ValueError(f"can_do_timeout_unit must be one of {sorted(TIMEOUT_UNITS)}")
        #: milliseconds per unit of a CAN_DO_TIMEOUT value
        self.can_do_timeout_scale = TIMEOUT_UNITS[can_do_timeout_unit]
        self.store: QueueStore = store or MemoryStore()
        self.exceptions_default = exceptions
        self.version = version
        self.verbose = verbose
        self.clock = clock
        self.observer: Observer = observer or NullObserver()
        #: record submit/start times on jobs (only metrics need them)
        self.timing = observer is not None
        #: per-function ACL by certificate subject, or None: everyone may
        self.acl = acl
        self.admin_gate = admin_gate
        self.max_function_name = max_function_name
        self.index = JobIndex(max_idle_functions)
        self.functions = self.index.functions
        self.jobs = self.index.jobs
        self.conns: dict[int, Conn] = {}
        self.dirty: set[Conn] = set()
        self.book = book = JobBook(
            index=self.index,
            scheduler=scheduler,
            store=self.store,
            observer=self.observer,
            timing=self.timing,
            clock=clock,
            handle_prefix=(handle_prefix or default_handle_prefix()) + b":",
            job_retries=job_retries,
            worker_wakeup=worker_wakeup,
            max_queued_bytes=max_queued_bytes,
            max_jobs_per_connection=max_jobs_per_connection,
            conns=self.conns,
            dirty=self.dirty,
            flush=flush,
            on_idle=on_idle,
        )
        self.queues = queues = book.queues
        # Bound once: the packet handlers call these without a hop through ``book``/``queues``.
        self._send = book.send
        self.submit = book.submit
        self._finish = book.finish
        self._requeue = book.requeue
        self._fail_clients = book.fail_clients
        self._fan_out = book.fan_out
        self._unsleep = queues.unsleep
        self._select = queues.select
        self._stop_job_timer = queues.stop_job_timer
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
        self.book.abandon_waits(conn)
        conn.out.clear()
        self.dirty.discard(conn)

    def reject_packet_too_large(self, conn: Conn, reason: str) -> None:
        """A packet above ``max_packet_size``: say why, then close once the reply is out."""
        self._send(conn, packet_too_large_reply(reason))
        conn.closing = True

    # ---------------------------------------------------------------- dispatch

    def handle(self, conn: Conn, event: Packet | AdminCommand) -> None:
        """Apply one decoded event from ``conn``. May raise :class:`CloseConnection`."""
        if isinstance(event, Packet):
            self._apply(conn, int(event.kind), event.args, event.request)
        else:
            self._send(conn, answer_admin(self, conn, event, self.admin_gate))

    def receive(self, conn: Conn, decoder: Decoder, data: bytes) -> tuple[int, str | None]:
        """Feed bytes read from ``conn`` and apply every complete event: (events applied, close reason).

        The connection layer's one call per read: decoding and dispatch run here, so that compiled
        they are native calls with no event object built (:meth:`Decoder.advance`). A reason means
        the connection must close once its output is flushed (``conn.closing`` is set; a packet
        above ``max_packet_size`` is answered first, as gearmand does).
        """
        decoder.feed(data)
        n = 0
        try:
            while True:
                kind = decoder.advance()
                if kind == NEED_MORE:
                    decoder.args = ()  # (the last payload is not kept alive by an idle connection)
                    break
                n += 1
                if kind == ADMIN_LINE:
                    self._send(conn, answer_admin(self, conn, decoder.admin, self.admin_gate))
                elif conn.admin_only:
                    raise CloseConnection("binary packet on the connection kept for a loopback admin")
                else:
                    self._apply(conn, kind, decoder.args, decoder.request)
                if conn.closing:
                    break
        # (one name per handler: compiled, a name bound in two handlers keeps the first's type)
        except CloseConnection as close:
            conn.closing = True
            return n, f"closed: {close}"
        except PacketTooLarge as too_large:
            log.warning("connection %d from %s: %s", conn.id, conn.ip, too_large)
            self.reject_packet_too_large(conn, str(too_large))
            return n, f"closed: {too_large}"
        except RemoteProtocolError as bad:
            conn.closing = True
            return n, f"protocol error: {bad}"
        return n, None

    def _apply(self, conn: Conn, kind: int, args: tuple[bytes, ...], request: bool) -> None:
        if not request:
            # gearmand consumes a \0RES packet of a valid type and answers INVALID_MAGIC.
            self._send(conn, ERR_BAD_MAGIC)
            return
        # The job cycle's packets as direct calls (native calls when compiled); the rest
        # through the table.
        if kind == _SUBMIT_JOB_BG or kind == _SUBMIT_JOB:
            self._submit(conn, args, kind)
        elif kind == _GRAB_JOB_UNIQ:
            self._grab(conn, args, kind)
        elif kind == _WORK_COMPLETE:
            self._work_end(conn, args, kind)
        elif kind == _PRE_SLEEP:
            self.queues.pre_sleep(conn)
        else:
            self._dispatch[kind](conn, args, kind)

    def _build_dispatch(self) -> dict[int, Handler]:
        d: dict[int, Handler] = {t: self._not_expected for t in PacketType}
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

    # ---------------------------------------------------------------- functions (admin surface)

    def function(self, name: bytes) -> Function:
        """The function named ``name``, created if new (admin ``create function`` too)."""
        return self.index.function(name)

    def drop_function(self, name: bytes) -> DropOutcome:
        """Admin ``drop function``: refused while it has workers or jobs (gearmand strands them)."""
        return self.index.drop_function(name)

    def set_max_queue(self, name: bytes, limits: list[int]) -> None:
        """Admin ``maxqueue``: per-priority queue limits of a known function (0 = none)."""
        fn = self.functions.get(name)
        if fn is not None:
            fn.max_queue = limits
            if any(limits):
                self.index.busy(fn)
            else:
                self.index.check_idle(fn)

    def bad_function_name(self, name: bytes) -> bytes | None:
        """The ERROR refusing a new function name, or None (see the module docstring)."""
        return function_name_error(name, self.max_function_name)

    # ---------------------------------------------------------------- submit

    def _submit(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        priority = _PRIORITY_OF[kind]
        background = _BACKGROUND_OF[kind]
        name, unique = args[0], args[1]
        if self.acl is not None and not self.acl.allowed(conn.peer_cert_subject, "invoke", name):
            self._send(conn, ERR_PERMISSION)
            return
        when = 0
        reducer = b""
        if kind == _SUBMIT_JOB_EPOCH:
            when = parse_epoch(args[2])
            payload = args[3]
        elif kind == _SUBMIT_REDUCE_JOB or kind == _SUBMIT_REDUCE_JOB_BACKGROUND:
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
        if name not in self.functions:  # a name seen before was checked then
            error = function_name_error(name, self.max_function_name)
            if error is not None:
                self._send(conn, error)
                return
        self.book.submit(conn, name, unique, payload, priority, background, when, reducer)

    def replay(self, stored: StoredJob) -> Job | None:
        """Queue a job read back from the store at start (keeps its store row)."""
        return self.book.replay(stored)

    # ---------------------------------------------------------------- workers

    def _can_do(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        self._add_ability(conn, args[0], 0)

    def _can_do_timeout(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        text = args[1]
        if len(text) > 20:
            raise CloseConnection("CAN_DO_TIMEOUT value too long")
        ms = atoi(text) * self.can_do_timeout_scale
        if ms <= 0:
            ms = 0
        elif ms < 1000:
            ms = 1000
        self._add_ability(conn, args[0], ms)

    def _add_ability(self, conn: Conn, name: bytes, timeout_ms: int) -> None:
        if self.acl is not None and not self.acl.allowed(conn.peer_cert_subject, "register", name):
            self._send(conn, ERR_PERMISSION)
            return
        fn = self.functions.get(name)
        if fn is None:
            error = function_name_error(name, self.max_function_name)
            if error is not None:
                self._send(conn, error)
                return
            fn = self.function(name)
        else:
            known = conn.registered.get(fn)
            if known is not None:
                known.timeout_ms = timeout_ms  # registered already: only the timeout may change
                return
        ability = conn.registered[fn] = Ability(fn, timeout_ms)
        conn.abilities.insert(0, ability)
        conn.is_worker = True
        fn.workers += 1
        if fn.idle:
            self.index.busy(fn)
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
        dropped = []
        for ability in conn.abilities:
            fn = ability.function
            if only is None or fn is only:
                fn.workers -= 1
                fn.sleepers.pop(conn, None)
                del conn.registered[fn]
                dropped.append(fn)
            else:
                keep.append(ability)
        conn.abilities = keep
        if conn.jobs:
            held = [j for j in conn.jobs if only is None or j.function is only]
            conn.jobs = [j for j in conn.jobs if not (only is None or j.function is only)]
            for job in reversed(held):
                self._requeue(job)
        check_idle = self.index.check_idle
        for fn in reversed(dropped):  # oldest registration first: the newest are kept longest
            check_idle(fn)

    def _pre_sleep(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        self.queues.pre_sleep(conn)

    def _grab(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        if conn.sleeping:
            conn.sleeping = False
            conn.noop_sent = False
            self._unsleep(conn)
        job, ability = self._select(conn)
        if job is None or ability is None:
            self._send(conn, NO_JOB)
            return
        fn = job.function
        fn.running += 1
        job.worker = conn
        conn.jobs.append(job)
        timeout_ms = ability.timeout_ms
        if timeout_ms:
            job.timer = self.scheduler.call_later(timeout_ms / 1000.0, lambda: self._timed_out(job, conn))
        if self.timing:
            job.started_at = self.clock()
            self.observer.job_started(job)
        if kind == _GRAB_JOB:
            self._send(conn, _frame(_JOB_ASSIGN, job.handle, fn.name, job.payload))
        elif kind == _GRAB_JOB_ALL and job.reducer:
            self._send(
                conn, _frame(_JOB_ASSIGN_ALL, job.handle, fn.name, job.unique, job.reducer, job.payload)
            )
        else:
            self._send(conn, _frame(_JOB_ASSIGN_UNIQ, job.handle, fn.name, job.unique, job.payload))

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
        self._fail_clients(job)
        late = conn.late
        if late is None:
            late = conn.late = {}
        elif len(late) >= MAX_LATE_HANDLES:
            del late[next(iter(late))]
        late[job.handle] = False
        self._finish(job, "timeout")

    # ---------------------------------------------------------------- work results

    def _owned_job(self, conn: Conn, handle: bytes, kind: int) -> Job | None:
        job = self.jobs.get(handle)
        if job is None and kind == _WORK_FAIL and handle == conn.last_exception:
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
                self._send(conn, _enc(T.ERROR, b"JOB_NOT_FOUND", NOT_FOUND_TEXT[kind]))
            return None
        return job

    def _drop_late(self, conn: Conn, late: dict[bytes, bool], handle: bytes, kind: int) -> None:
        """A worker's packet for a job that timed out on it: drop it (logged once per job)."""
        if not late[handle]:
            late[handle] = True
            log.warning(
                "dropped %s for job %s from worker %s:%d: the job had already timed out "
                "(CAN_DO_TIMEOUT); further late packets for it are dropped silently",
                T(kind).name,
                handle.decode("utf-8", "replace"),
                conn.ip,
                conn.port,
            )
        if kind == T.WORK_COMPLETE or kind == T.WORK_FAIL:
            del late[handle]
        self.observer.late_result(T(kind))

    def _work_status(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        job = self._owned_job(conn, args[0], kind)
        if job is None:
            return
        job.numerator = atoi(args[1])
        job.denominator = atoi(args[2])
        if job.clients:
            self._fan_out(job, _frame(T.WORK_STATUS, *args))

    def _work_data(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        job = self._owned_job(conn, args[0], kind)
        if job is None or not job.clients:
            return
        self._fan_out(job, _frame(kind, *args))

    def _work_end(self, conn: Conn, args: tuple[bytes, ...], kind: int) -> None:
        handle = args[0]
        if kind == _WORK_FAIL:
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
            if kind == _WORK_COMPLETE:
                self._fan_out(job, _frame(_WORK_COMPLETE, handle, args[1]))
            elif kind == _WORK_FAIL:
                self._fan_out(job, encode_unchecked_one(_WORK_FAIL, handle))
            else:
                exc = _frame(_WORK_EXCEPTION, handle, args[1])
                fail = encode_unchecked_one(_WORK_FAIL, handle)
                dirty = self.dirty
                for c, times in job.clients.items():
                    c.push_times(exc if c.exceptions else fail, times)
                    dirty.add(c)
        if kind == _WORK_EXCEPTION:
            conn.last_exception = handle
        outcome = "complete" if kind == _WORK_COMPLETE else "fail" if kind == _WORK_FAIL else "exception"
        self._finish(job, outcome)

    def cancel(self, handle: bytes) -> bool:
        """Admin ``cancel job``: tell clients WORK_FAIL, forget the stored row, abandon the job."""
        return self.book.cancel(handle)

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
        job = self.index.newest_with_unique(unique)
        if job is None:
            self._send(conn, _enc(T.STATUS_RES_UNIQUE, unique, b"0", b"0", b"0", b"0", b"0"))
            return
        waiting = sum(job.clients.values()) if job.clients else 0  # submits, as gearmand counts
        self._send(conn, _enc(T.STATUS_RES_UNIQUE, unique, *_known_status(job), str(waiting).encode()))

    # ---------------------------------------------------------------- graceful stop

    def drain(self) -> None:
        """Graceful stop: ``on_idle`` is called as soon as no job is queued or running."""
        self.book.drain()

    @property
    def draining(self) -> bool:
        return self.book.draining

    def idle(self) -> bool:
        """True when no job is queued or running."""
        return not self.jobs


def _known_status(job: Job) -> tuple[bytes, bytes, bytes, bytes]:
    """The known/running/numerator/denominator fields STATUS_RES and STATUS_RES_UNIQUE share."""
    running = b"1" if job.worker is not None else b"0"
    return b"1", running, str(job.numerator).encode(), str(job.denominator).encode()
