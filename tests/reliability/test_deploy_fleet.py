"""deploy/fleet/ (three hosts, docs/guide.md "Running on several machines") is accepted as shipped."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FLEET = Path(__file__).resolve().parents[2] / "deploy" / "fleet"
HOSTS = ["gearman1", "gearman2", "gearman3"]


def environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments and blanks skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.strip('"')
    return env


def print_config(program: str, args: list[str], env: dict[str, str], tmp_path: Path) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GEARPY_")}
    out = subprocess.run(
        [sys.executable, "-m", program, *args, "--print-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.mark.parametrize("host", HOSTS)
def test_each_host_runs_with_its_own_store(host: str, tmp_path: Path) -> None:
    env = environment_file(FLEET / f"{host}.default")
    args = [
        a.replace("/etc/gearpy/gearpy.yml", str(FLEET / "gearpy.yml")) for a in shlex.split(env.pop("PARAMS"))
    ]
    cfg = print_config("gearpy.server", args, env, tmp_path)["server"]
    assert cfg["listen"] == "*" and cfg["port"] == 4730
    assert cfg["queue"] == env["GEARPY_QUEUE"]  # the host's own store wins over the shared file
    assert (cfg["keepalive_idle"], cfg["keepalive_interval"], cfg["keepalive_count"]) == (60, 10, 6)
    commented = [line for line in (FLEET / f"{host}.default").read_text().splitlines() if "?table=" in line]
    assert commented and all(f"gearpy_queue_{host}" in line for line in commented)


def test_workers_and_clients_list_the_three_servers_in_one_order(tmp_path: Path) -> None:
    config = str(FLEET / "gearpy.yml")
    worker = print_config("gearpy.worker", ["--config", config], {}, tmp_path)
    expected = [f"{h}:4730" for h in HOSTS]
    assert worker["worker"]["servers"] == expected
    data = yaml.safe_load((FLEET / "gearpy.yml").read_text())
    assert data["servers"] == expected
