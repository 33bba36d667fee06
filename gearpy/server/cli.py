"""``gearpy-server``: the command line of the job server, with gearmand's option names.

Every setting is also a ``GEARPY_<NAME>`` environment variable and a key of the config file's
``server:`` section (defaults < file < environment < flags). Every configuration error is found
before the server listens: the port, log level, queue URL (and its directory and driver), metrics
address, TLS files and ACLs. Exit codes are gearpy.exitcodes' (shown by ``--help``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from gearpy import _accel, exitcodes, logs
from gearpy.cli.errors import fail, run_main
from gearpy.cli.options import (
    CONTEXT_SETTINGS,
    PORT,
    config_option,
    echo_config,
    finish_help,
    log_format_option,
    log_level_option,
    print_config_option,
    version_option,
)
from gearpy.config import as_dict, check_port, load, redact_url
from gearpy.errors import ConfigError, StoreError
from gearpy.metrics import parse_listen
from gearpy.server import gearmand_compat as compat
from gearpy.server.acl import FunctionAcl
from gearpy.server.config import ServerConfig
from gearpy.server.http import Dashboard
from gearpy.server.process import run as serve
from gearpy.server.stores import gearmand_queue_url, open_store
from gearpy.server.stores.url import parse_url

PROG = "gearpy-server"
F = TypeVar("F", bound=Callable[..., Any])

#: gearmand's queue-module options, turned into a store URL so an operator can swap binaries.
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

#: gearmand options gearpy accepts and ignores (listed in --help), with why there is nothing to do.
IGNORED_GEARMAND_OPTIONS = {
    "-t/--threads": "one event loop serves every connection",
    "--coredump": "",
    "--hashtable-buckets": "",
    "--http-port": "",
    "-R/--round-robin": "round robin between functions is always on",
    "--keepalive": "SO_KEEPALIVE is always on",
}

#: Store URL scheme -> (driver module, extra that installs it).
STORE_DRIVERS = {
    "mysql": ("pymysql", "mysql"),
    "mariadb": ("pymysql", "mysql"),
    "postgresql": ("pg8000", "postgres"),
    "postgres": ("pg8000", "postgres"),
    "redis": ("redis", "redis"),
    "rediss": ("redis", "redis"),
}

EPILOG = "\b\nAccepted for gearmand compatibility and ignored:\n" + "\n".join(
    f"  {name:<20} {why}".rstrip() for name, why in IGNORED_GEARMAND_OPTIONS.items()
)


def _gearmand_queue_options(f: F) -> F:
    for name in reversed(GEARMAND_QUEUE_OPTIONS):
        f = click.option(f"--{name}", default=None, help="gearmand queue option, turned into -q's URL.")(f)
    return f


@click.command(epilog=EPILOG, context_settings=CONTEXT_SETTINGS)
@click.option("-L", "--listen", default=None, help="Address to listen on; '*' = every interface.")
@click.option("-p", "--port", default=None, type=PORT, help="TCP port.")
@click.option(
    "-q",
    "--queue",
    "--queue-type",
    "queue",
    default=None,
    metavar="URL",
    help="Queue store: memory://, sqlite:///path, mysql://, postgresql://, redis:// "
    "or a gearmand module name (builtin, libsqlite3, mysql, postgres, redis).",
)
@click.option("--queue-table", default=None, help="Table name or key prefix of a durable store.")
@click.option(
    "-j", "--job-retries", default=None, type=int, help="Drop a job after N requeues; 0 = unlimited."
)
@click.option(
    "-w", "--worker-wakeup", default=None, type=int, help="Sleeping workers woken per job; 0 = all."
)
@click.option("-R", "--round-robin", is_flag=True, default=None, help="Ignored: round robin is always on.")
@click.option(
    "--can-do-timeout-unit",
    default=None,
    type=click.Choice(["ms", "s"]),
    help="Unit of workers' CAN_DO_TIMEOUT values: ms (gearmand 1.1.19+) or s (older gearmand, PHP "
    "manual, Perl).",
)
@click.option("--job-handle-prefix", default=None, help="Job handle prefix (none = H:<hostname>).")
@click.option("--exceptions", is_flag=True, default=None, help="Enable exceptions for every connection.")
@click.option("--keepalive", is_flag=True, default=None, help="Ignored: TCP keepalive is always on.")
@click.option(
    "--keepalive-idle",
    default=None,
    type=int,
    help="TCP_KEEPIDLE seconds; a silent peer is dropped after idle + interval x count (-1 = system).",
)
@click.option("--keepalive-interval", default=None, type=int, help="TCP_KEEPINTVL seconds (-1 = system).")
@click.option("--keepalive-count", default=None, type=int, help="TCP_KEEPCNT probes (-1 = system).")
@click.option("-l", "--log-file", default=None, help="Log file, 'stderr' or 'none'.")
@log_level_option("--verbose", "verbose")
@log_format_option()
@click.option("-P", "--pid-file", default=None, help="Write the process id to this file.")
@click.option("--max-packet-size", default=None, type=int, help="Largest packet body accepted (bytes).")
@click.option(
    "--max-connections",
    default=None,
    type=int,
    help="Most connections at once, TLS handshakes included (+1 kept for a loopback admin).",
)
@click.option(
    "--idle-timeout",
    default=None,
    type=float,
    help="Close a connection silent this long that is neither worker nor waiting client; 0 = never.",
)
@click.option(
    "--max-output-buffer", default=None, type=int, help="Unsent bytes per connection before it is dropped."
)
@click.option(
    "--max-queued-bytes",
    default=None,
    type=int,
    help="Bytes all queued jobs may hold (payload, unique, name and ~320 per job); beyond it "
    "submits get QUEUE_ERROR.",
)
@click.option(
    "--max-jobs-per-connection",
    default=None,
    type=int,
    help="Unfinished jobs one connection may have created; beyond it QUEUE_ERROR; 0 = no limit.",
)
@click.option(
    "--max-function-name",
    default=None,
    type=int,
    help="Longest function name in bytes; longer ones get ARGUMENT_TOO_LARGE.",
)
@click.option(
    "--max-idle-functions",
    default=None,
    type=int,
    help="Functions without worker or job kept for 'status'; the longest unused beyond go.",
)
@click.option(
    "--max-pending-commits",
    default=None,
    type=int,
    help="Background submits per connection waiting for the store before reading pauses.",
)
@click.option("-b", "--backlog", default=None, type=int, help="listen() backlog.")
@click.option(
    "--metrics", default=None, metavar="HOST:PORT", help="Serve Prometheus /metrics and /healthz here."
)
@click.option("--metrics-max-connections", default=None, type=int, help="Metrics requests served at once.")
@click.option("--metrics-timeout", default=None, type=float, help="Seconds for one metrics request.")
@click.option(
    "--metrics-max-functions",
    default=None,
    type=int,
    help="Functions with their own /metrics series; the rest are summed as '__other__'.",
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
@click.option("--http-max-connections", default=None, type=int, help="HTTP connections at once.")
@click.option("--http-request-timeout", default=None, type=float, help="Seconds to send an HTTP request.")
@click.option("--ssl", is_flag=True, default=None, help="TLS on the Gearman port.")
@click.option("--ssl-certificate", default=None, metavar="FILE", help="Server certificate (PEM).")
@click.option("--ssl-key", default=None, metavar="FILE", help="Server private key (PEM).")
@click.option(
    "--ssl-ca-file", default=None, metavar="FILE", help="CA bundle; clients must then show a certificate."
)
@click.option("--handshake-timeout", default=None, type=float, help="Seconds for a TLS handshake.")
@click.option("--packet-timeout", default=None, type=float, help="Seconds a half-received packet may wait.")
@click.option(
    "--admin-allow",
    default=None,
    multiple=True,
    help="Who may cancel jobs, drop functions, set maxqueue: IP, network or cert:SUBJECT (repeatable; "
    "none = anyone).",
)
@click.option(
    "--acl-file", default=None, metavar="FILE", help="Per-function permissions by client certificate."
)
@config_option("server: section")
@print_config_option()
@_gearmand_queue_options
@click.option("-t", "--threads", default=None, type=int, help="Ignored (gearmand compatibility).")
@click.option("-d", "--daemon", is_flag=True, help="Fork into the background once listening (gearmand -d).")
@click.option("-u", "--user", default=None, help="Switch to this user after binding (gearmand -u).")
@click.option("-f", "--file-descriptors", default=None, type=int, help="Set the open-files limit.")
@click.option("--syslog", is_flag=True, help="Also log to the system log.")
@click.option(
    "--config-file", "config_file_gearmand", default=None, metavar="FILE", help="gearmand-style options file."
)
@click.option("--coredump", is_flag=True, help="Ignored (gearmand compatibility).")
@click.option("--hashtable-buckets", default=None, type=int, help="Ignored (gearmand compatibility).")
@click.option("--http-port", default=None, help="Ignored (gearmand compatibility).")
@click.option("-r", "--protocol", default=None, help="gearmand's protocol plugin: refused (not supported).")
@version_option(PROG, f"hot path: {_accel.mode()}")
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
) -> int:
    """Gearman job server: a drop-in replacement for gearmand."""
    queue_opts = {k: flags.pop(k.replace("-", "_")) for k in GEARMAND_QUEUE_OPTIONS}
    if protocol:
        raise ConfigError(f"--protocol {protocol}: gearmand's HTTP protocol plugin is not supported")
    cfg = load(ServerConfig, "server", config_file=config_file, flags=flags)
    check_configuration(cfg, {k.replace("-", "_"): v for k, v in queue_opts.items() if v})
    if print_config:
        shown = as_dict(cfg)
        shown["queue"] = redact_url(shown["queue"])
        echo_config("server", shown)
        return exitcodes.OK
    check_queue(cfg.queue)  # the machine, not the settings: after --print-config
    check_pid_file(cfg.pid_file)
    if file_descriptors:
        compat.set_file_descriptors(file_descriptors)
    logs.configure(cfg.verbose, cfg.log_format, cfg.log_file)
    if cfg.acl_file:
        check_acl(cfg)
    if cfg.http:
        Dashboard(cfg)  # refuses a non-loopback address without credentials, a bad auth file
    if syslog:
        compat.add_syslog()
    try:
        store = open_store(cfg.queue, table=cfg.queue_table)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    ready = compat.daemonize() if daemon else None
    after_bind = (lambda: compat.drop_privileges(user)) if user else None
    return serve(cfg, store, logs.reopen, ready=ready, after_bind=after_bind)


def check_configuration(cfg: ServerConfig, queue_opts: dict[str, str]) -> None:
    """Check the settings themselves (ConfigError, exit 2); :func:`check_queue` then checks the machine."""
    check_port(cfg.port)
    logs.parse_level(cfg.verbose)
    cfg.queue = queue_url(cfg.queue, queue_opts)
    if cfg.metrics:
        parse_listen(cfg.metrics)


def queue_url(queue: str, opts: dict[str, str]) -> str:
    """Turn gearmand's ``-q NAME --module-options`` into a store URL; URLs pass unchanged."""
    if "://" in queue or queue.lower().startswith("sqlite:"):
        return queue
    # Not lower-cased here: an unknown type is echoed redacted, and a URL-like typo may hold a password.
    return gearmand_queue_url(queue, opts)


def check_acl(cfg: ServerConfig) -> None:
    """Read the ACL file now, so a bad one is a configuration error (exit 2) found before binding."""
    FunctionAcl.load(cfg.acl_file or "")
    if not cfg.ssl_ca_file:
        logging.getLogger("gearpy.server").warning(
            "--acl-file without --ssl-ca-file: no client presents a certificate, so every peer "
            "gets the ACL's '*' entry (add --ssl with --ssl-ca-file to tell clients apart)"
        )


def check_pid_file(path: str | None) -> None:
    """The pid file is written once the server listens: its directory must be writable before that."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise ConfigError(f"cannot write pid file {path}: directory {directory} is missing or not writable")


def check_queue(url: str) -> None:
    """A SQLite file's directory must exist; a database store's driver must be installed.

    Not checked by ``--print-config``, which may run where the service's directories do not exist.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("sqlite", "sqlite3"):
        rest = url.split(":", 1)[1]
        if rest.startswith("/") and not rest.startswith("//"):
            raise ConfigError(
                f"queue store {url}: write sqlite://{rest} for the file {rest.partition('?')[0]}, "
                f"or sqlite:{rest.lstrip('/')} for a path relative to the working directory"
            )
        path = parse_url(url).path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ConfigError(
                f"queue store {url}: directory {directory} does not exist (create it first; "
                "gearpy does not, so a typo cannot start an empty queue)"
            )
    driver = STORE_DRIVERS.get(scheme)
    if driver is not None:
        module, extra = driver
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"queue store {scheme}:// needs the {module} driver: pip install 'gearpy[{extra}]'"
            ) from None


finish_help(command, ServerConfig, "server")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: gearmand's --config-file first, then the command."""
    try:
        args = compat.expand_config_file(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        fail(PROG, str(exc), exitcodes.USAGE)
    run_main(command, PROG, args)


if __name__ == "__main__":
    main()
