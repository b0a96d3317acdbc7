"""Where a builder's command runs: the narrow interface the build sees, and the local executor
that runs each command in its own sandbox and process group."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from plait.digest import Digest
from plait.model import Warm
from plait.sandbox import Sandbox, kill_group, sandbox_base
from plait.scratch import Scratch, remove_tree
from plait.warm import Unavailable, WarmPool

Ingest = Callable[[Path], Digest]


@dataclass(frozen=True)
class Request:
    """A command to run: `inputs` maps each declared relative path to where its content is now
    and whether it is executable."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    inputs: Mapping[str, tuple[Path, bool]]
    outputs: tuple[str, ...]
    log_path: Path
    links: frozenset[str] = frozenset()
    warm: Warm | None = None


@dataclass
class Result:
    """`exit_status` is negative for a signal and None when the command could not start."""

    exit_status: int | None
    duration: float
    outputs: dict[str, tuple[Digest, bool]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.missing and not self.error


class Executor(Protocol):
    def execute(self, request: Request, ingest: Ingest) -> Result:
        """Run the command; hand each declared output to `ingest` (which stores it) before the
        command's files are thrown away. Called from worker threads."""
        ...

    def cancel(self) -> None:
        """Kill every command that is running now; their `execute` calls then return."""
        ...


# What a run's directory in the sandbox base is named after (plait.scratch).
SCRATCH = "plait-run-"


class LocalExecutor:
    """Runs each command in a fresh sandbox directory, in a process group of its own: started
    afresh, or forked from a warm process when the request says how (plait.warm)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._cancelled = False
        self._pool: WarmPool | None = None
        # This run's directory in the sandbox base, for its sandboxes and warm pool
        # (plait.scratch): made when first needed. Those of runs that were killed go now.
        self._scratch = Scratch(sandbox_base() or Path(tempfile.gettempdir()), SCRATCH)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the warm processes, and remove this run's directory."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        self._scratch.remove()

    def warm_pool(self) -> WarmPool | None:
        """The servers warm commands fork from, made when first asked for; None once
        cancelled."""
        directory = self._scratch.path
        with self._lock:
            if self._pool is None and not self._cancelled:
                self._pool = WarmPool(directory)
            return self._pool

    def execute(self, request: Request, ingest: Ingest) -> Result:
        start = time.monotonic()
        root = Path(tempfile.mkdtemp(prefix="sb-", dir=self._scratch.path))
        # Removed once collected, and once a warm pool that ran the command is done with it.
        release = _Release(root)
        try:
            box = Sandbox(root)
            # What only loads read waits until it is known which loads the command performs.
            later = _Later(request, box)
            try:
                box.populate(later.now, request.outputs, request.links)
                status, error = self._run(request, box, later, release)
            except OSError as e:
                return Result(None, time.monotonic() - start, error=f"cannot set up sandbox: {e}")
            result = Result(status, time.monotonic() - start, error=error)
            if status == 0 and not error:
                _collect(request, box, ingest, result)
            return result
        finally:
            release.done()

    def _run(
        self, request: Request, box: Sandbox, later: _Later, release: _Release
    ) -> tuple[int | None, str]:
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        if request.warm is not None:
            pool = self.warm_pool()
            if pool is not None:
                with contextlib.suppress(Unavailable):
                    # A server the pool makes meanwhile may still be loading from the sandbox
                    # when the command's status is known; the pool releases it when it returns.
                    by_pool = release.also_by()
                    try:
                        status = pool.run(
                            request.warm,
                            request.env,
                            box.work,
                            request.log_path,
                            later.stage,
                            by_pool,
                        )
                    except Unavailable:
                        by_pool()
                        raise
                    return status, "" if status is not None else "its warm process stopped"
        later.stage(0)
        with request.log_path.open("wb") as log:
            with self._lock:
                if self._cancelled:
                    return None, "cancelled"
                try:
                    proc = subprocess.Popen(
                        request.argv,
                        cwd=box.work,
                        env=box.environment(request.env),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                except FileNotFoundError:
                    return None, f"program '{request.argv[0]}' not found"
                except PermissionError:
                    return None, f"program '{request.argv[0]}' is not executable"
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
            if self._pool is not None:
                self._pool.cancel()


class _Release:
    """Removes a sandbox once each party that uses it is done: the executor, and a warm pool
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
    """The inputs of a warm command that only its loads read (`now` are the others): linked
    into the sandbox from the first load the command performs itself on."""

    def __init__(self, request: Request, box: Sandbox) -> None:
        self.box = box
        self.inputs = request.inputs
        self.reads = request.warm.reads if request.warm is not None else ()
        deferred = {rel for files in self.reads for rel in files if rel in request.links}
        self.now = {rel: v for rel, v in request.inputs.items() if rel not in deferred}
        self.waiting = deferred

    def stage(self, first: int) -> None:
        """Link what loads `first` and after read, and everything, from 0."""
        wanted = self.waiting if first == 0 else {r for f in self.reads[first:] for r in f}
        for rel in sorted(wanted & self.waiting):
            self.box.link(rel, self.inputs[rel][0])
        self.waiting -= wanted


def _collect(request: Request, box: Sandbox, ingest: Ingest, result: Result) -> None:
    for rel in request.outputs:
        path = box.work / rel
        if not path.is_file():
            result.missing.append(rel)
            continue
        executable = bool(path.stat().st_mode & 0o100)
        result.outputs[rel] = (ingest(path), executable)
