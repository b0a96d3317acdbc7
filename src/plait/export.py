"""The action graph rendered for others: Graphviz dot, JSON, and static ninja and make files whose
commands are plait's own, run from the project directory with the same clean environment."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable
from typing import Any

from plait.model import Action, Graph
from plait.sandbox import DEFAULT_PATH


def command(action: Action) -> str:
    """The action's argv under `env -i` with the variables plait's sandbox gives it."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", **action.env}
    return shlex.join(["env", "-i", *(f"{k}={v}" for k, v in env.items()), *action.argv])


def as_json(graph: Graph, names: Iterable[str]) -> dict[str, Any]:
    return {
        "actions": [
            {
                "name": n,
                "argv": list(graph.actions[n].argv),
                "inputs": list(graph.actions[n].inputs),
                "outputs": list(graph.actions[n].outputs),
                "deps": list(graph.deps[n]),
            }
            for n in names
        ]
    }


def dot(graph: Graph, names: Iterable[str]) -> str:
    """Actions as boxes, an edge from each action to those that need it."""
    chosen = list(names)
    keep = set(chosen)
    lines = ["digraph plait {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for n in chosen:
        shape = "" if graph.actions[n].is_builder else ", style=dashed"
        lines.append(f"  {_quote(n)} [label={_quote(n)}{shape}];")
    for n in chosen:
        for d in graph.deps[n]:
            if d in keep:
                lines.append(f"  {_quote(d)} -> {_quote(n)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _target(action: Action) -> list[str]:
    """What stands for an action in a static build file: its outputs, or a name for a loader."""
    return list(action.outputs) or [f"plait-action-{_safe(action.name)}"]


def _edges(graph: Graph, names: list[str]) -> list[tuple[Action, list[str], list[str]]]:
    """Per action: the action, what stands for it, and what must come before it otherwise."""
    return [
        (
            graph.actions[n],
            _target(graph.actions[n]),
            [
                t
                for d in graph.actions[n].after
                if d in graph.actions
                for t in _target(graph.actions[d])
            ],
        )
        for n in names
    ]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def ninja(graph: Graph, names: Iterable[str]) -> str:
    chosen = list(names)
    out = [
        "# Written by `plait export --format ninja`: plait's commands, run from the project",
        "# directory (not in sandboxes), with the environment plait gives them.",
        "rule run",
        "  command = $cmd",
        "  description = $desc",
        "",
    ]
    defaults: list[str] = []
    for a, targets, after in _edges(graph, chosen):
        ins = " ".join(_ninja_path(i) for i in a.inputs)
        order_only = (" || " + " ".join(_ninja_path(t) for t in after)) if after else ""
        out.append(f"build {' '.join(_ninja_path(t) for t in targets)}: run {ins}{order_only}")
        out.append(f"  cmd = {command(a).replace('$', '$$')}")
        out.append(f"  desc = {a.name.replace('$', '$$')}")
        defaults.extend(targets)
    out.append("")
    out.append("default " + " ".join(_ninja_path(t) for t in defaults))
    return "\n".join(out) + "\n"


def _ninja_path(path: str) -> str:
    return path.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def make(graph: Graph, names: Iterable[str]) -> str:
    chosen = list(names)
    out = [
        "# Written by `plait export --format make`: plait's commands, run from the project",
        "# directory (not in sandboxes), with the environment plait gives them.",
        ".PHONY: all",
    ]
    defaults = [t for n in chosen for t in _target(graph.actions[n])]
    loaders = [
        t for n in chosen if not graph.actions[n].is_builder for t in _target(graph.actions[n])
    ]
    if loaders:
        out.append(".PHONY: " + " ".join(loaders))
    out.append("all: " + " ".join(_make_path(t) for t in defaults))
    out.append("")
    for a, names, before in _edges(graph, chosen):
        targets = [_make_path(t) for t in names]
        after = [_make_path(t) for t in before]
        group = " &:" if len(targets) > 1 else ":"
        prereqs = " ".join(_make_path(i) for i in a.inputs)
        order_only = (" | " + " ".join(after)) if after else ""
        out.append(f"{' '.join(targets)}{group} {prereqs}{order_only}")
        dirs = sorted({posixpath.dirname(o) for o in a.outputs} - {""})
        if dirs:
            out.append("\t@mkdir -p " + " ".join(shlex.quote(d) for d in dirs))
        out.append("\t" + command(a).replace("$", "$$"))
    return "\n".join(out) + "\n"


def _make_path(path: str) -> str:
    return path.replace("$", "$$").replace(" ", "\\ ").replace(":", "\\:")
