"""The curl examples of docs/guide.md's "Dashboard and HTTP API" section run as written."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from support.dashboard import run_worker, stop_worker
from support.external import require_tool

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
SECTION = TEXT[TEXT.index("\n## Dashboard and HTTP API") : TEXT.index("\n## Limits")]


def _commands() -> list[str]:
    """The loopback curl commands of the section's sh blocks, continuation lines joined."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", SECTION, re.S):
        for cmd in block.replace("\\\n", " ").splitlines():
            cmd = cmd.split("  #", 1)[0].strip()
            if cmd.startswith("curl") and "127.0.0.1:8470" in cmd:
                out.append(cmd)
    return out


def test_the_guides_screenshots_exist():
    shots = re.findall(r"\]\((dashboard-\w+\.png)\)", SECTION)
    assert len(shots) == 8
    for name in shots:
        assert (ROOT / "docs" / name).stat().st_size > 10_000


@pytest.mark.external  # curl
def test_the_guides_curl_examples(make_dash, tmp_path):
    curl = require_tool("curl")
    commands = _commands()
    assert len(commands) == 6
    dash = make_dash("--job-handle-prefix", "H:host")
    worker = run_worker(dash.server, str(ROOT / "examples" / "tasks.py"), log_path=str(tmp_path / "w.log"))
    try:
        dash.wait_for(lambda: dash.get("/api/v1/workers").json["workers"], what="the worker")
        replies = []
        for cmd in commands:
            argv = shlex.split(cmd.replace("127.0.0.1:8470", f"127.0.0.1:{dash.http_port}"))
            argv[0] = curl
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, (cmd, proc.stderr)
            replies.append(json.loads(proc.stdout))
    finally:
        stop_worker(worker)
    reverse, add, resize, listing, cancel, maxqueue = replies
    assert (reverse["handle"], reverse["result"], reverse["result_base64"]) == (
        "H:host:1",
        "olleh",
        "b2xsZWg=",
    )
    assert add["result"] == '{"sum":5}'
    assert resize == {"handle": "H:host:3", "function": "resize", "background": True}
    assert [j["handle"] for j in listing["jobs"]] == ["H:host:3"]
    assert cancel == {"cancelled": "H:host:3"}
    assert maxqueue["maxqueue"] == {"high": 10000, "normal": 10000, "low": 10000}
