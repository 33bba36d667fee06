"""The shipped worker units: systemd template, its environment file, supervisord and circus examples."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.external import require_tool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def worker_binary() -> str:
    beside = Path(sys.executable).with_name("gearpy-worker")
    found = str(beside) if beside.exists() else shutil.which("gearpy-worker")
    assert found, "gearpy-worker is not installed as a command"
    return found


def print_config(args: list[str]) -> dict:
    """The effective config for ``args``; the shipped sample stands in for /etc/gearpy/gearpy.yml."""
    sample = str(DEPLOY / "gearpy.yml")
    args = [a.replace("/etc/gearpy/gearpy.yml", sample) for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEARPY_")}
    out = subprocess.run(
        [sys.executable, "-m", "gearpy.worker", *args, "--print-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["worker"]


@pytest.mark.external
def test_template_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = require_tool("systemd-analyze")
    text = (DEPLOY / "gearpy-worker@.service").read_text()
    assert "/usr/local/bin/gearpy-worker --key=%i" in text
    # verify needs an instance name and checks that ExecStart's binary exists.
    unit = tmp_path / "gearpy-worker@atom1.service"
    unit.write_text(text.replace("/usr/local/bin/gearpy-worker", worker_binary()))
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert "gearpy-worker@" not in report, report


@pytest.mark.slow
def test_unit_stops_gracefully_and_restarts_the_right_exits():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "gearpy-worker@.service")
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"].split() == ["2", "3"]
    assert service["RestartForceExitStatus"] == "4"
    assert "StartLimitBurst" in unit["Unit"] and "StartLimitIntervalSec" in unit["Unit"]
    # TimeoutStopSec must outlast the shutdown timeout of the shipped environment file.
    opts = environment_options()
    cfg = print_config(["--key=atom1", *opts])
    assert int(service["TimeoutStopSec"]) > cfg["shutdown_timeout"]


def environment_options() -> list[str]:
    values = {}
    for line in (DEPLOY / "gearpy-worker.default").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            # systemd strips the quotes, then $VAR (unbraced) splits the value at whitespace.
            values[name] = value.strip().strip('"').split()
    return values["WORKER_OPTIONS"] + values["WORKER_MODULES"]


def test_environment_file_is_accepted_by_the_worker():
    cfg = print_config(["--key=atom1", *environment_options()])
    assert cfg["workers_key"] == "atom1"
    assert cfg["modules"] == ["myapp.jobs"]
    assert cfg["processes"] == 2 and cfg["concurrency"] == 4


@pytest.mark.slow
def test_shared_sample_config_is_accepted_by_the_worker():
    cfg = print_config(["--config", str(DEPLOY / "gearpy.yml"), "x"])
    assert cfg["servers"] == ["127.0.0.1:4730"]


@pytest.mark.slow
def test_supervisord_and_circus_commands_are_valid():
    sup = configparser.RawConfigParser()
    sup.read(DEPLOY / "supervisord" / "gearpy-worker.conf")
    section = next(s for s in sup.sections() if s.startswith("program:"))
    argv = shlex.split(sup[section]["command"])
    assert argv[0].endswith("gearpy-worker")
    assert "4" in sup[section]["exitcodes"].split(",")
    assert print_config(argv[1:])["workers_key"] == "atom1"

    circus = configparser.RawConfigParser()
    circus.read(DEPLOY / "circus" / "gearpy-worker.ini")
    section = next(s for s in circus.sections() if s.startswith("watcher:"))
    assert circus[section]["stop_signal"] == "TERM"
    cfg = print_config(shlex.split(circus[section]["args"]))
    assert int(circus[section]["graceful_timeout"]) > cfg["shutdown_timeout"]
