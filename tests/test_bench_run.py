"""bench/run.py measures plait as it is installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
