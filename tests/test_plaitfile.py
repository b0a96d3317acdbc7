"""Loading a Plaitfile in-process: locations of what it declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait import plaitfile
from plait.errors import BuildDescriptionError


def test_locations_are_exact_deep_in_a_long_plaitfile(tmp_path: Path) -> None:
    lines = [f'action("a{i}", ["true"], outputs=["o{i}"])' for i in range(3000)]
    lines.insert(1234, "")  # a blank line shifts everything after it
    lines.append('action("a17", ["true"], outputs=["again"])')
    (tmp_path / "Plaitfile.py").write_text("\n".join(lines) + "\n")
    with pytest.raises(BuildDescriptionError) as e:
        plaitfile.load(tmp_path)
    assert e.value.location is not None
    assert e.value.location.line == 3002
    assert "first defined at" in e.value.message
    assert e.value.message.endswith(f"{tmp_path / 'Plaitfile.py'}:18)")


def test_components_record_where_they_were_made(tmp_path: Path) -> None:
    (tmp_path / "Plaitfile.py").write_text(
        "from plait import SourceFile\n"
        "\n"
        "class Bad(SourceFile):\n"
        "    type = 'txt'\n"
        "\n"
        "defsystem('s', components=[\n"
        "    Bad('x', depends_on=['nope']),\n"
        "])\n"
    )
    with pytest.raises(BuildDescriptionError) as e:
        plaitfile.load(tmp_path)
    assert e.value.location is not None and e.value.location.line == 7
