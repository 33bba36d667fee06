"""The job context a task receives as its first argument.

It carries what the server sent with the job (handle, function, unique, raw payload) and sends the
in-flight updates Gearman defines — WORK_STATUS, WORK_DATA, WORK_WARNING — on the connection the job
came from (the server accepts WORK_* only from the connection the job is assigned to).

Updates are best effort: if the connection is gone, the server has already requeued the job, so the
update is logged and dropped instead of breaking the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gearpy.codecs import Codec, get_codec
from gearpy.errors import GearpyConnectionError
from gearpy.protocol import PacketType

__all__ = ["JobContext"]

log = logging.getLogger("gearpy.worker.job")

Sender = Callable[..., None]


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class JobContext:
    """One assigned job, as seen by the task function.

    * ``handle`` – the server's job handle (``H:host:42``);
    * ``function`` – the task name, without the workers key; ``wire_function`` – the name on the wire;
    * ``unique`` – the client's unique id (``str``; undecodable bytes kept via surrogateescape);
    * ``payload`` – the raw workload bytes (the task also gets it decoded);
    * ``server`` – ``host:port`` of the server that assigned the job;
    * ``attempt`` – 0 for the first run, 1.. for local retries.
    """

    __slots__ = (
        "handle",
        "function",
        "wire_function",
        "unique",
        "payload",
        "server",
        "attempt",
        "_send",
        "_codec",
    )

    def __init__(
        self,
        *,
        handle: bytes,
        function: str,
        wire_function: bytes,
        unique: bytes,
        payload: bytes,
        server: str = "",
        send: Sender | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.handle = _text(handle)
        self.function = function
        self.wire_function = wire_function
        self.unique = _text(unique)
        self.payload = payload
        self.server = server
        self.attempt = 0
        self._send = send
        self._codec = codec or get_codec()

    def __repr__(self) -> str:
        return f"<JobContext {self.handle} {self.function} unique={self.unique!r} attempt={self.attempt}>"

    def progress(self, numerator: int, denominator: int) -> None:
        """Report progress (WORK_STATUS): clients see ``numerator/denominator``, e.g. ``3/10``."""
        self._emit(PacketType.WORK_STATUS, str(int(numerator)).encode(), str(int(denominator)).encode())

    def data(self, chunk: Any) -> None:
        """Send a partial result (WORK_DATA), encoded with the task's codec."""
        self._emit(PacketType.WORK_DATA, self._codec.encode(chunk))

    def warning(self, message: Any) -> None:
        """Send a warning (WORK_WARNING); ``str`` is sent as UTF-8, bytes unchanged.

        Warnings are text for people, so they are not passed through the task's codec.
        """
        if isinstance(message, str):
            body = message.encode("utf-8")
        elif isinstance(message, (bytes, bytearray, memoryview)):
            body = bytes(message)
        else:
            body = str(message).encode("utf-8")
        self._emit(PacketType.WORK_WARNING, body)

    def _emit(self, kind: PacketType, *args: bytes) -> None:
        if self._send is None:  # a context built by hand (unit tests): nothing to send to
            return
        try:
            self._send(kind, self.handle.encode("utf-8", "surrogateescape"), *args)
        except GearpyConnectionError as exc:
            log.warning(
                "job %s: %s not delivered (%s); the server requeues the job", self.handle, kind.name, exc
            )
