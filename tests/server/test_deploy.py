"""The shipped server unit, its environment file and the sample config are valid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.external import require_tool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.external
def test_server_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = require_tool("systemd-analyze")
    binary = shutil.which("gearpy-server")
    assert binary, "gearpy-server is not installed as a command"
    unit = (DEPLOY / "gearpy-server.service").read_text().replace("/usr/local/bin/gearpy-server", binary)
    path = tmp_path / "gearpy-server.service"
    path.write_text(unit)
    out = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "gearpy-server.service" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_environment_file_params_are_accepted_by_the_server():
    text = (DEPLOY / "gearpy-server.default").read_text()
    params = next(line for line in text.splitlines() if line.startswith("PARAMS="))
    args = params.split("=", 1)[1].strip('"').split()
    out = subprocess.run(
        [sys.executable, "-m", "gearpy.server", *args, "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)["server"]
    assert cfg["listen"] == "*"
    assert cfg["queue"].startswith("sqlite:///")


def test_sample_config_keys_are_all_known(tmp_path):
    cfg = tmp_path / "gearpy.yml"
    shutil.copy(DEPLOY / "gearpy.yml", cfg)
    out = subprocess.run(
        [sys.executable, "-m", "gearpy.server", "--config", str(cfg), "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    sample = yaml.safe_load(cfg.read_text())["server"]
    effective = yaml.safe_load(out.stdout)["server"]
    for key, value in sample.items():
        assert effective[key] == value
