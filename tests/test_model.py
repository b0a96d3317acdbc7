"""The action graph: edges from files, cycles, clashes, targets."""

from __future__ import annotations

import threading

import pytest

from plait.errors import BuildDescriptionError, CycleError, Location, UsageError
from plait.model import Action, Graph
from tests.support import act, graph_of


def test_an_input_that_is_another_actions_output_makes_an_edge() -> None:
    g = graph_of([act("b", ["a.out"], ["b.out"]), act("a", ["src"], ["a.out"])], ["src"])
    assert g.deps["b"] == ("a",)
    assert g.order.index("a") < g.order.index("b")


def test_cycle_is_reported_whole() -> None:
    with pytest.raises(CycleError) as e:
        graph_of([act("a", ["b.out"], ["a.out"]), act("b", ["a.out"], ["b.out"])])
    assert str(e.value) in ("dependency cycle: a -> b -> a", "dependency cycle: b -> a -> b")
    assert e.value.cycle[0] == e.value.cycle[-1]


def test_longer_cycle_names_every_action_once() -> None:
    actions = [act("a", ["c.o"], ["a.o"]), act("b", ["a.o"], ["b.o"]), act("c", ["b.o"], ["c.o"])]
    with pytest.raises(CycleError) as e:
        graph_of([*actions, act("d", ["a.o"], ["d.o"])])
    assert sorted(e.value.cycle[:-1]) == ["a", "b", "c"]


def test_an_action_reading_its_own_output_is_a_cycle() -> None:
    with pytest.raises(CycleError, match="a -> a"):
        graph_of([act("a", ["x"], ["x"])])


def test_two_actions_writing_one_output_is_an_error_naming_both() -> None:
    g = Graph()
    g.add(Action("a", ("true",), outputs=("x",), location=Location("P.py", 3)))
    with pytest.raises(BuildDescriptionError) as e:
        g.add(Action("b", ("true",), outputs=("x",), location=Location("P.py", 4)))
    assert "'a' and 'b'" in e.value.message
    assert e.value.location == Location("P.py", 4)
    assert "P.py:3" in e.value.hint


def test_a_clash_with_an_action_of_no_location_leaves_the_location_out_of_the_hint() -> None:
    g = Graph()
    g.add(Action("a", ("true",), outputs=("x",)))
    with pytest.raises(BuildDescriptionError) as e:
        g.add(Action("b", ("true",), outputs=("x",)))
    assert e.value.hint == "each file has one producer"


def test_a_name_used_twice_is_an_error() -> None:
    g = Graph()
    g.add(act("a", outputs=["x"]))
    with pytest.raises(BuildDescriptionError, match="action name 'a' is used twice"):
        g.add(act("a", outputs=["y"]))


def test_unknown_input_is_an_error_with_a_hint() -> None:
    with pytest.raises(BuildDescriptionError) as e:
        graph_of([act("a", ["missing.c"], ["a.o"])], sources=[])
    assert "input 'missing.c' of action 'a' does not exist" in e.value.message
    assert e.value.hint


def test_an_output_inside_another_output_is_an_error() -> None:
    with pytest.raises(BuildDescriptionError, match="inside 'build/x'"):
        graph_of([act("a", outputs=["build/x"]), act("b", outputs=["build/x/y.o"])])


def test_after_an_unknown_action_is_an_error() -> None:
    with pytest.raises(BuildDescriptionError, match="unknown action 'nope'"):
        graph_of([act("a", outputs=["x"], after=["nope"])])


def test_targets_are_action_names_groups_or_output_paths() -> None:
    g = graph_of([act("a", outputs=["out/a"]), act("b", outputs=["out/b"]), act("c", ["out/a"])])
    g.add_group("sys", ["a", "b"], None)
    assert g.resolve(["a"]) == ["a"]
    assert g.resolve(["sys"]) == ["a", "b"]
    assert g.resolve(["./out/b"]) == ["b"]
    assert g.resolve([]) == ["a", "b"]  # every builder; 'c' has no outputs


def test_unknown_target_suggests_a_near_name() -> None:
    g = graph_of([act("compile", outputs=["x"])])
    with pytest.raises(UsageError) as e:
        g.resolve(["compil"])
    assert "unknown target 'compil'" in e.value.message
    assert "'compile'" in e.value.hint


def test_closure_is_the_targets_and_what_they_need_in_order() -> None:
    g = graph_of(
        [
            act("a", outputs=["a"]),
            act("b", ["a"], ["b"]),
            act("c", ["b"], ["c"]),
            act("z", [], ["z"]),
        ]
    )
    assert g.closure(["c"]) == ["a", "b", "c"]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", ".plait/store.db", ""])
def test_paths_outside_the_project_are_refused(bad: str) -> None:
    from plait.model import check_path

    with pytest.raises(BuildDescriptionError):
        check_path(bad, "input", None)


def test_an_absolute_output_path_does_not_hang_the_output_directory_check() -> None:
    graph = Graph()
    graph.add(Action(name="a", argv=("true",), outputs=("/abs/x",)))
    done = threading.Event()

    def freeze() -> None:
        graph.freeze()
        done.set()

    worker = threading.Thread(target=freeze, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set()


def test_an_action_reading_a_file_another_installs_depends_on_it() -> None:
    """An absolute input that an action installs (Action.install) needs no source: the graph
    orders its reader after the installer."""
    g = Graph()
    g.add(Action("make", ("true",), outputs=("out/lib.so",), install={"out/lib.so": "/c/lib.so"}))
    g.add(Action("use", ("true",), inputs=("/c/lib.so",), outputs=("use.txt",)))
    g.freeze()
    assert g.deps["use"] == ("make",)
    assert g.order.index("make") < g.order.index("use")
