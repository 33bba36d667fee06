"""python-gearman's ``GearmanClient``: submit jobs, wait for them, ask for their status.

Semantics are python-gearman 2.x's (Yelp's; gearman3 keeps them): a request is sent to a server
picked from a shuffled rotation of the host list; ``max_retries`` bounds how often it is (re)sent
while waiting for JOB_CREATED; ``poll_timeout`` bounds the whole call and leaves ``timed_out`` set
on what did not finish. Differences, all where python-gearman was wrong (see docs/guide.md):

* an ERROR reply to a submit ends that request as ``JOB_FAILED`` with ``server_error`` set,
  instead of leaving it PENDING (and ``wait_until_jobs_accepted`` hanging) forever;
* WORK_* or STATUS_RES packets for a handle we do not know are logged and ignored, not a KeyError;
* requests coalesced by the server onto one handle (same unique) all get the result, not just
  the last one;
* a lost connection marks PENDING and running foreground requests ``JOB_UNKNOWN`` but leaves
  finished requests and accepted background jobs as they were;
* ``submit_multiple_requests(..., poll_timeout=None)`` waits for completion (Yelp's behaviour; the
  pygearman fork's refactor stopped waiting when no timeout was given).
"""

from __future__ import annotations

import collections
import logging
import os
import random
import time
import weakref
from collections.abc import Collection, Iterable
from typing import Any, ClassVar

from gearpy.compat.gearman.connection import GearmanConnection, to_bytes
from gearpy.compat.gearman.connection_manager import GearmanCommandHandler, GearmanConnectionManager
from gearpy.compat.gearman.constants import (
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NONE,
)
from gearpy.compat.gearman.errors import (
    ConnectionError,
    ExceededConnectionAttempts,
    InvalidClientState,
    ProtocolError,
    ServerUnavailable,
)
from gearpy.compat.gearman.job import GearmanJobRequest
from gearpy.protocol import PacketType

T = PacketType
log = logging.getLogger("gearpy.compat.gearman.client")

#: Random bytes of a generated unique id (sent as 32 hex characters), python-gearman's default.
RANDOM_UNIQUE_BYTES = 16

_SUBMIT = {
    (False, PRIORITY_NONE): T.SUBMIT_JOB,
    (False, PRIORITY_LOW): T.SUBMIT_JOB_LOW,
    (False, PRIORITY_HIGH): T.SUBMIT_JOB_HIGH,
    (True, PRIORITY_NONE): T.SUBMIT_JOB_BG,
    (True, PRIORITY_LOW): T.SUBMIT_JOB_LOW_BG,
    (True, PRIORITY_HIGH): T.SUBMIT_JOB_HIGH_BG,
}


def submit_cmd_for_background_priority(background: bool, priority: str | None) -> PacketType:
    try:
        return _SUBMIT[(bool(background), priority)]
    except KeyError:
        raise ValueError(f"unknown priority {priority!r} (use PRIORITY_NONE, _LOW or _HIGH)") from None


def _expect_many(value: Any, what: str) -> None:
    if not isinstance(value, (list, tuple, set)):
        raise TypeError(f"Expected multiple {what}, received 1?")


def _int(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _foreground_running(request: GearmanJobRequest) -> bool:
    return request.state == JOB_PENDING or (request.state == JOB_CREATED and not request.background)


class GearmanClientCommandHandler(GearmanCommandHandler):
    """One client connection: replies in request order, WORK_* packets by handle."""

    def __init__(self, connection_manager: GearmanConnectionManager) -> None:
        super().__init__(connection_manager)
        #: what each outstanding request expects back, in wire order: ("submit"|"status", request)
        self._replies: collections.deque[tuple[str, GearmanJobRequest]] = collections.deque()
        #: handle -> the requests waiting on it (several when the server coalesced them)
        self.handle_to_request_map: dict[bytes, weakref.WeakSet[GearmanJobRequest]] = {}

    @property
    def requests_awaiting_handles(self) -> list[GearmanJobRequest]:
        return [r for kind, r in self._replies if kind == "submit"]

    # ----- sending ------------------------------------------------------------------------------
    def send_job_request(self, current_request: GearmanJobRequest) -> None:
        self._assert_request_state(current_request, JOB_UNKNOWN)
        job = current_request.job
        kind = submit_cmd_for_background_priority(current_request.background, current_request.priority)
        self.send_command(
            kind, to_bytes(job.task, "task"), to_bytes(job.unique, "unique"), self.encode_data(job.data)
        )
        current_request.state = JOB_PENDING
        self._replies.append(("submit", current_request))

    def send_get_status_of_job(self, current_request: GearmanJobRequest) -> None:
        handle = to_bytes(current_request.job.handle, "handle")
        self._register_request(handle, current_request)
        self.send_command(T.GET_STATUS, handle)
        self._replies.append(("status", current_request))

    def on_io_error(self) -> None:
        for kind, request in self._replies:
            if kind == "submit" and request.state == JOB_PENDING:
                request.state = JOB_UNKNOWN
        for requests in self.handle_to_request_map.values():
            for request in requests:
                if _foreground_running(request):
                    request.state = JOB_UNKNOWN
        self._replies.clear()
        self.handle_to_request_map.clear()

    def _register_request(self, handle: bytes, request: GearmanJobRequest) -> None:
        self.handle_to_request_map.setdefault(handle, weakref.WeakSet()).add(request)

    def _assert_request_state(self, request: GearmanJobRequest, expected: str) -> None:
        if request.state != expected:
            raise InvalidClientState(
                f"Expected handle ({request.job.handle!r}) to be in state {expected!r}, got {request.state!r}"
            )

    def _requests(self, handle: bytes, packet: str, terminal: bool = False) -> list[GearmanJobRequest]:
        """The live requests waiting on ``handle`` (forgotten after a terminal packet)."""
        requests = self.handle_to_request_map.get(handle)
        if requests is None:
            log.debug("%s for unknown handle %r ignored", packet, handle)
            return []
        found = [r for r in requests if r.state == JOB_CREATED]
        if terminal:
            del self.handle_to_request_map[handle]
        return found

    # ----- replies ------------------------------------------------------------------------------
    def _next_reply(self, expected: str, packet: str) -> GearmanJobRequest:
        if not self._replies or self._replies[0][0] != expected:
            raise ProtocolError(f"{packet} does not answer any request in flight")
        return self._replies.popleft()[1]

    def recv_job_created(self, job_handle: bytes) -> None:
        request = self._next_reply("submit", "JOB_CREATED")
        if request.state != JOB_PENDING:
            log.debug("JOB_CREATED %r for a request no longer pending (%s)", job_handle, request.state)
            return
        request.job.handle = job_handle
        request.state = JOB_CREATED
        if not request.background:
            self._register_request(job_handle, request)

    def recv_error(self, error_code: bytes, error_text: bytes) -> None:
        code, text = error_code.decode("utf-8", "replace"), error_text.decode("utf-8", "replace")
        if not self._replies:
            self.connection_manager.on_gearman_error(code, text)
            return
        kind, request = self._replies.popleft()
        log.warning("server refused %s %r: %s %s", kind, request.job.task, code, text)
        if kind == "submit" and request.state == JOB_PENDING:
            request.server_error = (code, text)
            request.state = JOB_FAILED
        elif kind == "status":
            request.status = {**request.status, "known": False, "time_received": time.time()}
            request._status_seq += 1

    def recv_work_data(self, job_handle: bytes, data: bytes) -> None:
        for request in self._requests(job_handle, "WORK_DATA"):
            request.data_updates.append(self.decode_data(data))

    def recv_work_warning(self, job_handle: bytes, data: bytes) -> None:
        for request in self._requests(job_handle, "WORK_WARNING"):
            request.warning_updates.append(self.decode_data(data))

    def recv_work_status(self, job_handle: bytes, numerator: bytes, denominator: bytes) -> None:
        for request in self._requests(job_handle, "WORK_STATUS"):
            request.status = {
                "handle": job_handle,
                "known": True,
                "running": True,
                "numerator": _int(numerator),
                "denominator": _int(denominator),
                "time_received": time.time(),
            }

    def recv_work_complete(self, job_handle: bytes, data: bytes) -> None:
        requests = self._requests(job_handle, "WORK_COMPLETE", terminal=True)
        if not requests:
            return
        try:
            result = self.decode_data(data)
        except Exception:
            log.exception("cannot decode the result of job %r; the request is marked failed", job_handle)
            for request in requests:
                request.state = JOB_FAILED
            return
        for request in requests:
            request.result = result
            request.state = JOB_COMPLETE

    def recv_work_fail(self, job_handle: bytes) -> None:
        # gearmand appends a NUL to the handle of a WORK_FAIL sent in place of WORK_EXCEPTION.
        for request in self._requests(job_handle.rstrip(b"\x00"), "WORK_FAIL", terminal=True):
            request.state = JOB_FAILED

    def recv_work_exception(self, job_handle: bytes, data: bytes) -> None:
        for request in self._requests(job_handle, "WORK_EXCEPTION"):
            request.exception = self.decode_data(data)

    def recv_status_res(
        self, job_handle: bytes, known: bytes, running: bytes, numerator: bytes, denominator: bytes
    ) -> None:
        request = self._next_reply("status", "STATUS_RES")
        request.status = {
            "handle": job_handle,
            "known": known == b"1",
            "running": running == b"1",
            "numerator": _int(numerator),
            "denominator": _int(denominator),
            "time_received": time.time(),
        }
        request._status_seq += 1


class GearmanClient(GearmanConnectionManager):
    """Submit jobs to Gearman servers (python-gearman's API)."""

    command_handler_class: ClassVar[type[GearmanCommandHandler]] = GearmanClientCommandHandler

    def __init__(
        self, host_list: Iterable[Any] | None = None, random_unique_bytes: int = RANDOM_UNIQUE_BYTES
    ):
        super().__init__(host_list=host_list)
        self.random_unique_bytes = random_unique_bytes
        #: request -> the connections still to try for it, rotated past the ones that failed
        self.request_to_rotating_connection_queue: weakref.WeakKeyDictionary[
            GearmanJobRequest, collections.deque[GearmanConnection]
        ] = weakref.WeakKeyDictionary()

    # ----- submitting ---------------------------------------------------------------------------
    def submit_job(
        self,
        task: Any,
        data: Any,
        unique: Any = None,
        priority: str | None = PRIORITY_NONE,
        background: bool = False,
        wait_until_complete: bool = True,
        max_retries: int = 0,
        poll_timeout: float | None = None,
    ) -> GearmanJobRequest:
        """Submit one job; see :meth:`submit_multiple_jobs`."""
        job_info = {"task": task, "data": data, "unique": unique, "priority": priority}
        requests = self.submit_multiple_jobs(
            [job_info],
            background=background,
            wait_until_complete=wait_until_complete,
            max_retries=max_retries,
            poll_timeout=poll_timeout,
        )
        return requests[0]

    def submit_multiple_jobs(
        self,
        jobs_to_submit: Collection[dict[str, Any]],
        background: bool = False,
        wait_until_complete: bool = True,
        max_retries: int = 0,
        poll_timeout: float | None = None,
    ) -> list[GearmanJobRequest]:
        """Submit jobs given as dicts (``task``, ``data``, optional ``unique``, ``priority``)."""
        _expect_many(jobs_to_submit, "jobs")
        requests = [
            self._create_request_from_dictionary(info, background=background, max_retries=max_retries)
            for info in jobs_to_submit
        ]
        return self.submit_multiple_requests(
            requests, wait_until_complete=wait_until_complete, poll_timeout=poll_timeout
        )

    def submit_multiple_requests(
        self,
        job_requests: list[GearmanJobRequest],
        wait_until_complete: bool = True,
        poll_timeout: float | None = None,
    ) -> list[GearmanJobRequest]:
        """Send requests, wait until accepted and (optionally) complete, all within ``poll_timeout``.

        Check each request afterwards: ``timed_out`` or ``state == JOB_UNKNOWN`` may be true.
        """
        _expect_many(job_requests, "job requests")
        deadline = None if poll_timeout is None else time.monotonic() + poll_timeout
        processed = self.wait_until_jobs_accepted(job_requests, poll_timeout=_left(deadline))
        left = _left(deadline)
        if wait_until_complete and left != 0.0:
            processed = self.wait_until_jobs_completed(processed, poll_timeout=left)
        return processed

    def wait_until_jobs_accepted(
        self, job_requests: list[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Poll until no request is PENDING; requests in state UNKNOWN are (re)sent meanwhile."""
        _expect_many(job_requests, "job requests")

        def continue_while_jobs_pending(any_activity: bool) -> bool:
            for request in job_requests:
                if request.state == JOB_UNKNOWN:
                    self.send_job_request(request)
            return any(r.state == JOB_PENDING for r in job_requests)

        self.poll_connections_until_stopped(
            self.connection_list, continue_while_jobs_pending, timeout=poll_timeout
        )
        for request in job_requests:
            request.timed_out = request.state == JOB_PENDING
        return job_requests

    def wait_until_jobs_completed(
        self, job_requests: list[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Poll until every request is complete (or UNKNOWN: never re-sent once it may have run)."""
        _expect_many(job_requests, "job requests")

        def continue_while_jobs_incomplete(any_activity: bool) -> bool:
            return any(not r.complete and r.state != JOB_UNKNOWN for r in job_requests)

        self.poll_connections_until_stopped(
            self.connection_list, continue_while_jobs_incomplete, timeout=poll_timeout
        )
        for request in job_requests:
            request.timed_out = not request.complete
            if not request.timed_out:
                self.request_to_rotating_connection_queue.pop(request, None)
        return job_requests

    # ----- status -------------------------------------------------------------------------------
    def get_job_status(
        self, current_request: GearmanJobRequest, poll_timeout: float | None = None
    ) -> GearmanJobRequest:
        return self.get_job_statuses([current_request], poll_timeout=poll_timeout)[0]

    def get_job_statuses(
        self, job_requests: list[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Send GET_STATUS for each request (on the connection that created it) and wait for the
        answers; ``status`` is filled in, ``timed_out`` set where none came."""
        _expect_many(job_requests, "job requests")
        asked: dict[GearmanJobRequest, int] = {}
        for request in job_requests:
            connection = request.job.connection
            if request.job.handle is None or connection is None:
                request.timed_out = True
                continue
            try:
                self.establish_connection(connection)
            except ConnectionError as exc:
                log.info("cannot ask for the status of %r: %s", request.job.handle, exc)
                request.timed_out = True
                continue
            handler = self.connection_to_handler_map[connection]
            assert isinstance(handler, GearmanClientCommandHandler)
            asked[request] = request._status_seq
            handler.send_get_status_of_job(request)

        def waiting(request: GearmanJobRequest) -> bool:
            return request._status_seq == asked[request] and request.job.connection.connected

        if asked:
            self.poll_connections_until_stopped(
                [r.job.connection for r in asked], lambda _: any(map(waiting, asked)), timeout=poll_timeout
            )
        for request in asked:
            request.timed_out = request._status_seq == asked[request]
        return job_requests

    # ----- requests and connections -------------------------------------------------------------
    def _create_request_from_dictionary(
        self, job_info: dict[str, Any], background: bool = False, max_retries: int = 0
    ) -> GearmanJobRequest:
        unique = job_info.get("unique") or os.urandom(self.random_unique_bytes).hex()
        job = self.job_class(
            connection=None, handle=None, task=job_info["task"], unique=unique, data=job_info["data"]
        )
        return GearmanJobRequest(
            job,
            initial_priority=job_info.get("priority", PRIORITY_NONE),
            background=background,
            max_attempts=max_retries + 1,
        )

    def establish_request_connection(self, current_request: GearmanJobRequest) -> GearmanConnection:
        """A live connection for the request: the first that works in its shuffled rotation."""
        rotating = self.request_to_rotating_connection_queue.get(current_request)
        if not rotating:
            shuffled = list(self.connection_list)
            random.shuffle(shuffled)
            rotating = collections.deque(shuffled)
            self.request_to_rotating_connection_queue[current_request] = rotating
        failed = 0
        chosen = None
        for connection in rotating:
            try:
                chosen = self.establish_connection(connection)
                break
            except ConnectionError as exc:
                log.info("%s", exc)
                failed += 1
        if chosen is None:
            raise ServerUnavailable(f"Found no valid connections: {self.connection_list!r}")
        rotating.rotate(-failed)
        return chosen

    def send_job_request(self, current_request: GearmanJobRequest) -> GearmanJobRequest:
        """Send (or re-send) one request; raises ExceededConnectionAttempts after max_retries + 1."""
        if current_request.connection_attempts >= current_request.max_connection_attempts:
            raise ExceededConnectionAttempts(
                f"Exceeded {current_request.max_connection_attempts} connection attempt(s) :: "
                f"{current_request!r}"
            )
        connection = self.establish_request_connection(current_request)
        current_request.job.connection = connection
        current_request.connection_attempts += 1
        current_request.timed_out = False
        handler = self.connection_to_handler_map[connection]
        assert isinstance(handler, GearmanClientCommandHandler)
        handler.send_job_request(current_request)
        return current_request


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


__all__ = ["GearmanClient", "GearmanClientCommandHandler", "RANDOM_UNIQUE_BYTES"]
