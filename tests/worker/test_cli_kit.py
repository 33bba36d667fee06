"""gearpy-worker on the shared CLI kit: exact lines and exit codes (issue #13 items 1, 7, 11, 12)."""

from __future__ import annotations

import re
import signal

import pytest
import yaml

from gearpy import exitcodes
from gearpy.worker.config import EXIT_IMPORT, EXIT_INTERRUPTED

from .test_cli import assert_one_line_error, run
from support.waits import wait_for_worker


def test_exit_codes_have_one_meaning_across_the_commands():
    assert EXIT_IMPORT == exitcodes.NO_TASKS == 6  # 3 is the client's "cannot connect"
    codes = [code for code, _, _ in exitcodes.TABLE]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["-s", "127.0.0.1:99999", "wtasks"],
            "gearpy-worker: Invalid value for '-s' / '--server': port 99999 is out of range (1-65535) "
            "in server address '127.0.0.1:99999'",
        ),
        (
            ["--metrics", "127.0.0.1:0", "wtasks"],
            "gearpy-worker: --metrics: port 0 is out of range (1-65535) in server address '127.0.0.1:0'",
        ),
    ],
)
def test_ports_outside_1_65535_are_usage_errors(workdir, args, line):
    out = run(workdir, *args)
    assert (out.returncode, out.stderr) == (exitcodes.USAGE, line + "\n")


def test_unknown_top_level_yaml_key_is_rejected(workdir):
    cfg = workdir / "gearpy.yml"
    cfg.write_text(yaml.safe_dump({"workers_keys": "atom1", "worker": {"concurrency": 2}}))
    assert_one_line_error(
        run(workdir, "--config", str(cfg), "wtasks"),
        exitcodes.USAGE,
        "config file: unknown key 'workers_keys' (did you mean 'workers_key'?)",
    )


@pytest.mark.slow
@pytest.mark.parametrize("processes", [[], ["--processes", "2"]])
def test_ctrl_c_exits_130_after_a_clean_stop(gearpy_server, start_worker, processes):
    worker = start_worker("-s", gearpy_server.address, *processes, "wtasks")
    wait_for_worker(gearpy_server.address, "upper", 2 if processes else 1)
    worker.signal(signal.SIGINT)
    assert worker.wait() == EXIT_INTERRUPTED == 130


def test_help_defaults_exit_codes_and_environment(workdir):
    out = run(workdir, "--help")
    assert out.returncode == 0
    text = out.stdout
    assert "``" not in text
    assert "6    cannot import the task modules" in text and "130  interrupted by Ctrl-C" in text
    assert "3    cannot connect" not in text  # the client's code is not listed for the worker
    assert "Environment: every setting is also a variable (GEARPY_" in text
    assert "GEARPY_CLIENT_ID," in " ".join(text.split())
    options = text.split("Options:")[1].split("\n\n")[0]
    for entry in re.split(r"\n  (?=-)", options.strip()):
        if not entry.startswith(("-h, --help", "-V, --version")):
            assert "[default: " in " ".join(entry.split()), entry
    assert "--concurrency INTEGER" in text and "[default: 1]" in " ".join(text.split())
