"""A BuildGrid server for the tests, started as deploy/farm starts one: on a free loopback port,
from the virtual environment `./setup --dev` makes, and stopped by PID."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "deploy"))

import farm
from farm import Farm, free_port

__all__ = ["Farm", "buildgrid", "free_port"]


@pytest.fixture(scope="module")
def buildgrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """One server for a module's tests: each builds contents of its own."""
    if not (farm.SHARED_VENV / "bin" / "bgd").is_file():
        pytest.fail(f"BuildGrid is not installed at {farm.SHARED_VENV}: run ./setup --dev")
    directory = tmp_path_factory.mktemp("buildgrid")
    try:
        server = farm.start(directory)
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield server
    finally:
        farm.stop(directory)
