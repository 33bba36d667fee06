"""The Python snippets of docs/guide.md and README.md run as written against a live server.

Every ```python block that uses ``gearpy.client`` is executed with ``GEARPY_SERVERS`` pointing at the
``gearpy_server`` fixture, with ``examples/tasks.py`` served plainly and under the key ``atom1``.
The guide's links to files in the repository must resolve, and the metric names it lists must be
the ones the server and worker export.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.waits import wait_for_workers, wait_until

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide.md"
TEXT = GUIDE.read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLIENT_BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", TEXT + README, re.S) if "gearpy.client" in b]


def test_guide_has_python_client_snippets() -> None:
    assert len(CLIENT_BLOCKS) >= 2


@pytest.mark.slow
def test_python_snippets_run(gearpy_server, gearpy_worker, monkeypatch, capsys) -> None:
    tasks = str(ROOT / "examples" / "tasks.py")
    gearpy_worker(tasks)
    gearpy_worker("--key=atom1", tasks)
    wait_for_workers(gearpy_server.address, {"reverse", "add", "atom1-reverse", "atom1-add"}, timeout=60.0)
    monkeypatch.setenv("GEARPY_SERVERS", gearpy_server.address)
    monkeypatch.delenv("GEARPY_WORKERS_KEY", raising=False)
    for i, block in enumerate(CLIENT_BLOCKS):
        exec(compile(block, f"{GUIDE}:python-block-{i}", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert "b'olleh'" in out and "{'sum': 5}" in out and "[{'sum': 0}, {'sum': 2}, {'sum': 4}]" in out


@pytest.mark.parametrize("path", sorted(set(re.findall(r"`((?:deploy|examples)/\w[\w./@-]*)`", TEXT))))
def test_repository_paths_exist(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/guide.md names {path}, which does not exist"


def test_metric_names_match_the_code() -> None:
    section = TEXT[TEXT.index("\n## Metrics") : TEXT.index("\n## TLS")]
    documented = {re.sub(r"_total$", "", n) for n in re.findall(r"`(gear(?:man|py)_\w+)`", section)}
    documented = {re.sub(r"_bucket$", "", n) for n in documented}
    sources = "".join((ROOT / "gearpy" / p / "metrics.py").read_text() for p in ("server", "worker"))
    defined = set(re.findall(r'(?:Counter|Histogram|Gauge|GaugeMetricFamily)\(\s*"(\w+)"', sources))
    assert defined, "no metric definitions found"
    assert defined - documented == set(), "exported but not in docs/guide.md"
    assert documented - defined == set(), "in docs/guide.md but not exported"


def test_guide_hook_example_runs_in_gearpy_worker(gearpy_server, gearpy_worker, tmp_path) -> None:
    """The guide's worker-hook example, saved as a module and added with ``--hook``."""
    from gearpy.client import submit
    from gearpy.errors import JobException

    block = next(b for b in re.findall(r"```python\n(.*?)```", TEXT, re.S) if "(Hook):" in b)
    hooks_dir = tmp_path / "hookmod"
    hooks_dir.mkdir()
    (hooks_dir / "guide_hooks.py").write_text(block)
    name = re.search(r"class (\w+)\(Hook\)", block).group(1)
    gearpy_worker(
        "--hook",
        f"guide_hooks:{name}",
        str(ROOT / "examples" / "tasks.py"),
        env={"PYTHONPATH": str(hooks_dir)},
    )
    wait_for_workers(gearpy_server.address, {"add"})
    servers = [gearpy_server.address]
    assert submit("add", {"a": 1, "b": 2}, codec="json", servers=servers, timeout=30) == {"sum": 3}
    with pytest.raises(JobException):
        submit("add", {}, codec="json", servers=servers, timeout=30)
    log = tmp_path / "worker-0.log"
    wait_until(lambda: "exception: KeyError: 'a'" in log.read_text(), "the hook's log line")
    assert re.search(r"H:\S+ exception: KeyError: 'a'", log.read_text()), log.read_text()


def test_acl_example_loads_and_means_what_the_text_says() -> None:
    import yaml

    from gearpy.server.acl import FunctionAcl

    block = re.search(r"```yaml\n(# /etc/gearpy/acl.yml.*?)```", TEXT, re.S)
    assert block, "the Security section's ACL example is missing"
    acl = FunctionAcl(yaml.safe_load(block.group(1)))
    worker, webapp = "CN=imaging-worker,O=acme", "CN=webapp,O=acme"
    assert acl.allowed(worker, "register", b"thumbnail") and not acl.allowed(worker, "register", b"r")
    assert not acl.allowed(worker, "invoke", b"resize")
    assert acl.allowed(webapp, "invoke", b"report_daily") and not acl.allowed(webapp, "register", b"resize")
    assert not acl.allowed(None, "invoke", b"resize") and not acl.allowed("CN=other", "register", b"resize")
