"""Logging set-up for gearpy's command-line programs (libraries only use ``getLogger``).

Text or JSON lines; gearmand's level names (FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE,
INFO, DEBUG) are accepted next to Python's, so ``--verbose INFO`` means the same to both servers.
A log file can be reopened (SIGHUP) after logrotate moved it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time

from gearpy.errors import ConfigError
from gearpy.safefiles import open_nofollow

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

LEVELS = {
    "FATAL": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "NOTICE": NOTICE,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}


def parse_level(name: str) -> int:
    level = LEVELS.get(str(name).strip().upper())
    if level is None:
        raise ConfigError(f"unknown log level {name!r} (one of {', '.join(LEVELS)})")
    return level


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception text)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_file_handler: logging.FileHandler | None = None


class NoFollowFileHandler(logging.FileHandler):
    """A log file appended to, but never through a symlink (O_NOFOLLOW); created mode 0640.

    A server running as root must not append to whatever file a local user linked the log path to.
    """

    def _open(self) -> io.TextIOWrapper:
        fd = open_nofollow(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def configure(level: str = "INFO", fmt: str = "text", log_file: str | None = None) -> None:
    """Configure the root ``gearpy`` logger for a CLI. ``log_file`` None/'stderr' → stderr."""
    global _file_handler
    lvl = parse_level(level)
    if fmt not in ("text", "json"):
        raise ConfigError(f"unknown log format {fmt!r} (text or json)")
    root = logging.getLogger("gearpy")
    for h in list(root.handlers):
        root.removeHandler(h)
    _file_handler = None
    handler: logging.Handler
    if log_file in (None, "", "stderr", "-"):
        handler = logging.StreamHandler(sys.stderr)
    elif log_file == "none":
        handler = logging.NullHandler()
    else:
        try:
            handler = _file_handler = NoFollowFileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot open log file {log_file}: {exc.strerror or exc}") from exc
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(lvl)
    root.propagate = False


def reopen() -> None:
    """Reopen the log file (SIGHUP), so a rotated file is released."""
    handler = _file_handler
    if handler is not None:
        handler.acquire()
        try:
            handler.close()
            handler.stream = handler._open()
        finally:
            handler.release()
