"""The poll loop every python-gearman object is built on, the data encoders, and the per-connection
command handler base class.

A manager owns a list of :class:`GearmanConnection`; while it polls, each connection's decoded
packets go to that connection's handler (one :class:`GearmanCommandHandler` per live connection,
created afresh at every connect) through ``recv_<packet name>`` methods. One manager is used by
one thread at a time, as in python-gearman; separate managers in separate threads share nothing.
"""

from __future__ import annotations

import json
import logging
import selectors
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from gearpy.compat.gearman.connection import GearmanConnection, parse_host, to_bytes
from gearpy.compat.gearman.errors import (
    ConnectionError,
    GearmanError,
    ProtocolError,
    ServerUnavailable,
    UnknownCommandError,
)
from gearpy.compat.gearman.job import GearmanJob
from gearpy.protocol import AdminCommand, Packet, PacketType

log = logging.getLogger("gearpy.compat.gearman")


class DataEncoder:
    """Turns ``data`` into bytes for the wire and back; subclass it and set ``data_encoder``."""

    @classmethod
    def encode(cls, encodable_object: Any) -> bytes | str:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class NoopEncoder(DataEncoder):
    """The default: data must already be bytes (or str, sent as UTF-8); received data stays bytes."""

    @classmethod
    def _enforce_byte_string(cls, given_object: Any) -> None:
        if not isinstance(given_object, (bytes, str)):
            raise TypeError(f"Expecting byte string, got {type(given_object)!r}")

    @classmethod
    def encode(cls, encodable_object: Any) -> bytes | str:
        cls._enforce_byte_string(encodable_object)
        return encodable_object  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        cls._enforce_byte_string(decodable_string)
        return decodable_string


class JSONDataEncoder(DataEncoder):
    """Compact JSON (UTF-8); bytes are sent as their UTF-8 text, as Archivematica's encoder does.
    Empty data decodes to None (an empty payload is not JSON)."""

    @classmethod
    def encode(cls, encodable_object: Any) -> bytes | str:
        if isinstance(encodable_object, bytes):
            encodable_object = encodable_object.decode("utf-8")
        return json.dumps(encodable_object, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        if not decodable_string:
            return None
        return json.loads(decodable_string)


def _handler_names() -> dict[int, str]:
    return {int(t): "recv_" + t.name.lower() for t in PacketType}


class GearmanCommandHandler:
    """The state of one live connection; packets arrive as ``recv_<name>(*args)`` calls."""

    _RECV: ClassVar[dict[int, str]] = _handler_names()

    def __init__(self, connection_manager: GearmanConnectionManager) -> None:
        self.connection_manager = connection_manager

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connection_manager={self.connection_manager!r})"

    def initial_state(self, **kwargs: Any) -> None:
        """Called once the connection is up, before anything is read."""

    def on_io_error(self) -> None:
        """The connection died."""

    def decode_data(self, data: bytes) -> Any:
        return self.connection_manager.data_encoder.decode(data)

    def encode_data(self, data: Any) -> bytes:
        return to_bytes(self.connection_manager.data_encoder.encode(data), "encoded data")

    def send_command(self, kind: int, *args: bytes) -> None:
        self.connection_manager.send_command(self, kind, *args)

    def fetch_commands(self) -> None:
        """Handle every event the connection has decoded (re-entrant: jobs may poll meanwhile)."""
        while True:
            event = self.connection_manager.read_command(self)
            if event is None:
                return
            if isinstance(event, AdminCommand):
                self.recv_text_command(event.line.decode("utf-8", "replace"))
            else:
                self.recv_command(event)

    def recv_command(self, packet: Packet) -> None:
        name = self._RECV[int(packet.kind)]
        callback: Callable[..., Any] | None = getattr(self, name, None)
        if callback is None:
            raise UnknownCommandError(f"Could not handle command: {packet.kind.name} - {packet.args!r}")
        callback(*packet.args)

    def recv_text_command(self, raw_text: str) -> None:
        raise UnknownCommandError(f"Could not handle a text line: {raw_text!r}")

    def recv_noop(self) -> None:
        """NOOPs are harmless wherever they arrive."""

    def recv_error(self, error_code: bytes, error_text: bytes) -> None:
        self.connection_manager.on_gearman_error(
            error_code.decode("utf-8", "replace"), error_text.decode("utf-8", "replace")
        )


class GearmanConnectionManager:
    """A group of connections polled together (python-gearman's base of client, worker, admin)."""

    command_handler_class: ClassVar[type[GearmanCommandHandler]] = GearmanCommandHandler
    connection_class: ClassVar[type[GearmanConnection]] = GearmanConnection
    job_class: ClassVar[type[GearmanJob]] = GearmanJob
    data_encoder: ClassVar[type[DataEncoder]] = NoopEncoder

    def __init__(self, host_list: Iterable[Any] | None = None) -> None:
        self.connection_list: list[GearmanConnection] = []
        for element in host_list or []:
            kwargs = parse_host(element)
            if len(kwargs) > 2:
                self.add_ssl_connection(**kwargs)
            else:
                self.add_connection((kwargs["host"], kwargs["port"]))
        self.handler_to_connection_map: dict[GearmanCommandHandler, GearmanConnection] = {}
        self.connection_to_handler_map: dict[GearmanConnection, GearmanCommandHandler] = {}
        self.handler_initial_state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} connection_list={self.connection_list!r}>"

    def shutdown(self) -> None:
        """Close every connection."""
        for connection in self.connection_list:
            connection.close()
        self.handler_to_connection_map.clear()
        self.connection_to_handler_map.clear()

    # ----- connections --------------------------------------------------------------------------
    def add_ssl_connection(
        self, host: str, port: int, keyfile: str | None, certfile: str | None, ca_certs: str | None
    ) -> GearmanConnection:
        connection = self.connection_class(
            host=host, port=port, keyfile=keyfile, certfile=certfile, ca_certs=ca_certs
        )
        self.connection_list.append(connection)
        return connection

    def add_connection(self, hostport_tuple: Any) -> GearmanConnection:
        kwargs = parse_host(hostport_tuple)
        connection = self.connection_class(**kwargs)
        self.connection_list.append(connection)
        return connection

    def establish_connection(self, current_connection: GearmanConnection) -> GearmanConnection:
        """Connect (if needed) and give the connection a fresh handler; may raise ConnectionError."""
        if current_connection not in self.connection_list:
            raise GearmanError(f"Unknown connection - {current_connection!r}")
        if current_connection.connected and current_connection in self.connection_to_handler_map:
            return current_connection
        current_connection.connect()
        handler = self.command_handler_class(connection_manager=self)
        self.handler_to_connection_map[handler] = current_connection
        self.connection_to_handler_map[current_connection] = handler
        handler.initial_state(**self.handler_initial_state)
        return current_connection

    # ----- polling ------------------------------------------------------------------------------
    def poll_connections_once(
        self, connections: Iterable[GearmanConnection], timeout: float | None = None
    ) -> tuple[set[GearmanConnection], set[GearmanConnection], set[GearmanConnection]]:
        """Wait up to ``timeout`` seconds (None: forever) for readable or writable connections."""
        readable: set[GearmanConnection] = set()
        writable: set[GearmanConnection] = set()
        errors: set[GearmanConnection] = set()
        live = [c for c in connections if c.connected and c.gearman_socket is not None]
        buffered = {c for c in live if c.has_buffered_input()}
        selector = selectors.DefaultSelector()
        try:
            for conn in live:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.writable() else 0)
                try:
                    selector.register(conn.gearman_socket, events, conn)  # type: ignore[arg-type]
                except (ValueError, OSError):
                    errors.add(conn)
            wait = 0.0 if buffered or errors else timeout
            for key, mask in selector.select(wait):
                conn = key.data
                if mask & selectors.EVENT_READ:
                    readable.add(conn)
                if mask & selectors.EVENT_WRITE:
                    writable.add(conn)
        finally:
            selector.close()
        return readable | buffered, writable, errors

    def handle_connection_activity(
        self,
        rd_connections: set[GearmanConnection],
        wr_connections: set[GearmanConnection],
        ex_connections: set[GearmanConnection],
    ) -> tuple[set[GearmanConnection], set[GearmanConnection], set[GearmanConnection]]:
        """Write, then read and dispatch; return (read, written, failed) connections."""
        dead: set[GearmanConnection] = set(ex_connections)
        for conn in wr_connections:
            try:
                self.handle_write(conn)
            except ConnectionError as exc:
                log.info("%s", exc)
                dead.add(conn)
        for conn in rd_connections - dead:
            try:
                self.handle_read(conn)
            except ConnectionError as exc:
                log.info("%s", exc)
                dead.add(conn)
        for conn in dead:
            self.handle_error(conn)
        return rd_connections, wr_connections, dead

    def poll_connections_until_stopped(
        self,
        submitted_connections: Iterable[GearmanConnection],
        callback_fxn: Callable[[bool], bool],
        timeout: float | None = None,
    ) -> bool:
        """Poll until ``callback_fxn(any_activity)`` returns False or ``timeout`` seconds pass.

        The callback runs once before the first poll and after every poll. Raises
        :class:`ServerUnavailable` when none of the connections is (still) connected. Returns True
        when the timeout ended the loop, False when the callback did.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        connections = set(submitted_connections)
        callback_ok = callback_fxn(False)
        connection_ok = any(c.connected for c in connections)
        while connection_ok and callback_ok:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0.0:
                break
            rd, wr, ex = self.poll_connections_once(connections, timeout=left)
            rd, wr, dead = self.handle_connection_activity(rd, wr, ex)
            connections -= dead
            callback_ok = callback_fxn(bool(rd or wr or dead))
            connection_ok = any(c.connected for c in connections)
        if not connection_ok:
            raise ServerUnavailable(f"Found no valid connections in list: {self.connection_list!r}")
        return bool(connection_ok and callback_ok)

    def wait_until_updates_sent(
        self, connections: Iterable[GearmanConnection], poll_timeout: float | None = None
    ) -> None:
        """Write pending output of ``connections`` (nothing is read meanwhile, so a job's handler is
        never re-entered); a connection that fails is handled as lost."""
        deadline = None if poll_timeout is None else time.monotonic() + poll_timeout
        pending = {c for c in connections if c.writable()}
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            selector = selectors.DefaultSelector()
            try:
                for conn in pending:
                    selector.register(conn.gearman_socket, selectors.EVENT_WRITE, conn)  # type: ignore[arg-type]
                ready = [key.data for key, _ in selector.select(left)]
            finally:
                selector.close()
            for conn in ready:
                try:
                    conn.send_data_to_socket()
                except ConnectionError as exc:
                    log.info("%s", exc)
                    self.handle_error(conn)
            pending = {c for c in pending if c.writable()}

    def handle_read(self, current_connection: GearmanConnection) -> None:
        handler = self.connection_to_handler_map.get(current_connection)
        if handler is None:
            current_connection.throw_exception(message="connection has no handler")
            return
        current_connection.read_data_from_socket()
        try:
            handler.fetch_commands()
        except ProtocolError as exc:
            # Replies that do not fit what we asked for: the stream cannot be trusted any more.
            current_connection.throw_exception(message=f"protocol error: {exc}")

    def handle_write(self, current_connection: GearmanConnection) -> None:
        current_connection.send_data_to_socket()

    def handle_error(self, current_connection: GearmanConnection) -> None:
        """A connection died: tell its handler, forget it, close the socket."""
        handler = self.connection_to_handler_map.pop(current_connection, None)
        if handler is not None:
            self.handler_to_connection_map.pop(handler, None)
            handler.on_io_error()
        current_connection.close()

    # ----- handler callbacks --------------------------------------------------------------------
    def read_command(self, command_handler: GearmanCommandHandler) -> Any:
        connection = self.handler_to_connection_map.get(command_handler)
        return None if connection is None else connection.read_command()

    def send_command(self, command_handler: GearmanCommandHandler, kind: int, *args: bytes) -> None:
        connection = self.handler_to_connection_map.get(command_handler)
        if connection is None:
            raise ConnectionError(f"{command_handler!r} has no live connection")
        connection.send_command(kind, *args)

    def on_gearman_error(self, error_code: str, error_text: str) -> bool:
        log.error("Received error from server: %s: %s", error_code, error_text)
        return False
