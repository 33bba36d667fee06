"""``gearpy-client``: submit jobs and query Gearman servers from the shell.

Exit codes:

\b
  0  done (the job completed, or the command succeeded)
  1  the job failed, raised an exception, timed out or its outcome is unknown;
     or the server refused the request (ERROR / ERR, also when it then closed the connection)
  2  usage error (bad option, bad config, a payload above max_packet_size)
  3  cannot connect to any server

Errors are one line on stderr (``gearpy-client: cannot connect to 127.0.0.1:4730: Connection
refused``), never a traceback. Output is a table for people, or JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import click

from gearpy.client.admin import Admin
from gearpy.client.client import Client
from gearpy.client.job import Job, JobEvent
from gearpy.errors import (
    ConfigError,
    GearpyConnectionError,
    GearpyError,
    JobError,
    PacketTooBig,
    RefusedByServer,
    ServerError,
)

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3
PROG = "gearpy-client"


class Ctx:
    def __init__(self, servers: Sequence[str], config: str | None, as_json: bool) -> None:
        self.servers = list(servers)
        self.config = config
        self.as_json = as_json
        #: EXIT_CONNECT once a multi-server admin command could not reach some server
        self.exit_code = EXIT_OK

    def client(self, **kw: Any) -> Client:
        return Client(self.servers or None, config_file=self.config, **kw)

    def admin_servers(self) -> list[str]:
        return self.client().servers


def _fail(message: str) -> None:
    click.echo(f"{PROG}: {message}", err=True)


def _out_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _shown(text: str) -> str:
    """A cell as a terminal may print it: control characters as ``\\xNN`` (names come from peers)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(map(str, headers))] + [[_shown(str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


@click.group(help=__doc__, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-s",
    "--server",
    "servers",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Server to use (repeatable). Default: config file, GEARPY_SERVERS, 127.0.0.1:4730.",
)
@click.option("--config", type=click.Path(dir_okay=False), help="YAML config file (servers:, client:).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def cli(ctx: click.Context, servers: tuple[str, ...], config: str | None, as_json: bool) -> None:
    ctx.obj = Ctx(servers, config, as_json)


@cli.command()
@click.argument("function")
@click.argument("data", required=False)
@click.option("--background", "-b", is_flag=True, help="Do not wait; print the job handle.")
@click.option("--priority", type=click.Choice(["normal", "high", "low"]), default="normal")
@click.option("--unique", "-u", help="Unique id (jobs with the same one coalesce).")
@click.option("--key", help="Workers key prefixed to the function name.")
@click.option("--when", type=float, help="Run at this epoch time (background jobs only).")
@click.option("--timeout", type=float, help="Seconds to wait for the result.")
@click.option("--codec", type=click.Choice(["raw", "json", "msgpack"]), help="Payload codec.")
@click.option("--batch", type=click.File("rb"), help="Submit one job per line of FILE ('-' = stdin).")
@click.pass_obj
def submit(
    obj: Ctx,
    function: str,
    data: str | None,
    background: bool,
    priority: str,
    unique: str | None,
    key: str | None,
    when: float | None,
    timeout: float | None,
    codec: str | None,
    batch: Any,
) -> int:
    """Submit FUNCTION with DATA ('-' reads stdin); print the result, or the handle with --background.

    WORK_DATA chunks are written to stdout as they arrive, warnings to stderr.
    """
    client = obj.client(key=key, codec=codec)
    cdc = client.codec

    def payload_of(raw: bytes) -> Any:
        # For json/msgpack the command-line text is JSON, so structured payloads can be given.
        return raw if cdc.name == "raw" else json.loads(raw.decode("utf-8"))

    opts: dict[str, Any] = {"background": background, "priority": priority, "when": when}
    if batch is not None:
        lines = [ln.rstrip(b"\r\n") for ln in batch]
        return _batch(obj, client, function, [payload_of(ln) for ln in lines], opts, timeout)
    if data == "-":
        raw = sys.stdin.buffer.read()
    else:
        raw = (data or "").encode("utf-8")
    out = click.get_binary_stream("stdout")

    def on_data(ev: JobEvent) -> None:
        if not obj.as_json:
            out.write(ev.data)
            out.flush()

    def on_warning(ev: JobEvent) -> None:
        click.echo(f"{PROG}: warning: {_text(ev.data)}", err=True)

    job = client.submit(
        function,
        payload_of(raw),
        unique=unique,
        timeout=timeout,
        on_data=on_data,
        on_warning=on_warning,
        **opts,
    )
    if background:
        click.echo(json.dumps({"handle": job.handle}) if obj.as_json else job.handle)
        return EXIT_OK
    try:
        result = job.result(timeout)
    finally:
        client.close()
    if obj.as_json:
        data_chunks = [_text(e.data) for e in job.events(0) if e.kind == "data"]
        _out_json({"handle": job.handle, "result": _text(result), "data": data_chunks})
    elif isinstance(result, (bytes, bytearray)):
        out.write(result if result.endswith(b"\n") or not result else result + b"\n")
        out.flush()
    else:
        click.echo(_text(result))
    return EXIT_OK


def _batch(
    obj: Ctx, client: Client, function: str, payloads: list[Any], opts: dict[str, Any], timeout: float | None
) -> int:
    jobs = client.submit_many([(function, p) for p in payloads], timeout=timeout, **opts)
    results: list[dict[str, Any]] = []
    failed = 0
    with click.progressbar(jobs, label="jobs", file=sys.stderr) as bar:
        for job in bar:
            results.append(_outcome(job, timeout))
            failed += results[-1]["state"] not in ("complete", "submitted")
    client.close()
    if obj.as_json:
        _out_json(results)
    else:
        for i, r in enumerate(results, 1):
            if r["state"] in ("complete", "submitted"):
                click.echo(r["handle"] if opts["background"] else r["result"])
            else:
                _fail(f"line {i}: {r['error']}")
    return EXIT_JOB_FAILED if failed else EXIT_OK


def _outcome(job: Job, timeout: float | None) -> dict[str, Any]:
    if job.background:
        err = job.exception(timeout)
        return {"handle": job.handle, "state": job.state.value, "error": str(err) if err else None}
    try:
        return {"handle": job.handle, "state": "complete", "result": _text(job.result(timeout))}
    except GearpyError as exc:
        return {"handle": job.handle, "state": job.state.value, "error": str(exc)}


def _each_admin(obj: Ctx, fn: Callable[[Admin], Any]) -> list[tuple[str, Any]]:
    """Ask every server; one that cannot be reached is reported on stderr and the others shown.

    The command then exits 3 (cannot connect) after printing what it got, or raises when no
    server answered at all.
    """
    out = []
    errors: list[GearpyConnectionError] = []
    ssl_context = obj.client().ssl_context
    servers = obj.admin_servers()
    for server in servers:
        try:
            with Admin(server, ssl_context=ssl_context) as admin:
                out.append((server, fn(admin)))
        except GearpyConnectionError as exc:
            errors.append(exc)
    if errors and len(errors) == len(servers):
        raise errors[0]
    for exc in errors:
        _fail(str(exc))
    obj.exit_code = EXIT_CONNECT if errors else EXIT_OK
    return out


@cli.command()
@click.pass_obj
def status(obj: Ctx) -> int:
    """Functions with queued/running jobs and workers (admin 'status')."""
    rows = [(s, f) for s, fs in _each_admin(obj, lambda a: a.status()) for f in fs]
    if obj.as_json:
        _out_json([dict(server=s, **asdict(f)) for s, f in rows])
    else:
        _table(
            ["SERVER", "FUNCTION", "TOTAL", "RUNNING", "WORKERS"],
            [(s, f.function, f.total, f.running, f.workers) for s, f in rows],
        )
    return obj.exit_code


@cli.command()
@click.pass_obj
def workers(obj: Ctx) -> int:
    """Connections and the functions they registered (admin 'workers')."""
    rows = [(s, w) for s, ws in _each_admin(obj, lambda a: a.workers()) for w in ws]
    if obj.as_json:
        _out_json([dict(server=s, **asdict(w)) for s, w in rows])
    else:
        _table(
            ["SERVER", "FD", "IP", "ID", "FUNCTIONS"],
            [(s, w.fd, w.ip, w.client_id, " ".join(w.functions)) for s, w in rows],
        )
    return obj.exit_code


@cli.command()
@click.pass_obj
def jobs(obj: Ctx) -> int:
    """Jobs in the servers' memory (admin 'show jobs')."""
    rows = [(s, j) for s, js in _each_admin(obj, lambda a: a.show_jobs()) for j in js]
    if obj.as_json:
        _out_json([dict(server=s, **asdict(j)) for s, j in rows])
    else:
        _table(
            ["SERVER", "HANDLE", "RETRIES", "IGNORED", "QUEUED"],
            [(s, j.handle, j.retries, int(j.ignored), int(j.queued)) for s, j in rows],
        )
    return obj.exit_code


@cli.command()
@click.argument("handle")
@click.pass_obj
def cancel(obj: Ctx, handle: str) -> int:
    """Cancel a job by HANDLE on whichever server knows it."""
    errors = []
    for server in obj.admin_servers():
        with Admin(server) as admin:
            try:
                admin.cancel_job(handle)
            except ServerError as exc:
                errors.append(f"{server}: {exc.code}")
                continue
        done = {"cancelled": handle, "server": server}
        click.echo(json.dumps(done) if obj.as_json else f"cancelled {handle}")
        return EXIT_OK
    _fail(f"cannot cancel {handle}: " + "; ".join(errors))
    return EXIT_JOB_FAILED


@cli.command("job-status")
@click.argument("handle")
@click.pass_obj
def job_status(obj: Ctx, handle: str) -> int:
    """Whether HANDLE is known and running, and its progress (GET_STATUS)."""
    with obj.client() as client:
        st = client.status(handle)
    if obj.as_json:
        _out_json(asdict(st))
    else:
        _table(
            ["HANDLE", "KNOWN", "RUNNING", "PROGRESS"],
            [(st.handle, int(st.known), int(st.running), f"{st.numerator}/{st.denominator}")],
        )
    return EXIT_OK


@cli.command()
@click.argument("function")
@click.argument("sizes", nargs=-1, type=int)
@click.pass_obj
def maxqueue(obj: Ctx, function: str, sizes: tuple[int, ...]) -> int:
    """Limit FUNCTION's queue: N for every priority, or HIGH NORMAL LOW; none = unlimited."""
    if len(sizes) not in (0, 1, 3):
        raise click.UsageError("give one size, or three (high normal low)")
    _each_admin(obj, lambda a: a.maxqueue(function, *sizes))
    click.echo(json.dumps({"function": function, "sizes": list(sizes)}) if obj.as_json else "OK")
    return EXIT_OK


@cli.command()
@click.pass_obj
def version(obj: Ctx) -> int:
    """Each server's version."""
    rows = _each_admin(obj, lambda a: a.version())
    if obj.as_json:
        _out_json([{"server": s, "version": v} for s, v in rows])
    else:
        _table(["SERVER", "VERSION"], rows)
    return obj.exit_code


@cli.command()
@click.pass_obj
def ping(obj: Ctx) -> int:
    """ECHO round trip to each server; prints the time taken."""
    with obj.client() as client:
        rows = [(s, client.ping(s)) for s in client.servers]
    if obj.as_json:
        _out_json([{"server": s, "seconds": t} for s, t in rows])
    else:
        for s, t in rows:
            click.echo(f"{s}: {t * 1000:.3f} ms")
    return EXIT_OK


@cli.command()
@click.option(
    "--interval", "-n", type=float, default=2.0, show_default=True, help="Seconds between refreshes."
)
@click.option("--once", is_flag=True, help="Print one view and exit (for scripts).")
@click.pass_obj
def top(obj: Ctx, interval: float, once: bool) -> int:
    """A refreshing table of functions (queued by priority, running, workers, rate) and workers."""
    import shutil

    from gearpy.client.top import render, take_snapshot

    servers = obj.admin_servers()
    previous = None
    while True:
        snap = take_snapshot(servers)
        if snap.errors and len(snap.errors) == len(servers):
            raise GearpyConnectionError(snap.errors[0].split(": ", 1)[1])
        if obj.as_json:
            workers = [
                dict(zip(("server", "fd", "ip", "id", "functions"), w, strict=True)) for w in snap.workers
            ]
            _out_json(
                {"functions": [asdict(r) for r in snap.functions], "workers": workers, "errors": snap.errors}
            )
        else:
            view = render(snap, previous, shutil.get_terminal_size().columns)
            if not once:
                click.echo("\x1b[H\x1b[2J", nl=False)  # home + clear, like watch(1)
            click.echo(view)
        if once:
            return EXIT_OK
        previous = snap
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the command and map gearpy errors to the documented exit codes."""
    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted")
        code = EXIT_JOB_FAILED
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (ConfigError, PacketTooBig, ValueError, TypeError) as exc:
        _fail(str(exc))
        code = EXIT_USAGE
    except RefusedByServer as exc:  # the server said why it closed: a refusal, not a network failure
        _fail(str(exc))
        code = EXIT_JOB_FAILED
    except GearpyConnectionError as exc:
        _fail(str(exc))
        code = EXIT_CONNECT
    except (JobError, GearpyError) as exc:
        _fail(str(exc))
        code = EXIT_JOB_FAILED
    except BrokenPipeError:
        code = EXIT_OK
    sys.exit(code if isinstance(code, int) else EXIT_OK)
