"""From ASDF's graph to plait's actions: each compile that writes files becomes a builder that runs
a fresh SBCL on the definitions core, performs the loads it needs in ASDF's plan order, then
compiles through ASDF's own perform. Loads (loaders) become part of the builders' commands."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from plait import digest
from plait.asdf.dump import SANDBOX_MARK, Dump, LispError, default_core, lisp_file
from plait.asdf.protocol import Node, Upgrade
from plait.asdf.warm import Warm
from plait.model import Action, Graph

Deps = Literal["declared", "system", "plan"]
# A dependency the .asd does not declare, added in memory (plait lint): the components under
# (system, path) also depend on the component (system, path) (a path of () is the system).
Component = tuple[str, tuple[str, ...]]
Edge = tuple[Component, Component]
DEPS_MODES: tuple[Deps, ...] = ("declared", "system", "plan")
BEHAVIOURS = ("warn", "error", "ignore")

# Operations whose perform does nothing a later compile needs (define-op: the definitions are
# in the core already).
_NOTHING_TO_PERFORM = ("define-op", "prepare-op", "compile-op", "prepare-source-op")


@dataclass(frozen=True)
class Policy:
    """What a compile may see, and ASDF's warning and failure behaviours (SBCL's defaults)."""

    deps: Deps = "system"
    on_warnings: str = "warn"
    on_failure: str = "error"
    # Compiles fork from warm images (plait.warm); else each starts SBCL afresh, and the loads
    # many share are done once in checkpoint cores.
    warm: bool = True
    edges: tuple[Edge, ...] = ()
    # Dependencies hidden, in memory, from the compiles of a component (plait lint's
    # experiment): (component, what its compiles may not see, even through others).
    hidden: tuple[Edge, ...] = ()


def under(node: Node, component: Component) -> bool:
    """Whether `node` is an action on `component` or on a component inside it."""
    system, path = component
    return node.system == system and node.path[: len(path)] == path


def action_name(operation: str, system: str, path: Iterable[str]) -> str:
    op = operation.removesuffix("-op")
    below = "/".join(path)
    return f"{op}:{system}:{below}" if below else f"{op}:{system}"


def node_name(node: Node) -> str:
    return action_name(node.operation, node.system, node.path)


def token(node: Node) -> str:
    """The node as a printed Lisp list: (operation-class system component-name...)."""
    parts = [node.op_class, node.system, *node.path]
    return (
        "(" + " ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts) + ")"
    )


# A set of loads from other systems becomes a checkpoint core when the compiles sharing it would
# load this many fasls in all (users x loads): a load costs about 1.5 ms, saving a core about
# 2 s, so below that a checkpoint would cost more than it saves.
CHECKPOINT_WORK = 1500

# Seconds a compile takes on this kind of machine: a start, and source bytes per second (measured
# on ironclad's files with SBCL 2.2.9; only the relative order of the guesses matters much).
_START_SECONDS = 0.15
_BYTES_PER_SECOND = 40_000


def _compile_cost(inputs: Iterable[str]) -> float:
    size = 0
    for path in inputs:
        with contextlib.suppress(OSError):
            size += Path(path).stat().st_size
    return _START_SECONDS + size / _BYTES_PER_SECOND


def _checkpoint_cost(loads: int) -> float:
    """Seconds to load that many fasls and save a core."""
    return _START_SECONDS + 0.02 * loads + 1.0


def driver(entry: str) -> list[str]:
    """The arguments that run a driver the dump loaded into the definitions core. The drivers'
    code is part of the core, so the core's name in an action's key covers it."""
    return ["--script", str(lisp_file("call.lisp")), entry]


def warm_server(sbcl: Path, core: str) -> tuple[str, ...]:
    """The argv of a warm server (plait/asdf/serve.lisp) on `core`."""
    return (str(sbcl), "--core", core, *driver("plait-serve:main"))


def driver_inputs() -> list[str]:
    return [str(lisp_file("call.lisp"))]


def upgrade_action(upgrade: Upgrade, sbcl: Path) -> Action:
    """The compile of the newer ASDF that ASDF upgrades itself to, as the dump described it:
    on SBCL's own core, as ASDF's upgrade does it, so that it depends on nothing the dump makes
    and can run while the dump does. Its fasl goes where the user's images look for it."""
    source = Path(upgrade.source)
    outputs = [f"out{source.parent}/{Path(o).name}" for o in upgrade.outputs]
    core = default_core(sbcl)
    core_input = (str(core),) if core else ()
    system, *path = upgrade.path
    return Action(
        name=action_name("compile-op", system, path),
        argv=(
            str(sbcl),
            *(("--core", str(core)) if core else ()),
            "--noinform",
            "--non-interactive",
            "--no-sysinit",
            "--no-userinit",
            "--load",
            str(lisp_file("upgrade.lisp")),
            "--eval",
            "(plait-upgrade:main)",
            "--end-toplevel-options",
            upgrade.asd,
            str(source),
        ),
        inputs=(
            upgrade.asd,
            str(source),
            str(lisp_file("upgrade.lisp")),
            str(lisp_file("sbcl.lisp")),
            *core_input,
        ),
        outputs=tuple(outputs),
        env=sbcl_environment(sbcl),
        toolchain=(str(sbcl_home(sbcl)),),
        install=dict(zip(outputs, upgrade.outputs, strict=True)),
        cost=_compile_cost([str(source)]),
    )


def sbcl_environment(sbcl: Path) -> dict[str, str]:
    return {"SBCL_HOME": str(sbcl_home(sbcl))}


def sbcl_home(sbcl: Path) -> Path:
    """SBCL's own directory: its core and the contribs `require` loads, the toolchain of every
    action on SBCL beyond its runtime."""
    return sbcl.parent.parent / "lib" / "sbcl"


class Translation:
    """The builder actions of a dump, with the loads each compile performs first."""

    def __init__(self, dump: Dump, policy: Policy, sbcl: Path) -> None:
        self.dump = dump
        self.policy = policy
        self.sbcl = sbcl
        self.nodes: dict[int, Node] = {n.id: n for n in dump.nodes}
        self.actions: dict[int, Action] = {}
        # How each compile may instead fork from a warm image (plait.asdf.warm), by name.
        self.warm: dict[str, Warm] = {}
        self._checkpoint_of: dict[int, tuple[int, ...]] = {}
        self._checkpoint_actions: dict[tuple[int, ...], Action] = {}
        # Invariant: ids are ASDF's plan order (the dump numbers actions in post-order).
        self._loads = sorted(i for i, n in self.nodes.items() if n.operation == "load-op")
        self._source_loads: dict[str, list[int]] = {}
        self._load_of = {(self.nodes[i].system, self.nodes[i].path): i for i in self._loads}
        # The compile of the newer ASDF that the dump loaded from source, if it did.
        upgrade = dump.data.asdf_upgrade
        self.upgrade = upgrade_action(upgrade, sbcl) if upgrade else None
        self._costs: dict[int, float] = {}
        self._tokens: dict[int, str] = {}
        for i in self._loads:
            if self.nodes[i].is_source:
                self._source_loads.setdefault(self.nodes[i].system, []).append(i)
        self._system_asd: dict[str, str] = dict(dump.data.system_asds)
        # The systems of each node and of every node it depends on (in plan order, a node's
        # dependencies come before it).
        self._systems: dict[int, frozenset[str]] = {}
        for i in sorted(self.nodes):
            n = self.nodes[i]
            below = (self._systems[d] for d in n.deps)
            self._systems[i] = frozenset([n.system]).union(*below)
        self._asds: dict[frozenset[str], tuple[str, ...]] = {}
        # Where each file a builder writes is, in the sandboxes, and which builder writes it: the
        # first in plan order to name it among its ASDF outputs. A later one that names it too
        # reads it (cffi-grovel's compile-op names the library its process-op links).
        self._made: dict[str, tuple[str, int]] = {}
        builders = [i for i in sorted(self.nodes) if self.is_builder(self.nodes[i])]
        for i in builders:
            pairs = zip(self.nodes[i].outputs, self.fasls(self.nodes[i]), strict=True)
            for mine, boxed in pairs:
                self._made.setdefault(mine, (boxed, i))
        # And the files each builder reads that others write, inside the sandbox.
        self._made_for: dict[int, list[str]] = {}
        # And where ASDF has them, which is where the builder's code looks for them (the
        # library a cffi-grovel wrapper loads): inputs too, read where they are installed.
        self._made_at: dict[int, list[str]] = {}
        for i in builders:
            named = [*(self.nodes[i].inputs), *self.nodes[i].outputs]
            others = [(f, *self._made[f]) for f in named if f in self._made]
            self._made_for[i] = [boxed for _, boxed, maker in others if maker != i]
            self._made_at[i] = [mine for mine, _, maker in others if maker != i]
        # The definitions core as the key of an action on it names it: the image the dump made
        # (SBCL, ASDF, plait's drivers, ASDF's configuration), not which roots it was for, from
        # which project, nor the definitions it loaded. Each action has the .asd files it
        # depends on as inputs instead (asds_of): a system is compiled once, whatever build
        # asks for it, and editing an .asd file reruns only the compiles ASDF would rerun.
        self.core_name = "definitions-core:" + dump.data.image
        # A farm's worker must run this SBCL (plait.worker.platform).
        self.platform = {"sbcl": dump.data.lisp_version}

    def token(self, i: int) -> str:
        """Node `i` as a printed Lisp list; made once per build, though most compiles load it."""
        if i not in self._tokens:
            self._tokens[i] = token(self.nodes[i])
        return self._tokens[i]

    def cost(self, i: int) -> float:
        """A compile's estimated seconds, from its sources' sizes (stat'ed once per build)."""
        if i not in self._costs:
            self._costs[i] = _compile_cost(self.nodes[i].inputs)
        return self._costs[i]

    def asds_of(self, ids: Iterable[int]) -> tuple[str, ...]:
        """The .asd files of the systems of nodes `ids` and of every node they depend on: ASDF's
        plan makes an action depend on its system's definition (define-op), and on those of the
        systems it depends on."""
        involved = frozenset[str]().union(*(self._systems[i] for i in ids))
        if involved not in self._asds:
            asds = {self._system_asd[s] for s in involved if s in self._system_asd}
            self._asds[involved] = tuple(sorted(asds))
        return self._asds[involved]

    def is_builder(self, node: Node) -> bool:
        return (
            bool(node.outputs)
            and not node.in_image
            and node.system_kind == "source"
            and not node.done_already
        )

    def performs(self, node: Node) -> bool:
        return (
            bool(node.in_image)
            and node.operation not in _NOTHING_TO_PERFORM
            and node.system_kind != "preloaded"
        )

    def needed(self, root: int) -> list[int]:
        """Every node `root` depends on, itself included, in plan order."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.nodes[i].deps)
        return sorted(seen)

    def reach(
        self, starts: Iterable[int], hidden: Iterable[Component] = ()
    ) -> tuple[set[int], set[int]]:
        """The loads to perform and the builders whose outputs they need, walking dependencies
        through loaders and stopping at each builder; never into the `hidden` components."""
        hidden = tuple(hidden)
        loads: set[int] = set()
        builders: set[int] = set()
        stack = list(starts)
        seen: set[int] = set()
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            node = self.nodes[i]
            if self.is_builder(node):
                builders.add(i)
                continue
            if self.performs(node):
                loads.add(i)
            deps = node.deps
            if hidden:
                deps = tuple(d for d in deps if not any(under(self.nodes[d], h) for h in hidden))
            stack.extend(deps)
        return loads, builders

    def visible(self, node: Node) -> list[int]:
        """Where a compile starts its walk: its declared dependencies, and in `system` mode the
        earlier loads of its own system, in `plan` mode every earlier load."""
        starts = [*node.deps, *self.added_loads(node)]
        mode = self.policy.deps
        if mode == "declared":
            return starts
        earlier = self._loads if mode == "plan" else self._source_loads.get(node.system, [])
        return starts + earlier[: bisect.bisect_left(earlier, node.id)]

    def added_loads(self, node: Node, edges: Iterable[Edge] | None = None) -> list[int]:
        """The loads that edges added in memory (by default the policy's) give `node`."""
        found = []
        for user, target in self.policy.edges if edges is None else edges:
            load = self.load_of(target)
            if load is not None and under(node, user):
                found.append(load)
        return found

    def system_asd(self, system: str) -> str | None:
        """The .asd file that defines `system`, if the dump knows it."""
        return self._system_asd.get(system)

    def load_of(self, component: Component) -> int | None:
        """The node loading `component` (its load-op), if the plan has one."""
        return self._load_of.get(component)

    def fasls(self, node: Node) -> list[str]:
        """A builder's outputs inside the sandbox, in the order of its ASDF outputs."""
        return [p.removeprefix(SANDBOX_MARK) for p in node.sandbox_outputs]

    def writes(self, node: Node) -> dict[str, str]:
        """The outputs a builder writes itself, inside the sandbox, with where ASDF has them."""
        pairs = zip(self.fasls(node), node.outputs, strict=True)
        return {boxed: mine for boxed, mine in pairs if self._made[mine][1] == node.id}

    def made(self, node: Node) -> list[str]:
        """The files a builder reads that other builders write (a Lisp file generated from its
        component, a library), inside the sandbox."""
        return self._made_for.get(node.id, [])

    def user_root(self, node: Node) -> str | None:
        """The directory ASDF's output translations put what a builder's `out/` holds, if one
        does for all its outputs."""
        roots = set()
        for boxed, mine in zip(self.fasls(node), node.outputs, strict=True):
            below = boxed.removeprefix("out")
            if not mine.endswith(below):
                return None
            roots.add(mine[: -len(below)] + "/")
        return roots.pop() if len(roots) == 1 else None

    def readers(self, loads: Iterable[int], builders: set[int]) -> list[list[int]]:
        """For each load, the builders among its direct dependencies: whose fasls it reads."""
        return [[b for b in self.nodes[i].deps if b in builders] for i in loads]

    def warnings_output(self, node: Node) -> str:
        """Where a builder's warnings go: one file per action, as a component may have two
        builders (cffi-grovel's process-op writes the Lisp file that its compile-op compiles)."""
        path = "/".join(node.path)
        return f"warnings/{node.operation}/{node.system}/{path}.json"

    def plan_loads(self, node: Node) -> tuple[set[int], set[int]]:
        hidden = [target for user, target in self.policy.hidden if under(node, user)]
        return self.reach(self.visible(node), hidden)

    def checkpoints(self) -> None:
        """Find the sets of loads from other systems that several compiles share: each becomes
        a checkpoint action that loads them once and saves a core the compiles start from."""
        users: dict[tuple[int, ...], list[int]] = {}
        for i, node in self.nodes.items():
            if self.is_builder(node):
                loads, _ = self.plan_loads(node)
                shared = tuple(sorted(j for j in loads if self.nodes[j].system != node.system))
                users.setdefault(shared, []).append(i)
        for shared, builders in users.items():
            # A compile that takes longer than saving the checkpoint loads for itself: waiting
            # for the core would delay the longest compiles by as much as the core saves them.
            limit = _checkpoint_cost(len(shared))
            waiting = [b for b in builders if self.cost(b) <= limit]
            if len(waiting) * len(shared) >= CHECKPOINT_WORK:
                for b in waiting:
                    self._checkpoint_of[b] = shared

    def checkpoint_action(self, shared: tuple[int, ...]) -> Action:
        _, builders = self.reach(shared)
        tag = digest.of_canonical([self.token(i) for i in shared])[:16]
        core = f"checkpoints/{tag}.core"
        inputs = driver_inputs()  # the definitions core is named in the argv, as for compiles
        for b in sorted(builders):
            inputs.extend(self.fasls(self.nodes[b]))
        inputs.extend(self.asds_of(shared))
        return Action(
            name=f"checkpoint:{tag}",
            argv=(
                str(self.sbcl),
                "--core",
                str(self.dump.core_path),
                *driver("plait-checkpoint:main"),
                core,
                *(self.token(i) for i in shared),
            ),
            inputs=tuple(dict.fromkeys(inputs)),
            outputs=(core,),
            env=sbcl_environment(self.sbcl),
            toolchain=(str(sbcl_home(self.sbcl)),),
            install={core: ""},
            cost=_checkpoint_cost(len(shared)),
            named={str(self.dump.core_path): self.core_name},
            platform=self.platform,
        )

    def action(self, node: Node) -> Action:
        untranslated = [p for p in node.sandbox_outputs if not p.startswith(SANDBOX_MARK)]
        if untranslated:
            # Its command would write them in place, outside any sandbox.
            raise LispError(
                f"'{node_name(node)}' writes {', '.join(repr(p) for p in untranslated)}, where"
                " ASDF's output translations do not apply: plait builds an action only in a"
                " sandbox",
                hint="have the operation's output-files go through ASDF's output translations,"
                " or build this system with ASDF",
            )
        loads, builders = self.plan_loads(node)
        # The definitions core is in the argv, and the key names it by what it is to compiles
        # (core_name): a compile can start while it is being saved (plait.asdf.dump).
        definitions = str(self.dump.core_path)
        asds = self.asds_of([node.id, *loads])
        core = definitions
        links: tuple[str, ...] = ()
        shared = self._checkpoint_of.get(node.id)
        if shared is not None:
            checkpoint = self._checkpoint_actions[shared]
            core = checkpoint.outputs[0]
            links = (core,)
            loads -= set(shared)
            _, covered = self.reach(shared)
            builders -= covered
        made = self.made(node)
        sources = [f for f in node.inputs if f not in self._made]
        installed = self._made_at.get(node.id, [])
        inputs = [*sources, *made, *installed, *asds, *links, *driver_inputs()]
        ordered = sorted(loads)
        readers = self.readers(ordered, builders)
        # A builder this one depends on directly, and no load reads from (cffi-grovel's
        # process-op), gives it only what ASDF says it reads (made): the C program it ran is
        # no input, and editing a grovel file without changing what it generates stops there.
        given = {b for bs in readers for b in bs} | (builders - set(node.deps))
        fasls = [f for b in sorted(given) for f in self.fasls(self.nodes[b])]
        inputs.extend(fasls)
        # What loading those reads where the user has it (a wrapper's library).
        inputs.extend(f for b in sorted(set(loads) | given) for f in self._made_at.get(b, []))
        # Fasls are only loaded: read-only links, not copies. Files other builders made are
        # copied, and so is a fasl compiled from one: ASDF finds it from the file it was
        # compiled from, already under out/, through its truename, which for a link is in the
        # store.
        copied = set(made)
        for b in sorted(builders):
            if self.made(self.nodes[b]):
                copied.update(self.fasls(self.nodes[b]))
        links += tuple(f for f in fasls if f not in copied)
        install = self.writes(node)
        outputs = list(install)
        warnings = self.warnings_output(node)
        install[warnings] = ""
        args: tuple[str, ...] = (
            warnings,
            self.policy.on_warnings,
            self.policy.on_failure,
            self.policy.deps,
        )
        entry = "plait-compile:main"
        if made or node.operation != "compile-op":
            # What it writes or reads was made in a sandbox, and may name where it is.
            root = self.user_root(node)
            if root is not None:
                entry, args = "plait-compile:relocated", (root, *args)
        target = self.token(node.id)
        load_tokens = tuple(self.token(i) for i in ordered)
        argv = (str(self.sbcl), "--core", core, *driver(entry), *args, target)
        argv = (*argv, *load_tokens)
        if self.policy.warm:
            self.warm[node_name(node)] = Warm(
                server=warm_server(self.sbcl, core),
                entry=entry,
                args=(*args, target),
                loads=load_tokens,
                # Only a fasl is read by its load alone: another file a builder made (a
                # library cffi-tests links) may be read by any later load, and is linked now.
                reads=tuple(
                    tuple(f for b in bs for f in self.fasls(self.nodes[b]) if f.endswith(".fasl"))
                    for bs in readers
                ),
            )
        return Action(
            name=node_name(node),
            argv=argv,
            inputs=tuple(dict.fromkeys(inputs)),
            outputs=(*outputs, warnings),
            env=sbcl_environment(self.sbcl),
            toolchain=(str(sbcl_home(self.sbcl)),),
            install=install,
            cost=self.cost(node.id),
            links=links,
            named={definitions: self.core_name},
            platform=self.platform,
        )

    def check_sources(self) -> None:
        """A LispError if a builder reads a source file that is not there (Debian's packages
        leave out some test files that their .asd files name). Called only once the graph has
        found an input missing, to say so in ASDF's terms: a build stats every input once."""
        for i in sorted(self.actions):
            node = self.nodes[i]
            for f in node.inputs:
                if f not in self._made and not Path(f).exists():
                    raise LispError(
                        f"'{node_name(node)}' compiles '{f}', which does not exist",
                        hint=f"the definition of '{node.system}' names a file that is not"
                        " there, and ASDF would fail on it too: restore the file, or correct"
                        " the .asd",
                    )

    def add_to(self, graph: Graph) -> None:
        if not self.policy.warm:
            self.checkpoints()
        for shared in dict.fromkeys(self._checkpoint_of.values()):
            action = self.checkpoint_action(shared)
            self._checkpoint_actions[shared] = action
            graph.add(action)
        if self.upgrade is not None:
            graph.add(self.upgrade)
        for node in self.nodes.values():
            if self.is_builder(node):
                self.actions[node.id] = self.action(node)
        _share_loads(self.warm)
        for action in self.actions.values():
            graph.add(action)
        for root in self.dump.data.roots:
            node = self.nodes[root]
            # With the system connections ASDF loads once what they require is loaded.
            connected = [
                c.root for c in self.dump.data.connections if set(c.requires) <= self._systems[root]
            ]
            _, builders = self.reach([root, *connected])
            members = [self.actions[b].name for b in sorted(builders)]
            if self.upgrade is not None:  # ASDF upgrades itself first: every root needs it
                members.insert(0, self.upgrade.name)
            name = node.system if node.operation == "load-op" else node_name(node)
            if name not in graph.groups and name not in graph.actions:
                graph.add_group(name, members, None)


def _share_loads(warm: dict[str, Warm]) -> None:
    """Say in each compile's Warm how many of its loads some other compile begins with too:
    the longest prefix it shares with its neighbours in sorted order."""
    ordered = sorted((w.loads, name) for name, w in warm.items())
    for k, (loads, name) in enumerate(ordered):
        shared = max(
            (_common(loads, ordered[j][0]) for j in (k - 1, k + 1) if 0 <= j < len(ordered)),
            default=0,
        )
        warm[name] = replace(warm[name], shared=shared)


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many first items `a` and `b` have in common."""
    pairs = enumerate(zip(a, b, strict=False))
    return next((n for n, (x, y) in pairs if x != y), min(len(a), len(b)))
