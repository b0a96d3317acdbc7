"""`plait lint` over every Debian Common Lisp system plait builds: how many build with --deps
declared as their .asd files are written, and how many once lint's edges are added (in memory).

    python3 bench/lint.py [--only NAME ...]

Each system in a fresh store and fasl cache: `plait lint NAME --no-unused` (the search for
unused edges costs a build per edge, and is not what this counts). Lint says whether the
declared build works as written; its exit status whether it works with the edges it found.
A system whose build as ASDF would do it fails is not counted. Too slow for CI; adds its
tally, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import debian
import run

TIMEOUT = 1800
AS_WRITTEN = "plait lint: as declared, every compile builds and misses nothing"
EDGE = re.compile(r"^\S+:\d+: (component|system) .* add ")


@dataclass
class Outcome:
    name: str
    verdict: str  # "not built", "builds as written", "builds with edges", "incomplete"
    edges: int = 0
    detail: str = ""


def lint(name: str) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="plait-bench-lint-") as tmp:
        root = Path(tmp)
        env = {
            **os.environ,
            "XDG_CACHE_HOME": str(root / "cache"),
            "PLAIT_CACHE": str(root / "store"),
        }
        try:
            done = subprocess.run(
                [*run.PLAIT, "lint", name, "--no-unused"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return Outcome(name, "incomplete", detail=f"lint ran past {TIMEOUT} s")
    said = done.stdout.splitlines()
    edges = sum(1 for line in said if EDGE.match(line))
    if done.returncode == 2:
        return Outcome(name, "not built", detail=done.stderr.strip().splitlines()[0])
    if AS_WRITTEN in said:
        return Outcome(name, "builds as written")
    if done.returncode == 0:
        return Outcome(name, "builds with edges", edges)
    why = [line.strip() for line in said if line.startswith("  ")] or said[-1:]
    return Outcome(name, "incomplete", edges, "; ".join(why[:3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="these systems rather than all")
    args = parser.parse_args()
    started = time.monotonic()
    outcomes = []
    for name in args.only or debian.primary_systems():
        outcome = lint(name)
        print(f"{name}: {outcome.verdict} ({outcome.edges} edges)", flush=True)
        outcomes.append(outcome)
    built = [o for o in outcomes if o.verdict != "not built"]
    before = [o for o in built if o.verdict == "builds as written"]
    after = [o for o in built if o.verdict in ("builds as written", "builds with edges")]
    lines = [
        "### Debian's Common Lisp systems with --deps declared, before and after plait lint",
        "",
        f"Of {len(outcomes)} systems, {len(built)} build as ASDF would. With --deps declared,"
        f" {len(before)} build as their .asd files are written; {len(after)} once lint's"
        f" edges ({sum(o.edges for o in built)} in all) are added in memory.",
        "",
        "| system | result | edges | why not |",
        "|---|---|---|---|",
        *(
            f"| {o.name} | {o.verdict} | {o.edges} | {debian.cell(o.detail)} |"
            for o in outcomes
            if o.verdict != "builds as written"
        ),
    ]
    command = "python3 bench/lint.py" + (f" --only {' '.join(args.only)}" if args.only else "")
    print(run.record(command, time.monotonic() - started, lines))


if __name__ == "__main__":
    main()
