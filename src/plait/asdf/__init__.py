"""The Common Lisp frontend: ASDF systems built by plait with SBCL (see DESIGN.md)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from plait.asdf import dump as dumping
from plait.asdf.dump import Dump, sbcl
from plait.asdf.graph import (
    Policy,
    Translation,
    driver,
    sbcl_environment,
    token,
    upgrade_action,
    warm_server,
)
from plait.asdf.protocol import Upgrade
from plait.asdf.warm import Hosted, WarmPool
from plait.model import Action, Graph
from plait.store import Output, Store

__all__ = ["AsdfBuild", "Policy", "add_systems"]


class _PoolHost:
    """The dump's warm server goes to `pool`, as the root of the compiles' servers."""

    def __init__(self, pool: WarmPool, program: Path) -> None:
        self.pool = pool
        self.program = program
        self.env = sbcl_environment(program)

    def prepare(self) -> Hosted:
        return self.pool.host(self.env)

    def adopt(self, hosted: Hosted, core: Path, saved: Callable[[], None]) -> None:
        self.pool.adopt(hosted, warm_server(self.program, str(core)), self.env, saved)


@dataclass
class AsdfBuild:
    """The ASDF part of a graph: the dump, its translation into actions, and the roots asked for."""

    dump: Dump
    translation: Translation
    roots: list[str]

    def root_id(self, root: str) -> int:
        return int(self.dump.data.roots[self.roots.index(root)])

    def installed(self, produced: Mapping[str, Output]) -> list[tuple[Path, Output]]:
        """Each fasl that was materialized where ASDF looks, with what plait knows of it."""
        found = []
        upgrade = [self.translation.upgrade] if self.translation.upgrade else []
        for action in [*upgrade, *self.translation.actions.values()]:
            for rel, where in action.install.items():
                if where and rel in produced:
                    found.append((Path(where), produced[rel]))
        return found

    def fix_stamps(self, store: Store, produced: Mapping[str, Output]) -> int:
        """Give every fasl the same write date, no older than any source or .asd file, so that
        ASDF's `compute-action-stamp` (latest input <= earliest output) finds them all done.
        Returns how many files were touched."""
        fasls = self.installed(produced)
        sources = [Path(p) for p in self.dump.data.asd_digests]
        sources += [Path(p) for n in self.dump.nodes for p in n.inputs]
        if self.dump.data.asdf_upgrade:  # its .asd is among the .asd files read
            sources.append(Path(self.dump.data.asdf_upgrade.source))
        stamps = [p.stat().st_mtime_ns for p in sources if p.is_file()]
        stamps += [p.stat().st_mtime_ns for p, _ in fasls if p.is_file()]
        if not stamps:
            return 0
        newest = max(stamps)
        touched = 0
        for path, out in fasls:
            if path.is_file() and path.stat().st_mtime_ns != newest:
                os.utime(path, ns=(newest, newest))
                store.remember_stat(path, out.digest)
                touched += 1
        return touched

    def defines_tests(self, root: str) -> bool:
        """Whether a test-op that `root` performs has a method of its own: ASDF's default
        test-op does nothing."""
        t = self.translation
        return any(t.nodes[i].runs_tests for i in t.needed(self.root_id(root)))

    def test_argv(self, root: str) -> list[str]:
        """The SBCL command that performs, in plan order, every load and test-op of `root`."""
        t = self.translation
        tokens = [token(t.nodes[i]) for i in t.needed(self.root_id(root)) if t.performs(t.nodes[i])]
        return [
            str(t.sbcl),
            "--core",
            str(self.dump.core),
            *driver("plait-run:main"),
            *tokens,
        ]


def add_systems(
    graph: Graph,
    store: Store,
    project: Path,
    roots: Iterable[str],
    policy: Policy,
    early: Callable[[Action], None] | None = None,
    pool: WarmPool | None = None,
) -> AsdfBuild:
    """Ask ASDF (or the cache) for the roots' graph, and add its builders to `graph`.
    A root is OPERATION:SYSTEM, e.g. 'load:ironclad' or 'test:cl-ppcre'. `early` may start
    actions that need nothing from the dump (ASDF's compile of itself) while the dump runs.
    With a `pool`, warm compiles fork from a server the dump leaves in it, while the dump saves
    the core: the caller must then `finish` the dump."""
    roots = list(roots)
    program = sbcl()

    def on_upgrade(upgrade: Upgrade) -> None:
        if early is not None:
            early(upgrade_action(upgrade, program))

    host = _PoolHost(pool, program) if pool is not None and policy.warm else None
    d = dumping.load(store, program, roots, project, on_upgrade, host)
    translation = Translation(d, policy, program)
    translation.add_to(graph)
    return AsdfBuild(d, translation, roots)
