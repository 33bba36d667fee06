"""docs/configuration.md is generated from the config dataclasses and must not drift from them.

Regenerate it with ``python -m gearpy.configref > docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gearpy import configref

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"


def _fields() -> list[tuple[str, str, str]]:
    out = []
    for section, path, _program in configref.PROGRAMS:
        cls = configref._load(path)
        out += [(section, path, f.name) for f in dataclasses.fields(cls)]
    return out


def test_committed_reference_is_current() -> None:
    committed = REFERENCE.read_text(encoding="utf-8")
    assert committed == configref.render(), (
        "docs/configuration.md is stale: run `python -m gearpy.configref > docs/configuration.md`"
    )


@pytest.mark.parametrize(
    "section,path,name",
    [pytest.param(s, p, n, id=f"{s}.{n}") for s, p, n in _fields()],
)
def test_every_field_has_a_description(section: str, path: str, name: str) -> None:
    docs = configref.field_docs(configref._load(path))
    assert docs.get(name, "").strip(), f"{section}.{name} has no `#:` description in {path}"


def test_every_section_is_in_the_reference() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    for section, _path, program in configref.PROGRAMS:
        assert f"## `{section}:` — {program}" in text
    for section, _path, name in _fields():
        key = name if name in configref.SHARED else f"{section}.{name}"
        assert f"| `{key}` |" in text
