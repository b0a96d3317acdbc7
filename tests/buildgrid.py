"""BuildGrid servers for the tests, started as deploy/farm starts them: on a free loopback port,
from the virtual environment `./setup --dev` makes, and stopped by PID. `buildgrid` is a cache;
`farm` executes too, with a PostgreSQL cluster of its own and two plait workers."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "deploy"))

import farm
from farm import Farm, free_port

__all__ = ["Farm", "buildgrid", "farm", "free_port", "started", "workers"]


@contextlib.contextmanager
def started(directory: Path, workers: int = 0) -> Iterator[Farm]:
    """A farm under `directory` for the length of the block."""
    if not (farm.SHARED_VENV / "bin" / "bgd").is_file():
        pytest.fail(f"BuildGrid is not installed at {farm.SHARED_VENV}: run ./setup --dev")
    try:
        server = farm.start(directory, workers=workers)
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield server
    finally:
        farm.stop(directory)


@pytest.fixture(scope="module")
def buildgrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """One cache for a module's tests: each builds contents of its own."""
    with started(tmp_path_factory.mktemp("buildgrid")) as server:
        yield server


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """One farm with two workers for a module's tests."""
    with started(tmp_path_factory.mktemp("farm"), workers=2) as server:
        yield server
