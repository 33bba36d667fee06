"""python-gearman's ``GearmanWorker``: register tasks, then ``work()`` runs jobs one at a time.

Wire behaviour is python-gearman's: on connect ``SET_CLIENT_ID`` (if set), ``RESET_ABILITIES``,
one ``CAN_DO`` per task, ``PRE_SLEEP``; on ``NOOP`` a ``GRAB_JOB_UNIQ`` if no other connection holds
the worker's single job lock. Jobs run in the polling thread; ``send_job_*`` flush their packet
before returning. Differences from python-gearman (see docs/guide.md):

* a NOOP that arrives while another connection holds the job lock is remembered and answered
  with a grab when the lock is released, instead of going back to sleep (python-gearman's
  ping-pong, and the lost wake-up of YelpArchive/python-gearman#47);
* a job whose data the ``data_encoder`` cannot decode goes to ``on_job_exception`` (with the raw
  bytes as ``job.data``) instead of raising out of ``work()`` while holding the job;
* a job for a function no longer registered is answered with WORK_FAIL, not an AssertionError;
* ``send_job_*`` for a job whose connection was lost logs and drops the packet (the server has
  already requeued the job) instead of raising KeyError;
* tasks may be registered as ``str`` or ``bytes`` (python-gearman on Python 3 needed bytes).
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, ClassVar

from gearpy.compat.gearman.connection import GearmanConnection, to_bytes
from gearpy.compat.gearman.connection_manager import GearmanCommandHandler, GearmanConnectionManager
from gearpy.compat.gearman.errors import ConnectionError, InvalidWorkerState
from gearpy.compat.gearman.job import GearmanJob
from gearpy.protocol import PacketType

T = PacketType
log = logging.getLogger("gearpy.compat.gearman.worker")

POLL_TIMEOUT_IN_SECONDS = 60.0

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
TaskCallback = Callable[["GearmanWorker", GearmanJob], Any]


class GearmanWorkerCommandHandler(GearmanCommandHandler):
    """One worker connection: SLEEP -> (NOOP) -> AWAITING_JOB -> (JOB_ASSIGN) -> run -> SLEEP."""

    connection_manager: GearmanWorker

    def __init__(self, connection_manager: GearmanConnectionManager) -> None:
        super().__init__(connection_manager)
        self._handler_abilities: list[bytes] = []
        self._client_id: bytes | None = None
        #: a NOOP came while another connection held the job lock: grab once it is released
        self.wants_grab = False

    def initial_state(self, abilities: Iterable[Any] = (), client_id: Any = None, **_: Any) -> None:
        self.set_client_id(client_id)
        self.set_abilities(abilities)
        self._sleep()

    def set_abilities(self, connection_abilities_list: Iterable[Any]) -> None:
        self._handler_abilities = [to_bytes(t, "task") for t in connection_abilities_list]
        self.send_command(T.RESET_ABILITIES)
        for task in self._handler_abilities:
            self.send_command(T.CAN_DO, task)

    def set_client_id(self, client_id: Any) -> None:
        self._client_id = None if client_id is None else to_bytes(client_id, "client id")
        if self._client_id is not None:
            self.send_command(T.SET_CLIENT_ID, self._client_id)

    # ----- updates sent while a job runs -------------------------------------------------------
    def send_job_status(self, current_job: GearmanJob, numerator: float, denominator: float) -> None:
        for value in (numerator, denominator):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError("numerator and denominator must be numbers")
        self.send_command(
            T.WORK_STATUS, current_job.handle, str(numerator).encode(), str(denominator).encode()
        )

    def send_job_complete(self, current_job: GearmanJob, data: Any) -> None:
        self.send_command(T.WORK_COMPLETE, current_job.handle, self.encode_data(data))

    def send_job_failure(self, current_job: GearmanJob) -> None:
        self.send_command(T.WORK_FAIL, current_job.handle)

    def send_job_exception(self, current_job: GearmanJob, data: Any) -> None:
        self.send_command(T.WORK_EXCEPTION, current_job.handle, self.encode_data(data))

    def send_job_data(self, current_job: GearmanJob, data: Any) -> None:
        self.send_command(T.WORK_DATA, current_job.handle, self.encode_data(data))

    def send_job_warning(self, current_job: GearmanJob, data: Any) -> None:
        self.send_command(T.WORK_WARNING, current_job.handle, self.encode_data(data))

    # ----- server packets -----------------------------------------------------------------------
    def grab_job(self) -> None:
        self.wants_grab = False
        self.send_command(T.GRAB_JOB_UNIQ)

    def _sleep(self) -> None:
        self.send_command(T.PRE_SLEEP)

    def recv_noop(self) -> None:
        manager = self.connection_manager
        if manager.check_job_lock(self):
            return
        if manager.set_job_lock(self, lock=True):
            self.grab_job()
        else:
            self.wants_grab = True

    def recv_no_job(self) -> None:
        self._release_job_lock()
        self._sleep()

    def recv_job_assign_uniq(self, job_handle: bytes, task: bytes, unique: bytes | None, data: bytes) -> None:
        manager = self.connection_manager
        if not manager.check_job_lock(self):
            raise InvalidWorkerState("Received a job when we weren't expecting one")
        try:
            if task not in self._handler_abilities:
                log.error("job %r for %r, which this worker does not serve: WORK_FAIL", job_handle, task)
                self.send_command(T.WORK_FAIL, job_handle)
                return
            try:
                decoded = self.decode_data(data)
            except Exception:
                job = manager.create_job(self, job_handle, task, unique, data)
                log.error("cannot decode the data of job %r", job_handle, exc_info=True)
                manager.on_job_exception(job, sys.exc_info())  # type: ignore[arg-type]
                return
            manager.on_job_execute(manager.create_job(self, job_handle, task, unique, decoded))
        finally:
            if self in manager.handler_to_connection_map:
                self._release_job_lock()
                self._sleep()

    def recv_job_assign(self, job_handle: bytes, task: bytes, data: bytes) -> None:
        self.recv_job_assign_uniq(job_handle, task, None, data)

    def _release_job_lock(self) -> None:
        if not self.connection_manager.set_job_lock(self, lock=False):
            raise InvalidWorkerState(f"Unable to release job lock for {self!r}")


class GearmanWorker(GearmanConnectionManager):
    """Serve tasks from Gearman servers (python-gearman's API); override the hooks to steer it."""

    command_handler_class: ClassVar[type[GearmanCommandHandler]] = GearmanWorkerCommandHandler

    def __init__(self, host_list: Iterable[Any] | None = None) -> None:
        super().__init__(host_list=host_list)
        self.randomized_connections: list[GearmanConnection] | None = None
        self.worker_abilities: dict[Any, TaskCallback] = {}
        self.worker_client_id: Any = None
        self.command_handler_holding_job_lock: GearmanCommandHandler | None = None
        self._update_initial_state()

    def _update_initial_state(self) -> None:
        self.handler_initial_state["abilities"] = list(self.worker_abilities)
        self.handler_initial_state["client_id"] = self.worker_client_id

    def _handlers(self) -> list[GearmanWorkerCommandHandler]:
        return [h for h in self.handler_to_connection_map if isinstance(h, GearmanWorkerCommandHandler)]

    # ----- registration -------------------------------------------------------------------------
    def register_task(self, task: Any, callback_function: TaskCallback) -> Any:
        """Serve ``task`` with ``callback_function(worker, job) -> result``."""
        self.unregister_task(task, _announce=False)
        self.worker_abilities[task] = callback_function
        self._announce_abilities()
        return task

    def unregister_task(self, task: Any, _announce: bool = True) -> Any:
        wire = to_bytes(task, "task")
        for name in [n for n in self.worker_abilities if to_bytes(n, "task") == wire]:
            del self.worker_abilities[name]
        if _announce:
            self._announce_abilities()
        return task

    def _announce_abilities(self) -> None:
        self._update_initial_state()
        for handler in self._handlers():
            handler.set_abilities(self.handler_initial_state["abilities"])
            handler._sleep()

    def set_client_id(self, client_id: Any) -> Any:
        """Identify this worker in the server's ``workers`` listing."""
        self.worker_client_id = client_id
        self._update_initial_state()
        for handler in self._handlers():
            handler.set_client_id(client_id)
        return client_id

    # ----- the work loop ------------------------------------------------------------------------
    def work(self, poll_timeout: float = POLL_TIMEOUT_IN_SECONDS) -> None:
        """Run jobs until a hook returns False. Dead connections are retried every ``poll_timeout``
        seconds; :class:`ServerUnavailable` is raised when none is alive."""
        continue_working = True
        worker_connections: list[GearmanConnection] = []
        had_job: list[bool] = []

        def continue_while_connections_alive(any_activity: bool) -> bool:
            if had_job and not self.has_job_lock():
                return self.after_poll(any_activity) and self.after_job()
            del had_job[:]
            if self.has_job_lock():
                had_job.append(True)
            return self.after_poll(any_activity)

        while continue_working:
            worker_connections = self.establish_worker_connections()
            continue_working = self.poll_connections_until_stopped(
                worker_connections, continue_while_connections_alive, timeout=poll_timeout
            )
        for connection in worker_connections:
            self.handle_error(connection)

    def shutdown(self) -> None:
        self.command_handler_holding_job_lock = None
        super().shutdown()

    def establish_worker_connections(self) -> list[GearmanConnection]:
        """The connections that are up, in random order, reconnecting the ones that are down."""
        self.randomized_connections = list(self.connection_list)
        random.shuffle(self.randomized_connections)
        alive = []
        for connection in self.randomized_connections:
            try:
                alive.append(self.establish_connection(connection))
            except ConnectionError as exc:
                log.info("%s", exc)
        return alive

    def after_poll(self, any_activity: bool) -> bool:
        """Called after every poll; return False to leave ``work()``."""
        return True

    def after_job(self) -> bool:
        """Called after each job; return False to leave ``work()``."""
        return True

    def handle_error(self, current_connection: GearmanConnection) -> None:
        handler = self.connection_to_handler_map.get(current_connection)
        if handler is not None:
            self.set_job_lock(handler, lock=False)
        super().handle_error(current_connection)

    # ----- updates a task sends while it runs ---------------------------------------------------
    def _get_handler_for_job(self, current_job: GearmanJob) -> GearmanWorkerCommandHandler | None:
        handler = self.connection_to_handler_map.get(current_job.connection)
        if not isinstance(handler, GearmanWorkerCommandHandler):
            log.warning(
                "connection of job %r was lost; its update is dropped (the server requeues it)",
                current_job.handle,
            )
            return None
        return handler

    def _send_update(
        self,
        current_job: GearmanJob,
        send: Callable[[GearmanWorkerCommandHandler], None],
        poll_timeout: float | None,
    ) -> None:
        handler = self._get_handler_for_job(current_job)
        if handler is not None:
            send(handler)
            self.wait_until_updates_sent([current_job.connection], poll_timeout=poll_timeout)

    def send_job_status(
        self, current_job: GearmanJob, numerator: float, denominator: float, poll_timeout: float | None = None
    ) -> None:
        self._send_update(
            current_job, lambda h: h.send_job_status(current_job, numerator, denominator), poll_timeout
        )

    def send_job_complete(
        self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None
    ) -> None:
        self._send_update(current_job, lambda h: h.send_job_complete(current_job, data), poll_timeout)

    def send_job_failure(self, current_job: GearmanJob, poll_timeout: float | None = None) -> None:
        self._send_update(current_job, lambda h: h.send_job_failure(current_job), poll_timeout)

    def send_job_exception(
        self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None
    ) -> None:
        """WORK_EXCEPTION then WORK_FAIL (for clients that did not ask for exceptions)."""

        def send(h: GearmanWorkerCommandHandler) -> None:
            h.send_job_exception(current_job, data)
            h.send_job_failure(current_job)

        self._send_update(current_job, send, poll_timeout)

    def send_job_data(self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None) -> None:
        self._send_update(current_job, lambda h: h.send_job_data(current_job, data), poll_timeout)

    def send_job_warning(self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None) -> None:
        self._send_update(current_job, lambda h: h.send_job_warning(current_job, data), poll_timeout)

    # ----- job execution hooks ------------------------------------------------------------------
    def create_job(
        self,
        command_handler: GearmanCommandHandler,
        job_handle: bytes,
        task: bytes,
        unique: bytes | None,
        data: Any,
    ) -> GearmanJob:
        connection = self.handler_to_connection_map[command_handler]
        return self.job_class(connection, job_handle, task, unique, data)

    def _callback_for(self, task: Any) -> TaskCallback:
        try:
            return self.worker_abilities[task]
        except KeyError:
            wire = to_bytes(task, "task")
            for name, callback in self.worker_abilities.items():
                if to_bytes(name, "task") == wire:
                    return callback
            raise

    def on_job_execute(self, current_job: GearmanJob) -> bool:
        try:
            function_callback = self._callback_for(current_job.task)
            job_result = function_callback(self, current_job)
        except Exception:
            return self.on_job_exception(current_job, sys.exc_info())  # type: ignore[arg-type]
        return self.on_job_complete(current_job, job_result)

    def on_job_exception(self, current_job: GearmanJob, exc_info: ExcInfo) -> bool:
        """A task raised: WORK_FAIL (python-gearman's default; no WORK_EXCEPTION)."""
        self.send_job_failure(current_job)
        return False

    def on_job_complete(self, current_job: GearmanJob, job_result: Any) -> bool:
        self.send_job_complete(current_job, job_result)
        return True

    # ----- the job lock -------------------------------------------------------------------------
    def set_job_lock(self, command_handler: GearmanCommandHandler, lock: bool) -> bool:
        """Take or release the worker-wide job lock (one job at a time across all connections).

        On release, a connection that was woken meanwhile grabs now.
        """
        if command_handler not in self.handler_to_connection_map:
            return False
        holder = self.command_handler_holding_job_lock
        if (lock and holder is not None) or (not lock and holder is not command_handler):
            return False
        self.command_handler_holding_job_lock = command_handler if lock else None
        if not lock:
            for handler in self._handlers():
                if handler.wants_grab and handler is not command_handler:
                    self.command_handler_holding_job_lock = handler
                    handler.grab_job()
                    break
        return True

    def has_job_lock(self) -> bool:
        return self.command_handler_holding_job_lock is not None

    def check_job_lock(self, command_handler: GearmanCommandHandler) -> bool:
        return self.command_handler_holding_job_lock is command_handler


__all__ = ["GearmanWorker", "GearmanWorkerCommandHandler", "POLL_TIMEOUT_IN_SECONDS"]
