"""One mapping from errors to exit codes and one-line messages, for every gearpy command.

A command raises (or returns an exit code); :func:`run_main` prints ``PROG: message`` on stderr,
never a traceback, and exits with the code :mod:`gearpy.exitcodes` documents for that kind of
error. Ctrl-C is exit 130 everywhere.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from gearpy import exitcodes
from gearpy.errors import ConfigError, GearpyConnectionError, GearpyError, PacketTooBig, RefusedByServer


def fail(prog: str, message: str, code: int) -> NoReturn:
    """Print ``prog: message`` on stderr and exit with ``code``."""
    click.echo(f"{prog}: {message}", err=True)
    sys.exit(code)


def exit_code_of(exc: BaseException) -> int:
    """The documented exit code for an error that reached the top of a command."""
    if isinstance(exc, (click.UsageError, ConfigError, PacketTooBig)):  # PacketTooBig: nothing was sent
        return exitcodes.USAGE
    if isinstance(exc, (click.Abort, KeyboardInterrupt)):
        return exitcodes.INTERRUPTED
    if isinstance(exc, RefusedByServer):  # the server said why it closed: a refusal, not a network failure
        return exitcodes.FAILURE
    if isinstance(exc, GearpyConnectionError):
        return exitcodes.UNREACHABLE
    return exitcodes.FAILURE


def message_of(exc: BaseException) -> str:
    """The one line a user sees for ``exc``."""
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, (click.Abort, KeyboardInterrupt)):
        return "interrupted"
    if isinstance(exc, GearpyError):
        return str(exc)
    return f"unexpected error: {type(exc).__name__}: {exc}"


def run_main(command: click.Command, prog: str, argv: Sequence[str] | None = None) -> NoReturn:
    """Run a click command and exit with the documented code for whatever happens.

    The command may return an int (its exit code) or None (success). Errors that gearpy raises on
    purpose are one line; anything else is reported as one line, exit 1, and its traceback goes to
    the program's log when it has one (server, worker), so a bug can still be diagnosed.
    """
    try:
        code = command.main(
            args=list(argv) if argv is not None else None, prog_name=prog, standalone_mode=False
        )
    except SystemExit:
        raise
    except BrokenPipeError:  # output piped into head(1): not an error of ours
        sys.exit(exitcodes.OK)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, click.Abort, KeyboardInterrupt, GearpyError) as exc:
        fail(prog, message_of(exc), exit_code_of(exc))
    except Exception as exc:  # last resort: one line here, the details in the log
        log = logging.getLogger("gearpy")
        if log.handlers:  # the server and the worker log (to a file or the journal); the client does not
            log.error("unexpected error in %s", prog, exc_info=True)
        fail(prog, message_of(exc), exitcodes.FAILURE)
    sys.exit(code if isinstance(code, int) else exitcodes.OK)
