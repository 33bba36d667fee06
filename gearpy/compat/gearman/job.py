"""python-gearman's job objects: :class:`GearmanJob` (what a worker runs, what a client submits) and
:class:`GearmanJobRequest` (a client's view of one submitted job and how it ended)."""

from __future__ import annotations

import collections
from typing import Any

from gearpy.compat.gearman.constants import (
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_UNKNOWN,
    PRIORITY_NONE,
)


class GearmanJob:
    """A job: its connection, server handle, function (``task``), unique id and data.

    On a worker, ``handle``, ``task`` and ``unique`` are the bytes the server sent and ``data`` is
    decoded by the worker's ``data_encoder``. On a client they are what was submitted.
    """

    def __init__(self, connection: Any, handle: Any, task: Any, unique: Any, data: Any) -> None:
        self.connection = connection
        self.handle = handle
        self.task = task
        self.unique = unique
        self.data = data

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(connection={self.connection!r}, handle={self.handle!r}, "
            f"task={self.task!r}, unique={self.unique!r}, data={self.data!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "job_handle": self.handle, "unique": self.unique, "data": self.data}


class GearmanJobRequest:
    """One submitted job as the client sees it.

    ``state`` is one of the ``JOB_*`` constants; ``result`` holds the decoded WORK_COMPLETE data,
    ``exception`` the decoded WORK_EXCEPTION data, ``data_updates`` / ``warning_updates`` the
    decoded WORK_DATA / WORK_WARNING packets, ``status`` the last WORK_STATUS or STATUS_RES as a
    dict. gearpy adds ``server_error``: ``(code, text)`` when the server refused the submit with an
    ERROR packet (then ``state`` is ``JOB_FAILED``; python-gearman left such a request PENDING).
    """

    def __init__(
        self,
        gearman_job: GearmanJob,
        initial_priority: str | None = PRIORITY_NONE,
        background: bool = False,
        max_attempts: int = 1,
    ) -> None:
        self.gearman_job = gearman_job
        self.priority = initial_priority
        self.background = background
        self.connection_attempts = 0
        self.max_connection_attempts = max_attempts
        self.initialize_request()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(gearman_job={self.gearman_job!r}, initial_priority={self.priority!r}, "
            f"background={self.background!r}, max_attempts={self.max_connection_attempts!r})"
        )

    def initialize_request(self) -> None:
        self.result: Any = None
        self.exception: Any = None
        self.warning_updates: collections.deque[Any] = collections.deque()
        self.data_updates: collections.deque[Any] = collections.deque()
        self.status: dict[str, Any] = {}
        self.state: str = JOB_UNKNOWN
        self.timed_out = False
        self.server_error: tuple[str, str] | None = None
        self._status_seq = 0

    def reset(self) -> None:
        self.initialize_request()
        self.gearman_job.connection = None
        self.gearman_job.handle = None

    @property
    def job(self) -> GearmanJob:
        return self.gearman_job

    @property
    def complete(self) -> bool:
        """Foreground: COMPLETE or FAILED. Background: accepted (CREATED), or refused (FAILED)."""
        if self.state == JOB_FAILED:
            return True
        if self.background:
            return self.state == JOB_CREATED
        return self.state == JOB_COMPLETE
