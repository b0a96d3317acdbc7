"""Frontends: plug-ins that turn a project into actions (plait.asdf is one), and what the core
offers them. The core imports no frontend; the command line loads those FRONTENDS names."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from plait.build import Early, Report
from plait.executor import LocalExecutor
from plait.model import Graph
from plait.store import Output, Store

# The frontends `plait` loads, by module: each defines FRONTEND.
FRONTENDS = ("plait.asdf.frontend",)

# A command of a frontend's own: parsed arguments -> exit status.
Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Session:
    """One command, as a frontend sees it: the project, its store, the parsed arguments; the
    executor and early starts when the command builds (None when it only reads the graph)."""

    project: Path
    store: Store
    args: argparse.Namespace
    plaitfile: bool  # the project has a Plaitfile.py
    executor: LocalExecutor | None = None
    early: Early | None = None
    # Actions may run on a farm's workers (--remote-exec).
    remote_execution: bool = False


class Part(Protocol):
    """What a frontend added to one command's graph, and its hooks into the build."""

    def freeze_failed(self) -> None:
        """The graph found an input missing: raise the frontend's own error if it can say
        more (a file its description names is not there)."""
        ...

    def idle(self) -> None:
        """A job slot stays free for want of ready work."""
        ...

    def ended(self, produced: Mapping[str, Output], report: Report) -> list[str]:
        """After the build, what the frontend does and has to say (lines for the user)."""
        ...

    def close(self) -> None:
        """The command is done with the graph, whatever happened: last."""
        ...


class Frontend(Protocol):
    name: str

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        """Options of the core's commands that read a graph (build, explain, graph, export)."""
        ...

    def add_commands(
        self, commands: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> dict[str, Handler]:
        """The frontend's own commands, with their handlers."""
        ...

    def add(
        self, session: Session, graph: Graph, names: list[str], included: list[str]
    ) -> Part | None:
        """Add the frontend's actions for `names` (the command line's targets, when there is
        no Plaitfile) and `included` (what the Plaitfile asked of this frontend) to `graph`;
        None if it has nothing to add."""
        ...


def load_frontends(names: tuple[str, ...] | None = None) -> list[Frontend]:
    """The frontends the modules `names` (by default FRONTENDS) define."""
    frontends: list[Frontend] = []
    for name in FRONTENDS if names is None else names:
        frontends.append(importlib.import_module(name).FRONTEND)
    return frontends
