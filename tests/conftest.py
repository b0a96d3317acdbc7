"""What every test module shares: tools a test needs fail it, not skip it, when missing.

`./setup` installs every tool the tests use. A test that needs one that is missing fails with
the command that installs it, so a green run never hides an untested frontend."""

from __future__ import annotations

import shutil

import pytest

# The Debian package that brings each tool the tests run.
PACKAGES = {"sbcl": "sbcl", "ninja": "ninja-build", "make": "make", "dot": "graphviz"}


def need(tool: str) -> None:
    """Fail the calling test, naming the fix, unless `tool` is on PATH."""
    if shutil.which(tool) is None:
        package = PACKAGES.get(tool, tool)
        pytest.fail(
            f"{tool} is not installed: run ./setup, which installs it"
            f" (or: sudo apt-get install {package})",
            pytrace=False,
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lisp: runs SBCL (fails, never skips, without it)")
    config.addinivalue_line(
        "markers", "remote: runs a BuildGrid server (fails, never skips, without it)"
    )


@pytest.fixture(autouse=True)
def _lisp_needs_sbcl(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lisp") is not None:
        need("sbcl")
