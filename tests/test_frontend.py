"""The core knows no frontend: frontends are plug-ins (plait.frontend) the command loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plait import cli, frontend
from tests import toy_frontend
from tests.support import ROOT

CORE = ("model", "planner", "scheduler", "executor", "store", "build", "frontend", "cli")


def test_the_core_modules_import_no_frontend() -> None:
    code = (
        "import sys\n"
        + "".join(f"import plait.{m}\n" for m in CORE)
        + "print(sorted(m for m in sys.modules if m.startswith('plait.asdf')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_frontend_in_one_module_adds_actions_options_and_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(frontend, "FRONTENDS", ("tests.toy_frontend",))
    monkeypatch.setattr(cli, "_frontends", [])  # loaded again, from FRONTENDS as patched
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "store"))
    toy_frontend.ENDED.clear()
    assert cli.main(["build", "-C", str(tmp_path), "--loud", "a", "b"]) == 0
    assert (tmp_path / "a.txt").read_text() == "LOUD\n"
    assert (tmp_path / "b.txt").read_text() == "LOUD\n"
    assert toy_frontend.ENDED == ["a.txt", "b.txt"]
    assert "toy: built a, b" in capsys.readouterr().out
    assert cli.main(["hello"]) == 0
    assert "hello from the toy frontend" in capsys.readouterr().out
    # Nothing to build and nothing a frontend takes: the core says so.
    assert cli.main(["build", "-C", str(tmp_path)]) == 2
    assert "no Plaitfile.py in" in capsys.readouterr().err
