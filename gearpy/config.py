"""One configuration model for every gearpy program: defaults < YAML file < ``GEARPY_*`` env < flags.

Each program describes its settings as a dataclass whose field defaults are the documented
defaults. :func:`load` merges the layers and coerces strings from the environment into the field's
type, so a value means the same whether it came from a flag, a variable or the file.

The YAML file is shared by the server, the worker and the client::

    servers: ["127.0.0.1:4730"]   # the two top-level keys apply to every program that has them
    workers_key: atom1
    server:  {port: 4730, queue: "sqlite:///var/lib/gearpy/queue.db"}
    worker:  {concurrency: 4}
    client:  {timeout: 30}

Any other top-level key, or an unknown key inside a section, is a :class:`ConfigError` naming it:
a typo (``workers_keys:``, ``sever:``) must not silently leave a setting at its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import yaml

from gearpy import defaults
from gearpy.errors import ConfigError

ENV_PREFIX = "GEARPY_"
C = TypeVar("C")

#: The sections of the shared YAML file, one per program.
SECTIONS = ("server", "worker", "client")
#: Top-level keys of the YAML file that every program with such a setting reads.
SHARED_KEYS = ("servers", "workers_key", "can_do_timeout_unit")

_TRUE = frozenset({"1", "true", "yes", "on"})
#: An empty value is false: ``GEARPY_SSL=`` (or ``?require_aof=``) turns the setting off.
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(value: object) -> bool:
    """The one boolean parser of gearpy (environment, YAML, store URLs).

    ``1/true/yes/on`` are true, ``0/false/no/off`` and the empty string false (any case);
    anything else raises ValueError, so a typo never reads as "off".
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(value)


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls`` (calling its factory), for help texts."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return None
    raise KeyError(name)


def _unknown(key: str, known: typing.Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"config file: unknown key '{key}'{hint}")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Return (type without Optional, optional?) for a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert ``value`` (from YAML or a string from the environment) to the field's type."""
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name}: a value is required")
    if optional and isinstance(value, str) and value == "" and base is not str:
        return None
    try:
        if base is bool:
            return parse_bool(value)
        if base is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        if typing.get_origin(base) in (list, tuple) or base in (list, tuple):
            if isinstance(value, str):
                items = [v.strip() for v in value.split(",") if v.strip()]
            elif isinstance(value, (list, tuple)):
                items = [str(v) for v in value]
            else:
                raise ValueError(value)
            return tuple(items) if (base is tuple or typing.get_origin(base) is tuple) else items
        if base is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        expected = getattr(base, "__name__", base)
        raise ConfigError(f"{name}: invalid value {value!r} (expected {expected})") from None
    return value


def read_file(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Read a YAML config file into a dict. A missing or unreadable file is a :class:`ConfigError`."""
    if path is None:
        return {}
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of settings")
    return data


def load(
    cls: type[C],
    section: str,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> C:
    """Build ``cls`` from defaults < YAML file (top level, then ``section``) < env < flags.

    ``flags`` holds only the options given on the command line (None values are ignored), so an
    unset flag never hides a value from the file or the environment.
    """
    env = os.environ if env is None else env
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    data = read_file(config_file)
    for k in data:
        if k not in SECTIONS and k not in SHARED_KEYS:
            raise _unknown(str(k), SECTIONS + SHARED_KEYS)
    layered = {k: v for k, v in data.items() if k in fields and k in SHARED_KEYS}
    sect = data.get(section) or {}
    if not isinstance(sect, dict):
        raise ConfigError(f"config file: '{section}' must be a mapping")
    for k in sect:
        if k not in fields:
            raise _unknown(f"{section}.{k}", fields)
    layered.update(sect)
    for k, v in layered.items():
        values[k] = coerce(k, hints[k], v)
    for name in fields:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = coerce(key, hints[name], env[key])
    for name, v in (flags or {}).items():
        if v is None or name not in fields:
            continue
        if isinstance(v, tuple) and not v:
            continue
        values[name] = coerce("--" + name.replace("_", "-"), hints[name], v)
    return cls(**values)


def as_dict(cfg: Any) -> dict[str, Any]:
    """The effective configuration as plain data (for ``--print-config``)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


#: A URL's scheme and the slashes after it (``mysql://``, or ``mysql:/`` when mistyped).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/+")


def _credentials(url: str) -> tuple[str, str, str, str] | None:
    """(scheme part, user, password, rest) of ``url``, or None when it holds no ``user:password@``.

    Lenient on purpose: it must find the password of malformed URLs too (``mysql:/u:pw@h``,
    ``u:pw@h``), because those are exactly the ones that end up in error messages. The password
    runs to the *last* ``@``, so one containing ``@``, ``/`` or ``:`` is hidden whole.
    """
    if "@" not in url:
        return None
    head, _, rest = url.rpartition("@")
    m = _SCHEME.match(head)
    prefix = m.group(0) if m else ""
    user, colon, password = head[len(prefix) :].partition(":")
    if not colon:
        return None
    return prefix, user, password, rest


def redact_url(url: str) -> str:
    """Hide the password of a URL such as ``mysql://user:secret@host/db`` for logs and output."""
    parts = _credentials(url)
    if parts is None:
        return url
    prefix, user, _, rest = parts
    return f"{prefix}{user}:***@{rest}"


def scrub(text: str, *urls: str) -> str:
    """``text`` (an error message, say) with the passwords of ``urls`` replaced by ``***``.

    Each password is hidden as written and URL-decoded, in any letter case (some messages
    lower-case what they quote).
    """
    for url in urls:
        parts = _credentials(url)
        if parts is None or not parts[2]:
            continue
        for secret in {parts[2], unquote(parts[2])}:
            text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    return text


def require_ssl_for_tls_files(ssl: bool, **files: str | None) -> None:
    """Refuse TLS files given without ``ssl``: that connection would silently be plaintext.

    A client or worker handed a CA file and a certificate means to use TLS; connecting in the clear
    instead would send its jobs (and trust) unprotected, so it is a :class:`ConfigError`.
    """
    given = [name for name, value in files.items() if value]
    if given and not ssl:
        raise ConfigError(
            f"{', '.join(given)} given without ssl: the connection would be plaintext; add --ssl "
            "(GEARPY_SSL=1, or ssl: true in the config file) or drop them"
        )


def parse_server_address(text: str, default_port: int = defaults.PORT) -> tuple[str, int]:
    """Parse ``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) into (host, port)."""
    text = text.strip()
    if not text:
        raise ConfigError("empty server address")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"invalid port in server address {text!r}") from None
    check_port(port, f"server address {text!r}")
    return host, port


def check_port(port: int, where: str = "") -> int:
    """Return ``port`` if it is a TCP port (1-65535), else raise the one message for all commands."""
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is out of range (1-65535)" + (f" in {where}" if where else ""))
    return port
