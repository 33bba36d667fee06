"""``gearpy-server``: the command line of the job server, with gearmand's option names.

Every option is also a ``GEARPY_<NAME>`` environment variable and a key of the config file's
``server:`` section (defaults < file < environment < flags). Exit status: 0 after a clean stop,
1 when the server cannot start (port taken, store unreachable), 2 for a usage or config error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import yaml

from gearpy import __version__, _accel, logs
from gearpy.config import as_dict, load, redact_url
from gearpy.errors import ConfigError, StoreError
from gearpy.server import gearmand_compat as compat
from gearpy.server.acl import FunctionAcl
from gearpy.server.config import ServerConfig
from gearpy.server.gearmand_compat import expand_config_file
from gearpy.server.http import Dashboard
from gearpy.server.process import run
from gearpy.server.stores import gearmand_queue_url, open_store

_F = TypeVar("_F", bound=Callable[..., Any])

#: gearmand's queue-module options, accepted so an operator can swap binaries.
GEARMAND_QUEUE_OPTIONS = [
    "libsqlite3-db",
    "libsqlite3-table",
    "mysql-host",
    "mysql-port",
    "mysql-user",
    "mysql-password",
    "mysql-db",
    "mysql-table",
    "libpq-conninfo",
    "libpq-table",
    "redis-server",
    "redis-port",
    "redis-password",
    "redis-prefix",
]


def _gearmand_queue_options(f: _F) -> _F:
    for name in reversed(GEARMAND_QUEUE_OPTIONS):
        f = click.option(f"--{name}", default=None, help=f"gearmand compatibility ({name}).")(f)
    return f


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-L", "--listen", default=None, help="Address to listen on; '*' = all. [127.0.0.1]")
@click.option("-p", "--port", default=None, type=int, help="Port. [4730]")
@click.option(
    "-q",
    "--queue",
    "--queue-type",
    "queue",
    default=None,
    help="Queue store URL (memory://, sqlite:///path, mysql://, postgresql://, redis://) "
    "or a gearmand module name. [memory://]",
)
@click.option("--queue-table", default=None, help="Table name or key prefix of a durable store.")
@click.option(
    "-j",
    "--job-retries",
    default=None,
    type=int,
    help="Drop a job after N requeues (worker lost); 0 = unlimited. [0]",
)
@click.option(
    "-w",
    "--worker-wakeup",
    default=None,
    type=int,
    help="Sleeping workers woken per queued job; 0 = all. [0]",
)
@click.option(
    "-R",
    "--round-robin",
    is_flag=True,
    default=None,
    help="Accepted for gearmand compatibility; round robin is always on.",
)
@click.option(
    "--can-do-timeout-unit",
    default=None,
    type=click.Choice(["ms", "s"]),
    help="Unit of workers' CAN_DO_TIMEOUT values: ms (gearmand 1.1.19+) or s (older gearmand, PHP "
    "manual, Perl). [ms]",
)
@click.option("--job-handle-prefix", default=None, help="Job handle prefix. [H:<hostname>]")
@click.option("--exceptions", is_flag=True, default=None, help="Enable exceptions for every connection.")
@click.option("--keepalive", is_flag=True, default=None, help="TCP keepalive on connections.")
@click.option(
    "--keepalive-idle",
    default=None,
    type=int,
    help="TCP_KEEPIDLE seconds; a silent peer is dropped after idle + interval x count. [60]",
)
@click.option("--keepalive-interval", default=None, type=int, help="TCP_KEEPINTVL seconds. [10]")
@click.option("--keepalive-count", default=None, type=int, help="TCP_KEEPCNT probes. [6]")
@click.option("-l", "--log-file", default=None, help="Log file, 'stderr' or 'none'. [stderr]")
@click.option("--verbose", default=None, help="Log level (gearmand names work). [NOTICE]")
@click.option("--log-format", default=None, type=click.Choice(["text", "json"]), help="Log format. [text]")
@click.option("-P", "--pid-file", default=None, help="Write the process id to this file.")
@click.option("--max-packet-size", default=None, type=int, help="Largest packet body accepted (bytes).")
@click.option(
    "--max-connections",
    default=None,
    type=int,
    help="Most connections at once, TLS handshakes included (+1 kept for a loopback admin). [20000]",
)
@click.option(
    "--idle-timeout",
    default=None,
    type=float,
    help="Close a connection silent this long that is neither worker nor waiting client; 0 = never. [0]",
)
@click.option(
    "--max-output-buffer", default=None, type=int, help="Unsent bytes per connection before it is dropped."
)
@click.option(
    "--max-queued-bytes",
    default=None,
    type=int,
    help="Bytes all queued jobs may hold (payload, unique, name and ~320 per job); beyond it "
    "submits get QUEUE_ERROR. [1 GiB]",
)
@click.option(
    "--max-jobs-per-connection",
    default=None,
    type=int,
    help="Unfinished jobs one connection may have created; beyond it QUEUE_ERROR; 0 = no limit. [0]",
)
@click.option(
    "--max-function-name",
    default=None,
    type=int,
    help="Longest function name in bytes; longer ones get ARGUMENT_TOO_LARGE. [512]",
)
@click.option(
    "--max-idle-functions",
    default=None,
    type=int,
    help="Functions without worker or job kept for 'status'; the longest unused beyond go. [1000]",
)
@click.option(
    "--max-pending-commits",
    default=None,
    type=int,
    help="Background submits per connection waiting for the store before reading pauses. [1024]",
)
@click.option("-b", "--backlog", default=None, type=int, help="listen() backlog.")
@click.option(
    "--metrics",
    default=None,
    metavar="HOST:PORT",
    help="Serve Prometheus /metrics and /healthz here (opt-in), e.g. 127.0.0.1:9418.",
)
@click.option(
    "--metrics-max-connections", default=None, type=int, help="Metrics requests served at once. [16]"
)
@click.option(
    "--metrics-timeout", default=None, type=float, help="Seconds for one metrics request. [10]"
)
@click.option(
    "--metrics-max-functions",
    default=None,
    type=int,
    help="Functions with their own /metrics series; the rest are summed as '__other__'. [500]",
)
@click.option(
    "--http",
    default=None,
    metavar="HOST:PORT",
    help="Serve the web dashboard and JSON API here (opt-in), e.g. 127.0.0.1:8470.",
)
@click.option("--http-auth-file", default=None, help="Dashboard users and tokens (YAML); see the guide.")
@click.option(
    "--http-peers", default=None, metavar="HOST:PORT,...", help="Other servers shown on the fleet page."
)
@click.option("--http-max-connections", default=None, type=int, help="HTTP connections at once. [64]")
@click.option(
    "--http-request-timeout", default=None, type=float, help="Seconds to send an HTTP request. [10]"
)
@click.option("--ssl", is_flag=True, default=None, help="TLS on the Gearman port.")
@click.option("--ssl-certificate", default=None, help="Server certificate (PEM).")
@click.option("--ssl-key", default=None, help="Server private key (PEM).")
@click.option("--ssl-ca-file", default=None, help="CA bundle; clients must then present a certificate.")
@click.option("--handshake-timeout", default=None, type=float, help="Seconds for a TLS handshake. [10]")
@click.option(
    "--packet-timeout",
    default=None,
    type=float,
    help="Seconds a half-received packet may wait for the rest. [60]",
)
@click.option(
    "--admin-allow",
    default=None,
    multiple=True,
    help="Who may cancel jobs, create/drop functions, set maxqueue: IP, network or cert:SUBJECT "
    "(repeatable). [anyone]",
)
@click.option("--acl-file", default=None, help="Per-function permissions by client certificate (YAML).")
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="YAML config file (server: section).",
)
@click.option("--print-config", is_flag=True, help="Print the effective configuration and exit.")
@_gearmand_queue_options
@click.option("-t", "--threads", default=None, type=int, hidden=True, help="gearmand compatibility; ignored.")
@click.option("-d", "--daemon", is_flag=True, help="Fork into the background once listening (gearmand -d).")
@click.option("-u", "--user", default=None, help="Switch to this user after binding (gearmand -u).")
@click.option("-f", "--file-descriptors", default=None, type=int, help="Set the open-files limit.")
@click.option("--syslog", is_flag=True, help="Also log to the system log.")
@click.option(
    "--config-file",
    "config_file_gearmand",
    default=None,
    help="gearmand-style options file (read before the command line).",
)
@click.option("--coredump", is_flag=True, hidden=True, help="gearmand compatibility; ignored.")
@click.option(
    "--hashtable-buckets", default=None, type=int, hidden=True, help="gearmand compatibility; ignored."
)
@click.option("--http-port", default=None, hidden=True, help="gearmand compatibility; ignored.")
@click.option(
    "-r", "--protocol", default=None, help="gearmand's extra protocol plugin (only 'http'; not supported)."
)
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="gearpy-server",
    message=f"%(prog)s %(version)s (hot path: {_accel.mode()})",
)
def command(
    config_file: str | None,
    print_config: bool,
    threads: int | None,
    daemon: bool,
    user: str | None,
    file_descriptors: int | None,
    syslog: bool,
    config_file_gearmand: str | None = None,
    coredump: bool = False,
    hashtable_buckets: int | None = None,
    http_port: str | None = None,
    protocol: str | None = None,
    **flags: Any,
) -> None:
    """Gearman job server: a drop-in replacement for gearmand."""
    queue_opts = {k: flags.pop(k.replace("-", "_")) for k in GEARMAND_QUEUE_OPTIONS}
    try:
        if protocol:
            raise ConfigError(f"--protocol {protocol}: gearmand's HTTP protocol plugin is not supported")
        cfg = load(ServerConfig, "server", config_file=config_file, flags=flags)
        logs.parse_level(cfg.verbose)
        queue_url = _queue_url(cfg.queue, {k.replace("-", "_"): v for k, v in queue_opts.items() if v})
        cfg.queue = queue_url
        if print_config:
            shown = as_dict(cfg)
            shown["queue"] = redact_url(shown["queue"])
            click.echo(yaml.safe_dump({"server": shown}, sort_keys=False), nl=False)
            return
        if file_descriptors:
            compat.set_file_descriptors(file_descriptors)
        logs.configure(cfg.verbose, cfg.log_format, cfg.log_file)
        if cfg.acl_file:
            _check_acl(cfg)
        if syslog:
            compat.add_syslog()
        if cfg.http:
            Dashboard(cfg)  # refuses a non-loopback address without credentials, a bad auth file
        store = open_store(cfg.queue, table=cfg.queue_table)
    except (ConfigError, StoreError) as exc:
        raise click.UsageError(str(exc)) from None
    ready = compat.daemonize() if daemon else None
    after_bind = (lambda: compat.drop_privileges(user)) if user else None
    sys.exit(run(cfg, store, logs.reopen, ready=ready, after_bind=after_bind))


def _check_acl(cfg: ServerConfig) -> None:
    """Read the ACL file now, so a bad one is a configuration error (exit 2) found before binding."""
    FunctionAcl.load(cfg.acl_file or "")
    if not cfg.ssl_ca_file:
        logging.getLogger("gearpy.server").warning(
            "--acl-file without --ssl-ca-file: no client presents a certificate, so every peer "
            "gets the ACL's '*' entry (add --ssl with --ssl-ca-file to tell clients apart)"
        )


def _queue_url(queue: str, opts: dict[str, str]) -> str:
    """Turn gearmand's ``-q NAME --module-options`` into a store URL; URLs pass unchanged."""
    if "://" in queue:
        return queue
    # Not lower-cased here: an unknown type is echoed redacted, and a URL-like typo may hold a password.
    return gearmand_queue_url(queue, opts)


def main(argv: list[str] | None = None) -> None:
    try:
        args = expand_config_file(sys.argv[1:] if argv is None else argv)
        command.main(args=args, prog_name="gearpy-server", standalone_mode=False)
    except ConfigError as exc:
        click.echo(f"gearpy-server: {exc}", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        click.echo(f"gearpy-server: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"gearpy-server: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(1)


if __name__ == "__main__":
    main()
