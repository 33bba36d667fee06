"""The worker's settings, their documented defaults, and the worker's exit codes.

Layered like every gearpy program: defaults < YAML file (top-level ``servers:`` / ``workers_key:``,
then the ``worker:`` section) < ``GEARPY_*`` environment < command-line flags. Every field is a
``GEARPY_<FIELD>`` variable: ``GEARPY_SERVERS=a:4730,b:4730``, ``GEARPY_WORKERS_KEY=atom1``,
``GEARPY_CONCURRENCY=4``, ``GEARPY_MODULES=myapp.jobs`` ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gearpy import config as _config
from gearpy.errors import ConfigError
from gearpy.packetlimit import DEFAULT_MAX_PACKET_SIZE

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_SERVERS",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "EXIT_ERROR",
    "EXIT_HARD_STOP",
    "EXIT_IMPORT",
    "EXIT_OK",
    "EXIT_RECYCLED",
    "EXIT_USAGE",
    "IDLE_REGRAB_INTERVAL",
    "WorkerConfig",
    "load_config",
]

#: Where a worker connects when neither flags, environment nor file say: gearmand's default port.
DEFAULT_SERVERS = ("127.0.0.1:4730",)
#: Jobs one process runs at once (greenlets). 1 matches python-gearman and Net_Gearman workers.
DEFAULT_CONCURRENCY = 1
#: Seconds a warm shutdown waits for running jobs before it gives up on them (then exit 5).
#: Keep systemd's TimeoutStopSec longer than this.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
#: Seconds a sleeping connection waits for NOOP before it grabs anyway: a safety net against a lost
#: wake-up (python-gearman #47: a worker on two servers stopped taking jobs from one of them).
IDLE_REGRAB_INTERVAL = 60.0
#: Seconds to wait for a TCP connection to a server.
CONNECT_TIMEOUT = 5.0
#: Reconnect backoff: first delay and cap, in seconds (with jitter; see gearpy.transport.Backoff).
RECONNECT_BACKOFF_BASE = 0.2
RECONNECT_BACKOFF_CAP = 5.0

# Exit codes, documented in ``gearpy-worker --help`` and used by the systemd unit in deploy/.
#: Clean stop: a signal asked for it and every running job finished.
EXIT_OK = 0
#: An unexpected internal error (the log has the traceback).
EXIT_ERROR = 1
#: Bad command line or configuration.
EXIT_USAGE = 2
#: A task module cannot be imported, holds no task, or ``--function`` names an unknown task.
EXIT_IMPORT = 3
#: ``--max-jobs`` or ``--max-memory`` reached: the process finished its jobs and wants a fresh one.
EXIT_RECYCLED = 4
#: Hard stop: a second signal, or running jobs outlived ``--shutdown-timeout``. The server requeues
#: the jobs that were running.
EXIT_HARD_STOP = 5


@dataclass
class WorkerConfig:
    """Settings of ``gearpy-worker`` (and of :class:`~gearpy.worker.runtime.Worker`).

    ``max_jobs``/``max_memory`` None mean no limit; ``max_memory`` is resident memory in MiB, checked
    after every job. ``functions`` empty means every task found in ``modules``.
    ``send_exceptions`` False sends only WORK_FAIL for a raised exception (see the runtime docs for
    why gearmand 1.1.20 needs that with clients that do not ask for exceptions).
    """

    #: Job servers to connect to (HOST[:PORT]); the worker takes jobs from all of them.
    servers: list[str] = field(default_factory=lambda: list(DEFAULT_SERVERS))
    #: Workers key: every task is registered as ``KEY-name`` (clients use the same key).
    workers_key: str | None = None
    #: Modules (or .py files) holding ``@task`` functions, as ``MODULE[:ATTR]``.
    modules: list[str] = field(default_factory=list)
    #: Serve only these tasks (empty = every task found in ``modules``).
    functions: list[str] = field(default_factory=list)
    #: Worker hooks, as ``MODULE:ATTR`` (a hook, a hook class made once per process, or a list).
    hooks: list[str] = field(default_factory=list)
    #: Jobs one process runs at once (greenlets).
    concurrency: int = DEFAULT_CONCURRENCY
    #: Fork this many worker processes (for CPU-bound tasks); a crashed one is replaced.
    processes: int | None = None
    #: Recycle a process after this many jobs (none = never).
    max_jobs: int | None = None
    #: Recycle a process once its resident memory exceeds this many MiB (checked after each job).
    max_memory: float | None = None
    #: Seconds a warm shutdown waits for running jobs before a hard stop.
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    #: Id shown by the server's ``workers`` listing (default ``gearpy-worker:HOST:PID``).
    client_id: str | None = None
    #: Send WORK_EXCEPTION before WORK_FAIL when a task raises. Turn off when workers serve
    #: libgearman clients (PHP, the gearman CLI) through gearmand 1.1, which then hangs them.
    send_exceptions: bool = True
    #: Unit the servers read CAN_DO_TIMEOUT in: ``ms`` or ``s``, as their ``can_do_timeout_unit``
    #: (set it once at the top level of a shared config file, or in ``GEARPY_CAN_DO_TIMEOUT_UNIT``).
    #: A task's own ``timeout`` is enforced by the worker; the server's timer is only a backstop.
    can_do_timeout_unit: str = "ms"
    #: Log level (DEBUG, INFO, NOTICE, WARNING, ERROR).
    log_level: str = "INFO"
    #: Log line format: text or json.
    log_format: str = "text"
    #: Serve Prometheus ``/metrics`` and ``/healthz`` on HOST:PORT (opt-in). With ``processes`` N,
    #: process k serves on PORT+k (a replacement keeps its predecessor's port).
    metrics: str | None = None
    #: Connect with TLS; the server's certificate is verified (against ``ssl_ca_file`` if set).
    ssl: bool = False
    #: CA bundle that signed the servers' certificates (default: the system's trust store).
    ssl_ca_file: str | None = None
    #: Client certificate (PEM), for servers started with ``--ssl-ca-file``.
    ssl_certificate: str | None = None
    #: The client certificate's private key (PEM).
    ssl_key: str | None = None
    #: Largest packet body a job may send (WORK_COMPLETE, WORK_DATA, ...): a bigger result fails the
    #: job (WORK_FAIL, logged) instead of being sent and refused. The server's default.
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE

    def __post_init__(self) -> None:
        if not self.servers:
            raise ConfigError("servers: at least one server is required")
        for s in self.servers:
            _config.parse_server_address(s)
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.processes is not None and self.processes < 1:
            raise ConfigError("processes must be at least 1")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ConfigError("max_jobs must be at least 1")
        if self.max_memory is not None and self.max_memory <= 0:
            raise ConfigError("max_memory must be a positive number of MiB")
        if self.shutdown_timeout < 0:
            raise ConfigError("shutdown_timeout must be >= 0 seconds")
        if self.can_do_timeout_unit not in ("ms", "s"):
            raise ConfigError(f"can_do_timeout_unit: {self.can_do_timeout_unit!r} is not ms or s")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format: {self.log_format!r} is not text or json")
        _config.require_ssl_for_tls_files(
            self.ssl, ssl_ca_file=self.ssl_ca_file, ssl_certificate=self.ssl_certificate, ssl_key=self.ssl_key
        )


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> WorkerConfig:
    """Build a :class:`WorkerConfig`; ``flags`` set to None (or empty tuples) do not hide lower layers."""
    return _config.load(WorkerConfig, "worker", config_file=config_file, env=env, flags=flags)
