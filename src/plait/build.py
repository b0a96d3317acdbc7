"""One build: for each needed action, decide (planner), restore or run it (executor), register its
result (store), and emit what happened (events), in the order the scheduler chooses."""

from __future__ import annotations

import contextlib
import functools
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from plait import planner
from plait.content import LocalContent
from plait.digest import Digest
from plait.events import BuildEnded, Failure, Finished, Planned, Started, Status, Subscriber
from plait.executor import Executor, Result
from plait.model import Action, Graph
from plait.planner import Decision
from plait.request import Input, Request
from plait.sandbox import resolve_program
from plait.scheduler import Interrupted, Scheduler, Work
from plait.store import CachedResult, Output, Store

LOG_TAIL_LINES = 20
# Why an action that was to run is cached: another plait registered its key meanwhile.
MEANWHILE = "built meanwhile by another plait sharing the store"
# How often an action waiting for another plait's claim on its key looks again (seconds).
CLAIM_POLL = 0.05
# A line that says why a command died, which may come long before its last lines: a compiler's
# "fatal error: x.h: No such file", SBCL's runtime's "fatal error encountered in SBCL".
FATAL = re.compile(r"fatal error(?::| encountered)")


@dataclass(frozen=True)
class Options:
    jobs: int = 1
    keep_going: bool = False
    shuffle_seed: int | None = None
    replay: tuple[str, ...] | None = None
    # Replace files in the project that plait did not write (the user's own).
    force: bool = False


@dataclass
class Report:
    ok: bool
    results: dict[str, Finished]
    wall: float
    interrupted: int | None = None
    start_order: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "actions": [
                {
                    "name": f.name,
                    "status": f.status,
                    "reason": f.reason,
                    "start": round(f.start, 6),
                    "end": round(f.end, 6),
                }
                for f in self.results.values()
            ],
        }


class PreparedAction:
    """An action whose inputs are known: its request (and key), and the planner's decision."""

    def __init__(
        self,
        action: Action,
        request: Request,
        decision: Decision,
        cached: CachedResult | None,
    ) -> None:
        self.action = action
        self.request = request
        self.decision = decision
        self.cached = cached


@dataclass
class Running:
    """An action whose command is running: what was decided, when it began, its job slot."""

    prepared: PreparedAction
    start: float
    slot: int


class Build:
    def __init__(
        self,
        project: Path,
        graph: Graph,
        store: Store,
        executor: Executor,
        emit: Subscriber,
        options: Options,
        pending_signal: Callable[[], int | None] = lambda: None,
        early: Early | None = None,
        idle: Callable[[], None] = lambda: None,
    ) -> None:
        """`idle` is called when a job slot would idle (plait.scheduler): for background work
        of the frontend's, such as saving the ASDF dump's core."""
        self.project = project
        self.graph = graph
        self.store = store
        self.content = LocalContent(store)
        self.executor = executor
        self.emit = emit
        self.options = options
        self.pending_signal = pending_signal
        self.early = early
        self.idle = idle
        self.last = store.last_builds()
        self.produced: dict[str, Output] = {}  # output path -> output, for finished builders
        self._t0 = 0.0
        self._running: dict[str, Running] = {}
        self._free_slots: set[int] = set(range(max(1, options.jobs)))
        # Invariant: PATH lookups do not change during one build.
        self._programs: dict[tuple[str, str | None], Path | None] = {}
        # Where each output goes, as `destination` says: asked ~40 times an action (each
        # compile of a system reads the fasls of the files before it), from several threads.
        self._destinations: dict[tuple[str, str], Path | None] = {}
        self._toolchains: dict[str, str] = {}
        # The store's claims on the keys of running actions (Store.claim), by action name.
        self._claims: dict[str, int] = {}
        self._stopping = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self._t0

    # -- deciding ------------------------------------------------------------------------

    def prepare(self, name: str) -> PreparedAction | Finished:
        """Key material and decision, or a failure if a source input vanished."""
        action = self.graph.actions[name]
        inputs: dict[str, Input] = {}
        for path in action.inputs:
            out = self.produced.get(path) if path in self.graph.producer else None
            if out is not None:
                inputs[path] = Input(out.digest, out.executable)
                continue
            state = self.store.file_state(self.project / path)
            if state is None:
                return self._finished(
                    name,
                    "failed",
                    f"input '{path}' is missing",
                    failure=Failure(action.argv, None, f"input '{path}' is missing"),
                )
            inputs[path] = Input(*state)
            self.content.place(state[0], self.project / path)
        toolchain = {p: self._toolchain_digest(p) for p in action.toolchain}
        request = planner.request(action, inputs, self._tool_digest(action), toolchain)
        material = request.material()
        key = request.key()
        cached = self.store.lookup(key) if action.is_builder else None
        tree: dict[str, Digest | None] = {}
        blobs = True
        damaged: list[str] = []
        if cached is not None:
            for out in cached.outputs:
                where = self.destination(action, out.path)
                if where is None:  # kept only in the store: the blob is the output
                    now = out.digest if self.store.has_blob(out.digest) else None
                else:
                    now = self.store.file_digest(where)
                # The blob matters only when the output must be restored from it.
                if now != out.digest:
                    present = self.store.has_blob(out.digest)
                    if not (present and self.store.sound_blob(out.digest)):
                        blobs = False
                        if present:
                            damaged.append(out.path)
                tree[out.path] = now
        decision = planner.decide(
            action,
            material,
            cached,
            tree,
            self.last.get(name),
            self.graph.producer,
            blobs,
            damaged[0] if damaged else None,
        )
        return PreparedAction(action, request, decision, cached)

    def destination(self, action: Action, output: str) -> Path | None:
        """Where an output is materialized; None: it stays in the store only."""
        known = (action.name, output)
        if known in self._destinations:
            return self._destinations[known]
        where = action.install.get(output)
        if where is None:
            path: Path | None = self.project / output
        else:
            path = Path(where) if where else None
        self._destinations[known] = path
        return path

    def _materialize(self, action: Action, outputs: Iterable[Output]) -> None:
        for out in outputs:
            where = self.destination(action, out.path)
            if where is not None:
                self.store.materialize(out.digest, where, out.executable)

    def _tool_digest(self, action: Action) -> Digest | None:
        program = action.argv[0] if action.argv else ""
        if not program or (not program.startswith("/") and "/" in program):
            return None  # a relative program is a declared input, already in the key
        where = (program, action.env.get("PATH"))
        if where not in self._programs:
            self._programs[where] = (
                Path(program) if program.startswith("/") else resolve_program(program, action.env)
            )
        path = self._programs[where]
        return self.store.file_digest(path) if path else None

    def _toolchain_digest(self, path: str) -> str:
        """What is at a toolchain path, as one digest: a file's, or a directory's files' (by
        relative path, with their executable bits, and its links' targets). "missing" if
        nothing is there. Once a build."""
        if path not in self._toolchains:
            self._toolchains[path] = self.store.tree_digest(Path(path))
        return self._toolchains[path]

    # -- running -------------------------------------------------------------------------

    def begin(self, name: str) -> Finished | Work[Result]:
        prepared = self.prepare(name)
        if isinstance(prepared, Finished):
            return prepared
        decision = prepared.decision
        action = prepared.action
        cached = prepared.cached
        if decision.outcome == "up-to-date":
            assert cached is not None
            self._accept(action, decision, cached, ran=False)
            return self._finished(name, "cached", decision.reason, key=decision.key)
        if decision.outcome == "restore":
            assert cached is not None
            mine = self._not_plaits(action, cached.outputs)
            if mine is not None:
                failure = Failure(action.argv, None, _in_the_way(mine))
                return self._finished(
                    name, "failed", decision.reason, key=decision.key, failure=failure
                )
            self._materialize(action, cached.outputs)
            self._accept(action, decision, cached, ran=False)
            return self._finished(
                name, "cached", f"{decision.reason}, restored from the store", key=decision.key
            )
        if self.store.read_only:
            message = (
                f"it would have to run ({decision.reason}), and the store at"
                f" '{self.store.root}' is read-only here: run the build as its owner, or with a"
                " store of your own (PLAIT_CACHE)"
            )
            failure = Failure(action.argv, None, message)
            return self._finished(
                name, "failed", decision.reason, key=decision.key, failure=failure
            )
        early = self.early.take(name, decision.key) if self.early is not None else None
        start = self.now() if early is None else early.start - self._t0
        slot = min(self._free_slots)
        self._free_slots.discard(slot)
        self._running[name] = Running(prepared, start, slot)
        self.emit(Started(name, start, decision.reason))
        if early is not None:  # already running: its job slot is taken now
            return Work(early.wait)
        request, log = prepared.request, self.store.log_path(name)
        return Work(lambda: self._claimed(name, decision.key, request, log))

    def _claimed(self, name: str, key: str, request: Request, log: Path) -> Result:
        """Run the request, whose key is `key`, holding the store's claim on it, which `end`
        releases once the result is registered; if another plait sharing the store holds it,
        wait, then reuse what it made, if it made it. In a worker thread."""
        claim, first = self.store.claim(key)
        self._claims[name] = claim
        waited = False
        while not self.store.take(claim):
            waited = True
            if self._stopping.wait(CLAIM_POLL):
                return Result(None, 0.0, error="cancelled")
        if waited or not first:
            # Another plait built it, or began to, since this one looked in the store.
            reused = self._reuse(key)
            if reused is not None:
                return reused
        return self.executor.execute(request, self.content, log)

    def _reuse(self, key: str) -> Result | None:
        """What another plait registered for `key`, as a result, if its blobs are sound."""
        cached = self.store.lookup_now(key)
        if cached is None or not all(self.store.sound_blob(o.digest) for o in cached.outputs):
            return None
        outputs = {o.path: (o.digest, o.executable) for o in cached.outputs}
        return Result(0, 0.0, outputs=outputs, reused=MEANWHILE, known=True)

    def _cancel(self) -> None:
        self._stopping.set()
        self.executor.cancel()

    @functools.cached_property
    def _installed(self) -> dict[Path, str]:
        """Where this project's builds installed files, with what they wrote there: read once
        an action is to write, never on a build where all is up to date."""
        return self.store.installed()

    def _not_plaits(self, action: Action, outputs: Iterable[Output]) -> str | None:
        """An output that would replace, with other bytes, a file in the project that plait did
        not write, or that someone changed since: the user's, which a build never replaces
        (unless --force)."""
        if self.options.force:
            return None
        for out in outputs:
            where = self.destination(action, out.path)
            if where is None or not where.is_relative_to(self.project):
                continue  # the store, or a cache of ASDF's: plait's to write
            if not where.exists() and not where.is_symlink():
                continue
            now = self.store.file_digest(where)
            if now == out.digest:
                continue  # the same bytes: writing them changes nothing
            if now is None or self._installed.get(where) != now.hash:
                return str(where.relative_to(self.project))
        return None

    def end(self, name: str, result: Result) -> Finished:
        claim = self._claims.pop(name, None)
        try:
            return self._end(name, result)
        finally:
            if claim is not None:
                self.store.release(claim)

    def _end(self, name: str, result: Result) -> Finished:
        running = self._running.pop(name)
        action, decision = running.prepared.action, running.prepared.decision
        start, slot, reason = running.start, running.slot, decision.reason
        self._free_slots.add(slot)
        if result.where:
            reason += f", {result.where}"
        if not result.ok:
            return self._finished(
                name,
                "failed",
                reason,
                start=start,
                key=decision.key,
                failure=self._failure(action, result),
                slot=slot,
            )
        outputs = tuple(
            Output(path, d, executable) for path, (d, executable) in sorted(result.outputs.items())
        )
        cached = CachedResult(outputs, result.duration)
        mine = self._not_plaits(action, outputs)
        if mine is not None:
            failure = Failure(action.argv, None, _in_the_way(mine))
            return self._finished(
                name, "failed", reason, start=start, key=decision.key, failure=failure, slot=slot
            )
        self._materialize(action, outputs)
        if result.reused:
            self._accept(action, decision, cached, ran=not result.known)
            reason += f", {result.reused}"
            return self._finished(name, "cached", reason, start=start, key=decision.key, slot=slot)
        self._accept(action, decision, cached, ran=True)
        finished = self._finished(name, "ran", reason, start=start, key=decision.key, slot=slot)
        return replace(finished, warnings=_undeclared(result.undeclared))

    def _accept(self, action: Action, decision: Decision, result: CachedResult, ran: bool) -> None:
        last = self.last.get(action.name)
        unchanged = (
            decision.outcome == "up-to-date" and last is not None and last.key == decision.key
        )
        if action.is_builder and not unchanged:
            installed = {
                out.path: where
                for out in result.outputs
                if (where := self.destination(action, out.path)) is not None
            }
            self.store.register(
                action.name, decision.key, decision.material, result, ran=ran, installed=installed
            )
        for out in result.outputs:
            self.produced[out.path] = out
            where = self.destination(action, out.path)
            if where is not None:
                self.content.place(out.digest, where)

    def _failure(self, action: Action, result: Result) -> Failure:
        if result.error:
            message = result.error
        elif result.exit_status is not None and result.exit_status < 0:
            message = f"killed by signal {-result.exit_status}"
        elif result.exit_status:
            message = f"exited with status {result.exit_status}"
        else:
            message = (
                "declared output"
                + ("s " if len(result.missing) > 1 else " ")
                + ", ".join(f"'{m}'" for m in result.missing)
                + " not written by the command"
            )
        log = self.store.log_path(action.name)
        tail, diagnostics = _tail(log), _diagnostics(log)
        _prepend_command(log, action.argv)
        return Failure(action.argv, result.exit_status, message, tail, str(log), diagnostics)

    def _finished(
        self,
        name: str,
        status: Status,
        reason: str,
        *,
        start: float | None = None,
        key: str = "",
        failure: Failure | None = None,
        slot: int | None = None,
    ) -> Finished:
        end = self.now()
        begun = end if start is None else start
        return Finished(name, status, reason, begun, end, key, failure, slot)

    # -- the whole build -----------------------------------------------------------------

    def run(self, targets: Iterable[str]) -> Report:
        self._t0 = time.monotonic()
        if self.early is not None:  # the build began when its first action did
            self._t0 = min(self._t0, self.early.first_start(default=self._t0))
        names = self.graph.closure(self.graph.resolve(targets))
        self.emit(Planned(tuple(names), self.options.jobs))
        scheduler: Scheduler[Result] = Scheduler(
            names,
            self.graph.deps,
            jobs=self.options.jobs,
            keep_going=self.options.keep_going,
            durations=self._durations(names),
            shuffle_seed=self.options.shuffle_seed,
            replay=self.options.replay,
            pending_signal=self.pending_signal,
        )
        interrupted: int | None = None
        try:
            scheduler.run(self.begin, self.end, self._skip, self._cancel, self.emit, self.idle)
        except Interrupted as e:
            interrupted = e.signum
        finally:
            self.store.flush()
        results = {n: scheduler.results[n] for n in names if n in scheduler.results}
        ok = interrupted is None and all(f.ok for f in results.values())
        report = Report(ok, results, self.now(), interrupted, scheduler.start_order)
        self.emit(BuildEnded(ok, report.wall, interrupted))
        return report

    def _durations(self, names: Iterable[str]) -> dict[str, float]:
        """Last build's durations; a frontend's estimate for actions never timed."""
        durations: dict[str, float] = {}
        for name in names:
            last = self.last.get(name)
            cost = self.graph.actions[name].cost
            if last is not None:
                durations[name] = last.duration
            elif cost is not None:
                durations[name] = cost
        return durations

    def _skip(self, name: str, reason: str) -> Finished:
        return self._finished(name, "skipped", reason)

    def dry_run(self, targets: Iterable[str]) -> list[tuple[str, str]]:
        """What would run and why, without running anything. An action after one that would run
        is listed as waiting on it: its inputs are not known until then."""
        self._t0 = time.monotonic()
        names = self.graph.closure(self.graph.resolve(targets))
        would: dict[str, str] = {}
        for name in names:
            upstream = [d for d in self.graph.deps[name] if d in would]
            if upstream:
                would[name] = f"dependency '{upstream[0]}' will run"
                continue
            prepared = self.prepare(name)
            if isinstance(prepared, Finished):
                would[name] = prepared.reason
                continue
            decision = prepared.decision
            if decision.outcome == "run":
                would[name] = decision.reason
            else:
                for out in prepared.cached.outputs if prepared.cached else ():
                    self.produced[out.path] = out
                if decision.outcome == "restore":
                    would[name] = f"{decision.reason}, would be restored from the store"
        return list(would.items())


class EarlyRun:
    """An action's command, whose key is `key`, running in a thread of its own since `start`
    (time.monotonic())."""

    def __init__(self, key: str, work: Callable[[], Result]) -> None:
        self.key = key
        self.start = time.monotonic()
        self._result: Result | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], Result]) -> None:
        try:
            self._result = work()
        except BaseException as e:  # handed to whoever waits
            self._error = e

    def wait(self) -> Result:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class Early:
    """Actions started while the graph is still being found (ASDF's upgrade of itself, while the
    dump runs). Each runs on the build's executor in a thread of its own, and the build that
    needs it takes it over as a running action, with its job slot. Only with more than one job:
    the graph's discovery takes a core too."""

    def __init__(self, project: Path, store: Store, executor: Executor, jobs: int) -> None:
        self.project = project
        self.store = store
        self.executor = executor
        self.jobs = jobs
        self._runs: dict[str, EarlyRun] = {}

    def start(self, action: Action) -> None:
        """Run `action` now if a build would run it; when it is cached, the build restores it."""
        if self.jobs < 2 or action.name in self._runs or self.store.read_only:
            return
        graph = Graph()
        graph.add(action)
        alone = Build(self.project, graph, self.store, self.executor, lambda e: None, Options())
        prepared = alone.prepare(action.name)
        if isinstance(prepared, Finished) or prepared.decision.outcome != "run":
            return
        request, log = prepared.request, self.store.log_path(action.name)
        self._runs[action.name] = EarlyRun(
            prepared.decision.key, lambda: self.executor.execute(request, alone.content, log)
        )

    def take(self, name: str, key: str) -> EarlyRun | None:
        """The run of `name` if it is the action whose key is `key`."""
        run = self._runs.get(name)
        if run is None or run.key != key:
            return None
        return self._runs.pop(name)

    def first_start(self, default: float) -> float:
        return min((r.start for r in self._runs.values()), default=default)

    def close(self) -> None:
        """Stop and wait for what no build took (the graph failed to load, or did not need it)."""
        if self._runs:
            self.executor.cancel()
        for run in self._runs.values():
            with contextlib.suppress(Exception):
                run.wait()
        self._runs.clear()

    def __enter__(self) -> Early:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A compiler's complaint in the form GCC, SBCL (through plait's driver) and most tools print:
# `file:line:col: error: message` (line and column optional; also warnings and notes).
DIAGNOSTIC = re.compile(r"^[^\s:]+(?::\d+){0,2}: (?:fatal error|error|warning|note): \S")
MAX_DIAGNOSTICS = 10


def _in_the_way(path: str) -> str:
    return (
        f"'{path}' is in the way: it exists, plait did not write it, and the action makes other"
        " bytes (remove or rename it, or build with --force to replace it)"
    )


def _diagnostics(log: Path) -> tuple[str, ...]:
    """The log's diagnostic lines, in its order, at most MAX_DIAGNOSTICS."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if DIAGNOSTIC.match(ln)]
    except OSError:
        return ()
    return tuple(lines[:MAX_DIAGNOSTICS])


def _prepend_command(log: Path, argv: tuple[str, ...]) -> None:
    """Put the command a failed action ran at the top of its log, for `plait log`."""
    with contextlib.suppress(OSError):
        body = log.read_bytes() if log.is_file() else b""
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(f"$ {shlex.join(argv)}\n".encode() + body)


def _tail(log: Path) -> str:
    """The log's last lines, after the first line above them that says why the command died,
    with the line that follows it (SBCL puts its reason there)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    start = max(0, len(lines) - LOG_TAIL_LINES)
    fatal = next((i for i in range(start) if FATAL.search(lines[i])), None)
    if fatal is None:
        return "\n".join(lines[start:])
    return "\n".join([*lines[fatal : min(fatal + 2, start)], "...", *lines[start:]])


def _undeclared(paths: list[str], shown: int = 5) -> tuple[str, ...]:
    """A warning for files a command wrote that it does not declare (Bazel drops them too, but
    silently): the user may have forgotten an output."""
    if not paths:
        return ()
    names = ", ".join(f"'{p}'" for p in paths[:shown])
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return (
        f"it also wrote {names}{more}, which it does not declare as outputs: dropped "
        "(hint: add to its outputs what the build needs)",
    )
