"""The administrative text protocol (``status``, ``workers``, ``show jobs``, ``cancel job`` ...).

One line out, one reply back on the same port as the binary protocol. Listings end with a line
holding a single ``.``; the other commands answer one line, ``OK [value]`` or ``ERR CODE text``
(gearmand encodes spaces in the text as ``+``; we decode them). ``ERR`` raises
:class:`~gearpy.errors.ServerError`. Replies are parsed into small frozen dataclasses.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from gearpy.config import parse_server_address
from gearpy.errors import GearpyConnectionError, ServerError
from gearpy.transport import DEFAULT_PORT, connect_tcp, map_socket_errors

#: Refuse replies above this size rather than buffer a misbehaving peer forever.
MAX_REPLY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FunctionStatus:
    """One ``status`` line: jobs in the queue (incl. running), running jobs, registered workers."""

    function: str
    total: int
    running: int
    workers: int


@dataclass(frozen=True, slots=True)
class PriorityStatus:
    """One ``prioritystatus`` line: queued (not running) jobs per priority."""

    function: str
    high: int
    normal: int
    low: int
    workers: int


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One ``workers`` line: a connection (client, worker or admin) and its registered functions."""

    fd: int
    ip: str
    client_id: str
    functions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One ``show jobs`` line."""

    handle: str
    retries: int
    ignored: bool
    queued: bool


def _num(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


class Admin:
    """A connection to one server's admin protocol. Use as a context manager or :meth:`close`."""

    def __init__(
        self,
        server: str = "127.0.0.1:4730",
        *,
        timeout: float | None = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = parse_server_address(server, DEFAULT_PORT)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = None
        self._buf = b""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # ----- raw exchange -------------------------------------------------------------------------
    def _send(self, line: str) -> None:
        if "\n" in line or "\r" in line:
            raise ValueError("an admin command is one line")
        if self._sock is None:
            self._sock = connect_tcp((self.host, self.port), self.timeout, self.ssl_context)
            self._sock.settimeout(self.timeout)
            self._buf = b""
        with map_socket_errors(f"connection to {self.address} lost", close=self.close):
            self._sock.sendall(line.encode("utf-8") + b"\n")

    def _line(self) -> str:
        assert self._sock is not None
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_REPLY:
                self.close()
                raise GearpyConnectionError(f"{self.address} sent an overlong admin reply")
            with map_socket_errors(
                f"connection to {self.address} lost",
                timeout=f"no admin reply from {self.address} in time",
                close=self.close,  # a late reply would answer the next command: start afresh
            ):
                data = self._sock.recv(65536)
            if not data:
                self.close()
                raise GearpyConnectionError(f"connection to {self.address} closed by the server")
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def listing(self, command: str) -> list[str]:
        """Send a listing command; return its lines without the final ``.``."""
        self._send(command)
        lines: list[str] = []
        while True:
            line = self._line()
            if line == ".":
                return lines
            if not lines and line.startswith("ERR "):
                raise _error(line)
            lines.append(line)

    def command(self, command: str) -> str:
        """Send a one-line command; return the text after ``OK`` (raise ServerError on ``ERR``)."""
        self._send(command)
        line = self._line()
        if line == "OK" or line.startswith("OK "):
            return line[3:]
        if line.startswith("ERR"):
            raise _error(line)
        return line

    # ----- commands -----------------------------------------------------------------------------
    def status(self) -> list[FunctionStatus]:
        out = []
        for line in self.listing("status"):
            p = _counted(line, 3)
            if p is not None:
                out.append(FunctionStatus(p[0], int(p[1]), int(p[2]), int(p[3])))
        return out

    def prioritystatus(self) -> list[PriorityStatus]:
        out = []
        for line in self.listing("prioritystatus"):
            p = _counted(line, 4)
            if p is not None:
                out.append(PriorityStatus(p[0], int(p[1]), int(p[2]), int(p[3]), int(p[4])))
        return out

    def workers(self) -> list[WorkerInfo]:
        out = []
        for line in self.listing("workers"):
            head, _, funcs = line.partition(" :")
            parts = head.split(" ", 2)
            while len(parts) < 3:
                parts.append("")
            out.append(WorkerInfo(_num(parts[0]), parts[1], parts[2], tuple(funcs.split())))
        return out

    def show_jobs(self) -> list[JobInfo]:
        out = []
        for line in self.listing("show jobs"):
            p = line.split("\t")
            if len(p) >= 4:
                out.append(JobInfo(p[0], _num(p[1]), p[2] == "1", p[3] == "1"))
        return out

    def show_unique_jobs(self) -> list[str]:
        return self.listing("show unique jobs")

    def cancel_job(self, handle: str) -> None:
        """Cancel a job by handle; an unknown handle raises ServerError ``UNKNOWN_JOB``."""
        self.command(f"cancel job {handle}")

    def maxqueue(self, function: str, *sizes: int) -> None:
        """Limit a function's queue: no size = unlimited, one for all priorities, or high normal low."""
        if len(sizes) not in (0, 1, 3):
            raise ValueError("maxqueue takes no size, one size, or three (high normal low)")
        self.command(" ".join(["maxqueue", function, *(str(int(n)) for n in sizes)]))

    def version(self) -> str:
        return self.command("version")

    def getpid(self) -> int:
        return int(self.command("getpid"))


def _counted(line: str, counts: int) -> list[str] | None:
    """``NAME\\tN\\t...``: the name (which gearmand prints raw, tabs and all) and ``counts`` numbers.

    A row whose counts are not numbers is not a row (it is the tail of a name gearmand printed with
    a newline in it) and is skipped. gearpy-server escapes such names, so this only matters for
    gearmand.
    """
    parts = line.rsplit("\t", counts)
    if len(parts) != counts + 1 or not all(p.isdigit() for p in parts[1:]):
        return None
    return parts


def _error(line: str) -> ServerError:
    _, _, rest = line.partition(" ")
    code, _, text = rest.partition(" ")
    return ServerError(code or "ERR", text.replace("+", " "))
