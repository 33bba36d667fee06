"""``can_do_timeout_unit`` is an option like every other: flag, GEARPY_* variable, config file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # several interpreter start-ups


def _print_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gearpy.server", "--print-config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_default_flag_env_and_file(tmp_path):
    assert "can_do_timeout_unit: ms" in _print_config().stdout
    assert "can_do_timeout_unit: s\n" in _print_config("--can-do-timeout-unit", "s").stdout
    assert "can_do_timeout_unit: s\n" in _print_config(env={"GEARPY_CAN_DO_TIMEOUT_UNIT": "s"}).stdout
    shared = tmp_path / "shared.yaml"
    shared.write_text("can_do_timeout_unit: s\n")  # top level: server and worker read it
    assert "can_do_timeout_unit: s\n" in _print_config("--config", str(shared)).stdout
    section = tmp_path / "section.yaml"
    section.write_text("server:\n  can_do_timeout_unit: s\n")
    assert "can_do_timeout_unit: s\n" in _print_config("--config", str(section)).stdout
    # The flag wins over the environment.
    out = _print_config("--can-do-timeout-unit", "ms", env={"GEARPY_CAN_DO_TIMEOUT_UNIT": "s"})
    assert "can_do_timeout_unit: ms" in out.stdout


def test_bad_unit_is_a_usage_error():
    bad_flag = _print_config("--can-do-timeout-unit", "minutes")
    assert bad_flag.returncode == 2 and "minutes" in bad_flag.stderr and "Traceback" not in bad_flag.stderr
    bad_env = _print_config(env={"GEARPY_CAN_DO_TIMEOUT_UNIT": "minutes"})
    assert bad_env.returncode == 2
    assert bad_env.stderr.strip().splitlines() == [
        "gearpy-server: can_do_timeout_unit: 'minutes' is not ms or s"
    ]
