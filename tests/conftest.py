"""The project's own fixtures and rules, on top of the public ``gearpy.testing`` plugin.

``gearpy.testing`` gives every user ``gearpy_server``, ``gearpy_client`` and ``gearpy_worker``. This
file adds what only gearpy's suite needs (helpers in ``tests/support``):

* ``gearmand_server`` / ``gearman_server`` - the reference gearmand, alone or next to gearpy;
* ``make_server`` - gearpy-servers with extra flags, their logs checked for tracebacks;
* ``session`` - raw protocol connections (ECHO barrier, admin) to any server;
* ``pki`` / ``tls_args`` / ``tls_server`` - TLS material and a TLS server;
* ``php`` / ``perl`` - the interpreters with their Gearman libraries, ``procs`` - background
  processes (third-party workers) stopped after the test;
* ``service`` / ``server_service`` / ``service_of`` / ``fault_proxy`` - real queue stores, each test
  with its own table or key prefix (use them for anything that needs MariaDB, PostgreSQL or Redis);
* the markers (``slow``, ``interop``, ``external``; see ``tests/README.md``) and the CI rule:
  under ``GEARPY_REQUIRE_EXTERNAL=1`` every skip is reported as a failure.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gearpy.testing import ServerProcess, gearpy_server_argv

from support.external import REQUIRE_ENV, external_required, require_tool
from support.pki import Pki, make_pki, tls_server_args
from support.raw import Session
from support.servers import server_of
from support.stores import KINDS, FaultProxy, Service, make_service
from support.workers import stop_procs

# ---------------------------------------------------------------- servers


@pytest.fixture
def gearmand_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A live gearmand (the reference implementation) on an ephemeral loopback port."""
    server = server_of("gearmand", tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["gearpy", "gearmand"])
def gearman_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A live server of each kind: behaviour tested with it must hold on gearpy and on gearmand."""
    server = server_of(request.param, tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start gearpy-servers with extra flags; each is stopped after the test, its log free of tracebacks."""
    started: list[ServerProcess] = []

    def make(*args: str) -> ServerProcess:
        server = ServerProcess(gearpy_server_argv(*args)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        log = server.log()
        server.stop()
        assert "Traceback" not in log, log


@pytest.fixture
def session() -> Iterator[Callable[[ServerProcess], Session]]:
    """``session(server)``: a raw protocol connection (:class:`support.raw.Session`), closed afterwards."""
    opened: list[Session] = []

    def factory(server: ServerProcess) -> Session:
        s = Session(server)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA with server and client certificates, and a rogue CA with its own client."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_args(pki: Pki) -> Callable[..., list[str]]:
    """``tls_args(*extra)``: gearpy-server flags for TLS requiring test-CA client certificates."""
    return lambda *extra: tls_server_args(pki, *extra)


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[ServerProcess]:
    """A live gearpy-server on TLS that requires client certificates from the test CA."""
    server = ServerProcess(gearpy_server_argv(*tls_server_args(pki))).start()
    yield server
    server.stop()


# ---------------------------------------------------------------- queue stores


def _private_service(kind: str, tmp_path: Path) -> Iterator[Service]:
    svc = make_service(kind, tmp_path)
    try:
        yield svc
    finally:
        svc.cleanup()


@pytest.fixture(params=KINDS)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """Each store kind in turn, with a private table/prefix dropped afterwards."""
    yield from _private_service(request.param, tmp_path)


@pytest.fixture(params=[k for k in KINDS if k != "sqlite"])
def server_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """The client/server databases only (MariaDB, PostgreSQL, Redis)."""
    yield from _private_service(request.param, tmp_path)


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[int], FaultProxy]]:
    """Factory of started :class:`FaultProxy` objects, all stopped at the end of the test."""
    proxies: list[FaultProxy] = []

    def make(port: int) -> FaultProxy:
        proxy = FaultProxy(port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def service_of(tmp_path: Path) -> Iterator[Callable[[str], Service]]:
    """Factory: the :class:`Service` of one named kind (for tests about a single backend)."""
    made: list[Service] = []

    def make(kind: str) -> Service:
        svc = make_service(kind, tmp_path / f"{kind}-{len(made)}")
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.cleanup()


# ---------------------------------------------------------------- third-party tools


@pytest.fixture
def php() -> str:
    """The php binary, with the gearman extension loaded."""
    path = require_tool("php")
    mods = subprocess.run([path, "-m"], capture_output=True, text=True, timeout=30).stdout.split()
    if "gearman" not in mods:
        msg = "PHP's gearman extension is not loaded (php -m)"
        if external_required():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def perl() -> str:
    """The perl binary, with Gearman::Client and Gearman::Worker installed."""
    path = require_tool("perl")
    probe = subprocess.run(
        [path, "-MGearman::Client", "-MGearman::Worker", "-e", "1"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        require_tool("perl-Gearman-Client")  # skips locally, fails in CI: install libgearman-client-perl
    return path


@pytest.fixture
def procs() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Background processes (workers) that are always stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
        started.append(p)
        return p

    yield start
    stop_procs(*started)


# ---------------------------------------------------------------- markers

# the real gearmand; libgearman's `gearman -w`; PHP's extension and Perl's modules
INTEROP_FIXTURES = {"gearmand_server", "gearman_worker", "php", "perl"}
STORE_FIXTURES = {"service", "server_service"}  # parametrized by store kind; all but sqlite are services


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what a test's fixtures imply: gearmand or libgearman tools -> interop; a database -> external.

    Tests that call a third-party tool themselves carry the marker in their module (see tests/README.md).
    """
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if fixtures & INTEROP_FIXTURES or params.get("gearman_server") == "gearmand":
            item.add_marker(pytest.mark.interop)
        if any(params.get(name, "sqlite") != "sqlite" for name in fixtures & STORE_FIXTURES):
            item.add_marker(pytest.mark.external)


# ---------------------------------------------------------------- CI rule


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under GEARPY_REQUIRE_EXTERNAL, a skipped test is reported as failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and external_required() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under {REQUIRE_ENV}=1: {report.longrepr}"
