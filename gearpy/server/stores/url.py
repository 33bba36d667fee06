"""Parsing of queue-store URLs and their options.

One parser for every backend, so ``?table=``, ``?prefix=`` and the tuning options mean the same
thing whatever the database, and so an invalid value fails at start with a :class:`ConfigError`
rather than as an SQL error at the first submit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from gearpy.config import redact_url
from gearpy.errors import ConfigError

#: Table names are spliced into SQL (they cannot be bound parameters), so only plain identifiers
#: are accepted: this is what keeps a hostile ``?table=`` from becoming SQL injection.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

#: Options every durable store understands, with their type. Backend-specific ones are listed by
#: each backend (``EXTRA_OPTIONS``) and merged in :func:`parse_options`.
COMMON_OPTIONS: dict[str, type] = {
    "table": str,
    "prefix": str,
    "max_batch": int,
    "max_batch_bytes": int,
    "commit_delay": float,
    "reconnect_min": float,
    "reconnect_max": float,
    "connect_timeout": float,
    "commit_timeout": float,
    "close_timeout": float,
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class StoreURL:
    """The parts of a store URL; ``password`` is kept out of ``repr`` so it never reaches a log."""

    scheme: str
    host: str | None
    port: int | None
    user: str | None
    password: str | None = field(repr=False)
    path: str  # database name (SQL), db number (Redis) or file path (SQLite)
    params: dict[str, str]
    raw: str = field(repr=False)

    @property
    def redacted(self) -> str:
        """The URL with its password hidden, for logs and error messages."""
        return redact_url(self.raw)


def parse_url(url: str) -> StoreURL:
    """Split a store URL; SQLite paths follow the config example ``sqlite:///var/lib/q.db``.

    ``sqlite:///abs/path`` and ``sqlite:////abs/path`` both name ``/abs/path``;
    ``sqlite://rel/path.db`` and ``sqlite:rel/path.db`` name a path relative to the working directory.
    """
    if "://" not in url and not url.lower().startswith("sqlite:"):
        raise ConfigError(f"queue store URL {redact_url(url)!r} has no scheme (expected e.g. sqlite:///path)")
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        rest = url.split(":", 1)[1]
        rest, _, query = rest.partition("?")
        if rest.startswith("//"):
            rest = rest[2:]
            if rest.startswith("//"):  # sqlite:////abs (SQLAlchemy spelling)
                rest = rest[1:]
        path = unquote(rest)
        if not path:
            raise ConfigError("sqlite queue URL needs a file path, e.g. sqlite:///var/lib/gearpy/queue.db")
        return StoreURL(scheme, None, None, None, None, path, dict(parse_qsl(query)), url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": an unbalanced [ or ]
        raise ConfigError(f"queue store URL {redact_url(url)!r} is malformed: {exc}") from None
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"invalid port in queue store URL {redact_url(url)!r}") from None
    return StoreURL(
        scheme=scheme,
        host=parts.hostname or None,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        path=unquote(parts.path.lstrip("/")),
        params=dict(parse_qsl(parts.query, keep_blank_values=True)),
        raw=url,
    )


def check_identifier(name: str, what: str = "table") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise :class:`ConfigError`."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"invalid {what} name {name!r}: use letters, digits and _ (at most 63)")
    return name


def _coerce(key: str, kind: type, value: object) -> object:
    """Turn a query-string or YAML value into the option's type."""
    if value is None or isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
        return value
    if kind is str:
        return str(value)
    text = str(value).strip().lower()
    try:
        if kind is bool:
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(text)
        return kind(text)
    except ValueError:
        raise ConfigError(f"queue store option {key}={value!r} is not a valid {kind.__name__}") from None


def parse_options(
    url: StoreURL,
    kwargs: Mapping[str, object],
    extra: Mapping[str, type] = {},
    aliases: Mapping[str, str] = {},
) -> dict[str, object]:
    """Merge URL query parameters with keyword options (keywords win) and check every one.

    ``kwargs`` may hold an ``options`` mapping too (what a YAML config naturally produces); its
    entries rank between the URL and the other keywords. A keyword or entry whose value is None
    (or empty) was *not given* (an unset ``--queue-table`` arrives as ``table=None``) and never hides what a
    lower layer set. ``aliases`` maps a synonym to the option it stands for (Redis reads ``table``
    as ``prefix``), resolved within each layer so that precedence between layers still holds.
    Unknown names are a :class:`ConfigError` so that a typo (``?tabel=``) never silently falls back
    to a default table.
    """
    known = {**COMMON_OPTIONS, **extra}
    nested = kwargs.get("options")
    if nested is not None and not isinstance(nested, Mapping):
        raise ConfigError("queue store 'options' must be a mapping")
    merged: dict[str, object] = {}
    for layer in (url.params, nested or {}, {k: v for k, v in kwargs.items() if k != "options"}):
        merged.update(_given(layer, aliases))
    out: dict[str, object] = {}
    for key, value in merged.items():
        if key not in known:
            raise ConfigError(
                f"unknown option {key!r} for queue store {url.scheme!r} (known: {', '.join(sorted(known))})"
            )
        out[key] = _coerce(key, known[key], value)
    return out


def _given(layer: Mapping[str, object], aliases: Mapping[str, str]) -> dict[str, object]:
    """The options one layer actually sets: unset ones dropped, synonyms renamed.

    None and the empty string both mean "not set": ``GEARPY_QUEUE_TABLE=`` in an environment file
    must not replace the URL's table with the default one (no option has a meaningful empty value).
    """
    out: dict[str, object] = {}
    for key, value in layer.items():
        if value is None or value == "":
            continue
        name = aliases.get(key, key)
        if name in out:
            raise ConfigError(f"queue store options {key!r} and {name!r} name the same setting; give one")
        out[name] = value
    return out
