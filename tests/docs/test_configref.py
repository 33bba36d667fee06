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


def _fields() -> list[tuple[str, type, str]]:
    out = []
    for section, cls, _program in configref.PROGRAMS:
        out += [(section, cls, f.name) for f in dataclasses.fields(cls)]
    return out


def test_committed_reference_is_current() -> None:
    committed = REFERENCE.read_text(encoding="utf-8")
    assert committed == configref.render(), (
        "docs/configuration.md is stale: run `python -m gearpy.configref > docs/configuration.md`"
    )


@pytest.mark.parametrize(
    "section,cls,name",
    [pytest.param(s, c, n, id=f"{s}.{n}") for s, c, n in _fields()],
)
def test_every_field_has_a_description(section: str, cls: type, name: str) -> None:
    docs = configref.field_docs(cls)
    assert docs.get(name, "").strip(), f"{section}.{name} has no `#:` description in {cls.__qualname__}"


def test_every_section_is_in_the_reference() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    for section, _cls, program in configref.PROGRAMS:
        assert f"## `{section}:` — {program}" in text
    for section, _cls, name in _fields():
        key = name if name in configref.SHARED else f"{section}.{name}"
        assert f"| `{key}` |" in text
