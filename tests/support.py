"""What the tests share: a fake executor that runs no process, and graph and build helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plait import digest
from plait.build import Build, Early, Options, Report
from plait.content import Content, MissingContent
from plait.digest import Digest
from plait.events import Event
from plait.executor import Result
from plait.model import Action, Graph
from plait.request import Input, Request
from plait.store import Store

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


class Contents:
    """A content store for tests: files it was given (`add`) and the bytes of what it was
    `put` (by hash, in `data`; in order, in `stored`). With a `root`, what is put is kept there
    as a file too, which `file` then gives."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.files: dict[Digest, Path] = {}
        self.data: dict[str, bytes] = {}
        self.stored: list[bytes] = []

    def add(self, path: Path, executable: bool = False) -> Input:
        d = digest.of_file(path)
        self.files[d] = path
        return Input(d, executable)

    def file(self, d: Digest) -> Path:
        if d not in self.files:
            raise MissingContent(d)
        return self.files[d]

    def put(self, path: Path, known: Digest | None = None) -> Digest:
        body = path.read_bytes()
        d = digest.of_bytes(body)
        self.data[d.hash] = body
        self.stored.append(body)
        if self.root is not None:
            kept = self.root / d.hash
            kept.write_bytes(body)
            self.files[d] = kept
        return d


def fake_outputs(request: Request, content: Content) -> dict[str, bytes]:
    """The fake commands: argv[1] says what each output holds.
    `cat`: the argv and every input's content; `len`: only the total length of the inputs (so
    that many different inputs give the same output: early cutoff)."""
    contents = [content.file(i.digest).read_bytes() for i in request.inputs.values()]
    mode = request.argv[1] if len(request.argv) > 1 else "cat"
    if mode == "len":
        body = str(sum(len(c) for c in contents)).encode()
    else:
        body = b"\0".join([" ".join(request.argv).encode(), *contents])
    return {out: body + b"\n" + out.encode() for out in request.outputs}


@dataclass
class FakeExecutor:
    """Runs nothing: writes what `behaviour` says to the outputs. Records every request.
    `fail` names actions that exit 1; `block` names actions that wait for `release`."""

    behaviour: Callable[[Request, Content], dict[str, bytes]] = fake_outputs
    fail: set[str] = field(default_factory=set)
    block: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    ran: list[str] = field(default_factory=list)
    cancelled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    most_running: int = 0

    def execute(self, request: Request, content: Content, log: Path) -> Result:
        with self._lock:
            self.ran.append(request.name)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if request.name in self.block:
                self.release.wait(10)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"fake log of {request.name}\n")
            if request.name in self.fail:
                return Result(1, 0.0)
            result = Result(0, 0.001)
            with tempfile.TemporaryDirectory() as tmp:
                for rel, body in self.behaviour(request, content).items():
                    path = Path(tmp) / "out"
                    path.write_bytes(body)
                    result.outputs[rel] = (content.put(path), False)
            result.missing = [o for o in request.outputs if o not in result.outputs]
            return result
        finally:
            with self._lock:
                self.running -= 1

    def cancel(self) -> None:
        self.cancelled = True
        self.release.set()


def act(
    name: str,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    argv: Sequence[str] = ("fake", "cat"),
    after: Sequence[str] = (),
) -> Action:
    return Action(name, tuple(argv), tuple(inputs), tuple(outputs), after=tuple(after))


def graph_of(actions: Iterable[Action], sources: Iterable[str] = ()) -> Graph:
    graph = Graph()
    for a in actions:
        graph.add(a)
    graph.freeze(sources)
    return graph


@dataclass
class Harness:
    """A project directory, its store and a fake executor: build a graph and see what happened."""

    project: Path
    executor: FakeExecutor = field(default_factory=FakeExecutor)
    events: list[Event] = field(default_factory=list)

    def write(self, rel: str, text: str) -> Path:
        path = self.project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def build(
        self,
        graph: Graph,
        targets: Sequence[str] = (),
        *,
        jobs: int = 2,
        keep_going: bool = False,
        store_root: Path | None = None,
        early: Sequence[str] = (),
    ) -> Report:
        """Build `targets` of `graph`; the actions named in `early` are started before the
        build, as if the graph were still being found."""
        self.executor.ran.clear()
        self.events.clear()
        store = Store.open(self.project, store_root)
        try:
            with Early(self.project, store, self.executor, jobs) as started:
                for name in early:
                    started.start(graph.actions[name])
                build = Build(
                    self.project,
                    graph,
                    store,
                    self.executor,
                    self.events.append,
                    Options(jobs=jobs, keep_going=keep_going),
                    early=started,
                )
                return build.run(targets)
        finally:
            store.close()


def plaitfile_project(directory: Path, plaitfile: str) -> Path:
    """A new project directory whose Plaitfile.py is `plaitfile`."""
    directory.mkdir(parents=True)
    (directory / "Plaitfile.py").write_text(plaitfile)
    return directory


def statuses(report: Report) -> dict[str, str]:
    return {name: f.status for name, f in report.results.items()}


def ran(report: Report) -> list[str]:
    return sorted(name for name, f in report.results.items() if f.status == "ran")


def age(path: Path, seconds: float = 10.0) -> None:
    """Move a file's mtime into the past, as if it was written well before the last build."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def plait(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `plait` command, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PLAIT_CACHE", None) if env is None or "PLAIT_CACHE" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def running(marker: str) -> list[int]:
    """The processes (other than this one) whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
