"""ASDF's graph translated into plait's actions, on a hand-made dump: no SBCL needed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plait import planner
from plait.asdf import graph as asdf_graph
from plait.asdf.dump import SANDBOX_MARK, Dump, LispError
from plait.asdf.graph import Policy, Translation, driver, node_name, token
from plait.asdf.products import closure
from plait.asdf.protocol import SCHEMA, ProtocolError, decode
from plait.asdf.warnings import lines, reconcile
from plait.model import Graph

OPS = {
    "define": "ASDF/FIND-SYSTEM::DEFINE-OP",
    "prepare": "ASDF/LISP-ACTION::PREPARE-OP",
    "compile": "ASDF/LISP-ACTION::COMPILE-OP",
    "load": "ASDF/LISP-ACTION::LOAD-OP",
    "test": "ASDF/LISP-ACTION::TEST-OP",
}


def node(
    i: int,
    op: str,
    system: str,
    path: list[str] | None,
    deps: list[int],
    kind: str = "source",
    source: bool = False,
) -> dict[str, Any]:
    outputs: list[str] = []
    sandbox: list[str] = []
    inputs: list[str] = []
    if op == "compile" and source:
        name = path[-1] if path else system
        inputs = [f"/src/{system}/{name}.lisp"]
        outputs = [f"/cache/{system}/{name}.fasl"]
        sandbox = [f"{SANDBOX_MARK}out/src/{system}/{name}.fasl"]
    return {
        "id": i,
        "operation": f"{op}-op",
        "op_class": OPS[op],
        "system": system,
        "system_kind": kind,
        "path": path or [],
        "class": "X",
        "is_system": path is None,
        "is_source": source,
        "in_image": not (op == "compile" and source),
        "inputs": inputs,
        "outputs": outputs,
        "deps": deps,
        "sandbox_outputs": sandbox,
        "entry_point": None,
        "runs_tests": op == "test",
        "done_already": False,
    }


def make_dump(
    nodes: list[dict[str, Any]],
    roots: list[int],
    asds: list[list[str]],
    image: str,
    core: str = "/store/definitions.core",
) -> Dump:
    """A dump as plait caches it, decoded as plait reads it."""
    raw = {
        "schema": SCHEMA,
        "asdf_version": "3.3.6",
        "lisp_version": "2.2.9",
        "asdf_upgrade": None,
        "features": [],
        "system_asds": asds,
        "roots": roots,
        "connections": [],
        "nodes": nodes,
        "key": "k",
        "image": image,
        "asd_digests": {},
    }
    return Dump(decode(raw), Path(core))


def dump(
    core: str = "/store/definitions.core",
    image: str = "image-1",
    tweak: Callable[[list[dict[str, Any]]], object] = lambda nodes: None,
) -> Dump:
    """lib: a, b (depends on a), c (independent), then app: m, which depends on lib; lib's
    test-op needs app (as an :in-order-to of a test system would)."""
    nodes = [
        node(1, "load", "sb-posix", None, [], kind="require"),
        node(2, "define", "lib", None, []),
        node(3, "prepare", "lib", None, [2, 1]),
        node(4, "prepare", "lib", ["a"], [3], source=True),
        node(5, "compile", "lib", ["a"], [4], source=True),
        node(6, "load", "lib", ["a"], [4, 5], source=True),
        node(7, "prepare", "lib", ["b"], [3, 6], source=True),
        node(8, "compile", "lib", ["b"], [7], source=True),
        node(9, "load", "lib", ["b"], [7, 8], source=True),
        node(10, "prepare", "lib", ["c"], [3], source=True),
        node(11, "compile", "lib", ["c"], [10], source=True),
        node(12, "load", "lib", ["c"], [10, 11], source=True),
        node(13, "load", "lib", None, [6, 9, 12, 3]),
        node(14, "define", "app", None, []),
        node(15, "prepare", "app", None, [14, 13]),
        node(16, "prepare", "app", ["m"], [15], source=True),
        node(17, "compile", "app", ["m"], [16], source=True),
        node(18, "load", "app", ["m"], [16, 17], source=True),
        node(19, "load", "app", None, [18, 15]),
        node(20, "test", "lib", None, [19]),
    ]
    asds = [["app", "/src/app.asd"], ["lib", "/src/lib.asd"]]
    tweak(nodes)
    return make_dump(nodes, [19], asds, image, core)


def translate(deps: asdf_graph.Deps = "system", warm: bool = False) -> Graph:
    graph = Graph()
    Translation(dump(), Policy(deps=deps, warm=warm), Path("/usr/bin/sbcl")).add_to(graph)
    return graph


def fasls(graph: Graph, name: str) -> list[str]:
    return [i for i in graph.actions[name].inputs if i.endswith(".fasl")]


def loads(graph: Graph, name: str) -> list[str]:
    return [a for a in graph.actions[name].argv if a.startswith('("ASDF/LISP-ACTION::LOAD-OP"')]


def test_every_compile_that_writes_a_fasl_is_a_builder() -> None:
    g = translate()
    assert sorted(g.actions) == ["compile:app:m", "compile:lib:a", "compile:lib:b", "compile:lib:c"]
    a = g.actions["compile:lib:a"]
    assert a.outputs == ("out/src/lib/a.fasl", "warnings/compile-op/lib/a.json")
    assert a.install == {
        "out/src/lib/a.fasl": "/cache/lib/a.fasl",
        "warnings/compile-op/lib/a.json": "",
    }
    assert "/src/lib/a.lisp" in a.inputs
    # The definitions core is named in the argv, by what made it, and not hashed as an input:
    # a compile may start while it is being saved.
    assert a.argv[1:3] == ("--core", "/store/definitions.core")
    assert "/store/definitions.core" not in a.inputs


def test_a_compile_s_key_names_the_core_by_its_image_and_has_the_asd_files_it_needs() -> None:
    """Two dumps of one image (for other roots, or another project) hold other definitions and
    are kept apart, but a compile on either has one key; its system's .asd and those of the
    systems it depends on are its inputs, as ASDF's plan makes them (define-op), and not those
    of the systems that other actions of its system need (lib's test-op needs app)."""

    def key(d: Dump, name: str) -> dict[str, Any]:
        g = Graph()
        Translation(d, Policy(), Path("/usr/bin/sbcl")).add_to(g)
        return planner.request(g.actions[name], {}, None).material()

    g = translate()
    assert "/src/lib.asd" in g.actions["compile:lib:a"].inputs
    assert "/src/app.asd" not in g.actions["compile:lib:a"].inputs
    assert {"/src/app.asd", "/src/lib.asd"} <= set(g.actions["compile:app:m"].inputs)
    for name in ("compile:lib:a", "compile:app:m"):
        assert key(dump(), name) == key(dump(core="/store/another.core"), name)
        assert key(dump(), name) != key(dump(image="image-2"), name)
        assert "/store/definitions.core" not in key(dump(), name)["argv"]


def test_declared_mode_sees_only_declared_dependencies() -> None:
    g = translate("declared")
    assert fasls(g, "compile:lib:b") == ["out/src/lib/a.fasl"]
    assert fasls(g, "compile:lib:c") == []
    assert fasls(g, "compile:app:m") == [
        "out/src/lib/a.fasl",
        "out/src/lib/b.fasl",
        "out/src/lib/c.fasl",
    ]


def test_system_mode_also_sees_earlier_files_of_the_same_system() -> None:
    g = translate("system")
    assert fasls(g, "compile:lib:c") == ["out/src/lib/a.fasl", "out/src/lib/b.fasl"]
    assert loads(g, "compile:lib:c") == [token(dump().nodes[i]) for i in (0, 5, 8)]


def test_loads_are_performed_in_asdf_plan_order_with_requires() -> None:
    g = translate("declared")
    argv = g.actions["compile:app:m"].argv
    performed = [a for a in argv if a.startswith("(")][1:]  # after the target itself
    assert performed == [token(dump().nodes[i - 1]) for i in (1, 6, 9, 12, 13)]


def test_plan_mode_sees_everything_earlier_in_the_plan() -> None:
    g = translate("plan")
    assert fasls(g, "compile:lib:c") == ["out/src/lib/a.fasl", "out/src/lib/b.fasl"]
    d = translate("declared")
    assert set(fasls(g, "compile:app:m")) == set(fasls(d, "compile:app:m"))


def test_a_system_name_is_a_group_of_its_builders() -> None:
    g = translate()
    assert set(g.groups["app"]) == {
        "compile:app:m",
        "compile:lib:a",
        "compile:lib:b",
        "compile:lib:c",
    }


def test_shared_loads_become_a_checkpoint_core(monkeypatch: pytest.MonkeyPatch) -> None:
    # app:m alone shares 5 loads from lib; lib's files share only the sb-posix require (3 x 1).
    monkeypatch.setattr(asdf_graph, "CHECKPOINT_WORK", 4)
    g = translate("declared")
    checkpoints = [a for a in g.actions.values() if a.name.startswith("checkpoint:")]
    assert len(checkpoints) == 1
    cp = checkpoints[0]
    core = cp.outputs[0]
    assert cp.install == {core: ""}  # stays in the store
    m = g.actions["compile:app:m"]
    assert m.argv[1:3] == ("--core", core)
    assert m.links == (core,) and core in m.inputs
    assert loads(g, "compile:app:m") == []  # all of them are in the checkpoint
    assert fasls(g, "compile:app:m") == []
    assert set(fasls(g, cp.name)) == {
        "out/src/lib/a.fasl",
        "out/src/lib/b.fasl",
        "out/src/lib/c.fasl",
    }


def test_a_compile_longer_than_the_checkpoint_loads_for_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # app:m is the only user; estimated longer than saving the core, it does not wait for one.
    monkeypatch.setattr(asdf_graph, "CHECKPOINT_WORK", 4)
    real = asdf_graph._compile_cost
    monkeypatch.setattr(
        asdf_graph,
        "_compile_cost",
        lambda inputs: 100.0 if "/src/app/m.lisp" in list(inputs) else real(inputs),
    )
    g = translate("declared")
    assert not [n for n in g.actions if n.startswith("checkpoint:")]
    m = g.actions["compile:app:m"]
    assert m.argv[1:3] == ("--core", "/store/definitions.core")
    assert len(loads(g, "compile:app:m")) == 5
    assert m.cost == 100.0


def test_few_users_make_no_checkpoint() -> None:
    assert not [n for n in translate().actions if n.startswith("checkpoint:")]


def test_a_bundle_requires_modules_then_loads_fasls_in_plan_order() -> None:
    t = Translation(dump(), Policy(), Path("/usr/bin/sbcl"))
    c = closure(t, 19)
    assert c.requires == ["sb-posix"]
    assert c.fasls == [
        "out/src/lib/a.fasl",
        "out/src/lib/b.fasl",
        "out/src/lib/c.fasl",
        "out/src/app/m.fasl",
    ]


def test_names_and_tokens() -> None:
    n = dump().nodes[16]
    assert node_name(n) == "compile:app:m"
    assert token(n) == '("ASDF/LISP-ACTION::COMPILE-OP" "app" "m")'
    weird = replace(n, system='we"ird')
    assert token(weird) == '("ASDF/LISP-ACTION::COMPILE-OP" "we\\"ird" "m")'


def test_undefined_names_defined_elsewhere_in_the_build_are_not_reported() -> None:
    summary = reconcile(
        {
            "a.lisp": {
                "warnings": [{"kind": "style-warning", "text": "x"}],
                "undefined": ["P::LATER", "P::NOWHERE"],
                "defined": ["P::A"],
                "undefined-variables": ["P::*LATER*", "P::*NOWHERE*"],
            },
            "b.lisp": {
                "warnings": [{"kind": "warning", "text": "bad type\nmore"}],
                "undefined": ["P::NOWHERE"],
                "defined": ["P::LATER"],
                "defined-variables": ["P::*LATER*"],
            },
        }
    )
    assert summary.undefined == {"P::NOWHERE": ["a.lisp", "b.lisp"]}
    out = list(lines(summary))
    assert out[0] == "plait: 1 warning and 1 style-warning in 2 files"
    assert "  b.lisp: warning: bad type" in out
    assert out[-2] == "plait: undefined function P::NOWHERE, used in a.lisp, b.lisp"
    assert out[-1] == "plait: undefined variable P::*NOWHERE*, used in a.lisp"


def test_warm_compiles_say_how_to_fork_them_and_what_others_share() -> None:
    t = Translation(dump(), Policy(deps="system", warm=True), Path("/usr/bin/sbcl"))
    g = Graph()
    t.add_to(g)
    assert not [n for n in g.actions if n.startswith("checkpoint:")]
    warm = {}
    for name in ("compile:lib:a", "compile:lib:b", "compile:lib:c", "compile:app:m"):
        action = g.actions[name]
        w = t.warm[name]
        # Forked or started afresh, it is the same compile after the same loads.
        assert w.server[:3] == action.argv[:3] and w.server[-1] == "plait-serve:main"
        assert action.argv == (*action.argv[:3], *driver(w.entry), *w.args, *w.loads)
        assert list(w.loads) == loads(g, name)
        # Only loaded: the dependencies' fasls are linked into the sandbox, not copied.
        assert set(action.links) == set(fasls(g, name))
        # Each fasl is read by the load of its component, so a worker forked from a server
        # that performed that load needs no link to it.
        assert [[Path(f).stem for f in r] for r in w.reads] == [
            [] if load.count('"') == 4 else [load.split('"')[-2]] for load in w.loads
        ]
        assert {f for r in w.reads for f in r} == set(action.links)
        warm[name] = w
    # Each of lib's files loads what the one before it did, and that file: a server that has
    # done a compile's loads is worth making when another compile begins with them.
    assert [len(w.loads) for w in warm.values()] == [1, 2, 3, 5]
    assert [w.shared for w in warm.values()] == [1, 2, 3, 3]


def grovel_dump(tweak: Callable[[list[dict[str, Any]]], object] = lambda nodes: None) -> Dump:
    """lib: w, a cffi-grovel wrapper file. Its process-op writes the Lisp file its compile-op
    compiles and links a library, which the compile-op also names among its outputs. ASDF's
    translations put files under /cache/ at their sources' paths, as the sandbox's under out/."""
    process = node(4, "compile", "lib", ["w"], [3], source=True)
    process.update(
        operation="process-op",
        op_class="CFFI-GROVEL::PROCESS-OP",
        inputs=["/src/lib/w.lisp"],
        outputs=["/cache/src/lib/w.processed", "/cache/src/lib/libw.so", "/cache/src/lib/w.c"],
        sandbox_outputs=[
            f"{SANDBOX_MARK}out/src/lib/w.processed",
            f"{SANDBOX_MARK}out/src/lib/libw.so",
            f"{SANDBOX_MARK}out/src/lib/w.c",
        ],
    )
    compile_ = node(5, "compile", "lib", ["w"], [4], source=True)
    compile_.update(
        inputs=["/cache/src/lib/w.processed"],
        outputs=["/cache/src/lib/w.fasl", "/cache/src/lib/libw.so"],
        sandbox_outputs=[f"{SANDBOX_MARK}out/src/lib/w.fasl", f"{SANDBOX_MARK}out/src/lib/libw.so"],
    )
    nodes = [
        node(2, "define", "lib", None, []),
        node(3, "prepare", "lib", None, [2]),
        process,
        compile_,
        node(6, "load", "lib", ["w"], [5], source=True),
        node(7, "load", "lib", None, [6, 3]),
    ]
    tweak(nodes)
    return make_dump(nodes, [7], [["lib", "/src/lib.asd"]], "i")


def test_a_generated_file_is_read_from_the_sandbox_and_paths_in_it_are_the_user_s() -> None:
    graph = Graph()
    Translation(grovel_dump(), Policy(), Path("/usr/bin/sbcl")).add_to(graph)
    process, compile_ = graph.actions["process:lib:w"], graph.actions["compile:lib:w"]
    # The process-op writes the library; the compile-op, which names it too, reads it.
    assert process.outputs == (
        "out/src/lib/w.processed",
        "out/src/lib/libw.so",
        "out/src/lib/w.c",
        "warnings/process-op/lib/w.json",
    )
    assert compile_.outputs == ("out/src/lib/w.fasl", "warnings/compile-op/lib/w.json")
    assert compile_.install["out/src/lib/w.fasl"] == "/cache/src/lib/w.fasl"
    assert {"out/src/lib/w.processed", "out/src/lib/libw.so"} <= set(compile_.inputs)
    # And where the user has them, where the generated code looks for the library: the
    # namespace sandbox shows them there.
    assert {"/cache/src/lib/w.processed", "/cache/src/lib/libw.so"} <= set(compile_.inputs)
    # What it does not read (the C file the process-op compiled) is no input: an edit that
    # changes only that stops at the process-op.
    assert "out/src/lib/w.c" not in compile_.inputs
    # Copied, not linked: ASDF names the fasl after the generated file's truename.
    assert not {"out/src/lib/w.processed", "out/src/lib/libw.so"} & set(compile_.links)
    # Both are told where the user's images see what their out/ holds.
    for action in (process, compile_):
        assert action.argv[5:7] == ("plait-compile:relocated", "/cache/")
    graph.freeze([*process.inputs, *compile_.inputs])
    assert graph.deps["compile:lib:w"] == ("process:lib:w",)


def test_an_action_writing_where_asdf_does_not_translate_is_an_error() -> None:
    def in_place(nodes: list[dict[str, Any]]) -> None:
        nodes[2]["sandbox_outputs"][1] = "/src/lib/libw.so"  # written in the source tree

    d = grovel_dump(in_place)
    with pytest.raises(LispError) as e:
        Translation(d, Policy(), Path("/usr/bin/sbcl")).add_to(Graph())
    assert "'process:lib:w' writes '/src/lib/libw.so'" in e.value.message
    assert e.value.hint


def test_a_source_file_that_is_not_there_is_named(tmp_path: Path) -> None:
    def here(nodes: list[dict[str, Any]]) -> None:
        for n in nodes:  # every source there but lib's b
            n["inputs"] = [str(tmp_path / Path(f).name) for f in n["inputs"]]
            for f in n["inputs"]:
                if not f.endswith("/b.lisp"):
                    Path(f).write_text("")

    d = dump(tweak=here)
    t = Translation(d, Policy(), Path("/usr/bin/sbcl"))
    t.add_to(Graph())
    with pytest.raises(LispError) as e:
        t.check_sources()
    assert e.value.message == f"'compile:lib:b' compiles '{tmp_path}/b.lisp', which does not exist"
    assert "'lib' names a file that is not there" in e.value.hint
    (tmp_path / "b.lisp").write_text("")
    t.check_sources()


def test_a_dump_of_another_schema_or_with_a_null_list_is_refused_with_what_is_wrong() -> None:
    good = {
        "schema": SCHEMA,
        "asdf_version": "3.3.6",
        "lisp_version": "2.2.9",
        "asdf_upgrade": None,
        "features": [],
        "system_asds": [],
        "roots": [1],
        "connections": [],
        "nodes": [node(1, "load", "lib", None, [])],
        "key": "k",
        "image": "i",
        "asd_digests": {},
    }
    assert decode(good).nodes[0].deps == ()
    with pytest.raises(ProtocolError) as e:
        decode({**good, "schema": SCHEMA + 1})
    assert f"schema {SCHEMA + 1}; this plait reads schema {SCHEMA}" in e.value.message
    with pytest.raises(ProtocolError) as e:
        decode({**good, "nodes": [{**node(1, "load", "lib", None, []), "deps": None}]})
    assert "node 1 has 'deps' = None, not list" in e.value.message
