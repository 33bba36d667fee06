"""The one exception hierarchy of gearpy.

Every error gearpy raises on purpose derives from :class:`GearpyError`, so callers can catch
everything of ours in one place while still telling the branches apart.
"""

from __future__ import annotations


class GearpyError(Exception):
    """Root of every error gearpy raises on purpose."""


class ConfigError(GearpyError):
    """A configuration value (flag, environment variable, YAML key) is invalid."""


class ProtocolError(GearpyError):
    """Something is wrong with Gearman protocol data."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not valid Gearman protocol.

    The connection cannot continue; the server closes it (or answers with an ERROR packet
    first where gearmand does).
    """


class LocalProtocolError(ProtocolError):
    """Our own code tried to build a packet that the protocol does not allow (API misuse)."""


class GearpyConnectionError(GearpyError):
    """A server could not be reached, or a connection to it was lost."""


class GearpyTimeoutError(GearpyError, TimeoutError):
    """An operation did not finish within its timeout."""


class StoreError(GearpyError):
    """A durable queue store failed (unreachable, write failed, bad URL)."""


class JobError(GearpyError):
    """A job ended without a result."""

    def __init__(self, message: str, handle: str | None = None) -> None:
        super().__init__(message)
        self.handle = handle


class JobFailed(JobError):
    """The worker answered WORK_FAIL (or the server dropped the job)."""


class JobException(JobError):
    """The worker answered WORK_EXCEPTION; ``payload`` holds what it sent."""

    def __init__(self, message: str, handle: str | None = None, payload: bytes = b"") -> None:
        super().__init__(message, handle)
        self.payload = payload


class JobOutcomeUnknown(JobError):
    """The connection to the server was lost while a foreground job ran.

    The job may or may not have run; gearpy never re-submits it silently.
    """


class OutcomeUnknownTimeout(JobOutcomeUnknown, GearpyTimeoutError):
    """A submit timed out before the server's answer: the job may have been created, and may run.

    The submit reached the server or not; nobody can tell from the client (a network partition or
    a server that stopped answering). gearpy does not resubmit it; the connection is closed so the
    next submit reconnects or fails over. Also a :class:`GearpyTimeoutError`.
    """


class ServerError(GearpyError):
    """The server answered with an ERROR packet."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class PacketTooBig(LocalProtocolError, ValueError):
    """A request or result is larger than our ``max_packet_size``; nothing of it was sent.

    A ValueError too: like any bad argument, it is the caller's to fix (``gearpy-client`` exits 2).
    """


class RefusedByServer(GearpyConnectionError, ServerError):
    """The server answered ERROR and closed the connection while we were still sending.

    Both a lost connection (what happened to the socket, so failover and cleanup treat it like one)
    and a :class:`ServerError` (why: ``code`` is e.g. ``ARGUMENT_TOO_LARGE``).
    """

    def __init__(self, address: str, code: str, text: str) -> None:
        ServerError.__init__(self, code, text)
        self.args = (f"{address} refused the request and closed the connection: {code}: {text}",)
