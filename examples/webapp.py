"""A small web application that hands slow work to Gearman workers, using only the standard library.

The pattern AtoM follows: a web request must not wait for a report to be built, so it submits a
*background* job, answers at once with the job handle, and the page polls for progress.

* ``POST /reports`` with a JSON body ``{"repository": "Archives of Ontario", "rows": 20}`` submits
  ``generate_report`` (see ``examples/report_worker.py``) and answers ``202`` with
  ``{"handle": "H:host:1"}``; ``503`` when no server can be reached.
* ``GET /reports/<handle>`` answers ``{"handle": ..., "known": true, "running": true,
  "numerator": 3, "denominator": 20}``. A finished background job is forgotten by the server, so
  ``known: false`` means "finished (or never existed)"; the worker records the real outcome (AtoM
  keeps it in its database).

Run it (three terminals)::

    gearpy-server
    gearpy-worker --key atom1 examples/report_worker.py
    GEARPY_WORKERS_KEY=atom1 python examples/webapp.py --port 8080

    curl -s -X POST -d '{"repository": "Archives of Ontario", "rows": 20, "delay": 0.2}' \\
        http://127.0.0.1:8080/reports
    python examples/poll_status.py H:myhost:1          # or: curl http://127.0.0.1:8080/reports/H:myhost:1

The Gearman servers and workers key come from gearpy's usual configuration: ``GEARPY_SERVERS``
(``a:4730,b:4730``), ``GEARPY_WORKERS_KEY``, or ``--config gearpy.yml`` (top-level ``servers:`` and
``workers_key:``). The same ``handle_request()`` can sit behind any WSGI server (gunicorn, uwsgi,
mod_wsgi): ``application`` is the WSGI callable.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import make_server

from gearpy.client import Client
from gearpy.errors import GearpyConnectionError, GearpyError

#: The task the worker registers (with the workers key in front on the wire: ``atom1-generate_report``).
FUNCTION = "generate_report"

_client: Client | None = None


def client() -> Client:
    """One Client per process: it keeps its connections open and is thread-safe."""
    global _client
    if _client is None:
        _client = Client(codec="json")
    return _client


def handle_request(method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """Route one request; returns (HTTP status, JSON body). Framework-free so it is easy to test."""
    if method == "POST" and path == "/reports":
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return 400, {"error": "body must be JSON"}
        if not isinstance(params, dict) or not params.get("repository"):
            return 400, {"error": "repository is required"}
        try:
            job = client().submit(FUNCTION, params, background=True)
        except GearpyConnectionError as exc:
            return 503, {"error": f"job server unavailable: {exc}"}
        except GearpyError as exc:  # e.g. the server refused it (queue full)
            return 503, {"error": str(exc)}
        return 202, {"handle": job.handle}
    if method == "GET" and path.startswith("/reports/"):
        handle = path[len("/reports/") :]
        try:
            st = client().status(handle)
        except GearpyConnectionError as exc:
            return 503, {"error": f"job server unavailable: {exc}"}
        return 200, {
            "handle": st.handle,
            "known": st.known,
            "running": st.running,
            "numerator": st.numerator,
            "denominator": st.denominator,
        }
    return 404, {"error": "not found"}


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI entry point."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    status, data = handle_request(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), body)
    payload = json.dumps(data).encode() + b"\n"
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    with make_server(args.host, args.port, application) as httpd:
        print(f"serving on http://{args.host}:{httpd.server_port}/", flush=True)
        httpd.serve_forever()


if __name__ == "__main__":
    main()
