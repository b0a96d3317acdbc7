"""ASDF 3's propagation rules in Python, and their expansion into actions."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from plait.components import Component, Module, SourceFile, StaticFile, System
from plait.errors import BuildDescriptionError, CycleError
from plait.expand import expand
from plait.model import Graph
from plait.operations import CompileOp, LoadOp, Operation, PrepareOp, TestOp


class Src(SourceFile):
    """A file that 'compiles' to out/<path>.o, seeing every file its compile can see."""

    type = "src"

    def output_files(self, op: Operation) -> list[str]:
        return [f"out/{self.path}.o"] if isinstance(op, CompileOp) else []

    def command(self, op: Operation, inputs: Sequence[str]) -> list[str] | None:
        return ["fake", "cat"] if isinstance(op, CompileOp) else None


def graph(*systems: System) -> Graph:
    g = Graph()
    expand(systems, g)
    return g


def inputs(g: Graph, name: str) -> list[str]:
    return list(g.actions[name].inputs)


def test_a_compile_sees_the_outputs_of_what_it_depends_on_transitively_in_plan_order() -> None:
    g = graph(
        System("s", components=[Src("a"), Src("b", depends_on=["a"]), Src("c", depends_on=["b"])])
    )
    assert inputs(g, "compile:s/c") == ["out/s/a.o", "out/s/b.o", "c.src"]
    assert inputs(g, "compile:s/a") == ["a.src"]


def test_serial_makes_each_child_depend_on_the_earlier_ones() -> None:
    g = graph(System("s", serial=True, components=[Src("a"), Src("b"), Src("c")]))
    assert inputs(g, "compile:s/c") == ["out/s/a.o", "out/s/b.o", "c.src"]


def test_without_serial_siblings_are_independent() -> None:
    g = graph(System("s", components=[Src("a"), Src("b")]))
    assert inputs(g, "compile:s/b") == ["b.src"]


def test_a_modules_dependencies_reach_its_children_through_prepare_upward() -> None:
    g = graph(
        System(
            "s",
            components=[
                Src("base"),
                Module("m", depends_on=["base"], components=[Src("x")]),
            ],
        )
    )
    assert inputs(g, "compile:s/m/x") == ["out/s/base.o", "m/x.src"]


def test_a_systems_dependencies_are_other_systems() -> None:
    lib = System("lib", pathname="lib", components=[Src("l")])
    app = System("app", pathname="app", depends_on=["lib"], components=[Src("main")])
    g = graph(lib, app)
    assert inputs(g, "compile:app/main") == ["out/lib/l.o", "app/main.src"]
    assert set(g.groups["app"]) == {"compile:app/main", "compile:lib/l"}


def test_a_static_file_is_seen_by_what_depends_on_it() -> None:
    g = graph(System("s", components=[StaticFile("defs.h"), Src("a", depends_on=["defs.h"])]))
    assert inputs(g, "compile:s/a") == ["defs.h", "a.src"]


def test_propagation_matches_asdf() -> None:
    s = System("s", components=[Module("m", depends_on=["z"], components=[Src("f")]), Src("z")])
    m, z = s.children
    f = m.children[0]
    assert CompileOp().depends_on(f) == [(PrepareOp(), f)]
    assert PrepareOp().depends_on(f) == [(PrepareOp(), m)]
    assert PrepareOp().depends_on(m) == [(PrepareOp(), s), (LoadOp(), z)]
    assert LoadOp().depends_on(f) == [(PrepareOp(), f), (CompileOp(), f)]
    assert CompileOp().depends_on(m) == [(CompileOp(), f), (PrepareOp(), m)]
    assert TestOp().depends_on(s) == [(LoadOp(), s)]


def test_a_cycle_of_components_is_reported_with_its_actions() -> None:
    with pytest.raises(CycleError) as e:
        graph(System("s", components=[Src("a", depends_on=["b"]), Src("b", depends_on=["a"])]))
    assert "compile:s/a" in str(e.value) or "prepare:s/a" in str(e.value)
    assert e.value.cycle[0] == e.value.cycle[-1]


def test_an_unknown_dependency_is_an_error_suggesting_a_sibling() -> None:
    with pytest.raises(BuildDescriptionError) as e:
        graph(System("s", components=[Src("alpha"), Src("b", depends_on=["alpah"])]))
    assert "depends on unknown component 'alpah'" in e.value.message
    assert "'alpha'" in e.value.hint


def test_an_unknown_system_is_an_error() -> None:
    with pytest.raises(BuildDescriptionError, match="unknown system 'nope'"):
        graph(System("s", depends_on=["nope"], components=[Src("a")]))


def test_a_kind_with_a_system_operation_makes_an_action() -> None:
    class Tested(System):
        def output_files(self, op: Operation) -> list[str]:
            return ["out/test.log"] if isinstance(op, TestOp) else []

        def command(self, op: Operation, inputs: Sequence[str]) -> list[str] | None:
            return ["fake", "cat", *inputs] if isinstance(op, TestOp) else None

    g = graph(Tested("s", components=[Src("a"), Src("b")]))
    assert inputs(g, "test:s") == ["out/s/a.o", "out/s/b.o"]
    assert set(g.groups["s"]) == {"compile:s/a", "compile:s/b"}


def test_pathnames_follow_modules_and_explicit_pathnames() -> None:
    s = System(
        "s",
        components=[
            Module("src", components=[Src("a")]),
            Module("flat", pathname="", components=[Src("b")]),
            Src("c", pathname="other/c.txt"),
        ],
    )
    paths = [c.pathname for m in s.children for c in (m.children or [m])]
    assert paths == ["src/a.src", "b.src", "other/c.txt"]


def test_components_know_their_path() -> None:
    leaf: Component = Src("leaf")
    System("sys", components=[Module("mod", components=[leaf])])
    assert leaf.path == "sys/mod/leaf"
