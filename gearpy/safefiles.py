"""Opening files where another local user may have planted a symbolic link.

A server often runs as root or as a service user and writes to paths in shared directories (a pid
file in /tmp, a log in a group-writable directory). Following a symlink planted there lets that
user make the server truncate or append to any file it can write. These helpers open the final
path component with ``O_NOFOLLOW`` and create new files with a restrictive mode, whatever the umask
allows beyond it.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["open_nofollow", "private_file", "readable_by_others", "symlink_error"]


def open_nofollow(path: str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that refuses a symlink as the last component, with a clear ``OSError`` if so.

    A file it creates gets ``mode`` (less the umask); an existing one keeps its mode.
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_error(path) from None
        raise


def symlink_error(path: str) -> OSError:
    """The error for a path that is a symbolic link where gearpy does not follow one."""
    return OSError(errno.ELOOP, "it is a symbolic link, which is not followed (name the file itself)", path)


def private_file(path: str, mode: int = 0o600) -> bool:
    """Create ``path`` empty with ``mode`` unless it exists; True if it was created.

    For files that will hold job payloads (a SQLite queue): created by us, they are readable by
    the server's user only; an existing file (or a symlink the operator made) is left as it is.
    """
    try:
        fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    os.fchmod(fd, mode)  # the umask may only remove bits; make sure none were added either
    os.close(fd)
    return True


def readable_by_others(path: str) -> bool:
    """True when ``path`` exists and its group or other users may read it."""
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False
