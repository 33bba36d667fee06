"""Payload codecs shared by the client and the worker.

Gearman payloads are opaque bytes. A codec turns application objects into those bytes and back,
so a client and a worker that agree on a codec name exchange Python objects instead of bytes.

* ``raw`` — bytes in, bytes out; a ``str`` is encoded as UTF-8 (the default: what every other
  Gearman client and worker sends).
* ``json`` — UTF-8 JSON, compact separators.
* ``msgpack`` — msgpack with ``raw=False`` so strings come back as ``str``.

There is deliberately no pickle codec: a job payload comes from the network, and unpickling it would
let anyone who can submit a job run code in the worker.
"""

from __future__ import annotations

import json as _json
from typing import Any, Protocol, runtime_checkable

import msgpack as _msgpack

from gearpy.errors import ConfigError

__all__ = ["Codec", "RawCodec", "JsonCodec", "MsgpackCodec", "CODECS", "get_codec"]


@runtime_checkable
class Codec(Protocol):
    """Anything with ``encode(obj) -> bytes`` and ``decode(bytes) -> obj`` is a codec."""

    name: str

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class RawCodec:
    """Bytes pass through unchanged; ``str`` is encoded UTF-8 (other types are a TypeError)."""

    name = "raw"

    def encode(self, obj: Any) -> bytes:
        if obj is None:
            return b""
        if isinstance(obj, str):
            return obj.encode("utf-8")
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        raise TypeError(f"raw codec takes bytes or str, not {type(obj).__name__}")

    def decode(self, data: bytes) -> bytes:
        return bytes(data)


class JsonCodec:
    """Compact UTF-8 JSON; an empty payload decodes to ``None``."""

    name = "json"

    def encode(self, obj: Any) -> bytes:
        return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        if not data:
            return None
        return _json.loads(bytes(data).decode("utf-8"))


class MsgpackCodec:
    """msgpack with ``use_bin_type=True`` / ``raw=False`` (str stays str, bytes stay bytes)."""

    name = "msgpack"

    def encode(self, obj: Any) -> bytes:
        data: bytes = _msgpack.packb(obj, use_bin_type=True)
        return data

    def decode(self, data: bytes) -> Any:
        if not data:
            return None
        return _msgpack.unpackb(bytes(data), raw=False)


CODECS: dict[str, Codec] = {c.name: c for c in (RawCodec(), JsonCodec(), MsgpackCodec())}


def get_codec(name_or_obj: str | Codec | None = None) -> Codec:
    """Return a codec by name (``raw``, ``json``, ``msgpack``) or pass a codec object through.

    ``None`` means ``raw``. An unknown name is a :class:`~gearpy.errors.ConfigError` so a typo in a
    flag or config file is reported like any other bad setting.
    """
    if name_or_obj is None:
        return CODECS["raw"]
    if isinstance(name_or_obj, str):
        try:
            return CODECS[name_or_obj.strip().lower()]
        except KeyError:
            known = ", ".join(sorted(CODECS))
            raise ConfigError(f"unknown codec {name_or_obj!r} (known: {known})") from None
    if callable(getattr(name_or_obj, "encode", None)) and callable(getattr(name_or_obj, "decode", None)):
        return name_or_obj
    raise ConfigError(f"not a codec: {name_or_obj!r}")
