"""Faults a build survives: what its commands start does not outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import plait

pytestmark = pytest.mark.e2e


def running(marker: str) -> list[int]:
    """Processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "Plaitfile" not in cmdline:
            found.append(int(entry.name))
    return found


def gone(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while running(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def project(tmp_path: Path, command: str) -> Path:
    p = tmp_path / "p"
    p.mkdir()
    (p / "Plaitfile.py").write_text(
        f"action('a', ['sh', '-c', {command!r}], outputs=['out.txt'])\n"
    )
    return p


def test_what_a_command_leaves_running_ends_with_it_even_in_a_session_of_its_own(
    tmp_path: Path,
) -> None:
    marker = "61.2345"
    p = project(tmp_path, f"setsid sh -c 'sleep {marker}' & sleep 0.5; echo done > out.txt")
    result = plait("build", cwd=p, env={"PLAIT_CACHE": str(tmp_path / "store")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (p / "out.txt").read_text() == "done\n"
    assert gone(marker)


def test_a_killed_build_leaves_no_command_running(tmp_path: Path) -> None:
    marker = "62.3456"
    p = project(tmp_path, f"(setsid sleep {marker} &); sleep {marker}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "build"],
        cwd=p,
        env={**os.environ, "PLAIT_CACHE": str(tmp_path / "store")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(running(marker)) < 2:
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert gone(marker)
