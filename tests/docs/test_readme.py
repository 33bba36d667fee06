"""README.md as a new user reads it: set-up in a virtual environment, the PHP snippet runs as written
(against a live gearpy-server and ``gearpy-worker --key atom1``), and the exit-code table of the guide
is the one the commands use (gearpy.exitcodes)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gearpy import exitcodes

from support.external import external_required, require_tool
from support.waits import wait_for_workers

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUIDE = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")


def test_setup_starts_with_a_virtual_environment():
    setup = README.split("## Set-up", 1)[1]
    first_block = re.search(r"```sh\n(.*?)```", setup, re.S)
    assert first_block is not None
    assert first_block.group(1).splitlines()[0] == "python3 -m venv .venv && . .venv/bin/activate"


def test_max_packet_size_has_one_bullet():
    bullets = [b for b in README.split("\n- ") if "--max-packet-size" in b]
    assert len(bullets) == 1, bullets


def test_report_worker_docstring_names_job_status():
    text = (ROOT / "examples" / "report_worker.py").read_text(encoding="utf-8")
    assert "gearpy-client job-status H:host:N" in text and "gearpy-client status H:" not in text


def test_atom_pointer_resolves_to_the_guide_section_with_the_md5_prefix():
    anchor = "docs/guide.md#several-applications-on-one-server-workers-keys"
    assert anchor in README
    section = GUIDE.split("## Several applications on one server (workers keys)", 1)[1].split("\n## ", 1)[0]
    assert "md5(<install dir><workers_key>)" in section


@pytest.mark.interop
def test_php_snippet_runs_as_written(gearpy_server, gearpy_worker):
    php = require_tool("php")
    mods = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30).stdout.split()
    if "gearman" not in mods:
        if external_required():
            pytest.fail("PHP's gearman extension is not loaded (php -m)")
        pytest.skip("PHP's gearman extension is not loaded (php -m)")
    block = re.search(r"```php\n(.*?)```", README, re.S)
    assert block is not None
    code = block.group(1)
    assert "'atom1-reverse'" in code  # the wire name, as other clients must spell it
    gearpy_worker("--key", "atom1", str(ROOT / "examples" / "tasks.py"))
    wait_for_workers(gearpy_server.address, {"atom1-reverse"})
    script = code.replace("<?php", "").replace("4730", str(gearpy_server.port))
    out = subprocess.run([php, "-r", script], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "olleh\n"), out.stderr


def test_guide_exit_code_table_is_gearpy_exitcodes():
    section = GUIDE.split("## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| .*? \| (\w+) \|$", section, re.M)
    assert [(int(code), who) for code, who in rows] == [(code, who) for code, who, _ in exitcodes.TABLE]
