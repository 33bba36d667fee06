"""The shared pieces of the three commands: one boolean parser, one place for defaults."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gearpy import defaults
from gearpy.config import coerce, parse_bool
from gearpy.errors import ConfigError
from gearpy.server.stores.url import parse_options, parse_url

PACKAGE = Path(__file__).resolve().parents[1] / "gearpy"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("YES", True), (" on ", True), ("0", False), ("off", False), ("", False)],
)
def test_environment_and_store_urls_read_booleans_alike(text, value):
    assert parse_bool(text) is value
    assert coerce("GEARPY_SSL", bool, text) is value
    url = parse_url(f"redis://127.0.0.1:6379/0?require_aof={text}")
    # An empty URL option is "not given" (its default, off); the others go through parse_bool.
    assert parse_options(url, {}, {"require_aof": bool}).get("require_aof", False) is value


def test_a_typo_is_not_false():
    with pytest.raises(ConfigError, match="GEARPY_SSL: invalid value 'flase'"):
        coerce("GEARPY_SSL", bool, "flase")
    with pytest.raises(ConfigError, match="require_aof='flase' is not a valid bool"):
        parse_options(parse_url("redis://h/0?require_aof=flase"), {}, {"require_aof": bool})


def _literals(value: object) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "defaults.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and type(node.value) is type(value) and node.value == value:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_the_gearman_port_is_written_once():
    assert defaults.PORT == 4730
    assert _literals(4730) == []


def test_connect_timeouts_default_to_the_named_constant():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                positional = node.args.posonlyargs + node.args.args
                args = positional + node.args.kwonlyargs
                dflts = [None] * (len(positional) - len(node.args.defaults)) + list(node.args.defaults)
                dflts += list(node.args.kw_defaults)
                for arg, default in zip(args, dflts, strict=True):
                    if (
                        "timeout" in arg.arg
                        and "connect" in arg.arg
                        and isinstance(default, ast.Constant)
                        and default.value is not None
                    ):
                        offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {arg.arg}")
    assert offenders == []
