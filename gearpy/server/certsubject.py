"""Certificate subjects as structured names: what ``--acl-file`` keys and ``--admin-allow cert:`` match.

A subject is a sequence of RDNs, each a set of ``(type, value)`` attributes. Joining the values
with ``,`` unescaped (as gearpy once did) lets a certificate whose *single* attribute is
``CN=webapp,O=acme`` pass as the two-attribute subject ``CN=webapp,O=acme``. So both sides are
reduced to one canonical text in which every special character of a value is escaped as RFC 4514
says: a certificate's subject with :func:`of_peercert`, a configured one with :func:`canonical`.
Equal canonical texts mean equal structures (the escaping is reversible), so comparing strings
compares subjects.

Attributes are written in the certificate's own order (``CN=webapp,O=acme`` for a certificate made
with ``-subj /CN=webapp/O=acme``), as gearpy has always written them, and ``+`` joins the
attributes of a multi-valued RDN. Attribute types are matched by their short name, whatever the
spelling (``cn``, ``commonName``); values exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gearpy.errors import ConfigError

__all__ = ["canonical", "format_subject", "of_peercert", "parse_subject"]

#: An RDN: its (type, value) attributes; a subject: its RDNs in certificate order.
Rdn = tuple[tuple[str, str], ...]
Subject = tuple[Rdn, ...]

#: Python's ``getpeercert()`` attribute names and RFC 4514's short names, by lower-cased spelling.
_SHORT = {
    "commonname": "CN",
    "cn": "CN",
    "organizationname": "O",
    "o": "O",
    "organizationalunitname": "OU",
    "ou": "OU",
    "countryname": "C",
    "c": "C",
    "localityname": "L",
    "l": "L",
    "stateorprovincename": "ST",
    "st": "ST",
    "streetaddress": "STREET",
    "street": "STREET",
    "domaincomponent": "DC",
    "dc": "DC",
    "userid": "UID",
    "uid": "UID",
    "emailaddress": "emailAddress",
}
#: Characters escaped with a backslash anywhere in a value (RFC 4514 section 2.4).
_SPECIAL = frozenset('"+,;<>\\')


def _type(name: str) -> str:
    name = name.strip()
    if not name:
        raise ConfigError("certificate subject: an attribute has no type (expected TYPE=value)")
    return _SHORT.get(name.lower(), name)


def _escape(value: str) -> str:
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in _SPECIAL or (ch == "#" and i == 0) or (ch == " " and i in (0, last)):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):02X}")  # control bytes as hex pairs: one line in any log
        else:
            out.append(ch)
    return "".join(out)


def format_subject(subject: Iterable[Iterable[tuple[str, str]]]) -> str:
    """The canonical text of a structured subject (RDNs of ``(type, value)``)."""
    return ",".join("+".join(f"{_type(t)}={_escape(v)}" for t, v in rdn) for rdn in subject)


def of_peercert(cert: Mapping[str, object] | None) -> str | None:
    """A peer certificate's subject (from ``SSLSocket.getpeercert()``) as canonical text; None if none."""
    if not cert:
        return None
    rdns = cert.get("subject", ())
    return format_subject(rdns)  # type: ignore[arg-type]


def parse_subject(text: str) -> Subject:
    """Parse ``CN=webapp,O=acme`` (RFC 4514 escapes: ``\\,``, ``\\+``, ``\\2C``...) into RDNs.

    Spaces around types and separators are ignored (``CN = a, O = b`` as ``openssl`` prints it);
    spaces inside a value, and escaped ones at its ends, are kept. ``#hex`` values are refused.
    """
    rdns: list[Rdn] = []
    rdn: list[tuple[str, str]] = []
    i, n = 0, len(text)
    if not text.strip():
        raise ConfigError("certificate subject is empty")
    while True:
        eq = _find_unescaped(text, "=", i)
        if eq < 0:
            raise ConfigError(f"certificate subject {text!r}: {text[i:]!r} is not TYPE=value")
        kind = _type(text[i:eq])
        value, i = _read_value(text, eq + 1)
        rdn.append((kind, value))
        if i >= n:
            rdns.append(tuple(rdn))
            return tuple(rdns)
        if text[i] == ",":
            rdns.append(tuple(rdn))
            rdn = []
        i += 1


def _find_unescaped(text: str, ch: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == ch:
            return i
        if text[i] in ",+":
            return -1
        i += 1
    return -1


def _read_value(text: str, i: int) -> tuple[str, int]:
    """Read one value from ``text[i:]``; return it and the index of the separator (or the end)."""
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    if i < n and text[i] == "#":
        raise ConfigError(f"certificate subject {text!r}: #hex values are not supported; write the text")
    raw = bytearray()
    kept = 0  # bytes that must survive stripping (escaped ones)
    while i < n and text[i] not in ",+":
        ch = text[i]
        if ch == "\\":
            pair = text[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                raw.append(int(pair, 16))
                i += 3
            elif i + 1 < n:
                raw += text[i + 1].encode()
                i += 2
            else:
                raise ConfigError(f"certificate subject {text!r} ends with a lone backslash")
            kept = len(raw)
            continue
        raw += ch.encode()
        i += 1
    end = len(raw)
    while end > kept and raw[end - 1 : end] == b" ":
        end -= 1
    try:
        return raw[:end].decode("utf-8"), i
    except UnicodeDecodeError:
        raise ConfigError(f"certificate subject {text!r}: escaped bytes are not UTF-8") from None


def canonical(text: str) -> str:
    """A configured subject in the canonical form :func:`of_peercert` produces (ConfigError if invalid)."""
    return format_subject(parse_subject(text))
