"""The scheduler alone: dependencies, -j, critical-path priority, keep-going, interrupts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from plait.events import Finished
from plait.scheduler import Interrupted, Scheduler, Work, critical_path


def done(name: str, ok: bool = True) -> Finished:
    return Finished(name, "ran" if ok else "failed", "", 0.0, 0.0)


def skipped(name: str, reason: str) -> Finished:
    return Finished(name, "skipped", reason, 0.0, 0.0)


def run(
    deps: dict[str, list[str]],
    *,
    jobs: int = 1,
    keep_going: bool = False,
    failing: frozenset[str] = frozenset(),
    durations: dict[str, float] | None = None,
    pending: Callable[[], int | None] = lambda: None,
    work: Callable[[str], None] = lambda n: None,
    idle: Callable[[], None] = lambda: None,
) -> tuple[Scheduler[bool], list[str]]:
    order = list(deps)
    scheduler: Scheduler[bool] = Scheduler(
        order, deps, jobs=jobs, keep_going=keep_going, durations=durations, pending_signal=pending
    )
    started: list[str] = []
    lock = threading.Lock()

    def begin(name: str) -> Work[bool]:
        def job() -> bool:
            with lock:
                started.append(name)
            work(name)
            return name not in failing

        return Work(job)

    scheduler.run(begin, lambda n, ok: done(n, ok), skipped, lambda: None, idle=idle)
    return scheduler, started


def test_each_action_starts_after_its_dependencies() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    s, started = run(deps, jobs=2)
    assert started.index("a") < started.index("b") < started.index("d")
    assert started.index("c") < started.index("d")
    assert all(f.status == "ran" for f in s.results.values())


def test_no_more_than_jobs_run_at_once() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def work(name: str) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    run({str(i): [] for i in range(12)}, jobs=3, work=work)
    assert most == 3


def test_a_job_slot_left_free_for_want_of_ready_work_is_offered_to_background_work() -> None:
    # long runs throughout; short and then after-short fill the other slot, then it is free.
    deps = {"long": [], "short": [], "after-short": ["short"]}
    lock = threading.Lock()
    running: set[str] = set()
    seen: list[frozenset[str]] = []

    def work(name: str) -> None:
        with lock:
            running.add(name)
        time.sleep(0.4 if name == "long" else 0.02)
        with lock:
            running.discard(name)

    def idle() -> None:
        with lock:
            seen.append(frozenset(running))

    run(deps, jobs=2, work=work, idle=idle)
    assert seen  # offered while long still ran alone
    assert all(len(r) <= 1 for r in seen)  # never while both slots were taken
    assert any(r == {"long"} for r in seen)
    seen.clear()
    run(deps, jobs=1, work=work, idle=idle)
    assert seen == []  # one slot, always taken until the end


def test_ready_actions_start_by_longest_remaining_path() -> None:
    # 'long' heads a chain of 10 s; 'short' is alone and quick; with one job 'long' goes first.
    deps = {"short": [], "long": [], "tail": ["long"]}
    _, started = run(deps, durations={"short": 1.0, "long": 1.0, "tail": 10.0})
    assert started == ["long", "tail", "short"]


def test_critical_path_sums_durations_to_the_end() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b"]}
    path = critical_path(list(deps), deps, {"a": 1, "b": 2, "c": 5, "d": 4})
    assert path == {"a": 7, "b": 6, "c": 5, "d": 4}


def test_unknown_durations_count_as_the_mean_of_known_ones() -> None:
    deps: dict[str, list[str]] = {"a": [], "b": ["a"]}
    assert critical_path(list(deps), deps, {"a": 3.0}) == {"a": 6.0, "b": 3.0}


def test_keep_going_runs_everything_not_after_a_failure() -> None:
    deps = {"bad": [], "after_bad": ["bad"], "later": ["after_bad"], "fine": [], "x": ["fine"]}
    s, started = run(deps, keep_going=True, failing=frozenset({"bad"}))
    status = {n: f.status for n, f in s.results.items()}
    assert status == {
        "bad": "failed",
        "after_bad": "skipped",
        "later": "skipped",
        "fine": "ran",
        "x": "ran",
    }
    assert s.results["later"].reason == "dependency 'bad' failed"
    assert "after_bad" not in started


def test_without_keep_going_nothing_new_starts_after_a_failure() -> None:
    deps: dict[str, list[str]] = {"bad": [], "b": [], "c": [], "d": []}
    s, started = run(
        deps, jobs=1, failing=frozenset({"bad"}), durations={"bad": 9, "b": 1, "c": 1, "d": 1}
    )
    assert started == ["bad"]
    assert {n: f.status for n, f in s.results.items()} == {
        "bad": "failed",
        "b": "skipped",
        "c": "skipped",
        "d": "skipped",
    }
    assert "stopped after 'bad' failed" in s.results["b"].reason


def test_running_actions_finish_after_a_failure() -> None:
    release = threading.Event()

    def work(name: str) -> None:
        if name == "slow":
            release.wait(5)
        elif name == "bad":
            time.sleep(0.01)
            release.set()

    s, _ = run(
        {"slow": [], "bad": [], "next": []},
        jobs=2,
        failing=frozenset({"bad"}),
        durations={"slow": 9, "bad": 8, "next": 1},
        work=work,
    )
    assert s.results["slow"].status == "ran"
    assert s.results["next"].status == "skipped"


def test_a_signal_cancels_running_work_and_raises_interrupted() -> None:
    cancelled = threading.Event()
    signal_seen: list[int] = []

    def pending() -> int | None:
        return 15 if signal_seen else None

    def begin(name: str) -> Work[bool]:
        def job() -> bool:
            signal_seen.append(1)
            cancelled.wait(5)
            return False

        return Work(job)

    s: Scheduler[bool] = Scheduler(
        ["a", "b"], {"a": [], "b": ["a"]}, jobs=1, pending_signal=pending
    )
    with pytest.raises(Interrupted) as e:
        s.run(begin, lambda n, ok: done(n, ok), skipped, cancelled.set)
    assert e.value.signum == 15
    assert cancelled.is_set()


def test_instant_outcomes_need_no_worker() -> None:
    s: Scheduler[bool] = Scheduler(["a", "b"], {"a": [], "b": ["a"]}, jobs=1)
    results = s.run(lambda n: done(n), lambda n, ok: done(n, ok), skipped, lambda: None)
    assert [f.status for f in results.values()] == ["ran", "ran"]
    assert s.start_order == ["a", "b"]


def test_shuffle_seed_fixes_the_order_of_ready_actions() -> None:
    deps: dict[str, list[str]] = {str(i): [] for i in range(20)}

    def order(seed: int) -> list[str]:
        s: Scheduler[bool] = Scheduler(
            list(deps), deps, jobs=1, shuffle_seed=seed, durations=dict.fromkeys(deps, 1.0)
        )
        s.run(lambda n: done(n), lambda n, ok: done(n, ok), skipped, lambda: None)
        return s.start_order

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_replay_starts_actions_in_the_recorded_order() -> None:
    deps: dict[str, list[str]] = {"a": [], "b": [], "c": ["a"], "d": ["b"], "e": []}
    recorded = ["e", "b", "a", "d", "c"]
    for jobs in (1, 2, 3):
        s: Scheduler[bool] = Scheduler(
            list(deps), deps, jobs=jobs, replay=recorded, durations={"a": 9, "c": 9}
        )
        s.run(lambda n: Work(lambda: True), lambda n, ok: done(n, ok), skipped, lambda: None)
        assert s.start_order == recorded


def test_replay_puts_unrecorded_actions_last_and_survives_a_bad_recording() -> None:
    deps: dict[str, list[str]] = {"a": [], "b": ["a"], "new": []}
    s: Scheduler[bool] = Scheduler(list(deps), deps, jobs=1, replay=["b", "a", "gone"])
    s.run(lambda n: done(n), lambda n, ok: done(n, ok), skipped, lambda: None)
    assert s.start_order == ["a", "b", "new"]
