"""Subscribers to build events: the terminal status (rich), plain lines off a terminal, failures
with their command and log, and the one-line summary."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.markup import escape

from plait.events import BuildEnded, Event, Failure, Finished, Planned, Started

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class ConsoleReporter:
    """On a terminal a live status line; elsewhere one line per action that did something."""

    def __init__(self, stream: TextIO, *, live: bool | None = None, verbose: bool = False) -> None:
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.live = self.console.is_terminal if live is None else live
        self.verbose = verbose
        self.total = 0
        self.done = 0
        self.running: dict[str, None] = {}
        self.counts: dict[str, int] = {}
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Planned):
            self.total = len(event.names)
            if self.live:
                # Imported only for a terminal: elsewhere it would be a noticeable share of a
                # no-op build.
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self.progress = Progress(
                    TextColumn("[bold]plait[/]"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TextColumn("{task.description}"),
                    console=self.console,
                    transient=True,
                )
                self.task = self.progress.add_task("", total=self.total)
                self.progress.start()
        elif isinstance(event, Started):
            self.running[event.name] = None
            self._refresh()
        elif isinstance(event, Finished):
            self._finished(event)
        elif isinstance(event, BuildEnded):
            if self.progress is not None:
                self.progress.stop()
            self._summary(event)

    def _refresh(self) -> None:
        if self.progress is not None and self.task is not None:
            names = list(self.running)
            more = f" +{len(names) - 3}" if len(names) > 3 else ""
            self.progress.update(
                self.task,
                completed=self.done,
                description=escape(", ".join(names[:3]) + more),
            )

    def _finished(self, event: Finished) -> None:
        self.done += 1
        self.counts[event.status] = self.counts.get(event.status, 0) + 1
        self.running.pop(event.name, None)
        shown = (
            event.status in ("ran", "failed")
            or self.verbose
            or (event.status == "cached" and "restored" in event.reason)
        )
        if shown:
            took = f" {event.end - event.start:.2f}s" if event.status == "ran" else ""
            style = {"failed": "bold red", "ran": "green"}.get(event.status, "")
            status = f"[{style}]{event.status}[/]" if style else event.status
            self.console.print(
                f"[{self.done}/{self.total}] {status} {escape(event.name)}"
                f" ({escape(event.reason)}){took}"
            )
        for warning in event.warnings:
            self.console.print(f"  [yellow]warning[/]: {escape(warning)}")
        if event.failure is not None:
            self._failure(event.name, event.failure)
        self._refresh()

    def _failure(self, name: str, failure: Failure) -> None:
        out = self.console
        out.print(f"[bold red]FAILED[/] {escape(name)}: {escape(failure.message)}")
        if failure.argv and self.verbose:
            out.print(f"  command: {escape(shlex.join(failure.argv))}")
        if failure.diagnostics:
            # What the compiler said, where: enough to fix it; the rest is in the log.
            for line in failure.diagnostics:
                out.print(f"  {escape(line)}")
        elif failure.log_tail:
            for line in failure.log_tail.splitlines():
                out.print(f"  | {escape(line)}")
        if failure.log_path:
            out.print(f"  full log: {escape(failure.log_path)}")

    def _summary(self, event: BuildEnded) -> None:
        parts = [
            f"{self.counts[s]} {s}"
            for s in ("ran", "cached", "failed", "skipped")
            if self.counts.get(s)
        ]
        what = ", ".join(parts) or "nothing to do"
        if event.interrupted is not None:
            what = ", ".join(parts) or "before anything ran"
            verdict = "[bold red]interrupted[/]"
        else:
            verdict = "[green]ok[/]" if event.ok else "[bold red]failed[/]"
        self.console.print(f"plait: {verdict}: {what} in {event.wall:.2f}s")
