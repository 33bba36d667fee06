"""``gearpy-worker`` command line: help, exit codes, one-line errors, config layering."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gearpy.worker.config import EXIT_IMPORT, EXIT_USAGE


def run(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GEARPY_")}
    full_env.update(WTEST_DIR=str(workdir), PYTHONPATH=str(workdir), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "gearpy.worker", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(out: subprocess.CompletedProcess, code: int, needle: str) -> None:
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("gearpy-worker: ") and needle in lines[0]
    assert "Traceback" not in out.stderr


def test_help_documents_options_and_exit_codes(workdir):
    out = run(workdir, "--help")
    assert out.returncode == 0
    for text in (
        "--server",
        "--key",
        "--concurrency",
        "--processes",
        "--max-jobs",
        "--max-memory",
        "--shutdown-timeout",
        "--log-format",
        "--print-config",
        "Exit codes:",
        "4  recycled",
        "3  cannot import",
    ):
        assert text in out.stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["no_such_module"], EXIT_IMPORT, "cannot import no_such_module: ModuleNotFoundError"),
        (["os"], EXIT_IMPORT, "os holds no @task"),
        (["wtasks:nothing"], EXIT_IMPORT, "wtasks has no attribute 'nothing'"),
        (["wtasks:DIR"], EXIT_IMPORT, "wtasks:DIR is not a @task"),
        (["-f", "nope", "wtasks"], EXIT_IMPORT, "no task named 'nope'"),
        ([], EXIT_USAGE, "no task module given"),
        (["--bogus", "wtasks"], EXIT_USAGE, "No such option"),
        (["-c", "0", "wtasks"], EXIT_USAGE, "concurrency must be at least 1"),
        (["-c", "many", "wtasks"], EXIT_USAGE, "many"),
        (["-s", "host:notaport", "wtasks"], EXIT_USAGE, "invalid port"),
        (["--config", "/nonexistent/gearpy.yml", "wtasks"], EXIT_USAGE, "cannot read config file"),
        (["--log-level", "LOUD", "wtasks"], EXIT_USAGE, "unknown log level"),
        # TLS files without --ssl would connect in plaintext (issue 18): refused before connecting.
        (
            ["--ssl-ca-file", "ca.pem", "--ssl-certificate", "c.pem", "--ssl-key", "k.pem", "wtasks"],
            EXIT_USAGE,
            "ssl_ca_file, ssl_certificate, ssl_key given without ssl",
        ),
    ],
)
def test_mistakes_are_one_line_and_a_documented_code(workdir, args, code, needle):
    assert_one_line_error(run(workdir, *args), code, needle)


@pytest.mark.slow
def test_broken_task_module_is_exit_3(workdir):
    (workdir / "broken.py").write_text("import does_not_exist_either\n")
    assert_one_line_error(run(workdir, "broken"), EXIT_IMPORT, "cannot import broken")


@pytest.mark.slow
def test_print_config_layers_file_env_and_flags(workdir):
    cfg = workdir / "gearpy.yml"
    cfg.write_text(
        "servers: ['gm1:4730', 'gm2']\n"
        "workers_key: fromfile\n"
        "worker:\n  concurrency: 3\n  max_jobs: 50\n  modules: [wtasks]\n"
    )
    out = run(
        workdir,
        "--config",
        str(cfg),
        "--key",
        "fromflag",
        "--print-config",
        env={"GEARPY_CONCURRENCY": "7", "GEARPY_MAX_MEMORY": "256"},
    )
    assert out.returncode == 0, out.stderr
    shown = yaml.safe_load(out.stdout)["worker"]
    assert shown["servers"] == ["gm1:4730", "gm2"]
    assert shown["workers_key"] == "fromflag"  # flag beats file
    assert shown["concurrency"] == 7  # environment beats file
    assert shown["max_jobs"] == 50  # file beats default
    assert shown["max_memory"] == 256.0
    assert shown["modules"] == ["wtasks"]
    assert shown["processes"] is None


@pytest.mark.slow
def test_defaults_without_config(workdir):
    out = run(workdir, "--print-config", "wtasks")
    shown = yaml.safe_load(out.stdout)["worker"]
    assert shown["servers"] == ["127.0.0.1:4730"]
    assert shown["concurrency"] == 1 and shown["shutdown_timeout"] == 30.0


def test_console_script_and_version(workdir):
    exe = Path(sys.executable).with_name("gearpy-worker")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "gearpy.worker"]
    out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("gearpy-worker ")
