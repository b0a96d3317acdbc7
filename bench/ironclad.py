"""Ironclad, clean: ASDF's serial load-system against `plait build -j N`, side by side in one run.

    python3 bench/ironclad.py [--runs 3]

Each run starts from nothing for both tools: a fresh fasl cache (XDG_CACHE_HOME) and, for plait, a
fresh store, on a private copy of ironclad's sources; the tools take turns going first. Prints the
medians and plait's ratio to ASDF (and each run's), plus plait's no-op build and the rebuild after
an edit to one cipher file, and adds them to bench/RESULTS.md. This is the Common Lisp part of
`bench/run.py`, alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run.compile_plait()
    started = time.monotonic()
    table = run.Table(f"ironclad, median of {args.runs} run(s), -j {run.JOBS}", ["plait", "ASDF"])
    run.lisp(["ironclad"], args.runs, table, ironclad_edits=True)
    command = f"python3 bench/ironclad.py --runs {args.runs}"
    print(run.record(command, time.monotonic() - started, [table.markdown()]))


if __name__ == "__main__":
    main()
