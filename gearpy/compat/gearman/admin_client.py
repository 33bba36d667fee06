"""python-gearman's ``GearmanAdminClient``: the admin text protocol, blocking, one server.

Replies are parsed into python-gearman's shapes (tuples of dicts, str values). Differences: an
``ERR`` answer raises :class:`ProtocolError` naming the server's code and text (python-gearman
raised a parse error for some commands and returned the ERR line for others), and
``get_unique_jobs`` gives ``{"unique": "..."}`` rather than a one-element list.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from gearpy.compat.gearman.connection import to_bytes
from gearpy.compat.gearman.connection_manager import GearmanCommandHandler, GearmanConnectionManager
from gearpy.compat.gearman.errors import (
    ConnectionError,
    GearmanError,
    InvalidAdminClientState,
    ProtocolError,
    ServerUnavailable,
)
from gearpy.protocol import PacketType

ECHO_STRING = "ping? pong!"
DEFAULT_ADMIN_CLIENT_TIMEOUT = 10.0

_ECHO = "echo"


def _status_line(fields: list[str]) -> dict[str, Any]:
    return {"task": fields[0], "queued": int(fields[1]), "running": int(fields[2]), "workers": int(fields[3])}


def _job_line(fields: list[str]) -> dict[str, Any]:
    return {
        "handle": fields[0],
        "queued": int(fields[1]),
        "canceled": int(fields[2]),
        "enabled": int(fields[3]),
    }


def _worker_line(line: str) -> dict[str, Any]:
    tokens = line.split(" ")
    if len(tokens) < 4 or tokens[3] != ":":
        raise ProtocolError(f"Malformed worker response: {tokens!r}")
    return {
        "file_descriptor": tokens[0],
        "ip": tokens[1],
        "client_id": tokens[2],
        "tasks": tuple(t for t in tokens[4:] if t),
    }


def _tabbed(parse: Callable[[list[str]], dict[str, Any]], count: int) -> Callable[[str], dict[str, Any]]:
    def parse_line(line: str) -> dict[str, Any]:
        fields = line.split("\t")
        if len(fields) != count:
            raise ProtocolError(f"Received {len(fields)} tokens, expected {count} tokens: {fields!r}")
        try:
            return parse(fields)
        except ValueError as exc:
            raise ProtocolError(f"bad number in {line!r}") from exc

    return parse_line


#: command -> how to parse each line of its listing (None: a one-line answer)
_LISTINGS: dict[str, Callable[[str], dict[str, Any]] | None] = {
    "status": _tabbed(_status_line, 4),
    "workers": _worker_line,
    "show jobs": _tabbed(_job_line, 4),
    "show unique jobs": lambda line: {"unique": line},
    "version": None,
    "maxqueue": None,
    "shutdown": None,
    "getpid": None,
    "cancel job": None,
}


class GearmanAdminClientCommandHandler(GearmanCommandHandler):
    """Collects text replies (and ECHO_RES) in the order the commands were sent."""

    def __init__(self, connection_manager: GearmanConnectionManager) -> None:
        super().__init__(connection_manager)
        self._sent_commands: collections.deque[str] = collections.deque()
        self._recv_responses: collections.deque[tuple[str, Any]] = collections.deque()
        self._lines: list[dict[str, Any]] = []

    @property
    def response_ready(self) -> bool:
        return bool(self._recv_responses)

    def pop_response(self) -> tuple[str, Any]:
        if not self._recv_responses:
            raise InvalidAdminClientState("Attempted to pop a response for a command that is not ready")
        return self._recv_responses.popleft()

    def send_text_command(self, command_line: str) -> None:
        command = next((c for c in _LISTINGS if command_line == c or command_line.startswith(c + " ")), None)
        if command is None:
            raise ProtocolError(f"Attempted to send an unknown server command: {command_line!r}")
        connection = self.connection_manager.handler_to_connection_map[self]
        connection.send_text(command_line)
        self._sent_commands.append(command)

    def send_echo_request(self, echo_string: str) -> None:
        self.send_command(PacketType.ECHO_REQ, echo_string.encode("utf-8"))
        self._sent_commands.append(_ECHO)

    def _answer(self, value: Any) -> None:
        self._recv_responses.append((self._sent_commands.popleft(), value))
        self._lines = []

    def recv_echo_res(self, data: bytes) -> None:
        if not self._sent_commands or self._sent_commands[0] != _ECHO:
            raise ProtocolError("Received an unexpected ECHO_RES")
        self._answer(data.decode("utf-8", "replace"))

    def recv_text_command(self, raw_text: str) -> None:
        if not self._sent_commands or self._sent_commands[0] == _ECHO:
            raise ProtocolError(f"Received an unexpected server response: {raw_text!r}")
        command = self._sent_commands[0]
        parse = _LISTINGS[command]
        if not self._lines and (raw_text == "ERR" or raw_text.startswith("ERR ")):
            _, _, rest = raw_text.partition(" ")
            code, _, text = rest.partition(" ")
            self._answer(
                ProtocolError(f"{command}: server answered ERR {code} {text.replace('+', ' ')}".strip())
            )
        elif parse is None:
            self._answer(raw_text)
        elif raw_text == ".":
            self._answer(tuple(self._lines))
        else:
            self._lines.append(parse(raw_text))


class GearmanAdminClient(GearmanConnectionManager):
    """Admin commands for one server; every call blocks up to ``poll_timeout`` seconds."""

    command_handler_class: ClassVar[type[GearmanCommandHandler]] = GearmanAdminClientCommandHandler

    def __init__(
        self, host_list: Iterable[Any] | None = None, poll_timeout: float = DEFAULT_ADMIN_CLIENT_TIMEOUT
    ) -> None:
        super().__init__(host_list=host_list)
        self.poll_timeout = poll_timeout
        if len(self.connection_list) != 1:
            raise GearmanError(f"Only pass a single host to the constructor of {type(self).__name__}")
        self.current_connection = self.connection_list[0]
        self.current_handler: GearmanAdminClientCommandHandler | None = None

    def establish_admin_connection(self) -> GearmanAdminClientCommandHandler:
        try:
            self.establish_connection(self.current_connection)
        except ConnectionError as exc:
            raise ServerUnavailable(f"Found no valid connections in list: {self.connection_list!r}") from exc
        handler = self.connection_to_handler_map[self.current_connection]
        assert isinstance(handler, GearmanAdminClientCommandHandler)
        self.current_handler = handler
        return handler

    def _text(self, command_line: str) -> Any:
        self.establish_admin_connection().send_text_command(command_line)
        return self.wait_until_server_responds(command_line.split(" ")[0])

    def wait_until_server_responds(self, expected_type: str) -> Any:
        handler = self.current_handler
        assert handler is not None
        self.poll_connections_until_stopped(
            [self.current_connection], lambda _: not handler.response_ready, timeout=self.poll_timeout
        )
        if not handler.response_ready:
            # The answer may still arrive: drop the connection rather than misread it later.
            self.handle_error(self.current_connection)
            raise InvalidAdminClientState(f"Admin client timed out after {self.poll_timeout:f} second(s)")
        command, response = handler.pop_response()
        if command.split(" ")[0] != expected_type:
            raise InvalidAdminClientState(
                f"Received an unexpected response... got command {command!r}, "
                f"expecting command {expected_type!r}"
            )
        if isinstance(response, ProtocolError):
            raise response
        return response

    def ping_server(self) -> float:
        """ECHO round trip; returns the seconds it took."""
        start = time.monotonic()
        self.establish_admin_connection().send_echo_request(ECHO_STRING)
        response = self.wait_until_server_responds(_ECHO)
        if response != ECHO_STRING:
            raise InvalidAdminClientState(f"Echo string mismatch: got {response}, expected {ECHO_STRING}")
        return time.monotonic() - start

    def send_maxqueue(self, task: Any, max_size: int) -> str:
        response = self._text(f"maxqueue {to_bytes(task, 'task').decode('utf-8')} {int(max_size)}")
        if response != "OK":
            raise ProtocolError(f"Expected 'OK', received: {response}")
        return str(response)

    def send_shutdown(self, graceful: bool = True) -> None:
        self._text("shutdown graceful" if graceful else "shutdown")

    def get_status(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._text("status"))

    def get_version(self) -> str:
        return str(self._text("version"))

    def get_workers(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._text("workers"))

    def get_pid(self) -> str:
        return str(self._text("getpid"))

    def cancel_job(self, handle: Any) -> str:
        return str(self._text(f"cancel job {to_bytes(handle, 'handle').decode('utf-8')}"))

    def get_jobs(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._text("show jobs"))

    def get_unique_jobs(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._text("show unique jobs"))


__all__ = ["DEFAULT_ADMIN_CLIENT_TIMEOUT", "ECHO_STRING", "GearmanAdminClient"]
