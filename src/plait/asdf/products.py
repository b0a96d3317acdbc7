"""Products of a Lisp build: a bundle (one fasl holding a system and all it depends on, in load
order) and a program (an executable). Each is a builder over the closure's fasls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plait.asdf.dump import lisp_file
from plait.asdf.graph import Translation, sbcl_environment, sbcl_home
from plait.errors import UsageError
from plait.model import Action, Graph


@dataclass(frozen=True)
class Closure:
    """What loading a system takes: modules to require, then fasls in plan order."""

    requires: list[str]
    fasls: list[str]


def closure(t: Translation, root: int) -> Closure:
    requires: list[str] = []
    fasls: list[str] = []
    for i in t.needed(root):
        node = t.nodes[i]
        if node.operation == "load-op" and node.is_system:
            if node.system_kind == "require":
                requires.append(node.system)
            elif node.system_kind == "preloaded" and "asdf" not in requires:
                requires.insert(0, "asdf")
        if t.is_builder(node):
            fasls.extend(p for p in t.fasls(node) if p.endswith(".fasl"))
    return Closure(requires, fasls)


def _product(
    t: Translation, kind: str, system: str, out: Path, head: list[str], root: int
) -> Action:
    c = closure(t, root)
    rel = f"{kind}/{system}.{'fasl' if kind == 'bundle' else 'bin'}"
    return Action(
        name=f"{kind}:{system}",
        argv=(
            str(t.sbcl),
            "--script",
            str(lisp_file("product.lisp")),
            kind,
            rel,
            *head,
            *c.requires,
            "--",
            *c.fasls,
        ),
        inputs=(str(lisp_file("product.lisp")), str(lisp_file("sbcl.lisp")), *c.fasls),
        outputs=(rel,),
        env=sbcl_environment(t.sbcl),
        toolchain=(str(sbcl_home(t.sbcl)),),
        install={rel: str(out)},
    )


def add_bundle(graph: Graph, t: Translation, system: str, root: int, out: Path) -> str:
    return graph.add(_product(t, "bundle", system, out, [], root)).name


def add_program(
    graph: Graph, t: Translation, system: str, root: int, out: Path, entry: str | None
) -> str:
    entry = entry or t.nodes[root].entry_point
    if not entry:
        raise UsageError(
            f"system '{system}' declares no :entry-point",
            hint="name the function to run: --entry PACKAGE::FUNCTION",
        )
    return graph.add(_product(t, "program", system, out, [entry], root)).name
