"""gearmand's process options, so an operator can swap binaries without editing PARAMS.

``--config-file`` (options written as on the command line), ``-d/--daemon``, ``-u/--user``,
``-f/--file-descriptors`` and ``--syslog`` work as in gearmand; ``--coredump``,
``--hashtable-buckets`` and ``--http-port`` are accepted and have nothing to change here.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import pwd
import resource
import shlex
import sys
from collections.abc import Callable, Sequence

from gearpy.errors import ConfigError

#: gearmand's default config file; read when present, like gearmand does.
DEFAULT_GEARMAND_CONFIG = "/etc/gearmand.conf"


def expand_config_file(argv: Sequence[str]) -> list[str]:
    """Insert the options of ``--config-file PATH`` before the command line's own (which win)."""
    args = list(argv)
    path = None
    for i, a in enumerate(args):
        if a == "--config-file" and i + 1 < len(args):
            path = args[i + 1]
            del args[i : i + 2]
            break
        if a.startswith("--config-file="):
            path = a.split("=", 1)[1]
            del args[i]
            break
    if path is None:
        return args
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read --config-file {path}: {exc.strerror or exc}") from exc
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return shlex.split("\n".join(lines)) + args


def set_file_descriptors(n: int) -> None:
    """``-f N``: raise the open-files limit (RLIMIT_NOFILE) to N."""
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(n, hard)))
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--file-descriptors {n}: {exc}") from exc


def drop_privileges(user: str) -> None:
    """``-u USER``: switch to USER's uid/gid (after the listening socket is bound)."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"--user: no such user {user!r}") from None
    if os.getuid() == pw.pw_uid:
        return
    try:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except PermissionError:
        raise ConfigError(f"--user {user}: only root can switch users") from None


def add_syslog() -> None:
    """``--syslog``: also log to the system log (facility USER), as gearmand does."""
    address = "/dev/log" if os.path.exists("/dev/log") else ("localhost", 514)
    try:
        handler = logging.handlers.SysLogHandler(address=address)
    except OSError as exc:
        raise ConfigError(f"--syslog: {exc}") from exc
    handler.setFormatter(logging.Formatter("gearpy-server[%(process)d]: %(levelname)s %(message)s"))
    logging.getLogger("gearpy").addHandler(handler)


def daemonize() -> Callable[[str | None], None]:
    """``-d``: fork into the background; the parent exits once the child is serving (or failed).

    Returns the function the child calls with None when it is listening, or with an error text.
    The parent's exit status is 0 or 1 accordingly, so ``gearpy-server -d && next`` works.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as r:
            msg = r.read()
        if msg == b"ok":
            os._exit(0)
        sys.stderr.write(msg.decode("utf-8", "replace") or "gearpy-server: the daemon exited at start\n")
        os._exit(1)
    os.close(read_fd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)

    def ready(error: str | None) -> None:
        try:
            os.write(write_fd, b"ok" if error is None else error.encode())
            os.close(write_fd)
        except OSError:
            pass
        if error is None:
            # Detach from the caller's terminal or pipes now that start-up went well (a caller
            # reading our output would otherwise wait for it forever). Log to a file or syslog.
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)

    return ready
