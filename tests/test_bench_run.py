"""bench/run.py measures plait as it is installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import plait.cli
from tests.support import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import run


def test_plait_s_bytecode_is_written_before_anything_is_measured() -> None:
    # Where Python may not write bytecode itself (PYTHONDONTWRITEBYTECODE), every plait run
    # would compile its modules afresh; an installed package has its bytecode.
    cached = Path(importlib.util.cache_from_source(plait.cli.__file__))
    cached.unlink(missing_ok=True)
    run.compile_plait()
    assert cached.is_file()


def test_the_lisp_benchmark_gives_the_ratio_of_each_run() -> None:
    # The two tools run one after the other within a run; their ratio there is paired.
    table = run.Table("t", ["plait", "ASDF"])
    for mine, asdf in [(20.0, 40.0), (33.0, 44.0), (30.0, 50.0)]:
        table.add("ironclad, clean", "plait", mine)
        table.add("ironclad, clean", "ASDF", asdf)
    run.run_by_run(table, "ironclad")
    assert table.notes == ["ironclad: plait / ASDF run by run 0.50, 0.75, 0.60 (median 0.60)."]


def test_the_lisp_benchmark_lets_the_tools_take_turns_going_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On a machine whose speed drifts, the tool that always ran second would always meet what
    # the first left behind.
    order: list[str] = []

    def measured(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
        order.append("ASDF" if argv[0] == "sbcl" else "plait")
        return 1.0, 1.0

    monkeypatch.setattr(run, "run_cpu", measured)
    table = run.Table("t", ["plait", "ASDF"])
    run.lisp(["alexandria"], 3, table, ironclad_edits=False)
    assert order == ["ASDF", "plait", "plait", "ASDF", "ASDF", "plait"]
    assert table.rows["alexandria, clean"] == {"ASDF": [1.0] * 3, "plait": [1.0] * 3}


def test_each_run_adds_a_dated_section_above_the_earlier_ones(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    run.record("python3 bench/x.py", 60.0, ["first body"], out)
    run.record("python3 bench/y.py", 120.0, ["second body"], out)
    text = out.read_text()
    assert text.startswith(run.RESULTS_TITLE.rstrip("\n"))
    assert text.index("`python3 bench/y.py`") < text.index("`python3 bench/x.py`")
    assert "first body" in text and "second body" in text
    assert text.count("- cores: ") == 2  # each with the machine it ran on
