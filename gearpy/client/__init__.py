"""gearpy's Gearman client library.

``submit()`` for one job; :class:`Client` to reuse connections, pipeline many jobs, follow progress
and query status; :mod:`gearpy.client.admin` for the administrative text protocol. See
:mod:`gearpy.client.client` for how servers are chosen and when a submit fails over.
"""

from __future__ import annotations

import warnings
from typing import Any

from gearpy.client.admin import (
    Admin,
    FunctionStatus,
    JobInfo,
    PriorityStatus,
    WorkerInfo,
)
from gearpy.client.client import Client, Priority, SubmitOptions, SubmitRequest, submit
from gearpy.client.config import ClientConfig, load_config
from gearpy.client.job import Job, JobEvent, JobState
from gearpy.client.status import StatusReply, UniqueStatusReply

__all__ = [
    "Admin",
    "Client",
    "ClientConfig",
    "FunctionStatus",
    "Job",
    "JobEvent",
    "JobInfo",
    "JobState",
    "Priority",
    "PriorityStatus",
    "StatusReply",
    "SubmitOptions",
    "SubmitRequest",
    "UniqueStatusReply",
    "WorkerInfo",
    "load_config",
    "submit",
]

#: Old names of the status replies, kept working with a DeprecationWarning.
_DEPRECATED = {"JobStatus": StatusReply, "UniqueStatus": UniqueStatusReply}


def __getattr__(name: str) -> Any:
    new = _DEPRECATED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"gearpy.client.{name} is deprecated; use gearpy.client.{new.__name__} (the same class)",
        DeprecationWarning,
        stacklevel=2,
    )
    return new
