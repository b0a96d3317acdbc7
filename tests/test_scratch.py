"""plait.scratch: a process's temporary directory lives as long as it does, and no longer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plait.scratch import OWNER, Scratch, reap

HOLD = (
    "import sys, time; from pathlib import Path; from plait.scratch import Scratch;"
    " s = Scratch(Path(sys.argv[1]), 'x-'); (s.path / 'work').mkdir(); print(s.path, flush=True);"
    " time.sleep(60)"
)


def test_a_live_process_s_directory_is_kept_and_a_dead_one_s_removed(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    theirs = Path(proc.stdout.readline().strip())
    mine = Scratch(tmp_path, "x-")  # reaps: the other process lives, its directory stays
    assert (theirs / "work").is_dir()
    assert sorted(p.name for p in mine.path.iterdir()) == [OWNER]
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert reap(tmp_path, "x-") == [theirs]
    assert mine.path.is_dir()  # this process's own lock holds it
    mine.remove()
    mine.remove()
    assert list(tmp_path.iterdir()) == []


def test_only_scratch_directories_are_removed(tmp_path: Path) -> None:
    # Another tool's directory with the same prefix has no lock file: it is not plait's.
    (tmp_path / "x-other").mkdir()
    assert reap(tmp_path, "x-") == []
    assert (tmp_path / "x-other").is_dir()
