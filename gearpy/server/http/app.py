"""The dashboard's WSGI application: routing, authentication, CSRF, JSON errors, static files.

Pages are one static single-page app (``static/``) that polls the JSON API every two seconds; every
page's data is also an endpoint under ``/api/v1/``. Who may do what:

* Without ``--http-auth-file`` (loopback only) everyone is an administrator, but requests must
  name a loopback ``Host`` (no DNS rebinding) and state-changing ones must not come from another
  site (``Origin``/``Sec-Fetch-Site``).
* With it, a request carries a bearer token, HTTP Basic credentials or the session cookie the
  login form sets; ``read`` may GET, ``admin`` may also change things.
* A browser session's state-changing requests carry its CSRF token in ``X-CSRF-Token``.

Every error is a JSON object ``{"error": {"status", "code", "message"}}``; an unexpected exception
is logged and answered 500 without a traceback.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from gevent.timeout import Timeout

from gearpy.logs import NOTICE
from gearpy.server.certsubject import format_subject
from gearpy.server.http import actions
from gearpy.server.http.actions import ActionError
from gearpy.server.http.auth import ANONYMOUS, Credentials, Identity, Session, Sessions
from gearpy.server.http.fleet import Fleet
from gearpy.server.http.views import PRIORITY_BY_NAME, Views

log = logging.getLogger("gearpy.server.http")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
JSON = dict[str, Any]

API = "/api/v1"
PAGES = ("/", "/functions", "/workers", "/jobs", "/fleet", "/submit")
COOKIE = "gearpy_session"
#: Longest foreground wait a request may ask for.
MAX_TIMEOUT = 3600.0
DEFAULT_TIMEOUT = 30.0
_LOOPBACK_HOST = re.compile(r"^(localhost|127(\.\d{1,3}){3}|\[::1\]|::1)$", re.I)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
_SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
]


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    500: "internal",
    503: "unavailable",
    504: "timeout",
}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, body, "application/json", headers or [])


def error_response(status: int, message: str, code: str = "") -> Response:
    extra = [("WWW-Authenticate", 'Bearer realm="gearpy"')] if status == 401 else []
    body = {"error": {"status": status, "code": code or _CODES.get(status, "error"), "message": message}}
    return json_response(status, body, extra)


@dataclass
class Request:
    environ: Environ
    method: str
    path: str
    query: dict[str, list[str]]
    identity: Identity | None = None
    session: Session | None = None
    session_id: str | None = None
    via: str = ""

    def header(self, name: str) -> str:
        return str(self.environ.get("HTTP_" + name.upper().replace("-", "_"), ""))

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def cookie(self, name: str) -> str | None:
        raw = self.environ.get("HTTP_COOKIE")
        if not raw:
            return None
        try:
            jar: SimpleCookie = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    @property
    def peer(self) -> tuple[str, int]:
        return actions.peer_of(self.environ)

    @property
    def who(self) -> str:
        name = self.identity.name if self.identity else "-"
        return f"{name}@{self.peer[0]}"


def _static_files() -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    root = resources.files("gearpy.server.http").joinpath("static")
    for entry in root.iterdir():
        name = entry.name
        ext = name[name.rfind(".") :]
        if entry.is_file() and ext in _TYPES:
            files[name] = (entry.read_bytes(), _TYPES[ext])
    return files


class App:
    """The WSGI callable; given every collaborator at construction."""

    def __init__(
        self,
        *,
        host: actions.Host,
        views: Views,
        fleet: Fleet,
        credentials: Credentials | None,
        metrics: Callable[[Environ, StartResponse], Iterable[bytes]],
        health: Callable[[], tuple[bool, str]],
        max_packet_size: int,
        request_timeout: float,
        tls: bool,
        bound_host: str,
    ) -> None:
        self.host = host
        self.views = views
        self.fleet = fleet
        self.credentials = credentials
        self.sessions = Sessions()
        self.metrics = metrics
        self.health = health
        self.max_packet_size = max_packet_size
        self.request_timeout = request_timeout
        self.tls = tls
        self.bound_host = bound_host.lower()
        self.static = _static_files()

    # ---------------------------------------------------------------- WSGI

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO") or "/")
        req = Request(environ, method, path, parse_qs(str(environ.get("QUERY_STRING", ""))))
        if path == "/metrics" and method == "GET":
            try:
                self._authenticate(req, page=False)
            except HttpError as exc:
                return self._send(start_response, error_response(exc.status, exc.message, exc.code))
            return self.metrics(environ, start_response)
        try:
            resp = self.dispatch(req)
        except HttpError as exc:
            resp = error_response(exc.status, exc.message, exc.code)
        except ActionError as exc:
            resp = error_response(exc.status, exc.message, exc.code.lower())
        except Exception:
            log.exception("HTTP %s %s failed", method, path)
            resp = error_response(500, "internal error (logged by the server)")
        return self._send(start_response, resp)

    def _send(self, start_response: StartResponse, resp: Response) -> list[bytes]:
        headers = [
            ("Content-Type", resp.content_type),
            ("Content-Length", str(len(resp.body))),
            ("Cache-Control", "no-store"),
            *_SECURITY_HEADERS,
            *resp.headers,
        ]
        start_response(f"{resp.status} {_REASONS.get(resp.status, 'Error')}", headers)
        return [resp.body]

    # ---------------------------------------------------------------- auth

    def _check_host(self, req: Request) -> None:
        """Without credentials, only loopback names may reach us (a rebound DNS name may not)."""
        if self.credentials is not None:
            return
        host = req.header("Host").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not (_LOOPBACK_HOST.match(name) or name == self.bound_host or name.strip("[]") == self.bound_host):
            raise HttpError(403, f"Host {host!r} is not allowed without --http-auth-file", "bad_host")

    def _authenticate(self, req: Request, page: bool) -> None:
        self._check_host(req)
        creds = self.credentials
        auth = req.header("Authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            identity = None
            if creds is None:
                identity = ANONYMOUS
            elif scheme.lower() == "bearer":
                identity = creds.token(value.strip())
                req.via = "token"
            elif scheme.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(value.strip()).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    raise HttpError(401, "malformed Basic credentials") from None
                identity = creds.password(user, password)
                req.via = "basic"
            if identity is None:
                log.warning("HTTP %s %s from %s: bad credentials", req.method, req.path, req.peer[0])
                raise HttpError(401, "bad credentials")
            req.identity = identity
            return
        sid = req.cookie(COOKIE)
        if sid:
            session = self.sessions.get(sid)
            if session is not None:
                req.identity, req.session, req.session_id, req.via = session.identity, session, sid, "session"
                return
        if creds is None:
            req.identity = ANONYMOUS
            return
        if page:
            raise _Redirect("/login?next=" + quote(req.path))
        raise HttpError(401, "credentials required (bearer token, Basic or a session)")

    def _check_write(self, req: Request) -> None:
        """A state change: administrators only, and never on another site's behalf."""
        assert req.identity is not None
        if not req.identity.admin:
            raise HttpError(403, f"{req.identity.name} has the read role; this needs admin")
        self._check_origin(req)
        if req.via == "session":
            assert req.session is not None
            token = req.header("X-CSRF-Token")
            if not token or not hmac.compare_digest(token.encode(), req.session.csrf.encode()):
                raise HttpError(403, "missing or wrong X-CSRF-Token", "csrf")

    def _check_origin(self, req: Request) -> None:
        if req.via == "token":
            return  # browsers never attach a bearer token on their own
        site = req.header("Sec-Fetch-Site").lower()
        if site in ("cross-site", "same-site"):
            raise HttpError(403, "cross-site request refused", "csrf")
        origin = req.header("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc.lower() != req.header("Host").lower():
            raise HttpError(403, "cross-origin request refused", "csrf")
        if origin == "null":
            raise HttpError(403, "cross-origin request refused", "csrf")

    # ---------------------------------------------------------------- routing

    def dispatch(self, req: Request) -> Response:
        path, method = req.path, req.method
        if path.startswith("/static/"):
            return self._static(path[len("/static/") :])
        if path == "/healthz":
            ok, reason = self.health()
            return Response(200 if ok else 503, (reason or "ok").encode() + b"\n", "text/plain")
        if path == "/login":
            self._check_host(req)
            if method == "POST":
                return self._login(req)
            return self._page("login.html")
        if path == "/logout" and method == "POST":
            return self._logout(req)
        if path in PAGES or path.startswith("/jobs/"):
            try:
                self._authenticate(req, page=True)
            except _Redirect as r:
                return Response(303, b"", "text/plain", [("Location", r.location)])
            return self._page("index.html")
        if not path.startswith(API + "/"):
            raise HttpError(404, f"no such page: {path}")
        self._authenticate(req, page=False)
        if method not in ("GET", "HEAD"):
            self._check_write(req)
        return self._api(req, path[len(API) :])

    def _page(self, name: str) -> Response:
        body, ctype = self.static[name]
        return Response(200, body, ctype)

    def _static(self, name: str) -> Response:
        entry = self.static.get(name)
        if entry is None:
            raise HttpError(404, f"no such file: {name}")
        return Response(200, entry[0], entry[1])

    def _api(self, req: Request, route: str) -> Response:
        m = req.method
        v = self.views
        if route == "/session" and m == "GET":
            return self._session(req)
        if route == "/overview" and m == "GET":
            return json_response(200, v.overview())
        if route == "/functions" and m == "GET":
            return json_response(200, {"functions": v.functions()})
        if route.startswith("/functions/"):
            return self._function(req, _raw(route[len("/functions/") :]))
        if route == "/workers" and m == "GET":
            return json_response(200, {"workers": v.workers()})
        if route == "/jobs":
            if m == "GET":
                return json_response(200, self._jobs(req))
            if m == "POST":
                return self._submit(req)
        if route.startswith("/jobs/"):
            return self._job(req, _raw(route[len("/jobs/") :]))
        if route == "/fleet" and m == "GET":
            return json_response(200, self._fleet())
        if route in ("/session", "/overview", "/functions", "/workers", "/jobs", "/fleet"):
            raise HttpError(405, f"{m} is not allowed on {API}{route}")
        raise HttpError(404, f"no such endpoint: {API}{route}")

    # ---------------------------------------------------------------- sessions

    def _login(self, req: Request) -> Response:
        form = self._form(req)
        user, password = form.get("user", ""), form.get("password", "")
        nxt = form.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        self._check_origin(req)
        if self.credentials is None:
            identity: Identity | None = ANONYMOUS
        else:
            identity = self.credentials.password(user, password)
        if identity is None:
            log.warning("HTTP login as %r from %s failed", user, req.peer[0])
            return Response(303, b"", "text/plain", [("Location", "/login?failed=1&next=" + quote(nxt))])
        sid, _ = self.sessions.create(identity)
        log.log(NOTICE, "HTTP login: %s from %s", identity.name, req.peer[0])
        return Response(303, b"", "text/plain", [("Location", nxt), ("Set-Cookie", self._cookie(sid))])

    def _logout(self, req: Request) -> Response:
        sid = req.cookie(COOKIE)
        if sid:
            self.sessions.drop(sid)
        expired = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        return Response(303, b"", "text/plain", [("Location", "/login"), ("Set-Cookie", expired)])

    def _cookie(self, sid: str) -> str:
        secure = "; Secure" if self.tls else ""
        return f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict{secure}"

    def _session(self, req: Request) -> Response:
        """Who am I, and the CSRF token the dashboard sends with its actions (a session if needed)."""
        assert req.identity is not None
        headers = []
        session = req.session
        if session is None:
            sid, session = self.sessions.create(req.identity)
            headers.append(("Set-Cookie", self._cookie(sid)))
        data = {
            "user": req.identity.name,
            "role": req.identity.role,
            "csrf": session.csrf,
            "auth": self.credentials is not None,
        }
        return json_response(200, data, headers)

    # ---------------------------------------------------------------- bodies

    def _body(self, req: Request) -> bytes:
        try:
            length = int(req.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        # A payload may come base64-encoded (4/3 larger) inside JSON.
        limit = self.max_packet_size * 4 // 3 + 64 * 1024
        if length > limit:
            raise HttpError(413, f"request body of {length} bytes is over the limit ({limit})")
        if length <= 0:
            return b""
        try:
            with Timeout(self.request_timeout):
                data: bytes = req.environ["wsgi.input"].read(length)
        except Timeout:
            raise HttpError(408, "request body not received in time") from None
        return data

    def _json(self, req: Request) -> JSON:
        body = self._body(req)
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HttpError(400, "body must be a JSON object")
        return data

    def _form(self, req: Request) -> dict[str, str]:
        ctype = str(req.environ.get("CONTENT_TYPE", ""))
        if ctype.startswith("application/json"):
            return {k: str(v) for k, v in self._json(req).items()}
        body = self._body(req).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body).items()}

    # ---------------------------------------------------------------- functions

    def _function(self, req: Request, name: bytes) -> Response:
        v = self.views
        fn = v.find_function(name)
        if fn is None:
            raise HttpError(404, f"no such function: {name.decode('utf-8', 'replace')}")
        if req.method == "GET":
            return json_response(200, v.function(fn, v.history.function_rates(), _now()))
        if b" " in name or b"\n" in name or not name:
            raise HttpError(400, "this function name cannot be addressed by an admin command")
        if req.method == "DELETE":
            actions.admin(self.host, (b"drop", b"function", name), req.peer)
            log.log(NOTICE, "HTTP drop function %s by %s", name.decode("utf-8", "replace"), req.who)
            return json_response(200, {"dropped": name.decode("utf-8", "replace")})
        if req.method in ("PUT", "POST"):
            data = self._json(req)
            sizes = _maxqueue_sizes(data.get("maxqueue"))
            tokens = (b"maxqueue", name, *(str(n).encode() for n in sizes))
            actions.admin(self.host, tokens, req.peer)
            log.log(
                NOTICE, "HTTP maxqueue %s %s by %s", name.decode("utf-8", "replace"), sizes or "off", req.who
            )
            fn = v.find_function(name)
            assert fn is not None
            return json_response(200, v.function(fn, v.history.function_rates(), _now()))
        raise HttpError(405, f"{req.method} is not allowed on a function")

    # ---------------------------------------------------------------- jobs

    def _jobs(self, req: Request) -> JSON:
        state = req.arg("state") or None
        if state not in (None, "queued", "running"):
            raise HttpError(400, "state must be queued or running")
        prio_name = req.arg("priority") or None
        if prio_name is not None and prio_name not in PRIORITY_BY_NAME:
            raise HttpError(400, "priority must be high, normal or low")
        priority = PRIORITY_BY_NAME[prio_name] if prio_name else None
        function = req.arg("function")
        try:
            offset = int(req.arg("offset", "0"))
            limit = int(req.arg("limit", "50"))
        except ValueError:
            raise HttpError(400, "offset and limit must be integers") from None
        if offset < 0 or limit < 1:
            raise HttpError(400, "offset must be >= 0 and limit >= 1")
        return self.views.jobs(function.encode() if function else None, state, priority, offset, limit)

    def _job(self, req: Request, handle: bytes) -> Response:
        job = self.views.find_job(handle)
        shown = handle.decode("utf-8", "replace")
        if job is None:
            raise HttpError(404, f"no such job: {shown}")
        if req.method == "GET":
            return json_response(200, self.views.job_detail(job))
        if req.method == "DELETE":
            if job.worker is not None:
                raise HttpError(409, f"job {shown} is running; only a queued job can be cancelled")
            actions.admin(self.host, (b"cancel", b"job", handle), req.peer)
            log.log(NOTICE, "HTTP cancel job %s by %s", shown, req.who)
            return json_response(200, {"cancelled": shown})
        raise HttpError(405, f"{req.method} is not allowed on a job")

    def _submit(self, req: Request) -> Response:
        data = self._json(req)
        function = data.get("function")
        if not isinstance(function, str) or not function:
            raise HttpError(400, "'function' (a non-empty string) is required")
        fname = function.encode()
        encoding = data.get("encoding", "text")
        payload = _payload(data.get("payload", ""), encoding)
        unique = data.get("unique", "")
        if not isinstance(unique, str):
            raise HttpError(400, "'unique' must be a string")
        prio_name = data.get("priority", "normal")
        if prio_name not in PRIORITY_BY_NAME:
            raise HttpError(400, "'priority' must be high, normal or low")
        background = data.get("background", False)
        if not isinstance(background, bool):
            raise HttpError(400, "'background' must be true or false")
        when = data.get("when", 0) or 0
        if not isinstance(when, int) or isinstance(when, bool) or when < 0:
            raise HttpError(400, "'when' must be a Unix time (integer seconds)")
        if when and not background:
            raise HttpError(400, "'when' (an epoch job) needs background: true")
        timeout = data.get("timeout", DEFAULT_TIMEOUT)
        if (
            not isinstance(timeout, (int, float))
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_TIMEOUT
        ):
            raise HttpError(400, f"'timeout' must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
        for name, value in (("function", fname), ("unique", unique.encode())):
            if b"\x00" in value:
                raise HttpError(400, f"'{name}' must not contain NUL")
        size = len(fname) + len(unique.encode()) + len(payload) + 2
        if size > self.max_packet_size:
            raise HttpError(413, f"job of {size} bytes is over --max-packet-size ({self.max_packet_size})")
        subject = http_subject(req.identity.name) if req.identity and self.credentials else None
        res = actions.submit(
            self.host,
            function=fname,
            payload=payload,
            unique=unique.encode(),
            priority=PRIORITY_BY_NAME[prio_name],
            background=background,
            when=when,
            timeout=float(timeout),
            peer=req.peer,
            subject=subject,
        )
        log.log(
            NOTICE,
            "HTTP submit %s%s %s by %s: %s",
            function,
            " (background)" if background else "",
            res.handle,
            req.who,
            res.outcome,
        )
        out: JSON = {"handle": res.handle, "function": function, "background": background}
        if background:
            return json_response(201, out, [("Location", f"{API}/jobs/{quote(res.handle, safe=':')}")])
        ended = res.outcome in ("complete", "exception")
        out.update(
            {
                "outcome": res.outcome,
                "result": _text_or_none(res.result) if ended else None,
                "result_base64": base64.b64encode(res.result).decode() if ended else None,
                "data": [_text_or_none(d) for d in res.data],
                "warnings": [_text_or_none(w) for w in res.warnings],
                "progress": {"numerator": res.numerator, "denominator": res.denominator},
            }
        )
        if res.outcome == "timeout":
            out["error"] = {"status": 504, "code": "timeout", "message": f"no result within {timeout:g} s"}
            return json_response(504, out)
        return json_response(200, out)

    # ---------------------------------------------------------------- fleet

    def _fleet(self) -> JSON:
        v = self.views
        me = v.overview()
        local = {
            "address": "this server",
            "up": True,
            "version": me["version"],
            "connections": me["connections"]["total"],
            "workers": me["connections"]["workers"],
            "queued": me["jobs"]["queued"] + me["jobs"]["scheduled"],
            "running": me["jobs"]["running"],
            "functions": [
                {"name": f["name"], "total": f["total"], "running": f["running"], "workers": f["workers"]}
                for f in v.functions()
            ],
        }
        return {"servers": [local, *self.fleet.read()]}


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def http_subject(name: str) -> str:
    """The ``--acl-file`` subject of an HTTP user or token: ``UID=NAME,OU=gearpy-http``."""
    return format_subject(((("UID", name),), (("OU", "gearpy-http"),)))


def _raw(segment: str) -> bytes:
    """A WSGI path segment (latin-1 decoded bytes, per PEP 3333) back to the bytes sent."""
    return segment.encode("latin-1", "replace")


def _now() -> float:
    return time.time()


def _payload(value: Any, encoding: Any) -> bytes:
    if encoding == "text":
        if not isinstance(value, str):
            raise HttpError(400, "'payload' must be a string with encoding text")
        return value.encode()
    if encoding == "base64":
        if not isinstance(value, str):
            raise HttpError(400, "'payload' must be a base64 string with encoding base64")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "'payload' is not valid base64") from None
    if encoding == "json":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    raise HttpError(400, "'encoding' must be text, base64 or json")


def _maxqueue_sizes(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return (value,)
    if isinstance(value, dict):
        value = [value.get("high", 0), value.get("normal", 0), value.get("low", 0)]
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)
    ):
        return tuple(value)
    raise HttpError(400, "'maxqueue' must be null, a count, [high, normal, low] or {high, normal, low}")


def _text_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
