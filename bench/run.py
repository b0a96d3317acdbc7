"""plait side by side with ninja, make and ASDF, in one run; adds to bench/RESULTS.md.

    python3 bench/run.py --quick     # under 5 minutes on a 2-core machine
    python3 bench/run.py             # the full suite (10,000-file project, ironclad)

Every figure is the median wall time over the runs of one scenario, all tools measured in the same
run, alternating, with -j set to the number of cores. Needs ninja, make, cc, sbcl and Debian's
cl-alexandria, cl-ppcre and cl-ironclad: `./setup` installs them.
"""

from __future__ import annotations

import argparse
import compileall
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen

HERE = Path(__file__).resolve().parent
JOBS = os.cpu_count() or 1
PLAIT = [sys.executable, "-m", "plait"]
RESULTS = HERE / "RESULTS.md"
RESULTS_TITLE = """# Benchmark results

Written by the benchmarks (`bench/run.py`, `bench/ironclad.py`): each run adds a dated section,
newest first, with the machine it ran on. Compare figures within one section: this machine's
speed moves from one run to the next.
"""


def compile_plait() -> None:
    """Write plait's bytecode before measuring it, as an installed package has it. An
    environment that stops Python writing bytecode (PYTHONDONTWRITEBYTECODE, set on the machine
    these figures come from) would otherwise have every plait run compile its modules afresh:
    ~35 ms, a seventh of a no-op build. Python still reads bytecode there."""
    import plait

    compileall.compile_dir(Path(plait.__file__).parent, quiet=1)


@dataclass
class Table:
    title: str
    tools: list[str]
    unit: str = "s"
    rows: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: str, tool: str, seconds: float) -> None:
        self.rows.setdefault(row, {}).setdefault(tool, []).append(seconds)

    def median(self, row: str, tool: str) -> float | None:
        values = self.rows.get(row, {}).get(tool)
        return statistics.median(values) if values else None

    def markdown(self) -> str:
        peers = [t for t in self.tools if t != "plait"]
        head = [
            "scenario",
            *(f"{t} ({self.unit})" for t in self.tools),
            *(f"plait / {p}" for p in peers),
        ]
        out = [f"### {self.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [row]
            for t in self.tools:
                m = self.median(row, t)
                cells.append(f"{m:.3f}" if m is not None else "")
            mine = self.median(row, "plait")
            for p in peers:
                theirs = self.median(row, p)
                cells.append(f"{mine / theirs:.2f}" if mine and theirs else "")
            out.append("| " + " | ".join(cells) + " |")
        out.extend(["", *self.notes, ""] if self.notes else [""])
        return "\n".join(out)


def busy_cpu() -> float | None:
    """Seconds of CPU the whole machine has spent busy since boot (Linux: /proc/stat), or None.
    A build's difference counts every process it makes, detached ones too."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_cpu(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float | None]:
    """Wall time and the CPU the machine spent busy meanwhile (run on an idle machine)."""
    before = busy_cpu()
    took = run(argv, cwd, env)
    after = busy_cpu()
    return took, (after - before if after is not None and before is not None else None)


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    result = subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(
            f"failed in {cwd}: {' '.join(argv[:6])}...\n"
            f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        )
    return took


def peak_rss(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time and the peak resident set (KiB) of the process itself, not its children."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    start = time.monotonic()

    def watch() -> None:
        nonlocal peak
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    proc.wait()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return time.monotonic() - start, peak


# -- C projects --------------------------------------------------------------------------------

BUILD: dict[str, Callable[[], list[str]]] = {
    "plait": lambda: [*PLAIT, "build", "-j", str(JOBS)],
    "ninja": lambda: ["ninja", "-j", str(JOBS)],
    "make": lambda: ["make", "-s", "-j", str(JOBS)],
}


def clean(root: Path) -> None:
    for f in (root / "out").rglob("*"):
        if f.is_file():
            f.unlink()
    shutil.rmtree(root / ".plait", ignore_errors=True)
    for name in (".ninja_log", ".ninja_deps"):
        (root / name).unlink(missing_ok=True)


def c_project(n: int, runs: int, table: Table, memory: Table) -> None:
    with tempfile.TemporaryDirectory(prefix="plait-bench-c-") as tmp:
        root = Path(tmp)
        gen.generate(n, root)
        one_c = root / "lib0" / "f1.c"
        header = root / "include" / "common3.h"
        for r in range(runs):
            order = list(BUILD)[r % 3 :] + list(BUILD)[: r % 3]
            for tool in order:
                clean(root)
                argv = BUILD[tool]()
                if tool == "plait":
                    took, rss = peak_rss(argv, root)
                    memory.add(f"{n} files, clean build", "plait", rss / 1024)
                else:
                    took = run(argv, root)
                table.add(f"clean, {n} files", tool, took)
                table.add(f"no-op, {n} files", tool, run(argv, root))
                os.utime(one_c)
                table.add(f"touch one .c, {n} files", tool, run(argv, root))
                with one_c.open("a") as f:
                    f.write(f"int edit_{tool}_{r}(void) {{ return {r}; }}\n")
                table.add(f"edit one .c, {n} files", tool, run(argv, root))
                header.write_text(f"#define COMMON3 {r * 10 + len(tool)}\n")
                table.add(f"edit a header of 1/10 of the files, {n} files", tool, run(argv, root))


# -- scheduler overhead ------------------------------------------------------------------------


def true_graphs(n: int, root: Path, chain: bool) -> None:
    names = [f"t{i}" for i in range(n)]
    plaitfile = []
    ninja = ["rule run\n  command = true\n"]
    for i, name in enumerate(names):
        after = [names[i - 1]] if chain and i else []
        plaitfile.append(f"action({name!r}, ['true'], after={after!r})\n")
        ninja.append(f"build {name}: run {' '.join(after)}\n")
    last = [names[-1]] if chain else names
    plaitfile.append(f"action('all', ['true'], after={last!r})\n")
    ninja.append(f"build all: phony {' '.join(last)}\ndefault all\n")
    (root / "Plaitfile.py").write_text("".join(plaitfile))
    (root / "build.ninja").write_text("".join(ninja))


def scheduler(n: int, table: Table) -> None:
    for shape in ("wide", "chain"):
        with tempfile.TemporaryDirectory(prefix="plait-bench-true-") as tmp:
            root = Path(tmp)
            true_graphs(n, root, shape == "chain")
            row = f"{n} x `true`, {shape}"
            table.add(row, "plait", run([*PLAIT, "build", "all", "-j", str(JOBS)], root))
            table.add(row, "ninja", run(["ninja", "-j", str(JOBS), "all"], root))
    for row in list(table.rows):
        plait_ms = 1000 * (table.median(row, "plait") or 0) / n
        ninja_ms = 1000 * (table.median(row, "ninja") or 0) / n
        table.notes.append(
            f"- {row}: {plait_ms:.2f} ms per action for plait, "
            f"{ninja_ms:.2f} ms for ninja (goal for plait: under 2 ms)."
        )


# -- Common Lisp -------------------------------------------------------------------------------


def lisp(systems: list[str], runs: int, table: Table, ironclad_edits: bool) -> None:
    for system in systems:
        for r in range(runs):
            with tempfile.TemporaryDirectory(prefix="plait-bench-lisp-") as tmp:
                root = Path(tmp)
                # The tools take turns going first: on a machine whose speed drifts, the one
                # that always ran second would always meet what the first left behind.
                tools = [
                    functools.partial(lisp_asdf, system, root, table),
                    functools.partial(lisp_plait, system, r, root, table, ironclad_edits),
                ]
                for tool in tools if r % 2 == 0 else reversed(tools):
                    tool()
                print(
                    f"{system} run {r + 1}: ASDF {table.rows[f'{system}, clean']['ASDF'][-1]:.1f}s,"
                    f" plait {table.rows[f'{system}, clean']['plait'][-1]:.1f}s",
                    flush=True,
                )
        cpu_bound(table, system)
        run_by_run(table, system)


def lisp_asdf(system: str, root: Path, table: Table) -> None:
    """ASDF's serial build of `system`, clean, in a fasl cache of its own."""
    (root / "asdf").mkdir()
    asdf = [
        "sbcl",
        "--non-interactive",
        "--no-userinit",
        "--eval",
        "(require :asdf)",
        "--eval",
        f'(asdf:load-system "{system}")',
    ]
    env = {"XDG_CACHE_HOME": str(root / "asdf" / "cache")}
    add_clean(table, system, "ASDF", run_cpu(asdf, root / "asdf", env))


def lisp_plait(system: str, r: int, root: Path, table: Table, ironclad_edits: bool) -> None:
    """plait's build of `system`, clean, in a fasl cache and store of its own; for ironclad
    (on a copy of its sources), then its no-op build and its build after an edit."""
    project = root / "plait"
    project.mkdir()
    if ironclad_edits and system == "ironclad":
        project = project / "ironclad"
        shutil.copytree("/usr/share/common-lisp/source/ironclad", project)
    env = {"XDG_CACHE_HOME": str(root / "cache"), "PLAIT_CACHE": str(root / "store")}
    build = [*PLAIT, "build", system, "-j", str(JOBS)]
    add_clean(table, system, "plait", run_cpu(build, project, env))
    if ironclad_edits and system == "ironclad":
        table.add(f"{system}, no-op", "plait", run(build, project, env))
        with (project / "src" / "ciphers" / "aes.lisp").open("a") as f:
            f.write(f"\n(defun bench-edit-{r} () {r})\n")
        table.add(f"{system}, edit one cipher file", "plait", run(build, project, env))


def add_clean(table: Table, system: str, tool: str, measured: tuple[float, float | None]) -> None:
    """A clean build's wall time, and the CPU it kept busy: plait's wall time cannot go under
    its CPU divided by the cores, which is what bounds its ratio to its peer."""
    took, cpu = measured
    table.add(f"{system}, clean", tool, took)
    if cpu is not None:
        table.add(f"{system}, clean: CPU busy (core-seconds)", tool, cpu)


def cpu_bound(table: Table, system: str, peer: str = "ASDF") -> None:
    """Say what plait's CPU allows: its wall time at every core busy, against `peer`'s."""
    cpu = table.median(f"{system}, clean: CPU busy (core-seconds)", "plait")
    theirs = table.median(f"{system}, clean", peer)
    if cpu is not None and theirs:
        table.notes.append(
            f"{system}: plait's CPU over {JOBS} cores is {cpu / JOBS:.1f} s, so its clean build"
            f" cannot take less than {cpu / JOBS / theirs:.2f}x {peer}'s wall time."
        )


def run_by_run(table: Table, system: str) -> None:
    """Say plait's ratio to ASDF within each run, where the two builds ran one after the other:
    on a machine whose speed drifts, the spread of those says more than one ratio of medians."""
    clean = table.rows.get(f"{system}, clean", {})
    pairs = zip(clean.get("plait", []), clean.get("ASDF", []), strict=True)
    ratios = [mine / theirs for mine, theirs in pairs]
    if ratios:
        each = ", ".join(f"{r:.2f}" for r in ratios)
        table.notes.append(
            f"{system}: plait / ASDF run by run {each} (median {statistics.median(ratios):.2f})."
        )


# -- the report --------------------------------------------------------------------------------


def version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return "not installed"
    return out.strip().splitlines()[0] if out.strip() else "?"


def goals(c: Table, sched: Table, lisp_table: Table) -> list[str]:
    lines = ["### Goals", ""]

    def check(what: str, value: float | None, limit: float, unit: str = "s") -> None:
        if value is None:
            return
        verdict = "met" if value <= limit else f"missed by {value / limit:.2f}x"
        lines.append(f"- {what}: {value:.3f}{unit} (goal {limit}{unit}): {verdict}")

    for n, limit in ((1000, 0.25), (10000, 1.5)):
        check(f"no-op on {n} files", c.median(f"no-op, {n} files", "plait"), limit)
    for row in c.rows:
        if row.startswith("clean"):
            p, nj = c.median(row, "plait"), c.median(row, "ninja")
            if p and nj:
                check(f"{row}: plait / ninja", p / nj, 1.1, "x")
    for row in sched.rows:
        p = sched.median(row, "plait")
        n = int(row.split(" ")[0])
        if p:
            check(f"scheduler overhead, {row}", 1000 * p / n, 2.0, " ms")
    p, a = (
        lisp_table.median("ironclad, clean", "plait"),
        lisp_table.median("ironclad, clean", "ASDF"),
    )
    if p and a:
        check("ironclad clean: plait / ASDF", p / a, 0.55, "x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the under-5-minutes subset")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    compile_plait()
    started = time.monotonic()
    c = Table("Synthetic C projects (bench/gen.py)", ["plait", "ninja", "make"])
    memory = Table("plait's peak resident memory, clean build", ["plait"], unit="MiB")
    sched = Table("Scheduler overhead", ["plait", "ninja"])
    lisp_table = Table("Common Lisp, ASDF's serial load-system vs plait", ["plait", "ASDF"])
    if args.quick:
        c_project(100, 3, c, memory)
        c_project(1000, 1, c, memory)
        scheduler(2000, sched)
        lisp(["alexandria", "cl-ppcre"], 1, lisp_table, ironclad_edits=False)
    else:
        c_project(100, 3, c, memory)
        c_project(1000, 3, c, memory)
        c_project(10000, 1, c, memory)
        scheduler(10000, sched)
        lisp(["ironclad"], 3, lisp_table, ironclad_edits=True)
        lisp(["alexandria", "cl-ppcre"], 1, lisp_table, ironclad_edits=False)
    took = time.monotonic() - started
    command = f"python3 bench/run.py{' --quick' if args.quick else ''}"
    body = [t.markdown() for t in (c, sched, lisp_table, memory)]
    print(record(command, took, [*body, *goals(c, sched, lisp_table)], args.out))


def machine_facts() -> list[str]:
    return [
        f"- cores: {os.cpu_count()}; {platform.machine()}; Linux {platform.release()}",
        f"- Python {platform.python_version()}",
        f"- SBCL: {version(['sbcl', '--version'])}",
        f"- ninja: {version(['ninja', '--version'])}",
        f"- make: {version(['make', '--version'])}",
        f"- cc: {version(['cc', '--version'])}",
    ]


def record(
    command: str,
    took: float,
    body: list[str],
    out: Path = RESULTS,
    what: str = f"Medians of wall time; every tool built with -j {JOBS}.",
) -> str:
    """Add a dated section for this run to `out`, above the earlier ones (none is replaced:
    the file is the benchmarks' history). Returns the section."""
    section = "\n".join(
        [
            f"## {time.strftime('%Y-%m-%d %H:%M')}: `{command}`",
            "",
            f"Took {took / 60:.1f} minutes. {what}".rstrip(),
            "",
            *machine_facts(),
            "",
            *body,
        ]
    )
    text = out.read_text() if out.is_file() else RESULTS_TITLE
    head, sep, rest = text.partition("\n## ")
    out.write_text(head.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n" + sep + rest)
    return section


if __name__ == "__main__":
    main()
