"""Every Debian Common Lisp system installed here, built by plait and loaded through ASDF.

    python3 bench/debian.py [--only NAME ...] [--jobs N]

For each primary system whose .asd file is under /usr/share/common-lisp/source: does ASDF's own
`load-system` load it in a fresh SBCL (with a fasl cache of its own)? If it does, plait builds
it (a fresh store, another fasl cache), and a fresh SBCL then loads it through ASDF: the
result says whether it loaded, and whether ASDF compiled anything more than it compiles by
itself in a second fresh image (some systems recompile a few files every time). Too slow for
CI (minutes a system); adds its tally, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run

SOURCE = Path("/usr/share/common-lisp/source")
LOAD = '(progn (asdf:load-system "{name}") (format t "~&PLAIT-LOADED~%"))'
SBCL = ("sbcl", "--noinform", "--non-interactive", "--eval", "(require :asdf)")
TIMEOUT = 900


@dataclass
class Outcome:
    name: str
    verdict: str  # "asdf fails", "ok", "plait fails", "does not load", "recompiles N"
    detail: str = ""


# ASDF itself, which every SBCL image has loaded: nothing to build.
PRELOADED = {"asdf", "uiop", "asdf-package-system"}


def primary_systems() -> list[str]:
    """The systems whose .asd files Debian installed, by the .asd's name."""
    return sorted({asd.stem for asd in SOURCE.glob("*/*.asd")} - PRELOADED)


def cell(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first.replace("|", "\\|")[:120]


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `argv`; a run that outlives TIMEOUT counts as failed, saying so."""
    try:
        return subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 1, "", "timed out")


def sbcl_load(name: str, cache: Path, cwd: Path) -> tuple[bool, int, str]:
    """Load `name` through ASDF in a fresh SBCL: loaded?, files compiled, output's tail."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    proc = timed([*SBCL, "--eval", LOAD.format(name=name)], cwd, env)
    out = proc.stdout + proc.stderr
    compiled = out.count("; compiling file ")
    return "PLAIT-LOADED" in proc.stdout, compiled, "\n".join(out.splitlines()[-5:])


def check(name: str, jobs: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"debian-{name}-") as tmp:
        root = Path(tmp)
        asdf_cache, plait_cache = root / "asdf-cache", root / "plait-cache"
        project = root / "project"
        project.mkdir()
        loaded, _, tail = sbcl_load(name, asdf_cache, project)
        if not loaded:
            return Outcome(name, "asdf fails", tail)
        _, again, _ = sbcl_load(name, asdf_cache, project)  # what ASDF recompiles by itself
        env = {
            **os.environ,
            "XDG_CACHE_HOME": str(plait_cache),
            "PLAIT_CACHE": str(root / "store"),
        }
        # A directory of its own: ASDF's load wrote files in its own (cffi-tests' libraries,
        # where output translations do not reach), which plait would refuse to replace.
        mine = root / "plait-project"
        mine.mkdir()
        built = timed([*run.PLAIT, "build", name, "-j", str(jobs)], mine, env)
        if built.returncode != 0:
            said = built.stderr.splitlines()[-3:] or built.stdout.splitlines()[-3:]
            return Outcome(name, "plait fails", "\n".join(said))
        loaded, compiled, tail = sbcl_load(name, plait_cache, mine)
        if not loaded:
            return Outcome(name, "does not load", tail)
        if compiled > again:
            return Outcome(name, f"recompiles {compiled - again}", tail)
        return Outcome(name, "ok", f"ASDF itself recompiles {again}" if again else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="these systems rather than all")
    parser.add_argument("--jobs", type=int, default=run.JOBS)
    args = parser.parse_args()
    if shutil.which("sbcl") is None:
        sys.exit("bench/debian.py: needs SBCL: run ./setup")
    started = time.monotonic()
    outcomes = []
    for name in args.only or primary_systems():
        outcome = check(name, args.jobs)
        print(f"{name}: {outcome.verdict}", flush=True)
        outcomes.append(outcome)
    loadable = [o for o in outcomes if o.verdict != "asdf fails"]
    good = [o for o in loadable if o.verdict == "ok"]
    lines = [
        "### Debian's Common Lisp systems: plait's build, loaded through ASDF",
        "",
        f"Of {len(outcomes)} systems, ASDF's own load-system loads {len(loadable)}; plait builds"
        f" {len(good)} of those so that ASDF then loads them compiling nothing it would not"
        " compile by itself.",
        "",
        "| system | result | |",
        "|---|---|---|",
        *(
            f"| {o.name} | {o.verdict} | {cell(o.detail)} |"
            for o in outcomes
            if o.verdict != "ok" or o.detail
        ),
    ]
    command = "python3 bench/debian.py" + (f" --only {' '.join(args.only)}" if args.only else "")
    print(run.record(command, time.monotonic() - started, lines))


if __name__ == "__main__":
    main()
