"""Ironclad, clean: ASDF's serial load-system against `plait build -j N`, side by side in one run.

    python3 bench/ironclad.py [--runs 3] [--jobs 2]

Each run starts from nothing for both tools: a fresh fasl cache (XDG_CACHE_HOME) and, for plait,
a fresh store. Runs alternate between the tools so that drift on the machine hits both. Prints a
table of median wall times and plait's ratio to ASDF, plus plait's no-op build and the rebuild
after an edit to one cipher file (on a private copy of ironclad's sources).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path("/usr/share/common-lisp/source/ironclad")
PLAIT = [sys.executable, "-m", "plait"]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.monotonic()
    result = subprocess.run(
        argv, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, check=False
    )
    took = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return took


def asdf_clean(work: Path) -> float:
    env = {"XDG_CACHE_HOME": str(work / "cache")}
    return timed(
        [
            "sbcl",
            "--non-interactive",
            "--no-userinit",
            "--eval",
            "(require :asdf)",
            "--eval",
            '(asdf:load-system "ironclad")',
        ],
        env,
        work,
    )


def plait_env(work: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(work / "cache"), "PLAIT_CACHE": str(work / "store")}


def plait_clean(work: Path, jobs: int, project: Path) -> float:
    return timed([*PLAIT, "build", "ironclad", "-j", str(jobs)], plait_env(work), project)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    asdf: list[float] = []
    plait: list[float] = []
    noop: list[float] = []
    edit: list[float] = []
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        for run in range(args.runs):
            a = Path(tmp) / f"asdf{run}"
            a.mkdir()
            asdf.append(asdf_clean(a))
            p = Path(tmp) / f"plait{run}"
            project = p / "ironclad"
            shutil.copytree(SOURCE, project)
            plait.append(plait_clean(p, args.jobs, project))
            noop.append(timed([*PLAIT, "build", "ironclad"], plait_env(p), project))
            with (project / "src" / "ciphers" / "aes.lisp").open("a") as f:
                f.write(f"\n(defun bench-edit-{run} () {run})\n")
            edit.append(timed([*PLAIT, "build", "ironclad"], plait_env(p), project))
            print(f"run {run + 1}: asdf {asdf[-1]:.1f}s, plait {plait[-1]:.1f}s", flush=True)
    mine, theirs = statistics.median(plait), statistics.median(asdf)
    print()
    print(f"ironclad, clean, {os.cpu_count()} cores, median of {args.runs} run(s)")
    print("| build | wall (s) | plait / ASDF |")
    print("|---|---|---|")
    print(f"| ASDF serial load-system | {theirs:.1f} | |")
    print(f"| plait build -j {args.jobs} | {mine:.1f} | {mine / theirs:.2f} |")
    print(f"| plait no-op | {statistics.median(noop):.2f} | |")
    print(f"| plait after editing aes.lisp | {statistics.median(edit):.2f} | |")


if __name__ == "__main__":
    main()
