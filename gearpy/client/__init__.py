"""gearpy's Gearman client library.

``submit()`` for one job; :class:`Client` to reuse connections, pipeline many jobs, follow progress
and query status; :mod:`gearpy.client.admin` for the administrative text protocol. See
:mod:`gearpy.client.client` for how servers are chosen and when a submit fails over.
"""

from gearpy.client.admin import (
    Admin,
    FunctionStatus,
    JobInfo,
    PriorityStatus,
    WorkerInfo,
)
from gearpy.client.client import Client, submit
from gearpy.client.config import ClientConfig, load_config
from gearpy.client.job import Job, JobEvent, JobStatus, UniqueStatus

__all__ = [
    "Admin",
    "Client",
    "ClientConfig",
    "FunctionStatus",
    "Job",
    "JobEvent",
    "JobInfo",
    "JobStatus",
    "PriorityStatus",
    "UniqueStatus",
    "WorkerInfo",
    "load_config",
    "submit",
]
