"""plait abused as a hostile user would: killed at random moments, run twice at once on one store,
fed corrupted blobs and a full disk, and given every bad input of a catalogue. Each trial holds
when the build afterwards gives the same tree as a clean build, the store verifies, nothing the
build started is still running, no temporary file is left behind and nothing the user wrote
changed. Adds a table (tried / held per scenario) to bench/RESULTS.md.

    python3 bench/torture.py             # the whole suite: about 15 minutes on 2 cores
    python3 bench/torture.py --sample    # a few trials of each scenario (tests/test_torture.py)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
PLAIT = [sys.executable, "-m", "plait"]
# Every command of the projects below carries it, so that a process a build left running is found.
MARKER = "plait-torture-marker"
BIG = 150_000_000  # bytes of the output a restore copies back


@dataclass
class Tally:
    tried: int = 0
    held: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, what: str, problems: Sequence[str]) -> None:
        self.tried += 1
        if problems:
            self.failures.append(f"{what}: {'; '.join(problems)}")
        else:
            self.held += 1


def plait(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PLAIT, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tree(root: Path, skip: Sequence[str] = (".plait",)) -> dict[str, str]:
    """Each file under `root` (not under `skip`): its content's hash and mode."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(directory) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"-> {path.readlink()}"
                continue
            found[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mode:o}"
    return found


def differences(got: Mapping[str, str], want: Mapping[str, str]) -> list[str]:
    wrong = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    return (
        [f"tree differs at {', '.join(wrong[:5])}{' …' if len(wrong) > 5 else ''}"] if wrong else []
    )


def running_marked() -> list[int]:
    """The processes whose command line carries MARKER."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def left_running(grace: float = 3.0) -> list[str]:
    """What the build started and is still running `grace` seconds on (killed, if so)."""
    deadline = time.monotonic() + grace
    while (pids := running_marked()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [f"{len(pids)} command(s) still running"] if pids else []


def leftovers(*roots: Path) -> list[str]:
    """Temporary files of plait's left where the user or ASDF would find them."""
    found = [
        str(p)
        for root in roots
        if root.exists()
        for p in root.rglob("*.plait")
        if ".plait" not in p.relative_to(root).parts[:1]
    ]
    return [f"temporary files left: {', '.join(found[:3])}"] if found else []


def store_sound(cwd: Path, env: Mapping[str, str]) -> list[str]:
    verified = plait("store", "verify", cwd=cwd, env=env)
    if verified.returncode != 0:
        return [f"store verify exited {verified.returncode}: {verified.stdout[-300:]}"]
    return []


def no_traceback(result: subprocess.CompletedProcess[str]) -> list[str]:
    said = result.stdout + result.stderr
    return ["a traceback"] if "Traceback" in said else []


# -- a Plaitfile project -----------------------------------------------------------------------

PLAITFILE = f"""
import os

WIDTH = 6
DEPTH = 5
for layer in range(DEPTH):
    for i in range(WIDTH):
        below = [f'l{{layer - 1}}/{{j}}.txt' for j in (i, (i + 1) % WIDTH)]
        inputs = ['seed.txt'] if layer == 0 else below
        out = f'l{{layer}}/{{i}}.txt'
        script = f'set -e; sleep 0.0{{(layer + i) % 4}}; cat {{" ".join(inputs)}}'
        script += f' | sha256sum > {{out}}; : {MARKER}'
        action(f'l{{layer}}-{{i}}', ['sh', '-c', script], inputs=inputs, outputs=[out])
action('big', ['sh', '-c', 'set -e; head -c {BIG} /dev/zero | tr "\\\\0" x > big.bin; : {MARKER}'],
       inputs=['seed.txt'], outputs=['big.bin'])
action('leaf', ['sh', '-c', f'set -e; sleep 0.1; cat l{{DEPTH - 1}}/*.txt > leaf.txt; : {MARKER}'],
       inputs=[f'l{{DEPTH - 1}}/{{i}}.txt' for i in range(WIDTH)], outputs=['leaf.txt'])
"""
SEEDS = ("one\n", "two\n")


def plaitfile_project(directory: Path, seed: str = SEEDS[0]) -> Path:
    directory.mkdir(parents=True)
    (directory / "Plaitfile.py").write_text(PLAITFILE)
    (directory / "seed.txt").write_text(seed)
    (directory / "notes.txt").write_text("the user's own notes\n")
    return directory


@dataclass
class Plaitfiles:
    """Reference trees of the Plaitfile project, one per seed, from clean builds."""

    scratch: Path
    want: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for seed in SEEDS:
            p = plaitfile_project(self.scratch / f"ref-{len(self.want)}", seed)
            built = plait("build", cwd=p, env={"PLAIT_CACHE": str(p / ".plait")})
            if built.returncode != 0:
                raise SystemExit(
                    f"torture: the reference build failed:\n{built.stdout}{built.stderr}"
                )
            self.want[seed] = tree(p)
            shutil.rmtree(p)


def prepare(p: Path, rng: random.Random) -> tuple[str, str]:
    """Put the project in a random state before a build: (what was done, the seed it has)."""
    how = rng.choice(["clean", "edit", "restore", "half"])
    seed = (p / "seed.txt").read_text()
    if how == "clean":
        for built in [p / "big.bin", p / "leaf.txt", *p.glob("l*/")]:
            shutil.rmtree(built) if built.is_dir() else built.unlink(missing_ok=True)
    elif how == "edit":
        seed = SEEDS[1 - SEEDS.index(seed)]
        (p / "seed.txt").write_text(seed)
    elif how == "restore":
        (p / "big.bin").unlink(missing_ok=True)
    else:
        for built in rng.sample(
            sorted(p.glob("l*/*.txt")), k=min(6, len(list(p.glob("l*/*.txt"))))
        ):
            built.unlink()
    return how, seed


def interrupted_build(
    p: Path, env: Mapping[str, str], sig: int, after: float
) -> subprocess.CompletedProcess[str]:
    """A build sent `sig` (to plait's process alone, as `kill` would) `after` seconds after
    plait answers signals (before that, Python itself is starting: no program of its own can
    answer them)."""
    process = subprocess.Popen(
        [*PLAIT, "build", "-j", "2"],
        cwd=p,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    answering(process.pid)
    try:
        process.wait(after)
    except subprocess.TimeoutExpired:
        process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def answering(pid: int, within: float = 10.0) -> None:
    """Wait until process `pid` catches SIGTERM (plait's first line), or is gone."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        caught = next(ln for ln in status.splitlines() if ln.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.002)


def said_interrupted(result: subprocess.CompletedProcess[str], sig: int) -> list[str]:
    """What is wrong with what a build sent `sig` did: a SIGINT or SIGTERM ends it with the
    status a shell expects and a word, never a traceback (or it was over already)."""
    problems = no_traceback(result)
    if sig == signal.SIGKILL or result.returncode == 0:
        return problems
    if result.returncode != 128 + sig:
        problems.append(f"exited {result.returncode}, not {128 + sig}")
    elif not any(w in result.stdout + result.stderr for w in ("interrupted", "terminated")):
        problems.append("did not say it was interrupted")
    return problems


def recovered(p: Path, env: Mapping[str, str], want: Mapping[str, str]) -> list[str]:
    """What is wrong after an interrupted build: left running, left behind, or a next build
    that fails or gives another tree."""
    problems = left_running() + leftovers(p)
    rebuilt = plait("build", "-j", "2", cwd=p, env=env)
    if rebuilt.returncode != 0:
        return [*problems, f"the next build exited {rebuilt.returncode}: {rebuilt.stderr[-300:]}"]
    return problems + differences(tree(p), want) + store_sound(p, env)


def plaitfile_interrupts(
    scratch: Path, refs: Plaitfiles, tally: Tally, trials: int, sig: int, rng: random.Random
) -> None:
    p = plaitfile_project(scratch / f"interrupt-{sig}")
    env = {"PLAIT_CACHE": str(p / ".plait")}
    plait("build", cwd=p, env=env)
    for n in range(trials):
        how, seed = prepare(p, rng)
        after = rng.uniform(0.0, 2.5)
        result = interrupted_build(p, env, sig, after)
        problems = said_interrupted(result, sig) + recovered(p, env, refs.want[seed])
        tally.add(f"#{n} {how}, {signal.Signals(sig).name} at {after:.2f}s", problems)


def shared_store_pairs(scratch: Path, tally: Tally, pairs: int, rng: random.Random) -> None:
    """Two projects, one store, started together: each action runs in one of them only."""
    for n in range(pairs):
        store = scratch / f"pair-{n}-store"
        projects = [plaitfile_project(scratch / f"pair-{n}-{side}", SEEDS[n % 2]) for side in "ab"]
        env = {"PLAIT_CACHE": str(store)}
        started = [
            subprocess.Popen(
                [*PLAIT, "build", "-j", "2", "--report", "r.json"],
                cwd=p,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for p in projects
        ]
        problems: list[str] = []
        ran: dict[str, int] = {}
        for p, process in zip(projects, started, strict=True):
            _, err = process.communicate(timeout=300)
            if process.returncode != 0:
                problems.append(f"{p.name} exited {process.returncode}: {err[-200:]}")
                continue
            for a in json.loads((p / "r.json").read_text())["actions"]:
                ran[a["name"]] = ran.get(a["name"], 0) + (a["status"] == "ran")
        twice = sorted(name for name, times in ran.items() if times != 1)
        if twice:
            problems.append(f"{len(twice)} actions did not run exactly once: {twice[:4]}")
        tally.add(f"pair #{n}", problems + store_sound(projects[0], env))
        for p in projects:
            shutil.rmtree(p)
        shutil.rmtree(store)
        rng.random()


def corrupted_blobs(
    scratch: Path, refs: Plaitfiles, tally: Tally, trials: int, rng: random.Random
) -> None:
    """A byte of a random output's blob flipped, the outputs deleted: the next build must put
    back the right bytes, and say so."""
    p = plaitfile_project(scratch / "corrupt")
    env = {"PLAIT_CACHE": str(p / ".plait")}
    for n in range(trials):
        plait("build", cwd=p, env=env)
        outputs = [*sorted(p.glob("l*/*.txt")), p / "leaf.txt"]
        victim = rng.choice(outputs)
        blob = next(
            (p / ".plait" / "blobs").glob(f"*/{hashlib.sha256(victim.read_bytes()).hexdigest()}")
        )
        body = bytearray(blob.read_bytes())
        body[rng.randrange(len(body))] ^= 0x20
        blob.chmod(0o644)
        blob.write_bytes(bytes(body))
        for out in outputs:
            out.unlink()
        rebuilt = plait("build", cwd=p, env=env)
        problems = no_traceback(rebuilt)
        if rebuilt.returncode != 0:
            problems.append(f"exited {rebuilt.returncode}")
        if "damaged" not in rebuilt.stdout + rebuilt.stderr:
            problems.append("no word of the damaged blob")
        problems += differences(tree(p), refs.want[SEEDS[0]]) + store_sound(p, env)
        tally.add(f"#{n} {victim.relative_to(p)}", problems)


def damaged_database(
    scratch: Path, refs: Plaitfiles, tally: Tally, trials: int, rng: random.Random
) -> None:
    """The store's database truncated or overwritten: a clear error naming `plait store reset`,
    which gets the builds going again."""
    p = plaitfile_project(scratch / "database")
    env = {"PLAIT_CACHE": str(p / ".plait")}
    for n in range(trials):
        plait("build", cwd=p, env=env)
        db = p / ".plait" / "store.db"
        how = rng.choice(["truncated", "garbage"])
        size = db.stat().st_size
        with db.open("r+b") as f:
            if how == "truncated":
                f.truncate(rng.randrange(1, max(2, size // 2)))
            else:
                f.seek(0)
                f.write(os.urandom(min(size, 4096)))
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        failed = plait("build", cwd=p, env=env)
        problems = no_traceback(failed)
        if failed.returncode != 2 or "plait store reset" not in failed.stderr:
            problems.append(f"exited {failed.returncode} without naming 'plait store reset'")
        reset = plait("store", "reset", cwd=p, env=env)
        if reset.returncode != 0:
            problems.append(f"store reset exited {reset.returncode}")
        problems += recovered(p, env, refs.want[SEEDS[0]])
        tally.add(f"#{n} {how}", problems)


def full_disk(scratch: Path, tally: Tally, trials: int, rng: random.Random) -> None:
    """The store on a small tmpfs: the build fails the actions that cannot keep their outputs,
    saying so, keeps the rest, and the store verifies."""
    for n in range(trials):
        p = plaitfile_project(scratch / f"disk-{n}")
        before = tree(p)
        store = scratch / f"disk-{n}-store"
        store.mkdir()
        said = scratch / f"disk-{n}-said"
        said.mkdir()
        size = rng.choice([20_000, 2_000_000, 20_000_000, 100_000_000])
        # The build and the check in one mount namespace, which the tmpfs lives as long as.
        script = (
            f"mount -t tmpfs -o size={size} tmpfs {store} && "
            f"{shlex.join([*PLAIT, 'build', '-k'])} > {said}/build 2>&1; echo $? > {said}/rc; "
            f"{shlex.join([*PLAIT, 'store', 'verify'])} > {said}/verify 2>&1; echo $? >> {said}/rc"
        )
        subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            cwd=p,
            env={**os.environ, "PLAIT_CACHE": str(store)},
            check=False,
        )
        out = (said / "build").read_text()
        codes = (said / "rc").read_text().split()
        problems = ["a traceback"] if "Traceback" in out else []
        # A build fails the actions that cannot keep their outputs (1), or cannot even open
        # the store (2); either way it says so.
        if codes[:1] not in (["0"], ["1"], ["2"]):
            problems.append(f"the build exited {codes[:1]}")
        if codes[:1] == ["1"] and "No space left on device" not in out:
            problems.append(f"failed without saying the disk is full: {out[-300:]}")
        if codes[:1] == ["2"] and "the disk it is on is full" not in out:
            problems.append(f"stopped without saying the disk is full: {out[-300:]}")
        verify = (said / "verify").read_text()
        if codes[1:] == ["2"] and "the disk it is on is full" in verify:
            pass  # no room to open the database: nothing to verify, and it says so
        elif codes[1:] != ["0"]:
            problems.append(
                f"store verify exited {codes[1:]}: {(said / 'verify').read_text()[-200:]}"
            )
        now = tree(p)
        changed = sorted(k for k, v in before.items() if now.get(k) != v)
        if changed:
            problems.append(f"user files changed: {changed}")
        problems += left_running() + leftovers(p)
        tally.add(f"#{n} {size} bytes", problems)


# -- the bad-input catalogue -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A project (`files`, Plaitfile.py among them), a command, the exit status it must give and
    what it must say (each string in its output, `hint:` among them where a user has a fix)."""

    name: str
    files: Mapping[str, str]
    args: tuple[str, ...]
    status: int
    said: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    # What the command runs under, in the project: bwrap making the store read-only, say.
    under: Callable[[Path], list[str]] | None = None
    lisp: bool = False


OK_ACTION = "action('a', ['sh', '-c', 'echo a > a.txt'], outputs=['a.txt'])\n"


def pf(text: str, **more: str) -> dict[str, str]:
    return {"Plaitfile.py": text, "notes.txt": "the user's own notes\n", **more}


def _store_is_a_file(p: Path) -> None:
    (p / "cache-file").write_text("not a store\n")


def _garbage_database(p: Path) -> None:
    (p / ".plait").mkdir()
    (p / ".plait" / "store.db").write_bytes(b"this is no database" * 100)


def _built_then_changed(p: Path) -> None:
    plait("build", cwd=p, env={"PLAIT_CACHE": str(p / ".plait")})
    (p / "in.txt").write_text("changed\n")


def _store_read_only(p: Path) -> list[str]:
    store = str(p / ".plait")
    return [
        "bwrap",
        "--bind",
        "/",
        "/",
        "--ro-bind",
        store,
        store,
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]


def _a_directory_named_plaitfile(p: Path) -> None:
    (p / "Plaitfile.py").mkdir()


CATALOGUE: list[Case] = [
    # The Plaitfile, loaded: file:line and a hint.
    Case(
        "python syntax",
        pf("action('a', ['true'],\n  outputs=[)\n"),
        ("build",),
        2,
        ("Plaitfile.py:2", "hint:"),
    ),
    Case(
        "exception",
        pf("x = 1\nraise ValueError('no')\n"),
        ("build",),
        2,
        ("Plaitfile.py:2", "ValueError", "hint:"),
    ),
    Case(
        "name error",
        pf("action('a', ['true'], outputs=[OUT])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "OUT", "hint:"),
    ),
    Case(
        "import of a missing module",
        pf("import no_such_module_here\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "no_such_module_here", "hint:"),
    ),
    Case(
        "argv a string",
        pf("action('a', 'echo hi > a.txt', outputs=['a.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "argv empty",
        pf("action('a', [], outputs=['a.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "empty", "hint:"),
    ),
    Case(
        "argv of a number",
        pf("action('a', ['echo', 3], outputs=['a.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "NUL in argv",
        pf("action('a', ['echo', 'a\\0b'], outputs=['a.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "NUL", "hint:"),
    ),
    Case(
        "NUL in env",
        pf("action('a', ['true'], outputs=['a.txt'], env={'A': 'x\\0'})\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "NUL", "hint:"),
    ),
    Case(
        "= in an env name",
        pf("action('a', ['true'], outputs=['a.txt'], env={'A=B': 'c'})\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "env value a number",
        pf("action('a', ['true'], outputs=['a.txt'], env={'A': 1})\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "an unknown keyword",
        pf("action('a', ['true'], outptus=['a.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "outptus", "hint:"),
    ),
    Case(
        "empty name",
        pf("action('', ['true'], outputs=['a.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "duplicate name",
        pf(OK_ACTION + "action('a', ['true'], outputs=['b.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:2", "hint:"),
    ),
    Case(
        "two writers of a file",
        pf(OK_ACTION + "action('b', ['true'], outputs=['a.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:2", "hint:"),
    ),
    Case(
        "an output outside the project",
        pf("action('a', ['true'], outputs=['../up.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "an absolute output",
        pf("action('a', ['true'], outputs=['/tmp/abs.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "the Plaitfile as an output",
        pf("action('a', ['true'], outputs=['Plaitfile.py'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "an output that is its own input",
        pf("action('a', ['true'], inputs=['notes.txt'], outputs=['notes.txt'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "an input nobody has",
        pf("action('a', ['true'], inputs=['gone.txt'], outputs=['a.txt'])\n"),
        ("build",),
        2,
        ("gone.txt", "hint:"),
    ),
    Case(
        "a cycle",
        pf(
            "action('a', ['true'], inputs=['b.txt'], outputs=['a.txt'])\n"
            "action('b', ['true'], inputs=['a.txt'], outputs=['b.txt'])\n"
        ),
        ("build",),
        2,
        ("cycle", "hint:"),
    ),
    Case(
        "after= an unknown action",
        pf("action('a', ['true'], outputs=['a.txt'], after=['bb'])\n"),
        ("build",),
        2,
        ("bb", "hint:"),
    ),
    Case(
        "a relative toolchain",
        pf("action('a', ['true'], outputs=['a.txt'], toolchain=['bin'])\n"),
        ("build",),
        2,
        ("Plaitfile.py:1", "hint:"),
    ),
    Case(
        "a toolchain that is not there",
        pf("action('a', ['true'], outputs=['a.txt'], toolchain=['/no/such/tool'])\n"),
        ("build",),
        2,
        ("/no/such/tool", "hint:"),
    ),
    Case(
        "sys.exit(0)", pf("import sys\nsys.exit(0)\n"), ("build",), 2, ("Plaitfile.py:2", "hint:")
    ),
    Case(
        "sys.exit(3)", pf("import sys\nsys.exit(3)\n"), ("build",), 2, ("Plaitfile.py:2", "hint:")
    ),
    Case("no Plaitfile", {"notes.txt": "the user's own notes\n"}, ("build",), 2, ("hint:",)),
    Case(
        "Plaitfile.py a directory",
        {"notes.txt": "x\n"},
        ("build",),
        2,
        ("is not a file", "hint:"),
        setup=_a_directory_named_plaitfile,
    ),
    Case(
        "a Plaitfile of bytes",
        pf("\udcff\udcfe garbage\n".encode("utf-8", "surrogateescape").decode("latin-1")),
        ("build",),
        2,
        ("Plaitfile.py", "hint:"),
    ),
    # The command line.
    Case("an unknown target", pf(OK_ACTION), ("build", "nosuch"), 2, ("nosuch", "hint:")),
    Case("-j 0", pf(OK_ACTION), ("build", "-j", "0"), 2, ("-j",)),
    Case("-j x", pf(OK_ACTION), ("build", "-j", "x"), 2, ("-j",)),
    Case("an unknown option", pf(OK_ACTION), ("build", "--frobnicate"), 2, ("--frobnicate",)),
    Case("an unknown command", pf(OK_ACTION), ("frobnicate",), 2, ("frobnicate",)),
    Case(
        "-C a missing directory",
        pf(OK_ACTION),
        ("-C", "/no/such/dir", "build"),
        2,
        ("/no/such/dir",),
    ),
    Case(
        "--report into a missing directory",
        pf(OK_ACTION),
        ("build", "--report", "/no/such/dir/r.json"),
        2,
        ("/no/such/dir", "hint:"),
    ),
    Case(
        "--trace onto a directory",
        pf(OK_ACTION, **{"tdir/keep.txt": "kept\n"}),
        ("build", "--trace", "tdir"),
        2,
        ("tdir", "hint:"),
    ),
    Case(
        "gc --max-size of nonsense",
        pf(OK_ACTION),
        ("gc", "--max-size", "lots"),
        2,
        ("lots", "hint:"),
    ),
    Case("gc --older-than below zero", pf(OK_ACTION), ("gc", "--older-than", "-1"), 2, ("-1",)),
    Case("log of an unknown action", pf(OK_ACTION), ("log", "nosuch"), 2, ("nosuch",)),
    # The store.
    Case(
        "PLAIT_CACHE a file",
        pf(OK_ACTION),
        ("build",),
        2,
        ("not a directory", "hint:"),
        env={"PLAIT_CACHE": "cache-file"},
        setup=_store_is_a_file,
    ),
    Case(
        "a garbage database",
        pf(OK_ACTION),
        ("build",),
        2,
        ("plait store reset",),
        setup=_garbage_database,
    ),
    Case(
        "a read-only store that must record",
        pf(
            "action('c', ['cp', 'in.txt', 'out.txt'], inputs=['in.txt'], outputs=['out.txt'])\n",
            **{"in.txt": "first\n"},
        ),
        ("build", "--sandbox", "directory"),
        1,
        ("is read-only here", "in.txt"),
        setup=_built_then_changed,
        under=_store_read_only,
    ),
    # Commands that fail: exit 1, what failed and why.
    Case(
        "a command that is not there",
        pf("action('a', ['no-such-program-here'], outputs=['a.txt'])\n"),
        ("build",),
        1,
        ("FAILED a", "no-such-program-here"),
    ),
    Case(
        "a command that fails",
        pf("action('a', ['sh', '-c', 'echo oops >&2; exit 3'], outputs=['a.txt'])\n"),
        ("build",),
        1,
        ("FAILED a", "exited with status 3", "oops"),
    ),
    Case(
        "an output not written",
        pf("action('a', ['true'], outputs=['a.txt'])\n"),
        ("build",),
        1,
        ("FAILED a", "'a.txt' not written"),
    ),
    Case(
        "an output over the user's file",
        pf("action('ow', ['sh', '-c', 'echo generated > notes.txt'], outputs=['notes.txt'])\n"),
        ("build",),
        1,
        ("FAILED ow", "notes.txt", "--force"),
    ),
    Case(
        "an argv too long",
        pf("action('a', ['echo', 'x' * 3_000_000], outputs=['a.txt'])\n"),
        ("build",),
        1,
        ("FAILED a", "too long"),
    ),
    # Lisp.
    Case(
        "an unknown system",
        {"notes.txt": "x\n"},
        ("build", "no-such-system-here"),
        2,
        ("no-such-system-here", "hint:"),
        lisp=True,
    ),
    Case(
        "an .asd that does not read",
        {"bad.asd": '(defsystem "bad"\n  :components ((:file "a")\n'},
        ("build", "bad"),
        2,
        ("bad.asd", "hint:"),
        lisp=True,
    ),
    Case(
        "a file in a package nobody made",
        {
            "pk.asd": '(defsystem "pk" :components ((:file "a")))\n',
            "a.lisp": "(in-package :no-such-package-here)\n(defun f () 1)\n",
        },
        ("build", "pk"),
        1,
        ("a.lisp:1", "NO-SUCH-PACKAGE-HERE"),
        lisp=True,
    ),
    Case(
        "an entry point that is not there",
        {"ep.asd": '(defsystem "ep" :components ((:file "a")))\n', "a.lisp": "(defun f () 1)\n"},
        ("program", "ep", "--entry", "nopkg::nofn", "-o", "ep-program"),
        1,
        ("names no function", "hint:"),
        lisp=True,
    ),
]


def user_files(p: Path) -> dict[str, str]:
    return tree(p, skip=(".plait",))


def catalogue(scratch: Path, tally: Tally, cases: Sequence[Case]) -> None:
    for n, case in enumerate(cases):
        p = scratch / f"case-{n}"
        p.mkdir()
        for rel, text in case.files.items():
            (p / rel).parent.mkdir(parents=True, exist_ok=True)
            (p / rel).write_text(text)
        env = {"PLAIT_CACHE": str(p / ".plait"), "XDG_CACHE_HOME": str(scratch / f"xdg-{n}")}
        if case.setup is not None:
            case.setup(p)
        env.update({k: (str(p / v) if k == "PLAIT_CACHE" else v) for k, v in case.env.items()})
        before = user_files(p)
        if case.under is None:
            result = plait(*case.args, cwd=p, env=env)
        else:
            result = subprocess.run(
                [*case.under(p), "--", *PLAIT, *case.args],
                cwd=p,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        said = result.stdout + result.stderr
        problems = no_traceback(result)
        if result.returncode != case.status:
            problems.append(f"exited {result.returncode}, not {case.status}")
        problems += [f"did not say {s!r}" for s in case.said if s not in said]
        after = user_files(p)
        changed = sorted(k for k in before if after.get(k) != before[k])
        if changed:
            problems.append(f"user files changed: {changed}")
        tally.add(case.name, problems + ([f"said: {said[-600:]!r}"] if problems else []))


# -- a Lisp project ----------------------------------------------------------------------------


def lisp_project(scratch: Path, name: str) -> tuple[Path, dict[str, str]]:
    """examples/wordcount with a store and an ASDF fasl cache of its own."""
    p = scratch / name
    shutil.copytree(EXAMPLES / "wordcount", p)
    return p, {"PLAIT_CACHE": str(p / ".plait"), "XDG_CACHE_HOME": str(scratch / f"{name}-xdg")}


def lisp_tree(p: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The project and the fasl cache (whose files' paths name the project's)."""
    fasls = tree(Path(env["XDG_CACHE_HOME"]))
    return {**tree(p), **{f"xdg/{k}": v for k, v in fasls.items()}}


def lisp_interrupts(scratch: Path, tally: Tally, trials: int, sig: int, rng: random.Random) -> None:
    p, env = lisp_project(scratch, f"lisp-{signal.Signals(sig).name}")
    xdg = Path(env["XDG_CACHE_HOME"])
    # The reference: a clean build at the same place (a fasl names its source).
    built = plait("build", cwd=p, env=env)
    if built.returncode != 0:
        raise SystemExit(f"torture: the clean Lisp build failed:\n{built.stdout}{built.stderr}")
    want = lisp_tree(p, env)
    shutil.rmtree(p / ".plait")
    for n in range(trials):
        how = rng.choice(["fresh", "fresh", "restore"])
        shutil.rmtree(xdg, ignore_errors=True)
        if how == "fresh":
            shutil.rmtree(p / ".plait", ignore_errors=True)
        after = rng.uniform(0.0, 8.0)
        result = interrupted_build(p, env, sig, after)
        problems = said_interrupted(result, sig) + leftovers(p, xdg)
        rebuilt = plait("build", "-j", "2", cwd=p, env=env)
        if rebuilt.returncode != 0:
            problems.append(f"the next build exited {rebuilt.returncode}: {rebuilt.stdout[-300:]}")
        else:
            problems += differences(lisp_tree(p, env), want) + store_sound(p, env)
        problems += left_sbcl(p)
        tally.add(f"#{n} {how}, {signal.Signals(sig).name} at {after:.2f}s", problems)


def left_sbcl(p: Path) -> list[str]:
    """SBCLs of a build of `p` still running once the next build is over."""
    mine = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cwd").resolve() == p and b"sbcl" in (entry / "cmdline").read_bytes():
                    mine.append(int(entry.name))
            except OSError:
                continue
    for pid in mine:
        os.kill(pid, signal.SIGKILL)
    return [f"{len(mine)} SBCL(s) still running"] if mine else []


# -- the whole suite ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    kills: int
    interrupts: int
    lisp_kills: int
    lisp_interrupts: int
    pairs: int
    corrupt: int
    databases: int
    disks: int


FULL = Counts(
    kills=40,
    interrupts=8,
    lisp_kills=12,
    lisp_interrupts=4,
    pairs=10,
    corrupt=8,
    databases=4,
    disks=6,
)
SAMPLE = Counts(
    kills=3, interrupts=1, lisp_kills=1, lisp_interrupts=1, pairs=1, corrupt=1, databases=1, disks=1
)


@contextmanager
def scratch_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="plait-torture-") as d:
        yield Path(d).resolve()


def torture(counts: Counts, seed: int, progress: Callable[[str], None] = print) -> dict[str, Tally]:
    rng = random.Random(seed)
    c = counts
    with scratch_directory() as scratch:
        refs = Plaitfiles(scratch)
        scenarios: list[tuple[str, Callable[[Tally], None]]] = [
            ("bad-input catalogue", lambda t: catalogue(scratch, t, CATALOGUE)),
            *(
                (
                    f"{signal.Signals(sig).name}, Plaitfile build",
                    lambda t, sig=sig, n=n: plaitfile_interrupts(scratch, refs, t, n, sig, rng),
                )
                for sig, n in (
                    (signal.SIGKILL, c.kills),
                    (signal.SIGINT, c.interrupts),
                    (signal.SIGTERM, c.interrupts),
                )
            ),
            *(
                (
                    f"{signal.Signals(sig).name}, Lisp build",
                    lambda t, sig=sig, n=n: lisp_interrupts(scratch, t, n, sig, rng),
                )
                for sig, n in ((signal.SIGKILL, c.lisp_kills), (signal.SIGINT, c.lisp_interrupts))
            ),
            (
                "two builds at once, one store",
                lambda t: shared_store_pairs(scratch, t, c.pairs, rng),
            ),
            ("corrupted blob", lambda t: corrupted_blobs(scratch, refs, t, c.corrupt, rng)),
            ("damaged database", lambda t: damaged_database(scratch, refs, t, c.databases, rng)),
            ("full disk (store on a small tmpfs)", lambda t: full_disk(scratch, t, c.disks, rng)),
        ]
        tallies: dict[str, Tally] = {}
        for name, run_scenario in scenarios:
            progress(f"torture: {name}")
            tally = tallies[name] = Tally()
            try:
                run_scenario(tally)
            except Exception as e:  # the suite's own failure: counted, and the others go on
                tally.add("the scenario itself", [f"stopped: {e!r}"])
    return tallies


def table(tallies: Mapping[str, Tally]) -> list[str]:
    lines = ["| scenario | tried | held |", "|---|---|---|"]
    lines += [f"| {name} | {t.tried} | {t.held} |" for name, t in tallies.items()]
    failures = [f"- {name}: {f}" for name, t in tallies.items() for f in t.failures]
    return [*lines, "", *(["Failures:", "", *failures] if failures else ["No failures."])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", action="store_true", help="a few trials of each scenario")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, default=run.RESULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    tallies = torture(SAMPLE if args.sample else FULL, args.seed)
    body = [f"### plait under abuse (seed {args.seed})", "", *table(tallies)]
    if args.sample:
        print("\n".join(body))
    else:
        command = f"python3 bench/torture.py --seed {args.seed}"
        print(run.record(command, time.monotonic() - started, body, args.out, what=""))
    return 1 if any(t.failures for t in tallies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
