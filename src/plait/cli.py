"""The `plait` command: parse the command line, run the build, render errors at one boundary."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from plait import digest, export, plaitfile, trace
from plait.asdf import AsdfBuild, Policy, add_systems
from plait.asdf.graph import BEHAVIOURS, DEPS_MODES
from plait.asdf.products import add_bundle, add_program
from plait.asdf.warnings import summarize
from plait.build import Build, Early, Options, Report
from plait.errors import (
    EXIT_ACTION_FAILED,
    EXIT_NO_TESTS,
    EXIT_OK,
    BuildDescriptionError,
    PlaitError,
    UsageError,
)
from plait.events import Bus
from plait.executor import LocalExecutor
from plait.model import Graph
from plait.reporter import ConsoleReporter
from plait.store import Store
from plait.warm import WarmPool

_ONLY_SYSTEM = "an ASDF system (default: the one .asd file in the project directory)"


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
        help="an action name, a system name or an output path; with no Plaitfile.py, ASDF systems",
    )
    _add_build_options(build)
    build.add_argument(
        "-n", "--dry-run", action="store_true", help="say what would run and why, run nothing"
    )
    build.add_argument(
        "--report", metavar="FILE", type=Path, help="write a JSON report of every action"
    )
    build.add_argument(
        "--trace",
        metavar="FILE",
        type=Path,
        help="write a Chrome trace-event file (Perfetto, chrome://tracing)",
    )
    build.add_argument(
        "--record", metavar="FILE", type=Path, help="write the order in which actions started"
    )
    order = build.add_mutually_exclusive_group()
    order.add_argument(
        "--replay",
        metavar="FILE",
        type=Path,
        help="start actions in exactly the order a --record file gives",
    )
    order.add_argument(
        "--shuffle",
        metavar="SEED",
        type=int,
        help="start ready actions in a random order fixed by SEED: a way to"
        " flush out missing dependencies",
    )
    _add_lisp_options(build)

    explain = sub.add_parser("explain", help="say why each action would run now")
    explain.add_argument("targets", nargs="*", metavar="TARGET")
    explain.add_argument(
        "--last", action="store_true", help="the reasons of the last build instead"
    )
    _add_directory(explain)
    _add_lisp_options(explain)

    graph = sub.add_parser("graph", help="print the action graph")
    graph.add_argument("targets", nargs="*", metavar="TARGET")
    graph.add_argument("--format", choices=("dot", "json"), default="dot")
    _add_directory(graph)
    _add_lisp_options(graph)

    export = sub.add_parser("export", help="write a ninja or make file with plait's commands")
    export.add_argument("targets", nargs="*", metavar="TARGET")
    export.add_argument("--format", choices=("ninja", "make"), required=True)
    export.add_argument(
        "-o",
        dest="output",
        type=Path,
        metavar="FILE",
        help="where to write it (default: standard output)",
    )
    _add_directory(export)
    _add_lisp_options(export)

    log = sub.add_parser("log", help="print the full output of an action's last run")
    log.add_argument("action", metavar="ACTION")
    _add_directory(log)

    test = sub.add_parser("test", help="build an ASDF system's tests and run them (test-op)")
    test.add_argument("system", metavar="SYSTEM", nargs="?", help=_ONLY_SYSTEM)
    _add_build_options(test)
    _add_lisp_options(test)

    bundle = sub.add_parser(
        "bundle", help="one fasl holding an ASDF system and all it depends on, in load order"
    )
    bundle.add_argument("system", metavar="SYSTEM", nargs="?", help=_ONLY_SYSTEM)
    bundle.add_argument("-o", dest="output", type=Path, required=True, metavar="FILE")
    _add_build_options(bundle)
    _add_lisp_options(bundle)

    program = sub.add_parser("program", help="an executable of an ASDF system")
    program.add_argument("system", metavar="SYSTEM", nargs="?", help=_ONLY_SYSTEM)
    program.add_argument("-o", dest="output", type=Path, required=True, metavar="FILE")
    program.add_argument(
        "--entry",
        metavar="PKG::FUNCTION",
        help="the function to run (default: the system's :entry-point)",
    )
    _add_build_options(program)
    _add_lisp_options(program)

    clean = sub.add_parser("clean", help="remove what plait built from the project tree")
    _add_directory(clean)
    return parser


def _add_build_options(p: argparse.ArgumentParser) -> None:
    _add_directory(p)
    p.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=os.cpu_count() or 1,
        help="actions to run at once (default: the number of cores)",
    )
    p.add_argument(
        "-k",
        "--keep-going",
        action="store_true",
        help="go on with everything that does not depend on a failure",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also list the actions that were up to date"
    )


def _add_lisp_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--deps",
        choices=DEPS_MODES,
        default="system",
        help="what a Lisp compile sees: only what the .asd declares, also the earlier"
        " files of its system (default), or all that is earlier in ASDF's plan",
    )
    p.add_argument(
        "--on-warnings",
        choices=BEHAVIOURS,
        default="warn",
        help="ASDF's *compile-file-warnings-behaviour* (default: warn)",
    )
    p.add_argument(
        "--on-failure",
        choices=BEHAVIOURS,
        default="error",
        help="ASDF's *compile-file-failure-behaviour* (default on SBCL: error)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="start each Lisp compile in a fresh SBCL, sharing loads through saved cores,"
        " instead of forking it from a warm SBCL that has loaded them",
    )


def _jobs(text: str) -> int:
    """-j's type: argparse reports a bad value with the usage, and exits 2."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
        if args.command == "test":
            return _test(args)
        if args.command in ("bundle", "program"):
            return _product(args)
        if args.command in ("explain", "graph", "export"):
            return _inspect(args)
        if args.command == "log":
            return _log(args)
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


@dataclass
class Loaded:
    graph: Graph
    asdf: AsdfBuild | None


def _load(
    project: Path,
    store: Store,
    args: argparse.Namespace,
    roots: list[str],
    extra: Callable[[Graph, AsdfBuild], None] | None = None,
    early: Early | None = None,
    pool: WarmPool | None = None,
) -> Loaded:
    """The graph to build: the Plaitfile's, with the ASDF systems it names; with no Plaitfile,
    the ASDF systems `roots` name (OPERATION:SYSTEM). `extra` adds actions before freezing."""
    policy = Policy(args.deps, args.on_warnings, args.on_failure, warm=not args.cold)
    if (project / plaitfile.PLAITFILE).is_file():
        desc = plaitfile.describe(project)
        graph = desc.graph
        roots = [*(f"load:{name}" for name in desc.asdf_systems), *roots]
    else:
        if not roots:
            roots = [f"load:{_only_system(project, 'build')}"]
        graph = Graph()
    start = early.start if early is not None else None
    asdf = add_systems(graph, store, project, roots, policy, start, pool) if roots else None
    if extra is not None and asdf is not None:
        extra(graph, asdf)
    try:
        plaitfile.freeze(graph, project)
    except BuildDescriptionError:
        if asdf is not None:  # an input is missing: a file an .asd names, it may be
            asdf.translation.check_sources()
        raise
    return Loaded(graph, asdf)


def _only_system(project: Path, command: str) -> str:
    """The system a command with none named works on: the one `.asd` file in the project."""
    asds = sorted(p.stem for p in project.glob("*.asd"))
    if len(asds) == 1:
        return asds[0]
    if not asds:
        raise UsageError(
            f"no {plaitfile.PLAITFILE} and no .asd file in '{project}', and no system named",
            hint=f"name an ASDF system (e.g. 'plait {command} alexandria'), or write"
            f" a {plaitfile.PLAITFILE}",
        )
    raise UsageError(
        f"'{project}' defines {len(asds)} systems: {', '.join(asds)}",
        hint=f"name the one to work on, e.g. 'plait {command} {asds[0]}'",
    )


def _system(args: argparse.Namespace, project: Path) -> str:
    """The SYSTEM argument of test, bundle and program, or the project's one system."""
    name: str | None = args.system
    return name if name is not None else _only_system(project, args.command)


def _system_roots(project: Path, targets: list[str]) -> list[str]:
    """With no Plaitfile, the targets name ASDF systems to load; with one, they name actions."""
    if (project / plaitfile.PLAITFILE).is_file():
        return []
    return [f"load:{t}" for t in targets]


def _open_store(project: Path) -> Store:
    store = Store.open(project)
    store.lock(
        on_wait=lambda: print(
            "plait: waiting for another plait building this project", file=sys.stderr
        )
    )
    return store


def _load_and_build(
    args: argparse.Namespace,
    project: Path,
    store: Store,
    roots: list[str],
    targets: list[str],
    extra: Callable[[Graph, AsdfBuild], None] | None = None,
) -> tuple[Loaded, Report]:
    """Load the graph and build `targets` (read after loading: `extra` may add to them). The
    build's executor may start actions while the graph is still being found."""
    with LocalExecutor() as executor, Early(project, store, executor, args.jobs) as early:
        # With jobs to spare, compiles start from the dump's own warm image while it saves it.
        pool = executor.warm_pool() if args.jobs > 1 else None
        loaded = _load(project, store, args, roots, extra, early, pool)
        try:
            return loaded, _run_build(args, project, store, loaded, targets, early)
        finally:
            if loaded.asdf is not None:
                loaded.asdf.dump.finish(store)


def _run_build(
    args: argparse.Namespace,
    project: Path,
    store: Store,
    loaded: Loaded,
    targets: list[str],
    early: Early,
) -> Report:
    bus = Bus([ConsoleReporter(sys.stdout, verbose=args.verbose)])
    replay = getattr(args, "replay", None)
    options = Options(
        jobs=args.jobs,
        keep_going=args.keep_going,
        shuffle_seed=getattr(args, "shuffle", None),
        replay=_read_recording(replay) if replay else None,
    )
    with _signals() as pending:
        # The dump's core is saved when a core would otherwise idle: compiles fork from the
        # dump's server meanwhile (plait.asdf.dump).
        idle = loaded.asdf.dump.save if loaded.asdf is not None else lambda: None
        build = Build(
            project, loaded.graph, store, early.executor, bus, options, pending, early, idle
        )
        started = time.time()
        report = build.run(targets)
    store.record_run(report.to_json(), started)
    summary = trace.summarize(report.results, report.wall, loaded.graph.order, loaded.graph.deps)
    print(summary.line())
    if getattr(args, "trace", None) is not None:
        _write_json(args.trace, trace.trace_events(report.results, options.jobs))
    if getattr(args, "record", None) is not None:
        _write_json(args.record, {"started": report.start_order})
    if loaded.asdf is not None:
        loaded.asdf.fix_stamps(store, build.produced)
        for line in summarize(loaded.asdf, store, build.produced, report):
            print(line)
    return report


def _build(args: argparse.Namespace) -> int:
    project = _project(args)
    store = _open_store(project)
    try:
        roots = _system_roots(project, args.targets)
        if args.dry_run:
            loaded = _load(project, store, args, roots)
            build = Build(project, loaded.graph, store, LocalExecutor(), lambda e: None, Options())
            return _dry_run(build, args.targets)
        _, report = _load_and_build(args, project, store, roots, args.targets)
    finally:
        store.close()
    if args.report is not None:
        _write_json(args.report, report.to_json())
    return _exit_status(report)


def _exit_status(report: Report) -> int:
    if report.interrupted is not None:
        return 128 + report.interrupted
    return EXIT_OK if report.ok else EXIT_ACTION_FAILED


def _test(args: argparse.Namespace) -> int:
    """Build what ASDF's test-op on SYSTEM needs, then run test-op in a fresh SBCL."""
    project = _project(args)
    system = _system(args, project)
    store = _open_store(project)
    root = f"test:{system}"
    try:
        loaded, report = _load_and_build(args, project, store, [root], [root])
        assert loaded.asdf is not None
        if not report.ok:
            return _exit_status(report)
        if not loaded.asdf.defines_tests(root):
            print(
                f"plait: '{system}' defines no tests: no test-op method of its own, nor one"
                " on a system its test-op depends on (:in-order-to ((test-op (test-op ...))))"
            )
            return EXIT_NO_TESTS
        argv = loaded.asdf.test_argv(root)
    finally:
        store.close()
    print(f"plait: running the tests of '{system}'", flush=True)
    status = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL).returncode
    verdict = "passed" if status == 0 else "failed"
    print(f"plait: the tests of '{system}' {verdict}")
    return EXIT_OK if status == 0 else EXIT_ACTION_FAILED


def _product(args: argparse.Namespace) -> int:
    """Build SYSTEM, then its bundle or program at -o FILE."""
    project = _project(args)
    system = _system(args, project)
    out = args.output.resolve()
    root = f"load:{system}"
    names: list[str] = []

    def add(graph: Graph, asdf: AsdfBuild) -> None:
        node = asdf.root_id(root)
        if args.command == "bundle":
            names.append(add_bundle(graph, asdf.translation, system, node, out))
        else:
            names.append(add_program(graph, asdf.translation, system, node, out, args.entry))

    store = _open_store(project)
    try:
        _, report = _load_and_build(args, project, store, [root], names, add)
    finally:
        store.close()
    if report.ok:
        print(f"plait: wrote {out}")
    return _exit_status(report)


def _inspect(args: argparse.Namespace) -> int:
    """explain, graph and export: they read the graph (and the store) and run nothing."""
    project = _project(args)
    store = _open_store(project)
    try:
        if args.command == "explain" and args.last:
            return _explain_last(store)
        loaded = _load(project, store, args, _system_roots(project, args.targets))
        graph = loaded.graph
        names = graph.closure(graph.resolve(args.targets))
        if args.command == "explain":
            build = Build(project, graph, store, LocalExecutor(), lambda e: None, Options())
            would = build.dry_run(args.targets)
            for name, reason in would:
                print(f"{name}: {reason}")
            if not would:
                print("plait: nothing would run")
            return EXIT_OK
    finally:
        store.close()
    if args.command == "graph":
        text = (
            export.dot(graph, names)
            if args.format == "dot"
            else json.dumps(export.as_json(graph, names), indent=2) + "\n"
        )
    else:
        text = export.ninja(graph, names) if args.format == "ninja" else export.make(graph, names)
    if getattr(args, "output", None) is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _explain_last(store: Store) -> int:
    report = store.last_run()
    if report is None:
        raise UsageError("no build has run here yet", hint="run 'plait build' first")
    shown = [a for a in report["actions"] if a["status"] in ("ran", "failed")]
    for a in shown:
        print(f"{a['name']}: {a['reason']}" + (" (failed)" if a["status"] == "failed" else ""))
    if not shown:
        print("plait: the last build ran nothing")
    return EXIT_OK


def _log(args: argparse.Namespace) -> int:
    project = _project(args)
    store = Store.open(project)
    try:
        path = store.log_path(args.action)
    finally:
        store.close()
    if not path.is_file():
        raise UsageError(
            f"no log for action '{args.action}'",
            hint="an action has a log once it has run; 'plait explain --last' lists what ran",
        )
    sys.stdout.write(path.read_text(errors="replace"))
    return EXIT_OK


def _read_recording(path: Path) -> tuple[str, ...]:
    hint = "give a file written by 'plait build --record'"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read '{path}': {e}", hint=hint) from None
    started = data.get("started") if isinstance(data, dict) else None
    if not isinstance(started, list) or not all(isinstance(n, str) for n in started):
        raise UsageError(f"'{path}' is not a recording of a build", hint=hint)
    return tuple(started)


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
    """Remove the files plait installed for this project (in it, or where ASDF looks for
    fasls), unless someone changed them since. The store keeps them: the next build restores
    them without running anything."""
    project = _project(args)
    store = Store.open(project)
    removed: list[Path] = []
    gone: list[Path] = []
    kept: list[Path] = []
    try:
        store.lock()
        for path, hash_ in sorted(store.installed().items()):
            if not path.is_file():
                gone.append(path)
            elif digest.of_file(path).hash == hash_:
                path.unlink()
                removed.append(path)
                _remove_empty_parents(path.parent, project)
            else:
                kept.append(path)
        store.forget_installed(removed + gone)
    finally:
        store.close()
    for path in kept:
        shown = path.relative_to(project) if path.is_relative_to(project) else path
        print(f"plait: kept '{shown}': it changed since plait wrote it", file=sys.stderr)
    print(f"plait: removed {len(removed)} file{'s' if len(removed) != 1 else ''}")
    return EXIT_OK


def _remove_empty_parents(directory: Path, project: Path) -> None:
    while directory != project and project in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
