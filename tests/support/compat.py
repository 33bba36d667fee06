"""Helpers for the python-gearman compatibility tests: threads that run workers, and the JSON
encoder Archivematica sets on every client and worker (archivematicaCommon/lib/gearman_encoder.py)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gearpy.compat import gearman


class ArchivematicaJSONEncoder(json.JSONEncoder):
    def default(self, obj: Any) -> Any:
        if isinstance(obj, datetime):
            return {"__type__": "datetime", "iso": obj.isoformat()}
        if isinstance(obj, uuid.UUID):
            return {"__type__": "UUID", "value": obj.hex}
        return super().default(obj)


def _hook(d: dict[str, Any]) -> Any:
    if d.get("__type__") == "datetime":
        return datetime.fromisoformat(d["iso"])
    if d.get("__type__") == "UUID":
        return uuid.UUID(hex=d["value"])
    return d


class JSONDataEncoder(gearman.DataEncoder):
    """Archivematica's encoder, as written there: ``encode`` returns a str (json.dumps)."""

    @classmethod
    def encode(cls, encodable_object: Any) -> str:
        if isinstance(encodable_object, bytes):
            encodable_object = encodable_object.decode("utf-8")
        return json.dumps(encodable_object, cls=ArchivematicaJSONEncoder, separators=(",", ":"))

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        return json.loads(decodable_string, object_hook=_hook)


class Runner:
    """A function on its own (daemon) thread; ``result``/``error`` once it returned."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def join(self, timeout: float) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"thread still running after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result
