"""The action graph: actions, the edges their files make, cycles, targets and their closure.

Pure data: nothing here reads the file system or runs anything.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from plait.errors import BuildDescriptionError, CycleError, Location, UsageError


@dataclass(frozen=True)
class Action:
    """A node of the graph. With outputs it is a builder (cached, sandboxed); without, a loader
    that runs every time it is asked for, after its dependencies."""

    name: str
    argv: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    location: Location | None = None
    # Where an output lands instead of the project tree: an absolute path, or "" for nowhere
    # but the store. Absolute inputs are read where they are and never copied into the sandbox.
    install: Mapping[str, str] = field(default_factory=dict)
    # A guess at the seconds it takes, for scheduling before it has ever been timed.
    cost: float | None = None
    # Inputs placed in the sandbox as read-only links, not copies: large files the command
    # only reads (a Lisp core).
    links: tuple[str, ...] = ()
    # Words of the argv that name a file by what it is, not where it is: the key holds the
    # name instead (a Lisp core, of which each build of other roots keeps its own copy).
    named: Mapping[str, str] = field(default_factory=dict)
    # Absolute paths (files or directories) of the tools the command runs beyond its program:
    # their content is part of its key, and the namespace sandbox shows them.
    toolchain: tuple[str, ...] = ()
    # What a remote worker must offer to run the command (REAPI platform properties, such as
    # the SBCL version a Lisp compile needs); not part of its key, which the toolchain covers.
    platform: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_builder(self) -> bool:
        return bool(self.outputs)


def check_path(path: str, what: str, location: Location | None) -> str:
    """A project-relative path in normal form, or a BuildDescriptionError saying what is wrong."""
    if not isinstance(path, str) or not path:
        raise BuildDescriptionError(
            f"{what} must be a non-empty string, not {path!r}",
            hint="name a file by its path relative to the project root, e.g. 'src/main.c'",
            location=location,
        )
    if path.startswith("/"):
        raise BuildDescriptionError(
            f"{what} '{path}' is absolute",
            hint="inputs and outputs are paths relative to the project root",
            location=location,
        )
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        raise BuildDescriptionError(
            f"{what} '{path}' is outside the project",
            hint="a build may only read and write files under the project root",
            location=location,
        )
    if norm == "." or norm == ".plait" or norm.startswith(".plait/"):
        raise BuildDescriptionError(
            f"{what} '{path}' is not a file path",
            hint="'.' and '.plait/' belong to plait; name a file in the project",
            location=location,
        )
    return norm


class Graph:
    """Actions by name, the producer of each output, and each action's dependencies.

    Invariant: once `freeze()` has returned, every input is either produced by exactly one action
    or is a source, every `after` names an action, and there is no cycle.
    """

    def __init__(self) -> None:
        self.actions: dict[str, Action] = {}
        self.producer: dict[str, str] = {}
        # The action that installs a file at each absolute path (Action.install): an action
        # that reads the file there depends on it.
        self.installer: dict[str, str] = {}
        self.groups: dict[str, tuple[str, ...]] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.order: list[str] = []

    def add(self, action: Action) -> Action:
        where = action.location
        if action.name in self.actions or action.name in self.groups:
            first = self.actions.get(action.name)
            also = f" (first defined at {first.location})" if first and first.location else ""
            raise BuildDescriptionError(
                f"action name '{action.name}' is used twice{also}",
                hint="give each action a unique name",
                location=where,
            )
        if not action.argv and action.outputs:
            raise BuildDescriptionError(
                f"action '{action.name}' has outputs but no command",
                hint="give the argv that writes them",
                location=where,
            )
        for out in action.outputs:
            if out in self.producer:
                other = self.actions[self.producer[out]]
                at = f"'{other.name}' is at {other.location}; " if other.location else ""
                raise BuildDescriptionError(
                    f"output '{out}' is written by two actions: '{other.name}' and '{action.name}'",
                    hint=at + "each file has one producer",
                    location=where,
                )
            self.producer[out] = action.name
        for installed in action.install.values():
            if installed:
                self.installer.setdefault(installed, action.name)
        self.actions[action.name] = action
        return action

    def add_group(self, name: str, members: Iterable[str], location: Location | None) -> None:
        """A named set of actions, such as a system's: building it builds them."""
        if name in self.actions or name in self.groups:
            raise BuildDescriptionError(
                f"name '{name}' is used twice",
                hint="give each system and action a unique name",
                location=location,
            )
        self.groups[name] = tuple(members)

    def freeze(self, sources: Iterable[str] = ()) -> None:
        """Compute edges; check `after` names and inputs; find cycles. `sources` are the inputs
        known to exist; an input that is neither produced nor a source is an error."""
        known = set(sources)
        self._check_output_directories()
        for action in self.actions.values():
            deps: list[str] = []
            for path in action.inputs:
                producer = self.producer.get(path) or self.installer.get(path)
                if producer is not None:
                    if producer == action.name:
                        raise CycleError([action.name, action.name], location=action.location)
                    deps.append(producer)
                elif path not in known:
                    raise BuildDescriptionError(
                        f"input '{path}' of action '{action.name}' does not exist"
                        " and no action produces it",
                        hint="check the path (relative to the project root), or declare the"
                        " action that writes it",
                        location=action.location,
                    )
            for name in action.after:
                if name not in self.actions:
                    raise BuildDescriptionError(
                        f"action '{action.name}' comes after unknown action '{name}'",
                        hint=_did_you_mean(name, self.actions)
                        or "after= names actions of this Plaitfile, by the names given to action()",
                        location=action.location,
                    )
                deps.append(name)
            self.deps[action.name] = tuple(dict.fromkeys(deps))
        self.order = self._topological_order()

    def _check_output_directories(self) -> None:
        """No output may be a directory that another output goes in."""
        for out, name in self.producer.items():
            parent = posixpath.dirname(out)
            while parent not in ("", "/"):
                if parent in self.producer:
                    other = self.actions[self.producer[parent]]
                    raise BuildDescriptionError(
                        f"output '{out}' of action '{name}' is inside '{parent}',"
                        f" which action '{other.name}' writes as a file",
                        hint="a path cannot be both a file and a directory; rename one of them",
                        location=self.actions[name].location,
                    )
                parent = posixpath.dirname(parent)

    def _topological_order(self) -> list[str]:
        """Dependencies first; raises CycleError naming the whole cycle."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        order: list[str] = []
        for root in self.actions:
            if root in state:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            path: list[str] = []
            while stack:
                name, i = stack.pop()
                if i == 0:
                    state[name] = 1
                    path.append(name)
                deps = self.deps[name]
                if i < len(deps):
                    stack.append((name, i + 1))
                    dep = deps[i]
                    if state.get(dep) == 1:
                        cycle = [*path[path.index(dep) :], dep]
                        raise CycleError(cycle, location=self.actions[dep].location)
                    if dep not in state:
                        stack.append((dep, 0))
                else:
                    state[name] = 2
                    path.pop()
                    order.append(name)
        return order

    def resolve(self, targets: Iterable[str]) -> list[str]:
        """Action names for targets: an action name, a group (system) name, or an output path.
        No targets means every builder (and every action a builder comes after)."""
        wanted = list(targets)
        if not wanted:
            return [a.name for a in self.actions.values() if a.is_builder]
        names: list[str] = []
        for target in wanted:
            norm = posixpath.normpath(target) if target else target
            if target in self.actions:
                names.append(target)
            elif target in self.groups:
                names.extend(self.groups[target])
            elif norm in self.producer:
                names.append(self.producer[norm])
            else:
                raise UsageError(
                    f"unknown target '{target}'",
                    hint=_did_you_mean(target, [*self.actions, *self.groups, *self.producer])
                    or "a target is an action name, a system name or an output path;"
                    " 'plait build' with no target builds everything",
                )
        return names

    def closure(self, names: Iterable[str]) -> list[str]:
        """The named actions and all they depend on, in topological order."""
        needed: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self.deps[name])
        return [name for name in self.order if name in needed]


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3)
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else ""
