"""``gearpy-worker``: run the ``@task`` functions of some modules as a Gearman worker.

Examples::

    gearpy-worker myapp.jobs                       # every @task in myapp.jobs, 127.0.0.1:4730
    gearpy-worker -s gm1:4730 -s gm2 --key atom1 -c 4 myapp.jobs myapp.reports:build_report
    gearpy-worker --processes 4 --max-jobs 100 --config /etc/gearpy/gearpy.yml myapp.jobs

Every option is also a ``GEARPY_<NAME>`` environment variable and a key of the config file (top-level
``servers``/``workers_key``, the rest under ``worker:``), layered defaults < file < environment < flags.
Exit codes are gearpy.exitcodes' (shown by ``--help``); errors are one line on stderr.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from gevent import monkey

from gearpy import logs
from gearpy.cli.errors import fail, run_main
from gearpy.cli.options import (
    CONTEXT_SETTINGS,
    client_tls_options,
    config_option,
    echo_config,
    finish_help,
    log_format_option,
    log_level_option,
    print_config_option,
    servers_option,
    version_option,
)
from gearpy.config import as_dict
from gearpy.errors import ConfigError
from gearpy.metrics import parse_listen
from gearpy.worker.config import EXIT_IMPORT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, WorkerConfig, load_config
from gearpy.worker.loader import TaskImportError, load_hooks, load_tasks, select_tasks
from gearpy.worker.metrics import DEFAULT_WORKER_METRICS_PORT, WorkerMetrics
from gearpy.worker.prefork import Supervisor
from gearpy.worker.runtime import Worker

PROG = "gearpy-worker"


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("modules", nargs=-1, metavar="MODULE[:ATTR]...")
@servers_option()
@config_option("servers:, workers_key:, worker: section")
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
@click.option("-c", "--concurrency", type=int, help="Jobs run at once per process (greenlets).")
@click.option("--processes", type=int, help="Fork N worker processes; a crashed or recycled one is replaced.")
@click.option(
    "--max-jobs", type=int, help="Recycle a process after N jobs (exit 4, or replaced by the parent)."
)
@click.option("--max-memory", type=float, metavar="MB", help="Recycle a process once its RSS exceeds MB MiB.")
@click.option(
    "--shutdown-timeout", type=float, metavar="S", help="Seconds a warm shutdown waits for running jobs."
)
@click.option(
    "--client-id", help="Client id shown by the server's 'workers' listing (none = gearpy-worker:HOST:PID)."
)
@click.option(
    "--exceptions/--no-exceptions",
    "send_exceptions",
    default=None,
    help="Send WORK_EXCEPTION before WORK_FAIL when a task raises.",
)
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    help="Serve Prometheus /metrics and /healthz here; with --processes, process k uses PORT+k.",
)
@client_tls_options()
@click.option(
    "--can-do-timeout-unit",
    type=click.Choice(["ms", "s"]),
    help="Unit the servers read task timeouts in (their --can-do-timeout-unit).",
)
@click.option("--max-packet-size", type=int, metavar="BYTES", help="Largest result packet body sent.")
@log_level_option("--log-level", "log_level")
@log_format_option()
@print_config_option()
@version_option(PROG)
def command(config_file: str | None, print_config: bool, **flags: Any) -> int:
    """Run the @task functions of MODULE[:ATTR]... as a Gearman worker.

    MODULE is an importable module (the current directory is on the path) or a .py file; :ATTR picks
    one task or a list of tasks from it. Ctrl-C (or SIGTERM) stops taking jobs and lets the running
    ones finish; a second one stops at once.
    """
    cfg = load_config(config_file, **flags)
    if cfg.metrics:
        parse_listen(cfg.metrics, DEFAULT_WORKER_METRICS_PORT)
    if print_config:
        echo_config("worker", as_dict(cfg))
        return EXIT_OK
    logs.configure(cfg.log_level, cfg.log_format)
    return run(cfg)


finish_help(command, WorkerConfig, "worker")


def run(cfg: WorkerConfig) -> int:
    """Import the tasks, then serve them in this process or under a prefork supervisor."""
    if not cfg.modules:
        raise ConfigError("no task module given (MODULE[:ATTR] arguments, GEARPY_MODULES or 'modules:')")
    try:
        tasks = select_tasks(load_tasks(cfg.modules), cfg.functions)
        hooks = load_hooks(cfg.hooks)
    except TaskImportError as exc:
        fail(PROG, str(exc), EXIT_IMPORT)

    def make_worker(slot: int) -> Worker:
        worker = Worker.from_config(tasks, cfg)
        for make_hook in hooks:
            worker.add_hook(make_hook())
        if cfg.metrics:
            host, port = parse_listen(cfg.metrics, DEFAULT_WORKER_METRICS_PORT)
            metrics = WorkerMetrics(worker)
            metrics.serve((host, port + slot))  # --processes: one port per process
            worker.add_hook(metrics)
        return worker

    if cfg.processes is None:
        worker = make_worker(0)
        code = worker.run()
        if code == EXIT_OK and worker.stop_reason == f"signal {signal.SIGINT.name}":
            return EXIT_INTERRUPTED
        return code

    def child_main(parent_pid: int, slot: int) -> int:
        worker = make_worker(slot)
        worker.watch_parent(parent_pid)
        return worker.run()

    return Supervisor(cfg.processes, child_main).run()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: patch the process for gevent, then run the command."""
    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    run_main(command, PROG, argv)


__all__ = ["EXIT_USAGE", "command", "main", "run"]
