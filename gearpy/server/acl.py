"""Who may do what: per-function ACLs by certificate subject, and who may run mutating admin commands.

**Function ACL** (opt-in, with TLS).

Modelled on OpenStack gear's ACL, but patterns match *whole* function names (``re.fullmatch``),
so ``resize`` does not also grant ``resize_all``. The file (``--acl-file``) maps a certificate
subject, as ``CN=...,O=...`` or ``*`` for every other peer, to two permissions, each a pattern or
a list of patterns::

    "CN=imaging-worker": {register: [resize, thumbnail]}
    "CN=webapp":         {invoke: "resize|thumbnail|report_.*"}
    "*":                 {}            # anyone else: nothing

``register`` limits CAN_DO (a refused one gets ``ERROR PERMISSION_DENIED`` and is not registered);
``invoke`` limits submits (refused with ``ERROR PERMISSION_DENIED``). A permission left out allows
nothing. A subject without an entry, and a plaintext peer (no subject), fall back to ``*``; without
``*`` they may do nothing. Subjects are compared structurally (:mod:`gearpy.server.certsubject`).

The file's shape is checked at start: anything YAML could read in two ways (an empty
``register:``, which would otherwise become the pattern "None"; a number; a nested list) is a
:class:`ConfigError` naming the entry, never a silent grant. Refusals are logged, rate-limited
(:mod:`gearpy.server.refusals`).

**Admin policy** (``admin_allow``): addresses, networks, ``loopback`` and ``cert:SUBJECT`` entries
that may run ``cancel``, ``create``, ``drop`` and ``maxqueue``; everyone may read.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import yaml

from gearpy.errors import ConfigError
from gearpy.server import certsubject
from gearpy.server.refusals import acl_refused
from gearpy.server.state import Conn

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ACTIONS = ("register", "invoke")
EVERYONE = "*"


def _pattern(where: str, value: object) -> re.Pattern[bytes]:
    """Compile one permission: a non-empty pattern, or a list of them (any may match)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str):
            kind = "empty" if item is None else f"{item!r}, not text"
            raise ConfigError(
                f"acl: {where} is {kind}; give a pattern or a list of patterns, quoted if in doubt, "
                "or leave the permission out to allow nothing"
            )
        if not item:
            raise ConfigError(f"acl: {where} has an empty pattern; leave the permission out to allow nothing")
    alternatives = "|".join(f"(?:{item})" for item in items) if items else "(?!)"  # [] allows nothing
    try:
        return re.compile(alternatives.encode())
    except re.error as exc:
        raise ConfigError(f"acl: bad pattern in {where}: {exc}") from None


class FunctionAcl:
    """Compiled ACL: ``allowed(subject, action, function)``."""

    def __init__(self, rules: dict[object, object]) -> None:
        self.rules: dict[str, dict[str, re.Pattern[bytes]]] = {}
        for subject, perms in rules.items():
            if not isinstance(subject, str) or not subject.strip():
                raise ConfigError(f"acl: {subject!r} is not a certificate subject (CN=...) or '*'")
            if not isinstance(perms, dict):
                raise ConfigError(
                    f"acl: entry for {subject!r} must be a mapping of register/invoke (use {{}} for nothing)"
                )
            key = EVERYONE if subject.strip() == EVERYONE else certsubject.canonical(subject)
            if key in self.rules:
                raise ConfigError(f"acl: {subject!r} names the same subject as an earlier entry")
            compiled = {}
            for action, value in perms.items():
                if action not in ACTIONS:
                    raise ConfigError(
                        f"acl: unknown permission {action!r} for {subject!r} (register, invoke)"
                    )
                compiled[action] = _pattern(f"{action} of {subject!r}", value)
            self.rules[key] = compiled

    @classmethod
    def load(cls, path: str) -> FunctionAcl:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read acl file {path}: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"acl file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"acl file {path} must map certificate subjects to permissions")
        try:
            return cls(data)
        except ConfigError as exc:
            raise ConfigError(f"acl file {path}: {exc}") from None

    def allowed(self, subject: str | None, action: str, function: bytes) -> bool:
        perms = self.rules.get(subject) if subject is not None else None
        if perms is None:
            perms = self.rules.get(EVERYONE, {})
        pattern = perms.get(action)
        if pattern is not None and pattern.fullmatch(function) is not None:
            return True
        acl_refused(subject, action, function)
        return False


class AdminPolicy:
    """Who may run mutating admin commands: addresses, networks and certificate subjects."""

    def __init__(self, entries: list[str]) -> None:
        self.networks: list[Network] = []
        self.subjects: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            if entry.startswith("cert:"):
                self.subjects.add(certsubject.canonical(entry[5:]))
                continue
            if entry == "loopback":
                entry = "127.0.0.0/8"
                self.networks.append(ipaddress.ip_network("::1/128"))
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(
                    f"admin_allow: not an address, network or cert:SUBJECT: {entry!r}"
                ) from None

    def __call__(self, conn: Conn) -> bool:
        if conn.peer_cert_subject is not None and conn.peer_cert_subject in self.subjects:
            return True
        try:
            ip = ipaddress.ip_address(conn.ip)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks if net.version == ip.version)
