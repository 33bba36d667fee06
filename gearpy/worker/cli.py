"""``gearpy-worker``: run the ``@task`` functions of some modules as a Gearman worker.

Examples::

    gearpy-worker myapp.jobs                       # every @task in myapp.jobs, 127.0.0.1:4730
    gearpy-worker -s gm1:4730 -s gm2 --key atom1 -c 4 myapp.jobs myapp.reports:build_report
    gearpy-worker --processes 4 --max-jobs 100 --config /etc/gearpy/gearpy.yml myapp.jobs

Every option is also a ``GEARPY_<NAME>`` environment variable and a key of the config file (top-level
``servers``/``workers_key``, the rest under ``worker:``), layered defaults < file < environment < flags.

Exit codes:

\b
  0  clean stop (signal; every running job finished)
  1  unexpected internal error (see the log)
  2  usage or configuration error
  3  cannot import the task modules or a --hook, no task found, or --function names an unknown task
  4  recycled: --max-jobs or --max-memory reached (single process; systemd restarts it)
  5  hard stop: second signal, or jobs outlived --shutdown-timeout (the server requeues them)

Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from gearpy import __version__

PROG = "gearpy-worker"
EXIT_ERROR, EXIT_USAGE, EXIT_IMPORT = 1, 2, 3


def _fail(message: str, code: int) -> None:
    click.echo(f"{PROG}: {message}", err=True)
    sys.exit(code)


EPILOG = """\b
Exit codes:
  0  clean stop (signal; every running job finished)
  1  unexpected internal error (see the log)
  2  usage or configuration error
  3  cannot import the task modules or a --hook, no task found, or --function names an unknown task
  4  recycled: --max-jobs or --max-memory reached (single process; systemd restarts it)
  5  hard stop: second signal, or jobs outlived --shutdown-timeout (the server requeues them)

\b
Every option is also a GEARPY_<NAME> environment variable (GEARPY_SERVERS=a:4730,b:4730,
GEARPY_WORKERS_KEY, GEARPY_CONCURRENCY, GEARPY_MODULES ...) and a config file key.
"""


@click.command(
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("modules", nargs=-1, metavar="MODULE[:ATTR]...")
@click.option(
    "-s",
    "--server",
    "servers",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Gearman server; repeat for several (default: config 'servers', else 127.0.0.1:4730).",
)
@click.option(
    "--config", "config_file", metavar="FILE", help="YAML config file (shared with server and client)."
)
@click.option(
    "--key", "workers_key", metavar="KEY", help="Workers key: namespace every function as KEY-name."
)
@click.option(
    "-f", "--function", "functions", multiple=True, metavar="NAME", help="Serve only this task (repeatable)."
)
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    metavar="MODULE:ATTR",
    help="Add a worker hook (gearpy.worker.Hook) to every process; repeatable.",
)
@click.option("-c", "--concurrency", type=int, help="Jobs run at once per process (greenlets). [1]")
@click.option("--processes", type=int, help="Fork N worker processes; a crashed or recycled one is replaced.")
@click.option(
    "--max-jobs", type=int, help="Recycle a process after N jobs (exit 4, or replaced by the parent)."
)
@click.option("--max-memory", type=float, metavar="MB", help="Recycle a process once its RSS exceeds MB MiB.")
@click.option(
    "--shutdown-timeout", type=float, metavar="S", help="Seconds a warm shutdown waits for running jobs. [30]"
)
@click.option(
    "--client-id", help="Client id shown by the server's 'workers' listing. [gearpy-worker:HOST:PID]"
)
@click.option(
    "--exceptions/--no-exceptions",
    "send_exceptions",
    default=None,
    help="Send WORK_EXCEPTION before WORK_FAIL when a task raises. [on]",
)
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    help="Serve Prometheus /metrics and /healthz here (opt-in); with --processes, process k uses PORT+k.",
)
@click.option("--ssl", is_flag=True, default=None, help="Connect with TLS (the server is verified).")
@click.option("--ssl-ca-file", metavar="FILE", help="CA that signed the servers' certificates.")
@click.option("--ssl-certificate", metavar="FILE", help="Client certificate (PEM).")
@click.option("--ssl-key", metavar="FILE", help="Client private key (PEM).")
@click.option(
    "--can-do-timeout-unit",
    type=click.Choice(["ms", "s"]),
    help="Unit the servers read task timeouts in (their --can-do-timeout-unit). [ms]",
)
@click.option(
    "--max-packet-size", type=int, metavar="BYTES", help="Largest result packet body sent. [64 MiB]"
)
@click.option("--log-level", help="DEBUG, INFO, NOTICE, WARNING, ERROR. [INFO]")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format. [text]")
@click.option("--print-config", is_flag=True, help="Print the effective configuration and exit.")
@click.version_option(__version__, "-V", "--version", prog_name=PROG, message="%(prog)s %(version)s")
def command(config_file: str | None, print_config: bool, **flags: Any) -> None:
    """Run the @task functions of MODULE[:ATTR]... as a Gearman worker.

    MODULE is an importable module (the current directory is on the path) or a .py file; :ATTR picks
    one task or a list of tasks from it.
    """
    from gearpy import logs
    from gearpy.errors import ConfigError
    from gearpy.worker.config import load_config

    try:
        cfg = load_config(config_file, **flags)
        if print_config:
            import yaml

            from gearpy.config import as_dict

            click.echo(yaml.safe_dump({"worker": as_dict(cfg)}, sort_keys=False), nl=False)
            return
        logs.configure(cfg.log_level, cfg.log_format)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    sys.exit(run(cfg))


def run(cfg: Any) -> int:
    """Import the tasks, then serve them in this process or under a prefork supervisor."""
    from gearpy.worker.loader import TaskImportError, load_hooks, load_tasks, select_tasks
    from gearpy.worker.runtime import Worker

    if not cfg.modules:
        _fail("no task module given (MODULE[:ATTR] arguments, GEARPY_MODULES or 'modules:')", EXIT_USAGE)
    try:
        tasks = select_tasks(load_tasks(cfg.modules), cfg.functions)
        hooks = load_hooks(cfg.hooks)
    except TaskImportError as exc:
        _fail(str(exc), EXIT_IMPORT)
    from gearpy.errors import ConfigError

    def make_worker(slot: int) -> Worker:
        worker = Worker.from_config(tasks, cfg)
        for make_hook in hooks:
            worker.add_hook(make_hook())
        if cfg.metrics:
            from gearpy.metrics import parse_listen
            from gearpy.worker.metrics import DEFAULT_WORKER_METRICS_PORT, WorkerMetrics

            host, port = parse_listen(cfg.metrics, DEFAULT_WORKER_METRICS_PORT)
            metrics = WorkerMetrics(worker)
            metrics.serve((host, port + slot))  # --processes: one port per process
            worker.add_hook(metrics)
        return worker

    if cfg.processes is None:
        try:
            worker = make_worker(0)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
        return worker.run()

    from gearpy.worker.prefork import Supervisor

    def child_main(parent_pid: int, slot: int) -> int:
        worker = make_worker(slot)
        worker.watch_parent(parent_pid)
        return worker.run()

    return Supervisor(cfg.processes, child_main).run()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: patch the process for gevent, then run the command."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    try:
        command.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except click.ClickException as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except click.Abort:
        sys.exit(EXIT_ERROR)
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - last resort: one line, the log has the details
        import logging

        logging.getLogger("gearpy.worker").exception("unexpected error")
        _fail(f"unexpected error: {type(exc).__name__}: {exc}", EXIT_ERROR)
