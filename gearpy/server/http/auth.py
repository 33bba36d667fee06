"""Dashboard credentials: users with salted scrypt password hashes and bearer tokens, each with a role.

The file (``--http-auth-file``) is YAML; only hashes are stored in it::

    users:
      alice: {role: admin, password: "scrypt$16384$8$1$<salt>$<hash>"}
    tokens:
      ci: {role: read, sha256: "<hex digest of the token>"}

Roles: ``read`` sees every page and GET endpoint; ``admin`` may also submit, cancel, set
maxqueue and drop functions. Create entries with the command line of this module::

    python -m gearpy.server.http.auth add-user  /etc/gearpy/http-auth.yaml alice --role admin
    python -m gearpy.server.http.auth add-token /etc/gearpy/http-auth.yaml ci --role read

``add-user`` asks for the password (or reads one line from stdin with ``--password-stdin``);
``add-token`` prints a new random token once. Tokens are long random strings, so a plain SHA-256
is enough to store them; passwords get scrypt (stdlib :func:`hashlib.scrypt`).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import secrets
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gearpy.config import read_file
from gearpy.errors import ConfigError

ROLES = ("read", "admin")
_N, _R, _P = 2**14, 8, 1
#: A verified Basic credential is remembered this long (scrypt per API call would be slow).
_VERIFIED_TTL = 60.0
SESSION_TTL = 12 * 3600.0
MAX_SESSIONS = 1000


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(want)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request: a user or token name and its role."""

    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


#: Without an auth file (loopback only), everyone who can connect is an administrator.
ANONYMOUS = Identity("anonymous", "admin")


@dataclass(slots=True)
class Session:
    identity: Identity
    csrf: str
    expires: float


class Credentials:
    """The parsed auth file; verifies passwords and tokens."""

    def __init__(self, users: dict[str, tuple[str, str]], tokens: dict[str, Identity]) -> None:
        #: user -> (role, password hash)
        self.users = users
        #: sha256 hex of a token -> identity
        self.tokens = tokens
        self._verified: dict[str, float] = {}

    @classmethod
    def load(cls, path: str) -> Credentials:
        data = _read(path)
        users: dict[str, tuple[str, str]] = {}
        tokens: dict[str, Identity] = {}
        for name, entry in (data.get("users") or {}).items():
            role, secret = _entry(path, "user", name, entry, "password")
            users[str(name)] = (role, secret)
        for name, entry in (data.get("tokens") or {}).items():
            role, digest = _entry(path, "token", name, entry, "sha256")
            tokens[digest.lower()] = Identity(str(name), role)
        if not users and not tokens:
            raise ConfigError(f"http auth file {path} names no users and no tokens")
        return cls(users, tokens)

    def password(self, user: str, password: str) -> Identity | None:
        entry = self.users.get(user)
        if entry is None:
            return None
        key = hashlib.sha256(f"{user}\0{password}\0{entry[1]}".encode()).hexdigest()
        now = time.monotonic()
        if self._verified.get(key, 0.0) > now:
            return Identity(user, entry[0])
        if not check_password(password, entry[1]):
            return None
        if len(self._verified) > 1000:
            self._verified.clear()
        self._verified[key] = now + _VERIFIED_TTL
        return Identity(user, entry[0])

    def token(self, token: str) -> Identity | None:
        return self.tokens.get(token_digest(token))


class Sessions:
    """Browser sessions (cookie value -> identity and CSRF token), bounded and expiring."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def create(self, identity: Identity) -> tuple[str, Session]:
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.popitem(last=False)
        sid = secrets.token_urlsafe(32)
        session = Session(identity, secrets.token_urlsafe(24), self.clock() + SESSION_TTL)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str) -> Session | None:
        session = self._by_id.get(sid)
        if session is None:
            return None
        if session.expires < self.clock():
            del self._by_id[sid]
            return None
        return session

    def drop(self, sid: str) -> None:
        self._by_id.pop(sid, None)


def _read(path: str) -> dict[str, Any]:
    if not Path(path).exists():
        return {}  # add-user / add-token create the file
    data = read_file(path)
    for key in ("users", "tokens"):
        if not isinstance(data.get(key) or {}, dict):
            raise ConfigError(f"http auth file {path}: '{key}' must map names to entries")
    return data


def _entry(path: str, kind: str, name: object, entry: object, key: str) -> tuple[str, str]:
    if not isinstance(entry, dict) or not isinstance(entry.get(key), str):
        raise ConfigError(f"http auth file {path}: {kind} {name!r} needs a '{key}'")
    role = entry.get("role", "read")
    if role not in ROLES:
        raise ConfigError(f"http auth file {path}: {kind} {name!r} has role {role!r} (read or admin)")
    return str(role), str(entry[key])


def _write(path: str, data: dict[str, Any]) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=True)
    os.replace(tmp, p)


def add_user(path: str, name: str, password: str, role: str) -> None:
    data = _read(path)
    data.setdefault("users", {})[name] = {"role": role, "password": hash_password(password)}
    _write(path, data)


def add_token(path: str, name: str, role: str) -> str:
    token = "gp_" + secrets.token_urlsafe(32)
    data = _read(path)
    data.setdefault("tokens", {})[name] = {"role": role, "sha256": token_digest(token)}
    _write(path, data)
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gearpy.server.http.auth", description="Add dashboard users and API tokens."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    u = sub.add_parser("add-user", help="add or replace a user (asks for the password)")
    u.add_argument("file")
    u.add_argument("name")
    u.add_argument("--role", choices=ROLES, default="read")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    t = sub.add_parser("add-token", help="add or replace a bearer token; prints it once")
    t.add_argument("file")
    t.add_argument("name")
    t.add_argument("--role", choices=ROLES, default="read")
    args = parser.parse_args(argv)
    try:
        if args.command == "add-user":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = getpass.getpass(f"password for {args.name}: ")
                if getpass.getpass("again: ") != password:
                    print("passwords differ; nothing written", file=sys.stderr)
                    return 2
            if not password:
                print("empty password; nothing written", file=sys.stderr)
                return 2
            add_user(args.file, args.name, password, args.role)
            print(f"user {args.name} ({args.role}) written to {args.file}")
        else:
            print(add_token(args.file, args.name, args.role))
    except (ConfigError, OSError) as exc:
        print(f"gearpy http auth: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
