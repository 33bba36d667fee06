"""``gearpy-client``: submit jobs and query Gearman servers from the shell.

The global options (servers, config file, TLS, --json) may come before or after the subcommand:
``gearpy-client -s gm1 status`` and ``gearpy-client status -s gm1`` are the same. Errors are one
line on stderr (``gearpy-client: cannot connect to 127.0.0.1:4730: Connection refused``), never a
traceback; exit codes are gearpy.exitcodes'. Output is a table for people, or JSON with --json.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, NoReturn, TypeVar

import click

from gearpy import defaults, exitcodes
from gearpy.cli.errors import run_main
from gearpy.cli.options import (
    CONTEXT_SETTINGS,
    client_tls_options,
    config_option,
    echo_config,
    finish_help,
    print_config_option,
    servers_option,
    show,
    version_option,
)
from gearpy.client.admin import Admin
from gearpy.client.client import Client
from gearpy.client.config import ClientConfig, load_config
from gearpy.client.job import Job, JobEvent
from gearpy.client.top import render, take_snapshot
from gearpy.config import as_dict
from gearpy.errors import ConfigError, GearpyConnectionError, GearpyError, GearpyTimeoutError, ServerError

PROG = "gearpy-client"
F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a global option's value on the root context, whether given before or after the command."""
    if value is None or value == () or value is False:
        return
    given = ctx.find_root().meta.setdefault("gearpy.client", {})
    if param.name == "servers":
        given["servers"] = [*given.get("servers", []), *value]
    else:
        given[param.name] = value


def global_options(f: F) -> F:
    """The options every subcommand accepts too (they are stored, not passed as arguments)."""
    kw: dict[str, Any] = {"expose_value": False, "callback": _remember}
    f = print_config_option()(f) if getattr(f, "__name__", "") == "cli" else f
    f = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.", **kw)(f)
    f = client_tls_options(**kw)(f)
    f = config_option("servers:, workers_key:, client: section", **kw)(f)
    f = servers_option(**kw)(f)
    return f


class Ctx:
    """What the subcommands share: the configuration and how to reach the servers."""

    def __init__(self, ctx: click.Context) -> None:
        given: dict[str, Any] = ctx.find_root().meta.get("gearpy.client", {})
        self.as_json = bool(given.get("as_json"))
        self.config_file: str | None = given.get("config_file")
        self.flags = {k: v for k, v in given.items() if k not in ("as_json", "config_file")}
        #: UNREACHABLE once a multi-server admin command could not reach some server
        self.exit_code = exitcodes.OK

    def config(self, **overrides: Any) -> ClientConfig:
        return load_config(self.config_file, **self.flags, **overrides)

    def client(self, **overrides: Any) -> Client:
        return Client(config=self.config(**overrides), codec=overrides.get("codec"))

    def admin(self, server: str) -> Admin:
        """An admin connection to ``server``, with TLS when the configuration says so."""
        return Admin(server, ssl_context=self._ssl_context())

    def _ssl_context(self) -> Any:
        if "_ssl" not in self.__dict__:
            self._ssl = self.client().ssl_context
        return self._ssl

    def servers(self) -> list[str]:
        return self.client().servers


pass_ctx = click.make_pass_decorator(Ctx)


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


def _line(chunk: bytes) -> bytes:
    """One chunk of output on a line of its own (a newline is added unless it ends with one)."""
    return chunk if chunk.endswith(b"\n") else chunk + b"\n"


@click.group(context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@global_options
@version_option(PROG)
@click.pass_context
def cli(ctx: click.Context, print_config: bool) -> None:
    """Submit jobs to Gearman servers and query them.

    The options below may also follow the command (gearpy-client status -s gm1:4730 --json).
    """
    if print_config:
        echo_config("client", as_dict(Ctx(ctx).config()))
        ctx.exit(exitcodes.OK)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(exitcodes.USAGE)
    ctx.obj = Ctx(ctx)


def command(name: str | None = None) -> Callable[[F], click.Command]:
    """A subcommand that also takes the global options, and gets a :class:`Ctx` built after them."""

    def decorate(f: F) -> click.Command:
        @click.pass_context
        def run(ctx: click.Context, /, **kwargs: Any) -> Any:
            return f(Ctx(ctx), **kwargs)

        run.__doc__ = f.__doc__
        params = getattr(f, "__click_params__", [])
        run.__click_params__ = params  # type: ignore[attr-defined]
        return cli.command(name or f.__name__.replace("_", "-"))(global_options(run))

    return decorate


@command()
@click.argument("function")
@click.argument("data", required=False)
@click.option("--background", "-b", is_flag=True, help="Do not wait; print the job handle.  [default: off]")
@click.option(
    "--priority",
    type=click.Choice(["normal", "high", "low"]),
    default="normal",
    help="Job priority.  [default: normal]",
)
@click.option("--unique", "-u", help="Unique id (jobs with the same one coalesce).  [default: none]")
@click.option("--key", help="Workers key prefixed to the function name.  [default: config's workers_key]")
@click.option("--when", type=float, help="Run at this epoch time (background jobs only).  [default: now]")
@click.option("--timeout", type=float, help="Seconds to wait for the result.  [default: config's timeout]")
@click.option(
    "--codec",
    type=click.Choice(["raw", "json", "msgpack"]),
    help="Payload codec; with json/msgpack DATA is JSON text.  [default: raw]",
)
@click.option(
    "--batch", type=click.File("rb"), help="Submit one job per line of FILE ('-' = stdin).  [default: none]"
)
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

    Each WORK_DATA chunk is printed on a line of its own as it arrives, then the result on the last
    line; warnings go to stderr. With --timeout, a job still queued or running when it expires is
    reported with its handle (exit 1); it stays on the server.
    """
    if when is not None and (not background or priority != "normal"):
        raise click.UsageError("--when needs --background and normal priority (SUBMIT_JOB_EPOCH)")
    client = obj.client(workers_key=key, codec=codec)
    cdc = client.codec

    def payload_of(raw: bytes) -> Any:
        # For json/msgpack the command-line text is JSON, so structured payloads can be given.
        if cdc.name == "raw":
            return raw
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise ConfigError(f"payload is not valid JSON: {exc}") from None

    opts: dict[str, Any] = {"background": background, "priority": priority, "when": when}
    if batch is not None:
        lines = [ln.rstrip(b"\r\n") for ln in batch]
        return _batch(obj, client, function, [payload_of(ln) for ln in lines], opts, timeout)
    if data == "-":
        raw = sys.stdin.buffer.read()
    else:
        raw = (data or "").encode("utf-8")
    payload = payload_of(raw)
    out = sys.stdout.buffer

    def on_data(ev: JobEvent) -> None:
        if not obj.as_json:
            out.write(_line(ev.data))
            out.flush()

    def on_warning(ev: JobEvent) -> None:
        click.echo(f"{PROG}: warning: {_text(ev.data)}", err=True)

    job = client.submit(
        function, payload, unique=unique, timeout=timeout, on_data=on_data, on_warning=on_warning, **opts
    )
    if background:
        click.echo(json.dumps({"handle": job.handle}) if obj.as_json else job.handle)
        return exitcodes.OK
    try:
        result = job.result(timeout)
    except GearpyTimeoutError:
        return _still_pending(obj, job, timeout)
    finally:
        client.close()
    if obj.as_json:
        data_chunks = [_text(e.data) for e in job.events(0) if e.kind == "data"]
        _out_json({"handle": job.handle, "result": _text(result), "data": data_chunks})
    elif isinstance(result, (bytes, bytearray)):
        out.write(_line(bytes(result)) if result else b"\n")
        out.flush()
    else:
        click.echo(_text(result))
    return exitcodes.OK


def _still_pending(obj: Ctx, job: Job, timeout: float | None) -> int:
    """--timeout expired: say where the job is (queued or running), its handle, and who can run it."""
    running = False
    try:
        running = job.status().running
    except GearpyError:
        pass
    workers: int | None = None
    function = job.wire_function.decode("utf-8", "replace")
    try:
        with obj.admin(job.server or obj.servers()[0]) as admin:
            workers = next((f.workers for f in admin.status() if f.function == function), 0)
    except GearpyError:
        pass
    state = "running" if running else "queued"
    if obj.as_json:
        _out_json({"handle": job.handle, "state": state, "workers": workers})
    else:
        click.echo(job.handle)
    can = (
        "could not ask the server which workers can do it"
        if workers is None
        else f"no worker can do {function!r}"
        if workers == 0
        else f"{workers} worker(s) can do {function!r}"
    )
    _fail(f"job {job.handle} still {state} on {job.server} after {show(timeout)} s ({can})")
    return exitcodes.FAILURE


def _batch(
    obj: Ctx, client: Client, function: str, payloads: list[Any], opts: dict[str, Any], timeout: float | None
) -> int:
    jobs = client.submit_many([(function, p) for p in payloads], timeout=timeout, **opts)
    results: list[dict[str, Any]] = []
    failed = 0
    with click.progressbar(jobs, label="jobs", file=sys.stderr) as bar:
        for job in bar:
            results.append(_outcome(job, timeout))
            failed += results[-1]["error"] is not None
    client.close()
    if obj.as_json:
        _out_json(results)
    else:
        for i, r in enumerate(results, 1):
            if r["error"] is None:
                click.echo(r["handle"] if opts["background"] else r["result"])
            else:
                _fail(f"line {i}: {r['error']}")
    return exitcodes.FAILURE if failed else exitcodes.OK


def _outcome(job: Job, timeout: float | None) -> dict[str, Any]:
    if job.background:
        err = job.exception(timeout)
        return {"handle": job.handle, "state": job.state.value, "error": str(err) if err else None}
    try:
        result = _text(job.result(timeout))
        return {"handle": job.handle, "state": job.state.value, "result": result, "error": None}
    except GearpyError as exc:
        return {"handle": job.handle, "state": job.state.value, "error": str(exc)}


def _each_admin(obj: Ctx, fn: Callable[[Admin], Any]) -> list[tuple[str, Any]]:
    """Ask every server; one that cannot be reached is reported on stderr and the others shown.

    The command then exits 3 (cannot connect) after printing what it got, or raises when no
    server answered at all.
    """
    out = []
    errors: list[GearpyConnectionError] = []
    servers = obj.servers()
    for server in servers:
        try:
            with obj.admin(server) as admin:
                out.append((server, fn(admin)))
        except GearpyConnectionError as exc:
            errors.append(exc)
    if errors and len(errors) == len(servers):
        raise errors[0]
    for error in errors:
        _fail(str(error))
    obj.exit_code = exitcodes.UNREACHABLE if errors else exitcodes.OK
    return out


@command()
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


@command()
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


@command()
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


@command()
@click.argument("handle")
def cancel(obj: Ctx, handle: str) -> int:
    """Cancel a job by HANDLE on whichever server knows it (servers that cannot be reached are skipped)."""
    errors = []
    unreachable = 0
    servers = obj.servers()
    for server in servers:
        try:
            with obj.admin(server) as admin:
                admin.cancel_job(handle)
        except ServerError as exc:
            errors.append(f"{server}: {exc.code}")
            continue
        except GearpyConnectionError as exc:
            errors.append(str(exc))
            unreachable += 1
            continue
        done = {"cancelled": handle, "server": server}
        click.echo(json.dumps(done) if obj.as_json else f"cancelled {handle}")
        return exitcodes.OK
    _fail(f"cannot cancel {handle}: " + "; ".join(errors))
    return exitcodes.UNREACHABLE if unreachable == len(servers) else exitcodes.FAILURE


@command("job-status")
@click.argument("handle")
def job_status(obj: Ctx, handle: str) -> int:
    """Whether HANDLE is known and running, and its progress (GET_STATUS); exit 1 if unknown."""
    with obj.client() as client:
        st = client.status(handle)
    if obj.as_json:
        _out_json(asdict(st))
    elif st.known:
        _table(
            ["HANDLE", "STATE", "PROGRESS"],
            [(st.handle, "running" if st.running else "queued", f"{st.numerator}/{st.denominator}")],
        )
    if not st.known:
        _fail(f"job {handle} is unknown to {', '.join(obj.servers())} (finished, cancelled or never created)")
        return exitcodes.FAILURE
    return exitcodes.OK


@command()
@click.argument("function")
@click.argument("sizes", nargs=-1, type=int)
def maxqueue(obj: Ctx, function: str, sizes: tuple[int, ...]) -> int:
    """Limit FUNCTION's queue: N for every priority, or HIGH NORMAL LOW; none = unlimited."""
    if len(sizes) not in (0, 1, 3):
        raise click.UsageError("give one size, or three (high normal low)")
    _each_admin(obj, lambda a: a.maxqueue(function, *sizes))
    click.echo(json.dumps({"function": function, "sizes": list(sizes)}) if obj.as_json else "OK")
    return exitcodes.OK


@command()
def version(obj: Ctx) -> int:
    """Each server's version."""
    rows = _each_admin(obj, lambda a: a.version())
    if obj.as_json:
        _out_json([{"server": s, "version": v} for s, v in rows])
    else:
        _table(["SERVER", "VERSION"], rows)
    return obj.exit_code


@command()
def ping(obj: Ctx) -> int:
    """ECHO round trip to each server; prints the time taken."""
    with obj.client() as client:
        rows = [(s, client.ping(s)) for s in client.servers]
    if obj.as_json:
        _out_json([{"server": s, "seconds": t} for s, t in rows])
    else:
        for s, t in rows:
            click.echo(f"{s}: {t * 1000:.3f} ms")
    return exitcodes.OK


#: The line under top's view.
TOP_HINT = "press q to quit"


@command()
@click.option(
    "--interval",
    "-n",
    type=float,
    default=defaults.TOP_INTERVAL,
    help="Seconds between refreshes.  [default: 2]",
)
@click.option("--once", is_flag=True, help="Print one view and exit (for scripts).  [default: off]")
def top(obj: Ctx, interval: float, once: bool) -> int:
    """A refreshing table of functions (queued by priority, running, workers, rate) and workers; q quits."""
    servers = obj.servers()
    previous = None
    with _keys() as read_key:
        while True:
            snap = take_snapshot(servers, obj.admin)
            if snap.errors and len(snap.errors) == len(servers):
                raise GearpyConnectionError(snap.errors[0].split(": ", 1)[1])
            if obj.as_json:
                workers = [
                    dict(zip(("server", "fd", "ip", "id", "functions"), w, strict=True)) for w in snap.workers
                ]
                functions = [asdict(r) for r in snap.functions]
                _out_json({"functions": functions, "workers": workers, "errors": snap.errors})
            else:
                view = render(snap, previous, shutil.get_terminal_size().columns)
                if not once:
                    click.echo("\x1b[H\x1b[2J", nl=False)  # home + clear, like watch(1)
                    view += "\n\n" + TOP_HINT
                click.echo(view)
            if once:
                return exitcodes.OK
            previous = snap
            if read_key(interval) == "q":
                return exitcodes.OK


@contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """``read_key(timeout)``: one key from stdin (no Enter needed on a terminal), or None."""
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    saved = None
    if fd >= 0 and os.isatty(fd):
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
    open_input = fd >= 0

    def read_key(timeout: float) -> str | None:
        nonlocal open_input
        if not open_input:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(fd, 1)
        if not data:  # end of input: refresh until interrupted
            open_input = False
        return data.decode("latin-1").lower() or None

    try:
        yield read_key
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


for _cmd in [cli, *cli.commands.values()]:
    finish_help(_cmd, ClientConfig, "client")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point: run the command and map gearpy errors to the documented exit codes."""
    run_main(cli, PROG, argv)
