"""Where a builder's command runs: the narrow interface the build sees, and the local executor
that runs each command in its own sandbox and process group, on content it gets by digest."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from plait import namespace
from plait.content import Content, MissingContent
from plait.digest import Digest
from plait.errors import disk_full
from plait.request import Request
from plait.sandbox import Sandbox, kill_group, sandbox_base
from plait.scratch import Scratch, remove_tree

# Where each input's content is on this machine, and whether it is executable.
Files = Mapping[str, tuple[Path, bool]]


@dataclass
class Result:
    """`exit_status` is negative for a signal and None when the command could not start."""

    exit_status: int | None
    duration: float
    outputs: dict[str, tuple[Digest, bool]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    # Files the command wrote beside its outputs, which it does not declare: dropped.
    undeclared: list[str] = field(default_factory=list)
    error: str = ""
    # Where the outputs came from when the command did not run here, as the reason says it:
    # another plait sharing the store, which registered them (`known`), or a remote cache.
    reused: str = ""
    known: bool = False
    # Where it ran, when not here (a farm's worker), as the reason says it.
    where: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.missing and not self.error


class Declined(Exception):
    """A strategy cannot run this command (its server stopped, say): run it as it is."""


class Strategy(Protocol):
    """Another way to run some commands than starting their argv afresh, which a frontend
    supplies (the ASDF frontend forks Lisp compiles from warm images). It must make the same
    outputs as the argv would."""

    def staged(self, request: Request) -> tuple[tuple[str, ...], ...] | None:
        """None: not a command of this strategy's. Else, in order, groups of linked inputs that
        only the command's later steps read: the sandbox gets them when `run` stages them."""
        ...

    def run(
        self,
        request: Request,
        cwd: Path,
        log: Path,
        stage: Callable[[int], int | None],
        release: Callable[[], None],
    ) -> int | None:
        """Run the command in `cwd` (its sandbox), its output to `log`; its exit status, or
        None when its process stopped. `stage(k)` links the k-th group of `staged` and those
        after it (0: all), and returns the pid of a process whose namespaces the command's
        process must join before it runs anything (None: none). `release()` says it is done
        with the sandbox, once the call has returned. Raises Declined to have the argv run
        instead."""
        ...

    def portable(self, request: Request) -> dict[str, Any] | None:
        """How this strategy runs the command, as JSON data that a plait worker on another
        machine acts on (the words of `request.named` by their names); None: not its command."""
        ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class Executor(Protocol):
    def execute(self, request: Request, content: Content, log: Path) -> Result:
        """Run the command on the inputs' content, which `content` gives; its output goes to
        `log`. Each declared output is `put` into `content` before the command's files are
        thrown away. Called from worker threads."""
        ...

    def cancel(self) -> None:
        """Kill every command that is running now; their `execute` calls then return."""
        ...


# What a run's directory in the sandbox base is named after (plait.scratch).
SCRATCH = "plait-run-"


class LocalExecutor:
    """Runs each command in a fresh sandbox directory, in a process group of its own: started
    afresh, or by a strategy a frontend plugs in (`use`). With `namespaces`, each command runs
    in namespaces of its own that show it nothing undeclared (plait.namespace): a strategy's
    process, forked from one that sees more, joins namespaces a holder process makes."""

    def __init__(self, namespaces: bool = False) -> None:
        self.namespaces = namespaces
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._cancelled = False
        self._strategy: Strategy | None = None
        # This run's directory in the sandbox base, for its sandboxes and a strategy's files
        # (plait.scratch): made when first needed. Those of runs that were killed go now.
        self._scratch = Scratch(sandbox_base() or Path(tempfile.gettempdir()), SCRATCH)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the strategy, and remove this run's directory."""
        with self._lock:
            strategy, self._strategy = self._strategy, None
        if strategy is not None:
            strategy.close()
        self._scratch.remove()

    @property
    def directory(self) -> Path:
        """This run's directory in the sandbox base, for a strategy's files too."""
        return self._scratch.path

    def portable(self, request: Request) -> dict[str, Any] | None:
        """How this executor's strategy runs `request` (Strategy.portable), if it does."""
        with self._lock:
            strategy = self._strategy
        return strategy.portable(request) if strategy is not None else None

    def use(self, strategy: Strategy) -> bool:
        """Run the commands `strategy` takes its way from now on; False once cancelled (the
        caller then closes it)."""
        with self._lock:
            if self._cancelled:
                return False
            assert self._strategy is None, "one strategy at a time"
            self._strategy = strategy
            return True

    def execute(self, request: Request, content: Content, log: Path) -> Result:
        start = time.monotonic()
        try:
            files, absolute = self._locate(request, content)
        except _Unavailable as e:
            return Result(None, time.monotonic() - start, error=str(e))
        root = Path(tempfile.mkdtemp(prefix="sb-", dir=self._scratch.path))
        # Removed once collected, and once a strategy that ran the command is done with it.
        release = _Release(root)
        try:
            box = Sandbox(root)
            # What only loads read waits until it is known which loads the command performs.
            later = _Later(request, files, box, self._strategy)
            try:
                box.populate(later.now, request.outputs, request.links)
                status, error = self._run(request, files, absolute, box, log, later, release)
            except OSError as e:
                return Result(None, time.monotonic() - start, error=f"cannot set up sandbox: {e}")
            result = Result(status, time.monotonic() - start, error=error)
            if status == 0 and not error:
                try:
                    _collect(request, box, content, result)
                except OSError as e:
                    full = " (free some space; plait gc shrinks the store)" if disk_full(e) else ""
                    result.error = f"cannot keep its outputs: {e.strerror}{full}"
            return result
        finally:
            release.done()

    def _locate(self, request: Request, content: Content) -> tuple[Files, dict[str, Path]]:
        """Where the content of each relative input is, and of each absolute one: a command
        reads the latter at its own path, where the namespace sandbox binds its content and the
        directory sandbox, which cannot, needs it to be already."""
        files: dict[str, tuple[Path, bool]] = {}
        absolute: dict[str, Path] = {}
        for path, wanted in request.inputs.items():
            try:
                where = content.file(wanted.digest)
            except MissingContent as e:
                raise _Unavailable(
                    f"the content of input '{path}' is gone ({e}): was it changed during the build?"
                ) from None
            if not path.startswith("/"):
                files[path] = (where, wanted.executable)
            elif self.namespaces:
                absolute[path] = where
            elif not Path(path).is_file():
                raise _Unavailable(
                    f"input '{path}' is not on this machine, where the directory sandbox reads it"
                )
        return files, absolute

    def _run(
        self,
        request: Request,
        files: Files,
        absolute: Mapping[str, Path],
        box: Sandbox,
        log: Path,
        later: _Later,
        release: _Release,
    ) -> tuple[int | None, str]:
        log.parent.mkdir(parents=True, exist_ok=True)
        strategy = self._strategy
        toolchain = list(request.toolchain)
        linked = [str(files[r][0]) for r in request.links if r in files] + toolchain
        binds = {p: str(where) for p, where in absolute.items()}
        if strategy is not None and later.staged is not None:
            with contextlib.suppress(Declined), contextlib.ExitStack() as holders:

                def stage(first: int) -> int | None:
                    later.stage(first)
                    if not self.namespaces:
                        return None
                    # Namespaces showing what the steps from `first` on read, which the
                    # strategy's process joins before it runs anything.
                    reads = [str(files[r][0]) for r in sorted(later.read_from(first))]
                    reads += toolchain
                    return holders.enter_context(_Holder(box.root, reads, binds)).pid

                # What the strategy starts may still use the sandbox when the command's status
                # is known: it releases it when done.
                by_strategy = release.also_by()
                try:
                    status = strategy.run(request, box.work, log, stage, by_strategy)
                except Declined:
                    by_strategy()
                    raise
                return status, "" if status is not None else "its process stopped"
        later.stage(0)
        with log.open("wb") as out:
            with self._lock:
                if self._cancelled:
                    return None, "cancelled"
                try:
                    argv = list(request.argv)
                    if self.namespaces:
                        argv = namespace.wrap(argv, box.root, box.work, linked, binds)
                    proc = subprocess.Popen(
                        argv,
                        cwd=box.work,
                        env=box.environment(request.env),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                except FileNotFoundError:
                    return None, f"program '{request.argv[0]}' not found"
                except PermissionError:
                    return None, f"program '{request.argv[0]}' is not executable"
                except OSError as e:
                    if e.errno != errno.E2BIG:
                        raise
                    size = sum(len(w) + 1 for w in request.argv)
                    return None, (
                        f"its command is too long for the system ({len(request.argv)} words,"
                        f" {size} bytes): pass the list of files through an input file instead"
                    )
                self._running.add(proc)
            try:
                status = proc.wait()
            finally:
                with self._lock:
                    self._running.discard(proc)
                kill_group(proc.pid)  # what the command left running in its group goes too
        return status, ""

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            for proc in self._running:
                kill_group(proc.pid)
            if self._strategy is not None:
                self._strategy.cancel()


class _Holder:
    """A process holding namespaces that show a sandbox as `namespace.wrap` would, for the
    duration of a strategy's command; Declined if it cannot be made."""

    def __init__(self, root: Path, reads: list[str], binds: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            namespace.holder(root, reads, binds),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        said = self.proc.stdout.readline().decode().split()
        if len(said) != 2 or said[0] != namespace.READY or not said[1].isdigit():
            self.__exit__()
            raise Declined("the namespaces could not be made")
        self.pid = int(said[1])

    def __enter__(self) -> _Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid)
            self.proc.wait()


class _Unavailable(Exception):
    """An input's content cannot be had: the command cannot run."""


class _Release:
    """Removes a sandbox once each party that uses it is done: the executor, and a strategy
    that took it (`also_by`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._users = 1

    def also_by(self) -> Callable[[], None]:
        with self._lock:
            self._users += 1
        return self.done

    def done(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            remove_tree(self.root)


class _Later:
    """The inputs that only a strategy's later steps read (`now` are the others): linked into
    the sandbox from the first step that needs them."""

    def __init__(
        self, request: Request, files: Files, box: Sandbox, strategy: Strategy | None
    ) -> None:
        self.box = box
        self.inputs = files
        # None: the strategy does not run this command (or there is none).
        self.staged = strategy.staged(request) if strategy is not None else None
        deferred = {rel for files in self.staged or () for rel in files if rel in request.links}
        self.now = {rel: v for rel, v in files.items() if rel not in deferred}
        self.waiting = deferred
        self.links = request.links & files.keys()

    def stage(self, first: int) -> None:
        """Link what loads `first` and after read, and everything, from 0."""
        later = (self.staged or ())[first:]
        wanted = self.waiting if first == 0 else {r for f in later for r in f}
        for rel in sorted(wanted & self.waiting):
            self.box.link(rel, self.inputs[rel][0])
        self.waiting -= wanted

    def read_from(self, first: int) -> set[str]:
        """The linked inputs read by the steps from `first` on, and by the command itself."""
        later = {r for f in (self.staged or ())[first:] for r in f}
        return {r for r in self.links if r in self.now or r in later}


def _collect(request: Request, box: Sandbox, content: Content, result: Result) -> None:
    for rel in request.outputs:
        path = box.work / rel
        if not path.is_file():
            result.missing.append(rel)
            continue
        executable = bool(path.stat().st_mode & 0o100)
        result.outputs[rel] = (content.put(path), executable)
    known = {*request.outputs, *(p for p in request.inputs if not p.startswith("/"))}
    for directory, _, names in os.walk(box.work):
        for name in names:
            rel = str((Path(directory) / name).relative_to(box.work))
            if rel not in known:
                result.undeclared.append(rel)
    result.undeclared.sort()
