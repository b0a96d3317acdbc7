"""Ironclad from a shared cache: a "second machine" (a store, fasl cache and home of its own)
builds against a BuildGrid cache that a first build filled, side by side with ASDF's clean build
in the same run.

    python3 bench/remote.py [--runs 3]

Each run: ASDF's serial clean load-system, then plait on a fresh second machine with
`--remote`; the two take turns going first. The second machine must run no compile, and its
fasls must load in an SBCL that cannot compile. Adds the table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deploy"))

import farm
import run

NO_COMPILE = """(require :asdf)
(sb-ext:without-package-locks
  (defun compile-file (&rest args) (error "COMPILE-FILE called: ~s" args)))
(asdf:load-system "ironclad")
(format t "~&LOADED~%")
"""


def machine(root: Path, name: str) -> dict[str, str]:
    home = root / name
    home.mkdir()
    return {
        "PLAIT_CACHE": str(home / "store"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "HOME": str(home),
    }


def second_machine(url: str, root: Path, r: int, table: run.Table) -> None:
    env = machine(root, f"second-{r}")
    report = root / f"report-{r}.json"
    command = [*run.PLAIT, "build", "ironclad", "-j", str(run.JOBS), "--remote", url]
    table.add("ironclad, clean", "plait", run.run([*command, "--report", str(report)], root, env))
    actions = json.loads(report.read_text())["actions"]
    ran = [a["name"] for a in actions if a["status"] == "ran"]
    if ran:
        raise SystemExit(f"bench: the second machine ran {len(ran)} actions: {ran[:5]}")
    script = root / "load.lisp"
    script.write_text(NO_COMPILE)
    loaded = subprocess.run(
        ["sbcl", "--script", str(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if "LOADED" not in loaded.stdout:
        raise SystemExit(f"bench: ironclad's fasls did not load:\n{loaded.stdout[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run.compile_plait()
    started = time.monotonic()
    table = run.Table(
        f"ironclad: plait on a second machine with a filled remote cache, ASDF clean; median"
        f" of {args.runs} run(s), -j {run.JOBS}",
        ["plait", "ASDF"],
    )
    with tempfile.TemporaryDirectory(prefix="plait-bench-remote-") as tmp:
        root = Path(tmp)
        server = farm.start(root / "farm")
        try:
            first = machine(root, "first")
            fill = [*run.PLAIT, "build", "ironclad", "-j", str(run.JOBS)]
            fill += ["--remote", server.url, "--remote-upload"]
            filled = subprocess.run(fill, cwd=root, env={**os.environ, **first}, check=False)
            if filled.returncode != 0:
                raise SystemExit("bench: the first machine's build failed")
            for r in range(args.runs):
                (root / f"asdf-{r}").mkdir()
                tools = [
                    functools.partial(run.lisp_asdf, "ironclad", root / f"asdf-{r}", table),
                    functools.partial(second_machine, server.url, root, r, table),
                ]
                for tool in tools if r % 2 == 0 else reversed(tools):
                    tool()
                clean = table.rows["ironclad, clean"]
                print(
                    f"run {r + 1}: ASDF {clean['ASDF'][-1]:.1f}s,"
                    f" plait --remote {clean['plait'][-1]:.2f}s",
                    flush=True,
                )
        finally:
            farm.stop(root / "farm")
    clean = table.rows["ironclad, clean"]
    ratios = [mine / theirs for mine, theirs in zip(clean["plait"], clean["ASDF"], strict=True)]
    table.notes.append(
        "ironclad: plait on a second machine with a filled remote cache / ASDF clean, run by run "
        + ", ".join(f"{x:.3f}" for x in ratios)
        + " (goal: at most 0.10); no compile ran, and the fasls loaded without compiling."
    )
    command = f"python3 bench/remote.py --runs {args.runs}"
    print(run.record(command, time.monotonic() - started, [table.markdown()]))


if __name__ == "__main__":
    main()
