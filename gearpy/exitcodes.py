"""The exit codes of gearpy-server, gearpy-worker and gearpy-client: one meaning per number.

Scripts and service managers (systemd's ``RestartPreventExitStatus``, supervisord's ``exitcodes``)
act on these numbers, so a number never means one thing for one command and another for the next.
:data:`TABLE` is the single source of the table shown in every command's ``--help`` and in
docs/guide.md (a test compares them).
"""

from __future__ import annotations

from typing import Final

#: Success: the job completed, the command did what it was asked, or a signal stopped the program
#: cleanly (every running job finished).
OK: Final = 0
#: Failure at run time: the job failed, raised, timed out, is unknown, or the server refused the
#: request (client); the server cannot start (port taken, queue store unreachable); an unexpected
#: internal error (the log has the details).
FAILURE: Final = 1
#: Usage or configuration error: a bad option, value, config file or environment variable.
USAGE: Final = 2
#: No server could be reached (the client; admin commands still print what the others answered).
UNREACHABLE: Final = 3
#: The worker recycled itself (``--max-jobs``/``--max-memory``, single process): start it again.
RECYCLED: Final = 4
#: Hard stop: a second signal, or running jobs outlived ``--shutdown-timeout`` (the server requeues
#: them).
HARD_STOP: Final = 5
#: The worker cannot import its task modules or a ``--hook``, found no task, or ``--function`` names
#: an unknown one.
NO_TASKS: Final = 6
#: Interrupted by Ctrl-C (SIGINT), 128 + 2 as shells report it. A worker still finishes its
#: running jobs first (a second Ctrl-C is a hard stop, exit 5).
INTERRUPTED: Final = 130

#: (code, commands that use it, meaning) for help texts and the guide.
TABLE: Final[tuple[tuple[int, str, str], ...]] = (
    (OK, "all", "success, or a clean stop (SIGTERM)"),
    (FAILURE, "all", "failure: job failed or unknown, request refused, cannot start, internal error"),
    (USAGE, "all", "usage or configuration error"),
    (UNREACHABLE, "client", "cannot connect to a server"),
    (RECYCLED, "worker", "recycled: --max-jobs or --max-memory reached"),
    (HARD_STOP, "worker", "hard stop: second signal, or jobs outlived --shutdown-timeout"),
    (NO_TASKS, "worker", "cannot import the task modules or a --hook, or no task to serve"),
    (INTERRUPTED, "all", "interrupted by Ctrl-C (SIGINT)"),
)


def help_table(command: str) -> str:
    """The exit-code lines that concern ``command`` ("server", "worker" or "client"), for --help."""
    rows = [f"  {code:<3}  {text}" for code, who, text in TABLE if who in ("all", command)]
    return "\n".join(rows)
