"""What a finished build looked like: a Chrome trace-event file (Perfetto, chrome://tracing) and the
one-line summary — wall time, action time, achieved parallelism and the critical path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.events import Finished

MICROS = 1_000_000


def trace_events(results: Mapping[str, Finished], jobs: int) -> dict[str, Any]:
    """One complete event per action, on the track of the job slot it ran in; actions that did
    not run (cached, failed before starting, skipped) go on a track of their own."""
    other = jobs  # the track after the job slots
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "plait"}}
    ]
    for slot in range(jobs):
        events.append(
            {
                "name": "thread_name",
                "ph": "M",
                "pid": 1,
                "tid": slot,
                "args": {"name": f"job {slot}"},
            }
        )
    events.append(
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": other, "args": {"name": "not run"}}
    )
    for f in results.values():
        events.append(
            {
                "name": f.name,
                "cat": f.status,
                "ph": "X",
                "ts": round(f.start * MICROS),
                "dur": round((f.end - f.start) * MICROS),
                "pid": 1,
                "tid": f.slot if f.slot is not None else other,
                "args": {"status": f.status, "key": f.key, "reason": f.reason},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}


@dataclass(frozen=True)
class Summary:
    wall: float
    busy: float
    critical: float
    path: tuple[str, ...]

    @property
    def parallelism(self) -> float:
        return self.busy / self.wall if self.wall > 0 else 0.0

    def line(self) -> str:
        shown = list(self.path)
        if len(shown) > 6:
            shown = [*shown[:3], f"... ({len(self.path) - 6} more)", *shown[-3:]]
        chain = " -> ".join(shown) if shown else "(none)"
        return (
            f"plait: {self.wall:.2f}s wall, {self.busy:.2f}s of actions, parallelism "
            f"{self.parallelism:.2f}; critical path {self.critical:.2f}s: {chain}"
        )


def critical_path(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], durations: Mapping[str, float]
) -> tuple[float, list[str]]:
    """The longest chain of dependencies by the given durations, and its length."""
    best: dict[str, tuple[float, str | None]] = {}
    for name in order:  # dependencies first
        before = max(((best[d][0], d) for d in deps[name] if d in best), default=(0.0, None))
        best[name] = (before[0] + durations.get(name, 0.0), before[1])
    if not best:
        return 0.0, []
    end = max(best, key=lambda n: best[n][0])
    path: list[str] = []
    node: str | None = end
    while node is not None:
        path.append(node)
        node = best[node][1]
    return best[end][0], path[::-1]


def summarize(
    results: Mapping[str, Finished],
    wall: float,
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
) -> Summary:
    durations = {n: f.end - f.start for n, f in results.items() if f.status in ("ran", "failed")}
    length, path = critical_path([n for n in order if n in results], deps, durations)
    return Summary(wall, sum(durations.values()), length, tuple(path))
