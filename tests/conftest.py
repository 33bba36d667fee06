"""Shared fixtures. Live-server fixtures come from the ``gearpy.testing`` plugin.

``pki``: throw-away TLS material made with the ``openssl`` command line (no network, no shell).
``php`` / ``perl``: the interpreters, with their Gearman libraries checked (skip locally, fail in CI).
``procs``: background processes (third-party workers) stopped after the test.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gearpy.testing import external_required, require_tool


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def _ca(openssl: str, d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.pem"
    _run(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(crt),
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
    )
    return crt, key


def _leaf(openssl: str, d: Path, name: str, ca: tuple[Path, Path], san: str | None) -> tuple[Path, Path]:
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    _run(
        openssl,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
    )
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _run(
        openssl,
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return crt, key


def make_pki(d: Path) -> Pki:
    openssl = require_tool("openssl")
    ca = _ca(openssl, d, "test-ca")
    rogue = _ca(openssl, d, "rogue-ca")
    server = _leaf(openssl, d, "server", ca, "IP:127.0.0.1,DNS:localhost")
    client = _leaf(openssl, d, "ops", ca, None)
    rogue_client = _leaf(openssl, d, "intruder", rogue, None)
    return Pki(ca[0], server[0], server[1], client[0], client[1], rogue[0], rogue_client[0], rogue_client[1])


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    """A test CA with server and client certificates, and a rogue CA with its own client."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_server_args(pki: Pki, *extra: str) -> list[str]:
    """gearpy-server flags for TLS with client certificates required (the test CA)."""
    return [
        "--ssl",
        "--ssl-certificate",
        str(pki.server_cert),
        "--ssl-key",
        str(pki.server_key),
        "--ssl-ca-file",
        str(pki.ca),
        *extra,
    ]


@pytest.fixture
def tls_args(pki):
    """``tls_args(*extra)``: gearpy-server flags for TLS requiring test-CA client certificates."""
    return lambda *extra: tls_server_args(pki, *extra)


@pytest.fixture
def tls_server(pki):
    """A live gearpy-server on TLS that requires client certificates from the test CA."""
    from gearpy.testing import ServerProcess, gearpy_server_argv

    server = ServerProcess(gearpy_server_argv(*tls_server_args(pki))).start()
    yield server
    server.stop()


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
def procs():
    """Background processes (workers) that are always stopped after the test."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)
