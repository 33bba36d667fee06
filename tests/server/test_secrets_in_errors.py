"""Passwords never reach the terminal, even when the store URL is malformed (issue 18 item 10)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.stores import MYSQL, reachable

SECRET = "S3cretPw"
MALFORMED = [
    f"mysql:/root:{SECRET}@127.0.0.1:3306/test",  # one slash: not a URL, read as a gearmand type
    f"MYSQL:root:{SECRET}@127.0.0.1/test",
    f"root:{SECRET}@127.0.0.1/test",  # no scheme at all
    f"mysql://root:{SECRET}[x@127.0.0.1/test",  # urlsplit: "Invalid IPv6 URL"
    f"redis://:{SECRET}@[::1/0",
    f"mysql://root:{SECRET}@127.0.0.1:33x06/test",
]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("url", MALFORMED)
def test_server_never_prints_the_password_of_a_malformed_url(url: str) -> None:
    out = _run("gearpy.server", "--port", "1", "-q", url)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert SECRET.lower() not in text.lower(), text
    assert "Traceback" not in text and text.count("\n") == 1, text
    # --print-config shows the URL without checking it: redacted, whatever its shape.
    out = _run("gearpy.server", "-q", url, "--print-config")
    text = out.stdout + out.stderr
    assert SECRET.lower() not in text.lower(), text
    assert "Traceback" not in text, text


@pytest.mark.parametrize("url", MALFORMED)
def test_takeover_never_prints_the_password(url: str, tmp_path) -> None:
    source = f"sqlite://{tmp_path}/gearmand.db"
    for args in (["--from-gearmand", url, "--to", source], ["--from-gearmand", source, "--to", url]):
        out = _run("gearpy.server.stores.takeover", *args)
        text = out.stdout + out.stderr
        assert out.returncode == 1, text
        assert SECRET.lower() not in text.lower(), text
        assert text.startswith("takeover failed: "), text


@pytest.mark.external
def test_takeover_scrubs_a_password_from_driver_errors(tmp_path) -> None:
    """Whatever a driver's error says is scrubbed of both URLs' passwords before it is printed.

    MariaDB names the missing database in its error; here that name equals the password of the
    other URL, which is how a password echoed by a driver would look.
    """
    if not reachable(MYSQL):
        pytest.skip("MariaDB is not reachable at 127.0.0.1:3306")
    out = _run(
        "gearpy.server.stores.takeover",
        "--from-gearmand",
        f"mysql://root@127.0.0.1:3306/{SECRET}",
        "--to",
        f"redis://:{SECRET}@127.0.0.1:6379/0",
    )
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "Unknown database" in text, text  # the driver's own words are kept
    assert SECRET.lower() not in text.lower(), text
