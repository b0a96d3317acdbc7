"""The `plait` command: parse the command line, run the build, render errors at one boundary."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from plait import digest, plaitfile
from plait.build import Build, Options
from plait.errors import EXIT_ACTION_FAILED, EXIT_OK, PlaitError, UsageError
from plait.events import Bus
from plait.executor import LocalExecutor
from plait.reporter import ConsoleReporter
from plait.store import Store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plait", description="A parallel, sandboxed, content-addressed build system."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = sub.add_parser("build", help="build targets (default: everything)")
    build.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="an action name, a system name or an output path",
    )
    _add_directory(build)
    build.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="actions to run at once (default: the number of cores)",
    )
    build.add_argument(
        "-k",
        "--keep-going",
        action="store_true",
        help="go on with everything that does not depend on a failure",
    )
    build.add_argument(
        "-n", "--dry-run", action="store_true", help="say what would run and why, run nothing"
    )
    build.add_argument(
        "--report", metavar="FILE", type=Path, help="write a JSON report of every action"
    )
    build.add_argument(
        "-v", "--verbose", action="store_true", help="also list the actions that were up to date"
    )

    clean = sub.add_parser("clean", help="remove what plait built from the project tree")
    _add_directory(clean)
    return parser


def _add_directory(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-C",
        dest="directory",
        type=Path,
        default=Path(),
        help="the project directory (default: the current one)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            return _build(args)
        return _clean(args)
    except PlaitError as e:
        _render(e)
        return e.exit_code
    except KeyboardInterrupt:
        print("plait: interrupted", file=sys.stderr)
        return 130


def _render(e: PlaitError) -> None:
    print(f"plait: error: {e}", file=sys.stderr)
    if e.hint:
        print(f"hint: {e.hint}", file=sys.stderr)


def _project(args: argparse.Namespace) -> Path:
    directory: Path = args.directory
    if not directory.is_dir():
        raise UsageError(f"no directory '{directory}'", hint="-C takes the project directory")
    return directory.resolve()


def _build(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError(f"-j must be at least 1, not {args.jobs}")
    project = _project(args)
    graph = plaitfile.load(project)
    store = Store.open(project)
    try:
        store.lock(
            on_wait=lambda: print(
                "plait: waiting for another plait building this project", file=sys.stderr
            )
        )
        bus = Bus([ConsoleReporter(sys.stdout, verbose=args.verbose)])
        options = Options(jobs=args.jobs, keep_going=args.keep_going)
        with _signals() as pending:
            build = Build(project, graph, store, LocalExecutor(), bus, options, pending)
            if args.dry_run:
                return _dry_run(build, args.targets)
            started = time.time()
            report = build.run(args.targets)
        store.record_run(report.to_json(), started)
    finally:
        store.close()
    if args.report is not None:
        _write_json(args.report, report.to_json())
    if report.interrupted is not None:
        return 128 + report.interrupted
    return EXIT_OK if report.ok else EXIT_ACTION_FAILED


def _dry_run(build: Build, targets: list[str]) -> int:
    would = build.dry_run(targets)
    for name, reason in would:
        print(f"would run {name} ({reason})")
    print(f"plait: {len(would)} action{'s' if len(would) != 1 else ''} would run")
    return EXIT_OK


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


@contextmanager
def _signals() -> Iterator[Any]:
    """While building, SIGINT and SIGTERM only note the signal; the scheduler stops at its next
    safe point, kills running commands and removes their sandboxes."""
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _clean(args: argparse.Namespace) -> int:
    """Remove the files plait wrote to the project, unless someone changed them since."""
    project = _project(args)
    store = Store.open(project)
    removed: list[str] = []
    kept: list[str] = []
    try:
        store.lock()
        for rel, hash_ in sorted(store.materialized().items()):
            path = project / rel
            if not path.is_file():
                removed.append(rel)
            elif digest.of_file(path).hash == hash_:
                path.unlink()
                removed.append(rel)
                _remove_empty_parents(path.parent, project)
            else:
                kept.append(rel)
        store.forget_materialized(removed)
    finally:
        store.close()
    for rel in kept:
        print(f"plait: kept '{rel}': it changed since plait wrote it", file=sys.stderr)
    print(f"plait: removed {len(removed)} file{'s' if len(removed) != 1 else ''}")
    return EXIT_OK


def _remove_empty_parents(directory: Path, project: Path) -> None:
    while directory != project and project in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
