"""A store URL's ``?table=`` / ``?prefix=`` reaches the store from the real command line and YAML file.

Issue 17 item 1: the unset ``--queue-table`` (None) overwrote the URL's table, so two servers given
separate tables by URL shared the default one. Every store is driven through a real
``gearpy-server`` process: a background job is submitted (acknowledged only once committed), the
server is stopped, and the job is looked for in the table or key prefix it must have gone to.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gearpy.client import Client
from gearpy.server.stores import make_backend
from gearpy.testing import ServerProcess, gearpy_server_argv

from support.stores import Service, make_service


def _url_with(service: Service, name: str | None) -> str:
    """The service's URL naming table (or Redis prefix) ``name``; None = the store's default."""
    base = service.url.split("?", 1)[0]
    if name is None:
        return base
    return f"{base}?{'prefix' if service.kind == 'redis' else 'table'}={name}"


def _functions_in(url: str) -> list[bytes]:
    """Function names of the jobs stored at ``url`` (an absent table holds none)."""
    backend, _, _ = make_backend(url)
    backend.connect()
    try:
        return [job.function for job in backend.load()]
    except Exception:
        return []  # the table does not exist
    finally:
        backend.close()


def _submit_one(args: list[str], tmp_path: Path) -> bytes:
    """Start gearpy-server with ``args``, store one background job, stop it; return the function."""
    function = f"tbl_{uuid.uuid4().hex[:10]}".encode()
    server = ServerProcess(gearpy_server_argv(*args), log_path=tmp_path / f"server-{function.decode()}.log")
    server.start()
    try:
        with Client([server.address]) as client:
            client.submit(function.decode(), b"payload", background=True, timeout=30)
    finally:
        server.stop()
    return function


@pytest.fixture
def other(service: Service, tmp_path: Path) -> Iterator[Service]:
    """A second private table / prefix in the same database, for the explicit override."""
    svc = make_service(service.kind, tmp_path / "other")
    yield svc
    svc.cleanup()


@pytest.fixture
def default_table_cleanup(service: Service) -> Iterator[list[bytes]]:
    """Remove our jobs from the store's shared default table should one land there (the bug)."""
    functions: list[bytes] = []
    yield functions
    backend, _, _ = make_backend(_url_with(service, None))
    backend.connect()
    try:
        ours = [job.store_id for job in backend.load() if job.function in functions]
        if ours:
            backend.write_batch([], ours)
    except Exception:
        pass
    finally:
        backend.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", ["cli", "yaml", "empty-env"])
def test_url_table_is_used(
    service: Service,
    source: str,
    tmp_path: Path,
    default_table_cleanup: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if source == "yaml":
        cfg = tmp_path / "gearpy.yml"
        cfg.write_text(yaml.safe_dump({"server": {"queue": service.url}}))
        args = ["--config", str(cfg)]
    else:
        args = ["-q", service.url]
    if source == "empty-env":  # ``GEARPY_QUEUE_TABLE=`` in an environment file means "not set"
        monkeypatch.setenv("GEARPY_QUEUE_TABLE", "")
    function = _submit_one(args, tmp_path)
    default_table_cleanup.append(function)
    assert function in _functions_in(service.url), f"job not in {service.name!r} named by the URL"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", ["cli", "yaml", "env"])
def test_explicit_queue_table_wins_over_the_url(
    service: Service,
    other: Service,
    source: str,
    tmp_path: Path,
    default_table_cleanup: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = tmp_path / "gearpy.yml"
    if source == "cli":
        args = ["-q", service.url, "--queue-table", other.name]
    elif source == "yaml":
        cfg.write_text(yaml.safe_dump({"server": {"queue": service.url, "queue_table": other.name}}))
        args = ["--config", str(cfg)]
    else:
        # The environment ranks above the YAML file, the URL in the file below both.
        cfg.write_text(yaml.safe_dump({"server": {"queue": service.url}}))
        args = ["--config", str(cfg)]
    if source == "env":
        monkeypatch.setenv("GEARPY_QUEUE_TABLE", other.name)
    function = _submit_one(args, tmp_path)
    default_table_cleanup.append(function)
    assert function in _functions_in(_url_with(service, other.name))
    assert function not in _functions_in(service.url)
