"""A whole build with a fake executor and a real store: incremental semantics, early cutoff,
restoring from the store, failures."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from plait.build import LOG_TAIL_LINES, Build, Early, Options, _tail
from plait.events import Finished, Started
from plait.model import Action, Graph
from plait.store import Store
from tests.support import Harness, act, age, graph_of, ran, statuses


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path / "project")
    harness.write("a.c", "int a;")
    harness.write("b.c", "int b;")
    return harness


def chain() -> Graph:
    """a.c -> a.o; b.c -> b.o; a.o + b.o -> prog; prog -> size (which only counts bytes)."""
    return graph_of(
        [
            act("cc a", ["a.c"], ["a.o"]),
            act("cc b", ["b.c"], ["b.o"]),
            act("link", ["a.o", "b.o"], ["prog"]),
            act("size", ["prog"], ["size.txt"], argv=("fake", "len")),
        ],
        ["a.c", "b.c"],
    )


def test_a_clean_build_runs_everything_and_writes_the_outputs(h: Harness) -> None:
    report = h.build(chain())
    assert report.ok
    assert ran(report) == ["cc a", "cc b", "link", "size"]
    assert (h.project / "prog").read_bytes().startswith(b"fake cat")
    assert all(f.reason == "never built" for f in report.results.values())


def test_a_second_build_runs_nothing(h: Harness) -> None:
    h.build(chain())
    report = h.build(chain())
    assert ran(report) == []
    assert h.executor.ran == []
    assert set(statuses(report).values()) == {"cached"}


def test_touched_but_unchanged_input_reruns_nothing(h: Harness) -> None:
    h.build(chain())
    age(h.project / "a.c", -5)  # a new mtime, same bytes
    assert ran(h.build(chain())) == []


def test_a_changed_input_reruns_exactly_what_depends_on_it(h: Harness) -> None:
    h.build(chain())
    h.write("a.c", "int a = 1;")
    report = h.build(chain())
    assert ran(report) == ["cc a", "link", "size"]
    assert report.results["cc a"].reason == "input 'a.c' changed"
    assert report.results["link"].reason == "dependency 'cc a' produced different output 'a.o'"


def test_early_cutoff_stops_at_an_identical_output(h: Harness) -> None:
    g = graph_of(
        [
            act("count", ["a.c"], ["n.txt"], argv=("fake", "len")),
            act("use", ["n.txt"], ["use.txt"]),
        ],
        ["a.c"],
    )
    h.build(g)
    h.write("a.c", "int Z;")  # same length: 'count' reruns and writes the same bytes
    report = h.build(g)
    assert ran(report) == ["count"]
    assert statuses(report)["use"] == "cached"


def test_a_deleted_output_is_restored_without_running(h: Harness) -> None:
    h.build(chain())
    before = (h.project / "prog").read_bytes()
    (h.project / "prog").unlink()
    report = h.build(chain())
    assert h.executor.ran == []
    assert (h.project / "prog").read_bytes() == before
    assert report.results["link"].status == "cached"
    assert report.results["link"].reason == "output 'prog' missing, restored from the store"


def test_reverting_an_edit_restores_from_the_store(h: Harness) -> None:
    h.build(chain())
    h.write("a.c", "int a = 2;")
    h.build(chain())
    h.write("a.c", "int a;")
    report = h.build(chain())
    assert ran(report) == []
    assert "restored from the store" in report.results["cc a"].reason


def test_unchanged_files_are_not_rehashed(h: Harness) -> None:
    from plait.store import Store

    h.build(chain())
    for rel in ("a.c", "b.c", "a.o", "b.o", "prog", "size.txt"):
        age(h.project / rel)
    h.build(chain())  # records the aged stats
    store = Store.open(h.project)
    try:
        from plait.build import Build, Options

        Build(h.project, chain(), store, h.executor, lambda e: None, Options()).run([])
        assert store.hashed == []
        h.write("b.c", "int b = 3;")
        Build(h.project, chain(), store, h.executor, lambda e: None, Options()).run([])
        assert str(h.project / "b.c") in store.hashed
    finally:
        store.close()


def test_targets_build_only_what_they_need(h: Harness) -> None:
    report = h.build(chain(), ["a.o"])
    assert ran(report) == ["cc a"]
    assert not (h.project / "prog").exists()


def test_a_failure_skips_what_depends_on_it_and_keep_going_builds_the_rest(h: Harness) -> None:
    h.executor.fail = {"cc a"}
    report = h.build(chain(), keep_going=True, jobs=1)
    assert not report.ok
    assert statuses(report) == {
        "cc a": "failed",
        "cc b": "ran",
        "link": "skipped",
        "size": "skipped",
    }
    failure = report.results["cc a"].failure
    assert failure is not None and failure.message == "exited with status 1"
    assert "fake log of cc a" in failure.log_tail
    assert Path(failure.log_path).is_file()


def test_a_failure_s_tail_leads_with_why_the_command_died(tmp_path: Path) -> None:
    log = tmp_path / "log"
    noise = [f"frame {i}" for i in range(3 * LOG_TAIL_LINES)]
    log.write_text(
        "\n".join(
            [
                "start",
                "fatal error encountered in SBCL pid 1:",
                "Heap exhausted, game over.",
                *noise,
            ]
        )
    )
    assert _tail(log).splitlines() == [
        "fatal error encountered in SBCL pid 1:",
        "Heap exhausted, game over.",
        "...",
        *noise[-LOG_TAIL_LINES:],
    ]
    log.write_text("\n".join(["start", *noise, "a.c:1:10: fatal error: x.h: No such file"]))
    assert (
        _tail(log).splitlines()
        == [*noise, "a.c:1:10: fatal error: x.h: No such file"][-LOG_TAIL_LINES:]
    )


def test_after_a_failure_the_next_build_retries_it(h: Harness) -> None:
    h.executor.fail = {"cc a"}
    h.build(chain(), keep_going=True)
    h.executor.fail = set()
    report = h.build(chain())
    assert ran(report) == ["cc a", "link", "size"]


def test_a_missing_declared_output_fails_naming_the_file(h: Harness) -> None:
    h.executor.behaviour = lambda request, content: {}
    report = h.build(graph_of([act("gen", ["a.c"], ["x.h", "y.h"])], ["a.c"]))
    failure = report.results["gen"].failure
    assert failure is not None
    assert failure.message == "declared outputs 'x.h', 'y.h' not written by the command"


def test_an_input_deleted_after_loading_fails_the_action(h: Harness) -> None:
    g = chain()
    (h.project / "b.c").unlink()
    report = h.build(g, keep_going=True)
    assert report.results["cc b"].status == "failed"
    assert report.results["cc b"].reason == "input 'b.c' is missing"


def test_an_action_without_outputs_runs_every_time_it_is_asked_for(h: Harness) -> None:
    g = graph_of([act("cc a", ["a.c"], ["a.o"]), act("check", ["a.o"])], ["a.c"])
    assert ran(h.build(g, ["check"])) == ["cc a", "check"]
    assert ran(h.build(g, ["check"])) == ["check"]
    assert ran(h.build(g)) == []  # no target: builders only


def test_events_report_start_and_finish_with_times(h: Harness) -> None:
    report = h.build(chain())
    started = [e.name for e in h.events if isinstance(e, Started)]
    finished = [e for e in h.events if isinstance(e, Finished)]
    assert sorted(started) == ["cc a", "cc b", "link", "size"]
    assert len(finished) == 4
    assert all(0 <= f.start <= f.end <= report.wall for f in finished)
    link, size = report.results["link"], report.results["size"]
    assert link.end <= size.start


def test_jobs_bound_the_parallelism(h: Harness) -> None:
    g = graph_of([act(f"gen{i}", ["a.c"], [f"out{i}"]) for i in range(8)], ["a.c"])
    h.executor.block = {f"gen{i}" for i in range(8)}  # each waits until released
    threading.Timer(0.3, h.executor.release.set).start()
    assert h.build(g, jobs=3).ok
    assert h.executor.most_running == 3


def test_a_shared_store_serves_a_second_project(tmp_path: Path) -> None:
    shared = tmp_path / "cache"
    one, two = Harness(tmp_path / "one"), Harness(tmp_path / "two")
    for h in (one, two):
        h.write("a.c", "same")
    g = graph_of([act("cc a", ["a.c"], ["a.o"])], ["a.c"])
    assert ran(one.build(g, store_root=shared)) == ["cc a"]
    report = two.build(g, store_root=shared)
    assert ran(report) == []
    assert (two.project / "a.o").read_bytes() == (one.project / "a.o").read_bytes()


def test_a_changed_tool_reruns_the_action(h: Harness, tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "mytool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    g = graph_of([act("t", ["a.c"], ["t.out"], argv=(str(tool), "x"))], ["a.c"])
    h.build(g)
    assert ran(h.build(g)) == []
    tool.write_text("#!/bin/sh\n# version 2\n")
    report = h.build(g)
    assert ran(report) == ["t"]
    assert report.results["t"].reason == "tool changed"


def test_a_changed_environment_reruns_the_action(h: Harness) -> None:
    def graph(lang: str) -> Graph:
        return graph_of([Action("t", ("fake",), ("a.c",), ("t.out",), {"LANG": lang})], ["a.c"])

    h.build(graph("C"))
    assert ran(h.build(graph("C"))) == []
    report = h.build(graph("fr_FR"))
    assert report.results["t"].reason == "environment changed"


def test_a_cost_estimate_orders_actions_never_timed(h: Harness) -> None:
    g = graph_of(
        [
            Action("cheap", ("fake",), ("a.c",), ("x",), cost=0.1),
            Action("dear", ("fake",), ("a.c",), ("y",), cost=9.0),
        ],
        ["a.c"],
    )
    h.build(g, jobs=1)
    assert h.executor.ran == ["dear", "cheap"]


def test_an_action_started_early_is_taken_over_by_the_build_and_runs_once(h: Harness) -> None:
    h.executor.block.add("cc b")
    timer = threading.Timer(0.2, h.executor.release.set)
    timer.start()
    report = h.build(chain(), early=["cc b"])
    timer.join()
    assert report.ok
    assert h.executor.ran.count("cc b") == 1
    assert statuses(report)["cc b"] == "ran"
    b = report.results["cc b"]
    assert b.start == 0.0  # the build's clock starts when its first action did
    assert all(f.start > 0.0 for f in report.results.values() if f.name != "cc b")
    assert h.executor.most_running <= 2  # it held one of the two job slots meanwhile
    assert (h.project / "b.o").read_bytes().startswith(b"fake cat")


def test_an_action_already_in_the_store_is_not_started_early(h: Harness) -> None:
    h.build(chain())
    (h.project / "b.o").unlink()
    report = h.build(chain(), early=["cc b"])
    assert h.executor.ran == []
    assert statuses(report)["cc b"] == "cached"
    assert (h.project / "b.o").is_file()


def test_nothing_starts_early_with_one_job(h: Harness) -> None:
    store = Store.open(h.project)
    try:
        with Early(h.project, store, h.executor, jobs=1) as early:
            early.start(chain().actions["cc b"])
            assert early.first_start(default=-1.0) == -1.0  # nothing started
    finally:
        store.close()
    assert h.executor.ran == []


def test_an_early_action_no_build_takes_is_stopped(h: Harness) -> None:
    h.executor.block.add("cc b")
    store = Store.open(h.project)
    try:
        with Early(h.project, store, h.executor, jobs=2) as early:
            early.start(chain().actions["cc b"])
    finally:
        store.close()
    assert h.executor.cancelled
    assert h.executor.running == 0


def test_an_early_run_of_another_command_under_the_same_name_is_not_taken(h: Harness) -> None:
    store = Store.open(h.project)
    try:
        with Early(h.project, store, h.executor, jobs=2) as early:
            early.start(act("cc b", ["b.c"], ["b.o"], argv=("fake", "other")))
            report = Build(
                h.project, chain(), store, h.executor, h.events.append, Options(jobs=2), early=early
            ).run(())
    finally:
        store.close()
    assert report.ok
    assert h.executor.ran.count("cc b") == 2  # the early one, and the build's own
    assert (h.project / "b.o").read_bytes().startswith(b"fake cat")


def test_a_key_another_plait_built_between_looking_and_claiming_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two plaits on one store both find 'copy' never built; the first builds it whole before
    the second claims it, so that the claim is free: the second must still not run it."""
    store_root = tmp_path / "store"
    first, second = Harness(tmp_path / "first"), Harness(tmp_path / "second")
    for h in (first, second):
        h.write("in.txt", "same\n")
    graph = graph_of([act("copy", inputs=["in.txt"], outputs=["out.txt"])], ["in.txt"])
    claim = Store.claim
    built: list[str] = []

    def claim_once_the_first_has_built(self: Store, key: str) -> tuple[int, bool]:
        if not built:
            built.append(key)
            assert ran(first.build(graph, store_root=store_root)) == ["copy"]
        return claim(self, key)

    monkeypatch.setattr(Store, "claim", claim_once_the_first_has_built)
    report = second.build(graph, store_root=store_root)
    assert second.executor.ran == []
    assert statuses(report) == {"copy": "cached"}
    assert "built meanwhile by another plait" in report.results["copy"].reason
    assert (second.project / "out.txt").read_bytes() == (first.project / "out.txt").read_bytes()
