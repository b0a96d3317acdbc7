"""Every Debian Common Lisp system whose .asd defines a test-op: plait test's verdict against
what the test framework printed when ASDF's own test-system ran the same tests.

    python3 bench/verdicts.py [--only NAME ...] [--timeout SECONDS] [--parallel N]

For each such system (by the name of its .asd under /usr/share/common-lisp/source), a fresh
SBCL runs `(asdf:test-system NAME)` with a fasl cache of its own; its output is read the way a
person reads it (fiveam's "Fail: N", rt's "N out of M total tests failed", xlunit's
"FAILURES!!!", ...). Then `plait test NAME` runs in a fresh store and fasl cache, and its
verdict is compared. Install Debian's cl-* packages first to cover them all (apt-get install
$(apt-cache search --names-only '^cl-' | cut -d' ' -f1)). Too slow for CI; adds its table,
dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from debian import PRELOADED, SOURCE, cell

TEST = '(progn (asdf:test-system "{name}") (format t "~&PLAIT-TESTED~%"))'
SBCL = ("sbcl", "--noinform", "--non-interactive", "--eval", "(require :asdf)")

# What frameworks print when tests failed, and when they all passed. A reading of the output,
# independent of how plait watches the frameworks.
FAILED = [
    r"^\s*Fail: [1-9]",  # fiveam's summary
    r"\d+ out of \d+ total tests failed",  # rt, sb-rt (unless all were expected)
    r"FAILURES!!!",  # xlunit
    r"^Test .* (Failed|Errored)\s*$",  # xptest
    r"UNEXPECTED: [1-9]",  # ptester
    r"Test run had \d+ failures?",  # fiasco
    r"^Some tests failed\.",  # cl-ppcre's runner
    r"Did \d+ checks?\.\s*\n\s*Pass: \d+ \(\d+%\)\s*\n\s*Skip: \d+ \(\s*\d+%\)\s*\n\s*Fail: [1-9]",
]
EXPECTED_ONLY = r"No unexpected failures\."
PASSED = [
    r"^\s*Pass: \d+ \(100%\)",  # fiveam
    r"Did \d+ checks?\.\s*$",  # fiveam, with nothing failed
    r"No tests failed\.",  # rt
    r"^OK \(\d+ tests?\)",  # xlunit
    r"^Test .* Passed\s*$",  # xptest
    r"Errors detected in this test: 0",  # ptester
    r"^All tests passed\.",  # cl-ppcre's runner
]
ERRORED = [r"debugger invoked on", r"Unhandled [A-Z-]+", r"unhandled condition"]


@dataclass
class Outcome:
    name: str
    asdf: str  # passed, failed, error, nothing read, timed out, does not build
    plait: str  # passed, failed, timed out, no verdict, no tests, build fails
    detail: str = ""

    @property
    def agree(self) -> bool:
        same = {
            ("passed", "passed"),
            ("failed", "failed"),
            ("error", "failed"),
            ("error", "build fails"),  # a dependency Debian does not ship, say
            ("timed out", "timed out"),
            ("nothing read", "no verdict"),
            ("nothing read", "no tests"),
        }
        return (self.asdf, self.plait) in same


def systems() -> list[str]:
    """The systems whose .asd files Debian installed and mention a test-op."""
    found = set()
    for asd in SOURCE.glob("*/*.asd"):
        if "test-op" in asd.read_text(errors="replace"):
            found.add(asd.stem)
    return sorted(found - PRELOADED)


def read_output(out: str, status: int | None) -> str:
    """What a person reads in ASDF's test-system's output."""
    if status is None:
        return "timed out"
    flags = re.MULTILINE
    if any(re.search(p, out, flags) for p in FAILED):
        if re.search(EXPECTED_ONLY, out) and not re.search(FAILED[0], out, flags):
            return "passed"
        return "failed"
    if status != 0 or "PLAIT-TESTED" not in out:
        return "error"
    if any(re.search(p, out, flags) for p in ERRORED):
        return "error"
    if any(re.search(p, out, flags) for p in PASSED):
        return "passed"
    return "nothing read"


def timed(argv: list[str], cwd: Path, env: dict[str, str], timeout: int) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
            timeout=timeout, start_new_session=True,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else ""
        return None, out
    return proc.returncode, proc.stdout + proc.stderr


def check(name: str, timeout: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"tests-{name}-") as tmp:
        root = Path(tmp)
        (root / "asdf").mkdir()
        (root / "plait").mkdir()
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "asdf-cache")}
        status, out = timed([*SBCL, "--eval", TEST.format(name=name)], root / "asdf", env, timeout)
        asdf = read_output(out, status)
        env = {
            **os.environ,
            "XDG_CACHE_HOME": str(root / "plait-cache"),
            "PLAIT_CACHE": str(root / "store"),
        }
        argv = [
            *run.PLAIT,
            "test",
            name,
            "-j",
            "2",
            "--timeout",
            str(timeout),
            "--report",
            "r.json",
        ]
        status, said = timed(argv, root / "plait", env, timeout * 2)
        report = root / "plait" / "r.json"
        if status == 5:
            plait = "no tests"
        elif report.is_file() and json.loads(report.read_text()).get("tests"):
            test = json.loads(report.read_text())["tests"][0]
            plait, detail = test["verdict"], test["why"]
            return Outcome(name, asdf, plait, detail)
        else:
            plait = "build fails" if status is not None else "timed out"
        return Outcome(name, asdf, plait, said.strip().splitlines()[-1] if said.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="these systems rather than all")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a test run may take")
    parser.add_argument("--parallel", type=int, default=1, help="systems checked at once")
    args = parser.parse_args()
    started = time.monotonic()
    names = args.only or systems()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        outcomes = list(pool.map(lambda n: check(n, args.timeout), names))
    for o in outcomes:
        print(f"{o.name}: ASDF's output says {o.asdf}; plait test says {o.plait}", flush=True)
    agree = [o for o in outcomes if o.agree]
    lines = [
        "### Debian's systems with a test-op: plait test against the frameworks' own output",
        "",
        f"Of {len(outcomes)} systems whose .asd defines a test-op, plait test's verdict agrees"
        f" with what the framework printed under ASDF's test-system for {len(agree)}."
        " ('error': the run under ASDF signalled an error or did not finish; 'nothing read':"
        " no framework's summary in the output.)",
        "",
        "| system | ASDF's output says | plait test says | agree | plait's reason |",
        "|---|---|---|---|---|",
        *(
            f"| {o.name} | {o.asdf} | {o.plait} | {'yes' if o.agree else '**no**'}"
            f" | {cell(o.detail)} |"
            for o in outcomes
        ),
    ]
    command = f"python3 bench/verdicts.py --parallel {args.parallel} --timeout {args.timeout}"
    command += f" --only {' '.join(args.only)}" if args.only else ""
    print(run.record(command, time.monotonic() - started, lines))


if __name__ == "__main__":
    main()
