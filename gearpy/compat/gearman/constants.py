"""python-gearman's constants: default port, priorities and job request states (same values)."""

from __future__ import annotations

DEFAULT_GEARMAN_PORT = 4730

PRIORITY_NONE = None
PRIORITY_LOW = "LOW"
PRIORITY_HIGH = "HIGH"

#: Not submitted yet, or its connection was lost before the job ended (outcome unknown).
JOB_UNKNOWN = "UNKNOWN"
#: Submitted; waiting for the server's JOB_CREATED.
JOB_PENDING = "PENDING"
#: Accepted by the server (has a handle).
JOB_CREATED = "CREATED"
#: The worker answered WORK_FAIL, or (gearpy) the server refused the submit with ERROR.
JOB_FAILED = "FAILED"
#: The worker answered WORK_COMPLETE; ``request.result`` holds the decoded result.
JOB_COMPLETE = "COMPLETE"
