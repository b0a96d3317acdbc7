"""bench/remote.py's figures on paper: list scheduling of a graph on N workers."""

from __future__ import annotations

import sys

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "deploy"))

import remote


def test_the_schedule_runs_the_longest_path_first_and_bounds_by_the_workers() -> None:
    # a -> {b, c, d} -> e; b is the long branch.
    durations = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 2.0, "e": 1.0}
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["a"], "e": ["b", "c", "d"]}
    assert remote.schedule(durations, deps, 1) == 11.0
    # Two workers: b starts first, c and d share the other worker meanwhile.
    assert remote.schedule(durations, deps, 2) == 7.0
    assert remote.schedule(durations, deps, 8) == 7.0  # the longest path
    assert remote.topological(deps)[0] == "a" and remote.topological(deps)[-1] == "e"


def test_the_cost_per_action_is_what_makes_the_model_take_the_given_time() -> None:
    # A chain of three: every action's cost is paid three times over.
    durations = {"a": 1.0, "b": 1.0, "c": 1.0}
    deps = {"a": [], "b": ["a"], "c": ["b"]}
    assert abs(remote.cost_per_action(durations, deps, 0.5, 4.1) - 0.2) < 1e-6
    # Side by side on two workers, it is paid once.
    durations = {"a": 1.0, "b": 1.0}
    deps = {"a": [], "b": []}
    assert abs(remote.cost_per_action(durations, deps, 0.0, 1.25) - 0.25) < 1e-6
