"""The client over TLS: it verifies the server by default and presents its certificate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gearpy.client import Client
from gearpy.client.config import ClientConfig
from gearpy.errors import ConfigError, GearpyConnectionError


def _config(server, ca, cert=None, key=None) -> ClientConfig:
    return ClientConfig(
        servers=[server.address],
        ssl=True,
        ssl_ca_file=str(ca),
        ssl_certificate=cert and str(cert),
        ssl_key=key and str(key),
    )


@pytest.mark.slow
def test_client_submits_over_tls(tls_server, pki):
    with Client(config=_config(tls_server, pki.ca, pki.client_cert, pki.client_key)) as client:
        handle = client.submit("tls_job", b"payload", background=True).handle
        assert handle
        status = client.status(handle)
        assert status.known and not status.running


def test_client_refuses_a_server_it_cannot_verify(tls_server, pki):
    with Client(config=_config(tls_server, pki.rogue_ca, pki.client_cert, pki.client_key)) as client:
        with pytest.raises(GearpyConnectionError):
            client.submit("tls_job", b"x", background=True)


def test_cli_admin_over_tls_via_environment(tls_server, pki):
    env = dict(
        os.environ,
        GEARPY_SSL="1",
        GEARPY_SSL_CA_FILE=str(pki.ca),
        GEARPY_SSL_CERTIFICATE=str(pki.client_cert),
        GEARPY_SSL_KEY=str(pki.client_key),
    )
    out = subprocess.run(
        [sys.executable, "-m", "gearpy.client", "-s", tls_server.address, "version"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "0.1.0" in out.stdout


def test_tls_files_without_ssl_are_refused_not_sent_in_plaintext(gearpy_server, pki):
    """A CA file and certificate but no --ssl once meant a plaintext connection (issue 18)."""
    env = {
        **os.environ,
        "GEARPY_SSL_CA_FILE": str(pki.ca),
        "GEARPY_SSL_CERTIFICATE": str(pki.client_cert),
        "GEARPY_SSL_KEY": str(pki.client_key),
    }

    def ping() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "gearpy.client", "-s", gearpy_server.address, "ping"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)

    out = ping()
    assert out.returncode == 2, out.stdout + out.stderr
    assert "given without ssl" in out.stderr and out.stderr.count("\n") == 1
    env["GEARPY_SSL"] = "0"  # saying "no TLS" explicitly does not make the files mean plaintext
    out = ping()
    assert out.returncode == 2, out.stdout + out.stderr
    with pytest.raises(ConfigError, match="ssl_certificate, ssl_key given without ssl"):
        ClientConfig(servers=[gearpy_server.address], ssl_certificate="c.pem", ssl_key="k.pem")
