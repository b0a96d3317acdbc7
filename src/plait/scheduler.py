"""Goals and waiters: start each action once its dependencies are done, by critical-path priority,
at most `jobs` at once, and say what happened to every one of them.

It knows nothing of files, stores or processes: `begin` either finishes an action at once (it was
up to date) or hands back work for a worker thread, and `end` turns that work's result into the
action's outcome on the scheduling thread.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from plait.events import Finished

R = TypeVar("R")

# How often the scheduling thread looks for a pending interrupt while work is running.
POLL_SECONDS = 0.05


class Interrupted(BaseException):
    """A signal asked the build to stop; raised only at the scheduler's safe points."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass(frozen=True)
class Work(Generic[R]):
    """Work for a worker thread; its result goes to the scheduler's `end`."""

    run: Callable[[], R]


def critical_path(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], durations: Mapping[str, float]
) -> dict[str, float]:
    """For each node, the longest sum of durations from it to the end of the build.
    A node never timed counts as the mean of the known durations (1 s if none are known)."""
    known = [durations[n] for n in order if n in durations]
    default = sum(known) / len(known) if known else 1.0
    dependents: dict[str, list[str]] = {n: [] for n in order}
    for n in order:
        for d in deps[n]:
            if d in dependents:
                dependents[d].append(n)
    path: dict[str, float] = {}
    for n in reversed(order):
        tail = max((path[m] for m in dependents[n]), default=0.0)
        path[n] = durations.get(n, default) + tail
    return path


class Scheduler(Generic[R]):
    def __init__(
        self,
        order: Sequence[str],
        deps: Mapping[str, Sequence[str]],
        *,
        jobs: int,
        keep_going: bool = False,
        durations: Mapping[str, float] | None = None,
        shuffle_seed: int | None = None,
        replay: Sequence[str] | None = None,
        pending_signal: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.order = list(order)
        needed = set(self.order)
        self.deps = {n: [d for d in deps[n] if d in needed] for n in self.order}
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.pending_signal = pending_signal
        self.results: dict[str, Finished] = {}
        self.start_order: list[str] = []
        self._priority = critical_path(self.order, self.deps, durations or {})
        self._rank = {n: i for i, n in enumerate(self.order)}
        self._random = random.Random(shuffle_seed) if shuffle_seed is not None else None
        # Replay: start in this order, each only when the one before it has started. Actions
        # the recording does not name come after it, by rank.
        self._replay: list[str] | None = None
        if replay is not None:
            recorded = [n for n in dict.fromkeys(replay) if n in needed]
            seen = set(recorded)
            self._replay = recorded + [n for n in self.order if n not in seen]

    def run(
        self,
        begin: Callable[[str], Finished | Work[R]],
        end: Callable[[str, R], Finished],
        skip: Callable[[str, str], Finished],
        cancel: Callable[[], None],
        finished: Callable[[Finished], None] = lambda f: None,
        idle: Callable[[], None] = lambda: None,
    ) -> dict[str, Finished]:
        """Run to the end, passing each outcome to `finished` as it comes; on a signal, `cancel`
        stops running work and Interrupted is raised. `idle` is called, maybe often, whenever a
        job slot stays free while work runs because nothing else is ready: background work
        may take the slot."""
        waiting = {n: len(self.deps[n]) for n in self.order}
        dependents: dict[str, list[str]] = {n: [] for n in self.order}
        for n, ds in self.deps.items():
            for d in ds:
                dependents[d].append(n)
        blocked: dict[str, str] = {}  # node -> the failed action that stops it
        ready: list[tuple[float, int, str]] = []
        first_failure: str | None = None

        def push(name: str) -> None:
            tie = self._random.random() if self._random else self._rank[name]
            heapq.heappush(ready, (-self._priority[name], tie, name))  # type: ignore[misc]

        replay = self._replay
        replay_at = 0
        started: set[str] = set()

        def next_ready() -> str | None:
            """The next action to start, or None to wait for running ones."""
            nonlocal replay_at
            if replay is None:
                return heapq.heappop(ready)[2] if ready else None
            names = {n for _, _, n in ready}
            while replay_at < len(replay) and (
                replay[replay_at] in started or replay[replay_at] in self.results
            ):
                replay_at += 1
            if replay_at < len(replay) and replay[replay_at] in names:
                choice = replay[replay_at]
            elif not running and names:  # a recording that cannot be followed: go on anyway
                choice = next(n for n in replay if n in names)
            else:
                return None
            ready[:] = [entry for entry in ready if entry[2] != choice]
            heapq.heapify(ready)
            return choice

        def complete(name: str, result: Finished) -> None:
            nonlocal first_failure
            self.results[name] = result
            finished(result)
            root = blocked.get(name, name)
            if result.status == "failed" and first_failure is None:
                first_failure = name
            for m in dependents[name]:
                if not result.ok:
                    blocked.setdefault(m, root)
                waiting[m] -= 1
                if waiting[m] == 0:
                    if m in blocked:
                        complete(m, skip(m, f"dependency '{blocked[m]}' failed"))
                    else:
                        push(m)

        for n in self.order:
            if waiting[n] == 0:
                push(n)

        running: dict[Future[R], str] = {}
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="plait-job")
        try:
            while ready or running:
                signum = self.pending_signal()
                if signum is not None:
                    raise Interrupted(signum)
                stopping = first_failure is not None and not self.keep_going
                while ready and len(running) < self.jobs and not stopping:
                    picked = next_ready()
                    if picked is None:
                        break
                    name = picked
                    started.add(name)
                    self.start_order.append(name)
                    step = begin(name)
                    if isinstance(step, Work):
                        running[pool.submit(step.run)] = name
                    else:
                        complete(name, step)
                    stopping = first_failure is not None and not self.keep_going
                if not running:
                    if stopping:
                        break
                    continue
                if len(running) < self.jobs and not ready:
                    idle()
                done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    complete(name, end(name, future.result()))
        except BaseException:
            cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for n in self.order:
            if n not in self.results:
                why = f"not started: the build stopped after '{first_failure}' failed"
                self.results[n] = skip(n, why)
                finished(self.results[n])
        return self.results
