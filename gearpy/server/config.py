"""Settings of ``gearpy-server``, with their documented defaults.

Each field is also a ``GEARPY_<NAME>`` environment variable and a key of the ``server:`` section of
the YAML config file; flags win over both. Names follow gearmand's options where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gearpy.errors import ConfigError
from gearpy.protocol import DEFAULT_MAX_ADMIN_LINE, DEFAULT_MAX_PACKET_SIZE

#: Values of ``can_do_timeout_unit`` (the same for gearpy-worker).
CAN_DO_TIMEOUT_UNITS = ("ms", "s")


@dataclass
class ServerConfig:
    #: Address to listen on; ``*`` (or ``0.0.0.0``/``::``) means all interfaces. Loopback by default.
    listen: str = "127.0.0.1"
    #: TCP port (IANA "gearman").
    port: int = 4730
    #: Queue store URL: memory://, sqlite:///path, mysql://..., postgresql://..., redis://...
    #: or a gearmand module name (builtin, libsqlite3, mysql, postgres, redis).
    queue: str = "memory://"
    #: Unit of a worker's CAN_DO_TIMEOUT value: ``ms`` (gearmand >= 1.1.19) or ``s`` (gearmand <= 1.1.18,
    #: PHP's manual, Perl's Gearman::Worker). gearpy-worker must be given the same unit.
    can_do_timeout_unit: str = "ms"
    #: Drop a job after it was requeued this many times (worker lost); 0 = unlimited (gearmand 1.1).
    job_retries: int = 0
    #: NOOPs sent per queued job to sleeping workers; 0 = wake them all.
    worker_wakeup: int = 0
    #: Accepted for gearmand compatibility; round robin between functions is always on (gearmand 2.0).
    round_robin: bool = False
    #: Job handle prefix; handles are ``PREFIX:N``. Default ``H:<hostname>``.
    job_handle_prefix: str | None = None
    #: Turn the "exceptions" option on for every connection.
    exceptions: bool = False
    #: Accepted for gearmand compatibility: SO_KEEPALIVE is always on for connections.
    keepalive: bool = False
    #: Seconds idle before the kernel's first keepalive probe (TCP_KEEPIDLE; -1 = system default).
    #: A peer gone without a FIN or RST (host crash, partition) is dropped, and the jobs its worker
    #: ran are requeued, idle + interval x count seconds after it fell silent (120 s by default);
    #: unacknowledged output is given up after as long (TCP_USER_TIMEOUT).
    keepalive_idle: int = 60
    #: Seconds between keepalive probes (TCP_KEEPINTVL; -1 = system default).
    keepalive_interval: int = 10
    #: Unanswered probes before the connection is dropped (TCP_KEEPCNT; -1 = system default).
    keepalive_count: int = 6
    #: Background submits one connection may have waiting for the durable store before the server
    #: stops reading from it (back-pressure while the store is slow; memory stays bounded).
    max_pending_commits: int = 1024
    #: Log destination: ``stderr`` (default), ``none`` or a file path (reopened on SIGHUP; never
    #: through a symlink; created mode 0640).
    log_file: str = "stderr"
    #: Log level, gearmand's names accepted (FATAL ... NOTICE, INFO, DEBUG).
    verbose: str = "NOTICE"
    #: Log line format: text or json.
    log_format: str = "text"
    #: Write the process id here (removed at exit). Created exclusively, never through a symlink;
    #: a file held by a running server stops the start, a stale one is replaced.
    pid_file: str | None = None
    #: Largest binary packet body accepted, checked before anything is allocated.
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    #: Longest admin text line (gearmand: 8 KiB).
    max_admin_line: int = DEFAULT_MAX_ADMIN_LINE
    #: Unsent output allowed per connection before it is disconnected (a peer that stops reading).
    max_output_buffer: int = 64 * 1024 * 1024
    #: Bytes all jobs in memory may hold, each counted with its record, unique and function name
    #: (about 320 bytes beyond its payload, 300 more with a unique); new jobs beyond it get
    #: ERROR QUEUE_ERROR.
    max_queued_bytes: int = 1024 * 1024 * 1024
    #: Unfinished jobs one connection may have created; further submits from it get
    #: ERROR QUEUE_ERROR. 0 = no limit (gearmand has none).
    max_jobs_per_connection: int = 0
    #: Longest function name (bytes) a CAN_DO or submit may introduce; longer ones get
    #: ERROR ARGUMENT_TOO_LARGE. Names with control bytes are always refused (INVALID_FUNCTION_NAME).
    max_function_name: int = 512
    #: Functions with no worker, job or maxqueue kept for ``status``; beyond this many the longest
    #: unused are forgotten (gearmand keeps every name forever).
    max_idle_functions: int = 1000
    #: Most connections held at once, TLS handshakes included; further ones are closed at accept
    #: (one more is kept for a loopback admin command, e.g. ``gearadmin --status``).
    max_connections: int = 20000
    #: Seconds a connection may stay silent while it is neither a registered worker nor waiting
    #: for a job; it is then closed. 0 = never (gearmand's behaviour).
    idle_timeout: float = 0.0
    #: listen() backlog.
    backlog: int = 1024
    #: Table name (SQL stores) or key prefix (Redis) for durable queues; when set it wins over the
    #: URL's ``?table=``/``?prefix=``, when unset (or empty) the URL's is used, else ``gearpy_queue``
    #: (``gearpy:`` for Redis).
    queue_table: str | None = None
    #: Serve Prometheus ``/metrics`` and ``/healthz`` on HOST:PORT (opt-in; e.g. 127.0.0.1:9418).
    metrics: str | None = None
    #: Metrics requests served at once; further connections wait in the listen backlog.
    metrics_max_connections: int = 16
    #: Seconds a metrics connection may take for its whole request and response.
    metrics_timeout: float = 10.0
    #: Functions given their own ``/metrics`` series (those with the most jobs, then workers); the
    #: rest are summed under the function label ``__other__``, so a scrape stays small.
    metrics_max_functions: int = 500
    #: TLS on the Gearman port (binary and admin alike), with gearmand's option names.
    ssl: bool = False
    #: The server's certificate chain (PEM).
    ssl_certificate: str | None = None
    #: The server's private key (PEM).
    ssl_key: str | None = None
    #: With a CA file, clients must present a certificate signed by it (gearmand checks none).
    ssl_ca_file: str | None = None
    #: Seconds a connection may take to finish the TLS handshake.
    handshake_timeout: float = 10.0
    #: Seconds a connection may sit on a half-received packet or admin line before it is closed.
    packet_timeout: float = 60.0
    #: Who may run mutating admin commands (cancel job, create/drop function, maxqueue):
    #: a comma-separated list of addresses or networks (``127.0.0.1``, ``10.0.0.0/8``) and
    #: ``cert:SUBJECT`` entries (the client certificate's subject, e.g. ``cert:CN=ops``).
    #: Empty = anyone who can connect (gearmand's behaviour).
    admin_allow: list[str] = field(default_factory=list)
    #: YAML file of per-function permissions by client-certificate subject (see gearpy.server.acl),
    #: checked at start. It, not ``admin_allow``, controls the binary protocol; use it with
    #: ``ssl_ca_file`` (without certificates every peer gets its ``*`` entry).
    acl_file: str | None = None
    #: Serve the web dashboard, the JSON API (/api/v1/), /metrics and /healthz on HOST:PORT (opt-in;
    #: e.g. 127.0.0.1:8470). A non-loopback address needs ``http_auth_file``. HTTPS when ``ssl`` is on.
    http: str | None = None
    #: YAML file of dashboard users (salted scrypt hashes) and bearer tokens, each with a role
    #: (``read`` or ``admin``); create entries with ``python -m gearpy.server.http.auth``.
    http_auth_file: str | None = None
    #: Other job servers (gearpy or gearmand) shown on the dashboard's fleet page: HOST:PORT,...
    http_peers: list[str] = field(default_factory=list)
    #: Most HTTP connections served at once; further ones wait in the listen backlog.
    http_max_connections: int = 64
    #: Seconds an HTTP client may take to send a request's headers, or its body; also the idle
    #: keep-alive limit (no half-sent request holds a connection longer).
    http_request_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.can_do_timeout_unit not in CAN_DO_TIMEOUT_UNITS:
            raise ConfigError(f"can_do_timeout_unit: {self.can_do_timeout_unit!r} is not ms or s")
