"""Throw-away TLS material made with the ``openssl`` command line (no network, no shell).

:func:`make_pki` builds a test CA with a server certificate (127.0.0.1 / localhost) and an ``ops``
client certificate, plus a rogue CA with its own client, for tests that must be refused.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.external import require_tool


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
    ca_key: Path


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


def _leaf(
    openssl: str, d: Path, name: str, ca: tuple[Path, Path], san: str | None, subj: str = ""
) -> tuple[Path, Path]:
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
        subj or f"/CN={name}",
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
    return Pki(
        ca[0], server[0], server[1], client[0], client[1], rogue[0], rogue_client[0], rogue_client[1], ca[1]
    )


def leaf_certificate(pki: Pki, d: Path, name: str, subj: str) -> tuple[Path, Path]:
    """A client certificate with subject ``subj`` (openssl ``-subj`` syntax) signed by the test CA."""
    return _leaf(require_tool("openssl"), d, name, (pki.ca, pki.ca_key), None, subj)


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


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client-side TLS context trusting ``ca``, presenting ``cert``/``key`` when given."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx
