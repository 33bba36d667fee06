"""The server's pid file (``-P``): never written through a symlink, never over a running server's.

The file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a symlink planted at the path makes
the start fail instead of truncating the link's target (a root-owned file, say). A file left by a
server that died is recognised (its pid is gone, or belongs to a process that is not a Gearman
server) and replaced; one whose process is a live gearpy-server or gearmand stops the start, as
two servers sharing one pid file would make ``kill $(cat ...)`` hit the wrong one. At exit the file
is removed only if it still holds our pid.
"""

from __future__ import annotations

import errno
import os
import stat

from gearpy.safefiles import open_nofollow, symlink_error

__all__ = ["remove_pid_file", "write_pid_file"]

#: Programs whose pid file we must not take over: argv[0] or argv[1] (a script run by an
#: interpreter), by base name, or the module of ``python -m``. Not any command line mentioning
#: gearpy: a gearpy-worker or an editor on gearpy.yml that got a dead server's pid must not block.
_SERVERS = (b"gearpy-server", b"gearmand")
_SERVER_MODULE = b"gearpy.server"


def _is_server_cmdline(cmdline: bytes) -> bool:
    argv = cmdline.split(b"\0")
    for i, arg in enumerate(argv[:2]):
        if os.path.basename(arg) in _SERVERS:
            return True
        if arg == b"-m" and i + 1 < len(argv) and argv[i + 1] == _SERVER_MODULE:
            return True
    return False


def _read_pid(path: str) -> int | None:
    try:
        fd = open_nofollow(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 64)
    finally:
        os.close(fd)
    try:
        return int(text.strip() or b"0") or None
    except ValueError:
        return None


def _is_running_server(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return True  # alive and we cannot tell what it is: do not take its file
    return _is_server_cmdline(cmdline)


def _clear_stale(path: str) -> None:
    """Remove a pid file left by a dead server; raise OSError if it must be kept."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise symlink_error(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EEXIST, "it exists and is not a regular file", path)
    pid = _read_pid(path)
    if pid is not None and _is_running_server(pid):
        raise OSError(errno.EEXIST, f"it belongs to running process {pid}; is another server using it?", path)
    os.unlink(path)


def write_pid_file(path: str) -> None:
    """Create ``path`` (mode 0644) holding this process's id; ``OSError`` says why it cannot."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = open_nofollow(path, flags, 0o644)
    except FileExistsError:
        _clear_stale(path)
        fd = open_nofollow(path, flags, 0o644)  # a racing writer makes this fail: fine
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")


def remove_pid_file(path: str) -> None:
    """Remove ``path`` if it is still our regular pid file (best effort, at exit)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode) and _read_pid(path) == os.getpid():
            os.unlink(path)
    except OSError:
        pass
