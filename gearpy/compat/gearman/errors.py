"""python-gearman's exceptions, rooted in gearpy's one exception tree.

The names and the hierarchy below :class:`GearmanError` are python-gearman's, so ``except
gearman.errors.ServerUnavailable`` keeps working; :class:`GearmanError` also derives from
:class:`gearpy.errors.GearpyError`, and the connection errors from
:class:`gearpy.errors.GearpyConnectionError`. ``ConnectionError`` shadows the builtin name on
purpose (python-gearman's spelling); unlike the builtin it is not an ``OSError``.
"""

from __future__ import annotations

from gearpy import errors as _gearpy


class GearmanError(_gearpy.GearpyError):
    """Root of every error of the python-gearman API."""


class ConnectionError(GearmanError, _gearpy.GearpyConnectionError):  # noqa: A001 - python-gearman's name
    """One connection could not be opened, or was lost."""


class ServerUnavailable(GearmanError, _gearpy.GearpyConnectionError):
    """No connection in the list is alive (``work()`` and the poll loops raise it)."""


class ProtocolError(GearmanError, _gearpy.ProtocolError):
    """Bad protocol data, an argument that cannot go on the wire, or an admin ``ERR`` answer."""


class UnknownCommandError(GearmanError):
    """A packet type the handler has no callback for."""


class ExceededConnectionAttempts(GearmanError):
    """A request was sent ``max_retries + 1`` times without being accepted."""


class InvalidClientState(GearmanError):
    """The client's bookkeeping and the server's replies disagree."""


class InvalidWorkerState(GearmanError):
    """The worker received a job it did not ask for (a server bug)."""


class InvalidAdminClientState(GearmanError):
    """An admin command got no (or an unexpected) answer in time."""


__all__ = [
    "ConnectionError",
    "ExceededConnectionAttempts",
    "GearmanError",
    "InvalidAdminClientState",
    "InvalidClientState",
    "InvalidWorkerState",
    "ProtocolError",
    "ServerUnavailable",
    "UnknownCommandError",
]
