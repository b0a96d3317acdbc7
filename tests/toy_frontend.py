"""A frontend in one module, which the core does not import: each name on the command line is
an action that writes NAME.txt; it adds an option and a command."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from plait.build import Report
from plait.frontend import Handler, Part, Session
from plait.model import Action, Graph
from plait.store import Output

ENDED: list[str] = []


class ToyPart:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def freeze_failed(self) -> None:
        pass

    def idle(self) -> None:
        pass

    def ended(self, produced: Mapping[str, Output], report: Report) -> list[str]:
        ENDED.extend(sorted(produced))
        return [f"toy: built {', '.join(self.names)}"]

    def close(self) -> None:
        pass


class Toy:
    name = "toy"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--loud", action="store_true")

    def add_commands(
        self, commands: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> dict[str, Handler]:
        commands.add_parser("hello")
        return {"hello": lambda args: print("hello from the toy frontend") or 0}

    def add(
        self, session: Session, graph: Graph, names: list[str], included: list[str]
    ) -> Part | None:
        if not names:
            return None
        word = "LOUD" if session.args.loud else "quiet"
        for name in names:
            graph.add(
                Action(
                    name=name,
                    argv=("sh", "-c", f"echo {word} > {name}.txt"),
                    outputs=(f"{name}.txt",),
                )
            )
        return ToyPart(names)


FRONTEND = Toy()
