"""From systems to actions: walk the (operation, component) graph that the propagation rules make,
and turn each node with a command into an action of the graph.

A node without a command is a pure loader (prepare, load): it vanishes, and what it would load
becomes an input of every builder that reaches it. So the compile of a file sees the outputs of
the compiles it depends on, transitively through loads, as a fresh Lisp image would have to
load them; a walk stops at the first builder on each path, whose outputs stand for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from plait.components import Component, System
from plait.errors import CycleError
from plait.model import Action, Graph, check_path
from plait.operations import Operation

Node = tuple[Operation, Component]


def action_name(op: Operation, component: Component) -> str:
    return f"{op.name}:{component.path}"


class Expansion:
    """Memoized walk. For each node: the files it provides to a builder that depends on it, the
    loader actions (with commands, no outputs) it reaches, and its action if it has a command."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.provided: dict[Node, list[str]] = {}
        self.reached: dict[Node, list[str]] = {}
        self.action: dict[Node, Action | None] = {}

    def walk(self, root: Node) -> None:
        """Post-order over dependencies, iteratively (serial modules make long chains)."""
        stack: list[tuple[Node, list[Node] | None]] = [(root, None)]
        on_path: list[Node] = []
        on_path_set: set[Node] = set()
        while stack:
            node, deps = stack.pop()
            if deps is None:
                if node in self.provided:
                    continue
                if node in on_path_set:
                    cycle = [action_name(*n) for n in on_path[on_path.index(node) :]]
                    raise CycleError([*cycle, action_name(*node)], location=node[1].location)
                op, component = node
                deps = component.component_depends_on(op)
                on_path.append(node)
                on_path_set.add(node)
                stack.append((node, deps))
                stack.extend((d, None) for d in reversed(deps) if d not in self.provided)
            else:
                on_path_set.discard(on_path.pop())
                self._finish(node, deps)

    def _finish(self, node: Node, deps: list[Node]) -> None:
        op, component = node
        seen: dict[str, None] = {}
        reached: dict[str, None] = {}
        for dep in deps:
            seen.update(dict.fromkeys(self.provided[dep]))
            reached.update(dict.fromkeys(self.reached[dep]))
        own = [
            check_path(p, f"input of '{action_name(op, component)}'", component.location)
            for p in component.input_files(op)
        ]
        visible = [*seen, *(p for p in own if p not in seen)]
        argv = component.command(op, visible)
        outputs = [
            check_path(p, f"output of '{action_name(op, component)}'", component.location)
            for p in component.output_files(op)
        ]
        if argv is None:
            self.action[node] = None
            self.provided[node] = visible
            self.reached[node] = list(reached)
            return
        action = Action(
            name=action_name(op, component),
            argv=tuple(argv),
            inputs=tuple(visible),
            outputs=tuple(outputs),
            env=_env(component),
            after=tuple(reached),
            location=component.location,
        )
        self.graph.add(action)
        self.action[node] = action
        if action.is_builder:
            self.provided[node] = list(action.outputs)
            self.reached[node] = []
        else:
            self.provided[node] = visible
            self.reached[node] = [action.name]

    def members(self, root: Node) -> list[str]:
        """The actions building `root` means: its own, or the nearest ones below it."""
        found: dict[str, None] = {}
        stack = [root]
        done: set[Node] = set()
        while stack:
            node = stack.pop()
            if node in done:
                continue
            done.add(node)
            action = self.action.get(node)
            if action is not None:
                found[action.name] = None
                continue
            op, component = node
            stack.extend(component.component_depends_on(op))
        return list(found)


def _env(component: Component) -> dict[str, str]:
    chain: list[Component] = []
    c: Component | None = component
    while c is not None:
        chain.append(c)
        c = c.parent
    env: dict[str, str] = {}
    for c in reversed(chain):
        env.update(c.env)
    return env


def expand(systems: Iterable[System], graph: Graph) -> None:
    """Add every system's actions to the graph, and a group per system for its build operation."""
    systems = list(systems)
    registry = {s.name: s for s in systems}
    for s in systems:
        s.registry = registry
    expansion = Expansion(graph)
    for s in systems:
        for op in (s.build_operation, *s.operations):
            expansion.walk((op(), s))
    for s in systems:
        graph.add_group(s.name, expansion.members((s.build_operation(), s)), s.location)
