"""The client: submit jobs to one or many Gearman servers and follow them.

Servers come from the ``servers`` argument, else the config (YAML top-level ``servers:``, the
``client:`` section, or ``GEARPY_SERVERS=a:4730,b:4730``). A job with a unique id goes to the server
chosen by ``zlib.crc32(unique) % len(servers)`` — a stable hash, so every client that submits the same
unique reaches the same server and duplicates coalesce there. A job without one goes round-robin.
When the chosen server is down the next one in the list is tried, and so on around the list.

Failover never re-runs a job silently: a submit moves on only if the server did not answer
JOB_CREATED (a refused or lost connection). Once a foreground job is created, losing its connection
ends it as :class:`~gearpy.errors.JobOutcomeUnknown`. A submit that gets no answer within its
``timeout`` raises :class:`~gearpy.errors.OutcomeUnknownTimeout` and closes that connection, so the
next submit reconnects or fails over instead of waiting behind a silent server.

The client holds no global state: each :class:`Client` owns its connections, and after ``fork()`` a
child notices the new pid and opens its own connections instead of sharing the parent's sockets.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
import os
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, overload

from gearpy.client.config import ClientConfig, load_config
from gearpy.client.connection import ServerConnection, remaining
from gearpy.client.job import Callback, Job, JobState, JobTracker
from gearpy.client.status import StatusReply, UniqueStatusReply, parse_status_unique
from gearpy.codecs import Codec, get_codec
from gearpy.config import parse_server_address
from gearpy.errors import GearpyConnectionError, GearpyError, GearpyTimeoutError, OutcomeUnknownTimeout
from gearpy.keys import apply_key
from gearpy.packetlimit import check_packets
from gearpy.protocol import PacketType, encode_request
from gearpy.transport import client_ssl_context

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

T = PacketType

#: A job's priority on the server.
Priority = Literal["normal", "high", "low"]
#: When a scheduled background job runs: a datetime (naive = local time) or epoch seconds.
When = _dt.datetime | float

#: (priority, background) -> submit packet type.
SUBMIT_TYPES = {
    ("normal", False): T.SUBMIT_JOB,
    ("high", False): T.SUBMIT_JOB_HIGH,
    ("low", False): T.SUBMIT_JOB_LOW,
    ("normal", True): T.SUBMIT_JOB_BG,
    ("high", True): T.SUBMIT_JOB_HIGH_BG,
    ("low", True): T.SUBMIT_JOB_LOW_BG,
}
PRIORITIES = ("normal", "high", "low")


class SubmitOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Client.submit`, as :meth:`Client.submit_many` takes them."""

    background: bool
    priority: Priority
    unique: str | bytes | None
    key: str | None
    when: When | None
    codec: str | Codec | None
    on_data: Callback | None
    on_warning: Callback | None
    on_progress: Callback | None


class SubmitRequest(SubmitOptions, total=False):
    """One job of :meth:`Client.submit_many` given as a dict: ``function`` and ``payload`` plus options."""

    function: str
    payload: Any


def _to_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def epoch_of(when: _dt.datetime | float | int) -> int:
    """Seconds since the epoch for SUBMIT_JOB_EPOCH; a naive datetime is local time."""
    if isinstance(when, _dt.datetime):
        return int(when.timestamp())
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise TypeError(f"when must be a datetime or a number of seconds, not {type(when).__name__}")
    return int(when)


def _normalize(address: str) -> str:
    host, port = parse_server_address(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Client:
    """A reusable, thread-safe Gearman client over one connection per server.

    ``Client(servers=["a:4730", "b:4730"], key="site1")``; ``servers`` and ``key`` override the
    ``config`` (a :class:`ClientConfig`, else loaded from ``config_file`` and the environment).
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        servers: Sequence[str] | str | None = None,
        *,
        key: str | None = None,
        config: ClientConfig | None = None,
        config_file: str | os.PathLike[str] | None = None,
        codec: str | Codec | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        if isinstance(servers, str):
            servers = [s for s in servers.split(",") if s.strip()]
        overrides: dict[str, Any] = {
            "servers": list(servers) if servers else None,
            "workers_key": key,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "codec": codec if isinstance(codec, str) else None,
        }
        if config is None:
            config = load_config(config_file, **overrides)
        else:
            # A copy: the caller's config object may be shared (other clients, a web app's settings).
            config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
        if not config.servers:
            raise GearpyError("no Gearman server configured")
        self.config = config
        self.servers = [_normalize(s) for s in config.servers]
        self.codec = get_codec(codec if codec is not None else config.codec)
        self._round_robin = itertools.count()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._conns: dict[str, ServerConnection] = {}
        self.ssl_context = (
            client_ssl_context(config.ssl_ca_file, config.ssl_certificate, config.ssl_key)
            if config.ssl
            else None
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection (jobs still running end as outcome unknown)."""
        for conn in list(self._conns.values()):
            conn.close()

    # ----- servers ------------------------------------------------------------------------------
    def connection(self, server: str) -> ServerConnection:
        """The shared connection to ``server`` (a fresh set after fork)."""
        if os.getpid() != self._pid:
            # The parent's sockets and locks are not ours: drop them (their fds close with them).
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._conns = {}
        with self._lock:
            conn = self._conns.get(server)
            if conn is None:
                conn = ServerConnection(
                    server, connect_timeout=self.config.connect_timeout, ssl_context=self.ssl_context
                )
                self._conns[server] = conn
            return conn

    def server_order(self, unique: bytes = b"") -> list[str]:
        """Servers to try, first choice first: crc32(unique) picks it, else round-robin."""
        n = len(self.servers)
        start = zlib.crc32(unique) % n if unique else next(self._round_robin) % n
        return self.servers[start:] + self.servers[:start]

    # ----- submitting ---------------------------------------------------------------------------
    def _deadline(self, timeout: float | None) -> float | None:
        timeout = self.config.timeout if timeout is None else timeout
        return None if timeout is None else time.monotonic() + timeout

    def _build(
        self,
        function: str,
        payload: Any = b"",
        *,
        background: bool = False,
        priority: Priority = "normal",
        unique: str | bytes | None = None,
        key: str | None = None,
        when: When | None = None,
        codec: str | Codec | None = None,
        on_data: Callback | None = None,
        on_warning: Callback | None = None,
        on_progress: Callback | None = None,
    ) -> tuple[Job, JobTracker, bytes]:
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
        cdc = self.codec if codec is None else get_codec(codec)
        wire = apply_key(function, self.config.workers_key if key is None else key)
        uniq = _to_bytes(unique)
        data = cdc.encode(payload)
        tracker = JobTracker(background=background, codec=cdc)
        for kind, fn in (("data", on_data), ("warning", on_warning), ("progress", on_progress)):
            if fn is not None:
                tracker.callbacks[kind].append(fn)
        name = function if isinstance(function, str) else bytes(function).decode("utf-8", "replace")
        job = Job(tracker, name, wire, uniq, data)
        if when is not None:
            # SUBMIT_JOB_EPOCH is background-only, normal priority, in every server.
            if not background or priority != "normal":
                raise ValueError("when= needs background=True and normal priority (SUBMIT_JOB_EPOCH)")
            packet = encode_request(T.SUBMIT_JOB_EPOCH, wire, uniq, str(epoch_of(when)).encode(), data)
        else:
            packet = encode_request(SUBMIT_TYPES[priority, background], wire, uniq, data)
        check_packets(packet, self.config.max_packet_size)
        return job, tracker, packet

    def submit(
        self,
        function: str,
        payload: Any = b"",
        *,
        background: bool = False,
        priority: Priority = "normal",
        unique: str | bytes | None = None,
        key: str | None = None,
        when: When | None = None,
        codec: str | Codec | None = None,
        on_data: Callback | None = None,
        on_warning: Callback | None = None,
        on_progress: Callback | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Submit one job and return its :class:`Job` once the server created it (JOB_CREATED).

        Never waits for the result: call ``job.result(timeout)`` (a foreground job) or follow
        ``job.status()`` (a background job, state ``submitted``).

        * ``background`` — the server runs the job without this client; nobody gets its result.
        * ``priority`` — ``normal``, ``high`` or ``low``.
        * ``unique`` — jobs with the same unique coalesce on the server (and pick the same server).
        * ``key`` — the workers key prefixed to the function (default: the config's).
        * ``when`` — run at this time (datetime or epoch seconds); background, normal priority only.
        * ``codec`` — encodes the payload and decodes the result (default: the client's).
        * ``on_data`` / ``on_warning`` / ``on_progress`` — called with each :class:`JobEvent`.
        * ``timeout`` — seconds to wait for JOB_CREATED (default: the config's ``timeout``).

        A refused submit raises :class:`~gearpy.errors.ServerError`; no reachable server,
        :class:`~gearpy.errors.GearpyConnectionError`.
        """
        job, tracker, packet = self._build(
            function,
            payload,
            background=background,
            priority=priority,
            unique=unique,
            key=key,
            when=when,
            codec=codec,
            on_data=on_data,
            on_warning=on_warning,
            on_progress=on_progress,
        )
        self._send_all([(tracker, packet, self.server_order(job.unique))], self._deadline(timeout))
        if tracker.state is JobState.ERROR and tracker.error is not None:
            raise tracker.error
        return job

    def submit_many(
        self,
        requests: Iterable[SubmitRequest | tuple[str, Any]],
        *,
        timeout: float | None = None,
        **defaults: Unpack[SubmitOptions],
    ) -> list[Job]:
        """Submit many jobs pipelined: one write per server, then all JOB_CREATED replies are read.

        Each request is a ``(function, payload)`` tuple or a dict of :meth:`submit`'s arguments;
        ``defaults`` (any option of :meth:`submit`) apply to every request. Returns the jobs in
        request order. A job the server refused ends in state ``error`` (its ``result()`` raises the
        ServerError) instead of failing the whole batch.
        """
        built: list[Job] = []
        todo: list[tuple[JobTracker, bytes, list[str]]] = []
        for req in requests:
            spec: dict[str, Any] = dict(defaults)
            if isinstance(req, Mapping):  # a None in a request is "not given": the default stands
                spec.update({k: v for k, v in req.items() if v is not None})
            else:
                spec["function"], spec["payload"] = req
            job, tracker, packet = self._build(spec.pop("function"), spec.pop("payload", b""), **spec)
            built.append(job)
            todo.append((tracker, packet, self.server_order(job.unique)))
        self._send_all(todo, self._deadline(timeout))
        return built

    def _send_all(self, todo: list[tuple[JobTracker, bytes, list[str]]], deadline: float | None) -> None:
        """Send each job to the first server of its order; move the ones whose connection was lost
        before JOB_CREATED to the next server, until every job is settled."""
        errors: dict[str, GearpyConnectionError] = {}
        while todo:
            groups: dict[str, list[tuple[JobTracker, bytes, list[str]]]] = {}
            for item in todo:
                groups.setdefault(item[2][0], []).append(item)
            retry: list[tuple[JobTracker, bytes, list[str]]] = []
            sent: list[tuple[ServerConnection, list[tuple[JobTracker, bytes, list[str]]]]] = []
            for server, items in groups.items():
                conn = self.connection(server)
                for tracker, _, _ in items:
                    tracker.attach(conn)
                foreground = any(not tracker.background for tracker, _, _ in items)
                try:
                    data = b"".join(p for _, p, _ in items)
                    conn.send(data, [t for t, _, _ in items], exceptions=foreground)
                except GearpyConnectionError as exc:
                    errors[server] = exc
                    retry.extend(items)
                    continue
                sent.append((conn, items))
            for conn, items in sent:
                for item in items:
                    tracker = item[0]
                    _wait_created(conn, tracker, deadline)
                    if tracker.lost_before_created is not None:
                        errors[conn.address] = tracker.lost_before_created
                        retry.append(item)
            todo = []
            for tracker, packet, order in retry:
                if len(order) == 1:
                    raise _no_server(errors)
                todo.append((tracker, packet, order[1:]))

    # ----- status -------------------------------------------------------------------------------
    def status(self, handle: str, *, timeout: float | None = 10.0) -> StatusReply:
        """GET_STATUS on every server until one knows the handle (handles do not name their server)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: StatusReply | None = None
        errors: dict[str, GearpyConnectionError] = {}
        for server in self.servers:
            try:
                st = self.connection(server).get_status(handle, remaining(deadline))
            except GearpyConnectionError as exc:
                errors[server] = exc
                continue
            if st.known:
                return st
            last = st
        if last is None:
            raise _no_server(errors)
        return last

    def status_unique(self, unique: str | bytes, *, timeout: float | None = 10.0) -> UniqueStatusReply:
        """GET_STATUS_UNIQUE on the server that ``unique`` hashes to (failing over like submit)."""
        uniq = _to_bytes(unique)
        deadline = None if timeout is None else time.monotonic() + timeout
        errors: dict[str, GearpyConnectionError] = {}
        for server in self.server_order(uniq):
            try:
                conn = self.connection(server)
                packet = conn.call(encode_request(T.GET_STATUS_UNIQUE, uniq), T.STATUS_RES_UNIQUE, deadline)
            except GearpyConnectionError as exc:
                errors[server] = exc
                continue
            return parse_status_unique(packet)
        raise _no_server(errors)

    def ping(self, server: str | None = None, *, timeout: float | None = 10.0) -> float:
        """ECHO round trip to ``server`` (default: the first one); returns seconds."""
        conn = self.connection(_normalize(server) if server else self.servers[0])
        deadline = None if timeout is None else time.monotonic() + timeout
        token = os.urandom(8).hex().encode()
        start = time.perf_counter()
        packet = conn.call(encode_request(T.ECHO_REQ, token), T.ECHO_RES, deadline)
        elapsed = time.perf_counter() - start
        if packet.args[0] != token:
            raise GearpyError(f"{conn.address} echoed {packet.args[0]!r}, expected {token!r}")
        return elapsed


def _wait_created(conn: ServerConnection, tracker: JobTracker, deadline: float | None) -> None:
    """Wait for the server's answer to a submit; a timeout leaves the outcome unknown.

    The connection is then closed: its peer is silent (a partition, a stuck server), and a fresh
    connection lets the next submit fail over instead of waiting behind it.
    """
    try:
        tracker.wait_settled(deadline)
    except GearpyTimeoutError:
        conn.close()
        raise OutcomeUnknownTimeout(
            f"no answer from {conn.address} to the submit in time: the job may or may not have been "
            "created (it was not resubmitted)"
        ) from None


def _no_server(errors: Mapping[str, GearpyConnectionError]) -> GearpyConnectionError:
    if len(errors) == 1:
        return next(iter(errors.values()))
    detail = "; ".join(f"{s}: {e}" for s, e in errors.items())
    return GearpyConnectionError(f"no Gearman server reachable ({detail})")


@overload
def submit(
    function: str,
    payload: Any = ...,
    *,
    background: Literal[False] = ...,
    priority: Priority = ...,
    unique: str | bytes | None = ...,
    key: str | None = ...,
    when: None = ...,
    servers: Sequence[str] | str | None = ...,
    timeout: float | None = ...,
    codec: str | Codec | None = ...,
    config_file: str | os.PathLike[str] | None = ...,
) -> Any: ...


@overload
def submit(
    function: str,
    payload: Any = ...,
    *,
    background: Literal[True],
    priority: Priority = ...,
    unique: str | bytes | None = ...,
    key: str | None = ...,
    when: When | None = ...,
    servers: Sequence[str] | str | None = ...,
    timeout: float | None = ...,
    codec: str | Codec | None = ...,
    config_file: str | os.PathLike[str] | None = ...,
) -> str: ...


@overload
def submit(
    function: str,
    payload: Any = ...,
    *,
    background: bool,
    priority: Priority = ...,
    unique: str | bytes | None = ...,
    key: str | None = ...,
    when: When | None = ...,
    servers: Sequence[str] | str | None = ...,
    timeout: float | None = ...,
    codec: str | Codec | None = ...,
    config_file: str | os.PathLike[str] | None = ...,
) -> Any: ...


def submit(
    function: str,
    payload: Any = b"",
    *,
    background: bool = False,
    priority: Priority = "normal",
    unique: str | bytes | None = None,
    key: str | None = None,
    when: When | None = None,
    servers: Sequence[str] | str | None = None,
    timeout: float | None = None,
    codec: str | Codec | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Any:
    """Submit one job and return what the server can tell about it once it is over for this call.

    The rule: a foreground job returns its **result** (decoded with ``codec``; bytes with the
    default raw codec), a background job returns its **handle** (``str``, for
    ``Client.status()``), because nobody gets a background job's result.

    Raises :class:`~gearpy.errors.JobFailed`, :class:`~gearpy.errors.JobException` (``.payload``),
    :class:`~gearpy.errors.JobOutcomeUnknown`, :class:`~gearpy.errors.ServerError` (refused) or
    :class:`~gearpy.errors.GearpyConnectionError`. ``timeout`` bounds the whole call; when it
    expires the outcome is unknown (the connection is closed, so the job may or may not run) and
    :class:`~gearpy.errors.OutcomeUnknownTimeout` (a :class:`JobOutcomeUnknown` and a
    :class:`GearpyTimeoutError`) is raised. Opens and closes its own connection: use a
    :class:`Client` to submit many jobs.
    """
    with Client(servers, key=key, codec=codec, timeout=timeout, config_file=config_file) as client:
        deadline = client._deadline(timeout)
        job = client.submit(
            function,
            payload,
            background=background,
            priority=priority,
            unique=unique,
            when=when,
            timeout=remaining(deadline),
        )
        if background:
            assert job.handle is not None  # submit() returns once the server created the job
            return job.handle
        try:
            return job.result(remaining(deadline))
        except OutcomeUnknownTimeout:
            raise
        except GearpyTimeoutError:
            raise OutcomeUnknownTimeout(
                f"job {job.handle} did not finish in time; the connection is closed, it may or may not run",
                job.handle,
            ) from None
