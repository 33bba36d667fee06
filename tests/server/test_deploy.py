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


def _print_config(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "gearpy.server", *args, "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["server"]


def test_environment_file_params_are_accepted_by_the_server():
    text = (DEPLOY / "gearpy-server.default").read_text()
    params = [line for line in text.splitlines() if line.lstrip("#").startswith("PARAMS=")]
    active = [line for line in params if line.startswith("PARAMS=")]
    assert len(active) == 1 and len(params) == 3  # the default and two commented examples
    configs = [_print_config(line.lstrip("#").split("=", 1)[1].strip('"').split()) for line in params]
    for cfg in configs:
        assert cfg["queue"].startswith("sqlite:///")
    # Safe by default (issue 18): loopback only, admin commands from local connections only.
    default = configs[params.index(active[0])]
    assert default["listen"] == "127.0.0.1"
    assert default["admin_allow"] == ["loopback"]
    # The examples that listen everywhere: one with TLS, client certificates and ACLs, one open.
    tls, open_ = (c for c in configs if c is not default)
    assert tls["listen"] == "*" and tls["ssl"] and tls["ssl_ca_file"] and tls["acl_file"]
    assert open_["listen"] == "*" and not open_["ssl"] and not open_["admin_allow"]


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
