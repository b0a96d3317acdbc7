"""The `plait` command: parse the command line, run the build, render errors at one boundary."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sqlite3
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from plait import config, digest, export, namespace, plaitfile, trace
from plait.build import Build, Early, Options, Report
from plait.errors import (
    EXIT_ACTION_FAILED,
    EXIT_OK,
    BuildDescriptionError,
    PlaitError,
    StoreError,
    UsageError,
    disk_full,
)
from plait.events import Bus
from plait.executor import Executor, LocalExecutor
from plait.frontend import Frontend, Handler, Part, Session, load_frontends
from plait.model import Graph
from plait.remote import Remote, RemoteCache, Settings, parse_endpoint, warn_to_stderr
from plait.reporter import ConsoleReporter
from plait.store import Store, default_root, reset
from plait.store import write_whole as store_write_whole

CORES = os.cpu_count() or 1
# Actions in flight per core under --remote-exec (-j's default then).
REMOTE_JOBS_PER_CORE = 4


def _parser(frontends: list[Frontend]) -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The command line: the core's commands, then each frontend's options and commands."""
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
    add_build_options(build)
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

    explain = sub.add_parser("explain", help="say why each action would run now")
    explain.add_argument("targets", nargs="*", metavar="TARGET")
    explain.add_argument(
        "--last", action="store_true", help="the reasons of the last build instead"
    )
    _add_directory(explain)

    graph = sub.add_parser("graph", help="print the action graph")
    graph.add_argument("targets", nargs="*", metavar="TARGET")
    graph.add_argument("--format", choices=("dot", "json"), default="dot")
    _add_directory(graph)

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

    log = sub.add_parser("log", help="print the full output of an action's last run")
    log.add_argument("action", metavar="ACTION")
    _add_directory(log)

    clean = sub.add_parser("clean", help="remove what plait built from the project tree")
    _add_directory(clean)

    gc = sub.add_parser(
        "gc",
        help="remove from the store what no project's last build uses",
        description="Forget results that no project's last build uses and that were stored"
        " more than --older-than days ago (and, with --max-size, more, oldest first, until the"
        " store fits), the projects whose directory is gone, and the blobs nothing names. A"
        " project's last build is always kept: building it again runs nothing.",
    )
    gc.add_argument("--older-than", type=float, default=30.0, metavar="DAYS", help="default: 30")
    gc.add_argument("--max-size", metavar="SIZE", help="e.g. 500M or 10G")
    _add_directory(gc)

    store = sub.add_parser("store", help="check the store, or start its records afresh")
    store_sub = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    verify = store_sub.add_parser(
        "verify",
        help="check the database and every blob against its digest",
        description="Check SQLite's integrity and every blob against its digest; exit 1 if"
        " anything is wrong. With --repair, remove the damaged blobs and forget the results that"
        " name them: their actions run again.",
    )
    verify.add_argument("--repair", action="store_true", help="drop what is damaged")
    _add_directory(verify)
    reset = store_sub.add_parser(
        "reset",
        help="put a damaged database aside and start the store's records afresh",
        description="Rename the store's database aside (store.db.damaged-TIME) so that the next"
        " plait starts its records afresh; the blobs stay, for gc to remove. The next build"
        " rebuilds what it does not find.",
    )
    _add_directory(reset)

    worker = sub.add_parser(
        "worker",
        help="run a farm's actions: a bot of the Remote Workers API",
        description="Ask the REAPI server for actions and run each in plait's sandbox, with"
        " inputs fetched from its CAS into a store of the worker's own (its cache). Several"
        " workers may run on one machine, each with its own --dir.",
    )
    worker.add_argument("--remote", metavar="URL", required=True, help="grpc://HOST:PORT[/NAME]")
    worker.add_argument(
        "--dir", type=Path, default=None, help="its store and logs (default: a new one in /tmp)"
    )
    worker.add_argument("--name", default=None, help="its bot id (default: host-pid)")
    worker.add_argument(
        "--leases", type=_jobs, default=None, help="stop after running this many actions"
    )

    handlers: dict[str, Handler] = {
        "build": _build,
        "worker": _worker,
        "explain": _inspect,
        "graph": _inspect,
        "export": _inspect,
        "log": _log,
        "clean": _clean,
        "gc": _gc,
        "store": _store,
    }
    for frontend in frontends:
        for p in (build, explain, graph, export):
            frontend.add_options(p)
        handlers.update(frontend.add_commands(sub))
    return parser, handlers


def add_build_options(p: argparse.ArgumentParser) -> None:
    """-C, -j, -k and -v: the options of every command that builds (a frontend's too)."""
    _add_directory(p)
    p.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=None,
        help="actions to run at once (default: the number of cores; with --remote-exec,"
        f" {REMOTE_JOBS_PER_CORE} times that, of which at most the number of cores run here)",
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
    p.add_argument(
        "--force",
        action="store_true",
        help="replace files in the project that plait did not write (it refuses otherwise)",
    )
    p.add_argument(
        "--remote",
        metavar="URL",
        help="a REAPI server (grpc://HOST:PORT[/INSTANCE]) whose action cache is looked in before"
        " an action runs (default: $PLAIT_REMOTE, or [remote] url in plait.toml)",
    )
    p.add_argument(
        "--remote-upload",
        action="store_true",
        default=None,
        help="also put in the remote cache what runs here and succeeds, as CI would",
    )
    p.add_argument(
        "--remote-exec",
        action="store_true",
        default=None,
        help="run on the remote farm's workers the actions its cache does not have",
    )
    p.add_argument(
        "--sandbox",
        choices=("directory", "namespace"),
        default="namespace",
        help="what a command sees: namespaces that show it its inputs and toolchain and nothing"
        " else, by any path (bubblewrap; the default where it can make them), or a directory of"
        " its inputs",
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


def load() -> None:
    """Load the frontends (`main` does, unless this was called first)."""
    global _frontends
    _frontends = load_frontends()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        if not _frontends:
            load()
        parser, handlers = _parser(_frontends)
        args = parser.parse_args(argv)
        return handlers[args.command](args)
    except PlaitError as e:
        _render(e)
        return e.exit_code
    except KeyboardInterrupt as e:
        from plait.__main__ import _interrupted

        return _interrupted(e)
    except BrokenPipeError:
        # What reads plait's output went away (`plait build | head`): nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (OSError, sqlite3.OperationalError) as e:
        if not disk_full(e):
            raise
        # Whatever was registered is whole: a result is recorded only once its blobs are.
        _render(
            StoreError(
                f"the disk is full: {e}",
                hint="free some space (plait gc shrinks the store) and build again",
            )
        )
        return EXIT_ACTION_FAILED


def _render(e: PlaitError) -> None:
    print(f"plait: error: {e}", file=sys.stderr)
    if e.hint:
        print(f"hint: {e.hint}", file=sys.stderr)


# The frontends of this run (main loads them).
_frontends: list[Frontend] = []


def project_dir(args: argparse.Namespace) -> Path:
    directory: Path = args.directory
    if not directory.is_dir():
        raise UsageError(f"no directory '{directory}'", hint="-C takes the project directory")
    return directory.resolve()


@dataclass
class Loaded:
    graph: Graph
    parts: list[Part]


# Adds actions to the graph before it is frozen (a frontend's command: a bundle, a program).
Extra = Callable[[Graph, list[Part]], None]


def _load(session: Session, names: list[str], extra: Extra | None = None) -> Loaded:
    """The graph to build: the Plaitfile's, and what each frontend adds for `names` and for
    what the Plaitfile included."""
    includes: dict[str, list[str]]
    if session.plaitfile:
        desc = plaitfile.describe(session.project)
        graph, includes = desc.graph, desc.includes
    else:
        graph, includes = Graph(), {}
    parts: list[Part] = []
    try:
        for frontend in _frontends:
            part = frontend.add(session, graph, names, includes.get(frontend.name, []))
            if part is not None:
                parts.append(part)
        if not session.plaitfile and not parts:
            raise UsageError(
                f"no {plaitfile.PLAITFILE} in '{session.project}'",
                hint=f"write a {plaitfile.PLAITFILE}, or name what to build",
            )
        if extra is not None:
            extra(graph, parts)
        try:
            plaitfile.freeze(graph, session.project)
        except BuildDescriptionError:
            for part in parts:  # a frontend may say better which file is missing
                part.freeze_failed()
            raise
    except BaseException:
        for part in parts:
            with contextlib.suppress(PlaitError):
                part.close()
        raise
    return Loaded(graph, parts)


def _namespaces(args: argparse.Namespace) -> bool:
    """Whether commands run in namespaces: asked for, and to be had here (else a warning)."""
    if args.sandbox != "namespace":
        return False
    why = namespace.available()
    if why is not None:
        print(f"plait: warning: {why}; using the directory sandbox", file=sys.stderr)
        return False
    return True


def _names(session: Session, targets: list[str]) -> list[str]:
    """What frontends are asked for: with no Plaitfile, the targets (ASDF systems); with one,
    the targets are its actions, and frontends add only what it includes."""
    return [] if session.plaitfile else list(targets)


def _session(
    args: argparse.Namespace,
    project: Path,
    store: Store,
    executor: LocalExecutor | None = None,
    early: Early | None = None,
    remote_execution: bool = False,
) -> Session:
    path = project / plaitfile.PLAITFILE
    if path.exists() and not path.is_file():
        raise BuildDescriptionError(
            f"'{path}' is not a file",
            hint=f"a project's build description is the Python file {plaitfile.PLAITFILE}",
        )
    has_plaitfile = path.is_file()
    return Session(project, store, args, has_plaitfile, executor, early, remote_execution)


def open_store(project: Path) -> Store:
    """The project's store, holding its build lock (waiting, and saying so, for another)."""
    store = Store.open(project)
    store.lock(
        on_wait=lambda: print(
            "plait: waiting for another plait building this project", file=sys.stderr
        )
    )
    return store


def load_and_build(
    args: argparse.Namespace,
    project: Path,
    store: Store,
    targets: list[str],
    names: list[str] | None = None,
    extra: Extra | None = None,
) -> tuple[Loaded, Report]:
    """Load the graph (`names`, by default `targets`, are what frontends are asked for) and
    build `targets` (read after loading: `extra` may add to them). The executor may start
    actions while the graph is still being found."""
    executor = LocalExecutor(namespaces=_namespaces(args))
    settings = remote_settings(args, project)
    remote = settings is not None and settings.execute
    if args.jobs is None:
        # A farm's round trips are hidden by keeping more actions in flight than run here.
        args.jobs = CORES * (REMOTE_JOBS_PER_CORE if remote else 1)
    with (
        executor,
        _remote_cache(settings, store, executor) as runner,
        Early(project, store, runner, args.jobs) as early,
    ):
        session = _session(args, project, store, executor, early, remote)
        loaded = _load(session, _names(session, targets) if names is None else names, extra)
        try:
            return loaded, _run_build(args, project, store, loaded, targets, early)
        finally:
            for part in loaded.parts:
                part.close()


def remote_settings(args: argparse.Namespace, project: Path) -> Settings | None:
    """The remote cache the build uses: --remote, else $PLAIT_REMOTE, else the configuration
    files'; None for none."""
    configured = config.settings(project).get("remote", {})
    url, where = getattr(args, "remote", None), "--remote"
    if url is None and os.environ.get("PLAIT_REMOTE"):
        url, where = os.environ["PLAIT_REMOTE"], "PLAIT_REMOTE"
    if url is None and "url" in configured:
        url, where = configured["url"], "[remote] url"
    if not url:
        return None
    upload = getattr(args, "remote_upload", None)
    execute = getattr(args, "remote_exec", None)
    return Settings(
        parse_endpoint(url, where),
        configured.get("upload", False) if upload is None else upload,
        configured.get("execute", False) if execute is None else execute,
    )


@contextmanager
def _remote_cache(
    settings: Settings | None, store: Store, local: LocalExecutor
) -> Iterator[Executor]:
    if settings is None:
        yield local
        return
    remote = Remote(settings.endpoint, warn_to_stderr)
    try:
        yield RemoteCache(
            local,
            remote,
            settings.upload,
            store.tmp,
            settings.execute,
            local.portable,
            local_slots=CORES,
        )
    finally:
        remote.close()


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
        force=args.force,
        replay=_read_recording(replay) if replay else None,
    )
    with _signals() as pending:

        def idle() -> None:
            for part in loaded.parts:
                part.idle()

        build = Build(
            project, loaded.graph, store, early.executor, bus, options, pending, early, idle
        )
        started = time.time()
        report = build.run(targets)
    store.record_run(report.to_json(), started)
    summary = trace.summarize(report.results, report.wall, loaded.graph.order, loaded.graph.deps)
    print(summary.line())
    if getattr(args, "trace", None) is not None:
        write_json(args.trace, trace.trace_events(report.results, options.jobs))
    if getattr(args, "record", None) is not None:
        write_json(args.record, {"started": report.start_order})
    for part in loaded.parts:
        for line in part.ended(build.produced, report):
            print(line)
    return report


def _build(args: argparse.Namespace) -> int:
    project = project_dir(args)
    for option, path in (
        ("--report", args.report),
        ("--trace", args.trace),
        ("--record", args.record),
    ):
        _check_writable(path, option)
    store = open_store(project)
    try:
        if args.dry_run:
            session = _session(args, project, store)
            loaded = _load(session, _names(session, args.targets))
            build = Build(project, loaded.graph, store, LocalExecutor(), lambda e: None, Options())
            return _dry_run(build, args.targets)
        _, report = load_and_build(args, project, store, args.targets)
    finally:
        store.close()
    if args.report is not None:
        write_json(args.report, report.to_json())
    return exit_status(report)


def exit_status(report: Report) -> int:
    if report.interrupted is not None:
        return 128 + report.interrupted
    return EXIT_OK if report.ok else EXIT_ACTION_FAILED


def _inspect(args: argparse.Namespace) -> int:
    """explain, graph and export: they read the graph (and the store) and run nothing."""
    project = project_dir(args)
    store = open_store(project)
    try:
        if args.command == "explain" and args.last:
            return _explain_last(store)
        session = _session(args, project, store)
        loaded = _load(session, _names(session, args.targets))
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


def _worker(args: argparse.Namespace) -> int:
    from plait.worker import Worker, default_name

    endpoint = parse_endpoint(args.remote)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="plait-worker-"))
    worker = Worker(endpoint, directory.resolve(), args.name or default_name())
    try:
        worker.serve(args.leases)
    finally:
        worker.close()
    return 0


def _log(args: argparse.Namespace) -> int:
    project = project_dir(args)
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


def _check_writable(path: Path | None, option: str) -> None:
    """Before anything runs: a file the build is to write at its end can be written there."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option} '{path}' is a directory", hint=f"give {option} a file name")
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"{option} '{path}': cannot write in '{parent}'",
            hint="give a file in a directory that exists and that you can write in",
        )


def write_json(path: Path, data: Any) -> None:
    """Write `data` to `path` as indented JSON, whole (`write_whole`)."""
    write_whole(path, json.dumps(data, indent=2) + "\n")


def write_whole(path: Path, text: str) -> None:
    """Write `text` to `path` whole (`store.write_whole`). A file that was there keeps its
    permissions; a new one is 0600."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    store_write_whole(path, lambda tmp: tmp.write_text(text), mode)


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
    project = project_dir(args)
    store = Store.open(project)
    try:
        store.writable("plait clean")
    except StoreError:
        store.close()
        raise
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


def _gc(args: argparse.Namespace) -> int:
    """Collect the store's garbage (Store.collect), once no other plait has it open."""
    if args.older_than < 0:
        raise UsageError(
            f"--older-than {args.older_than:g} is negative", hint="give a number of days"
        )
    limit = _size(args.max_size) if args.max_size is not None else None
    store = Store.open(project_dir(args))
    try:
        done = store.collect(args.older_than * 86400, limit, on_wait=_waiting_for_store)
    finally:
        store.close()
    print(
        f"plait: removed {done.results} results, {done.blobs} blobs and {done.cores} cores"
        f" ({_human(done.freed)}), forgot {done.projects} projects that are gone;"
        f" the store holds {_human(done.kept)}"
    )
    return EXIT_OK


def _waiting_for_store() -> None:
    print("plait: waiting for the other plaits using this store to finish", file=sys.stderr)


def _store(args: argparse.Namespace) -> int:
    project = project_dir(args)
    if args.store_command == "reset":
        root = default_root(project)
        aside = reset(root)
        if aside is None:
            print(f"plait: the store at '{root}' has no database; nothing to reset")
        else:
            print(f"plait: put the database aside as '{aside}'; the next build starts afresh")
        return EXIT_OK
    store = Store.open(project)
    try:
        found = store.verify(args.repair, on_wait=_waiting_for_store)
    finally:
        store.close()
    print(
        f"plait: checked {found.blobs} blobs ({_human(found.size)}): {len(found.damaged)} damaged;"
        f" {found.broken} results name a missing or damaged blob; database: {found.integrity}"
    )
    for hash_ in found.damaged:
        print(f"  damaged: blobs/{hash_[:2]}/{hash_}")
    if found.sound:
        return EXIT_OK
    if args.repair:
        print("plait: removed the damaged blobs and forgot the results that named them")
        if found.integrity == "ok":
            return EXIT_OK
        print(
            "plait: the database itself is damaged: 'plait store reset' starts it afresh",
            file=sys.stderr,
        )
    else:
        print("hint: 'plait store verify --repair' drops them; their actions run again")
    return EXIT_ACTION_FAILED


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if match is None:
        raise UsageError(
            f"--max-size '{text}' is not a size", hint="give bytes, or a number with K, M, G or T"
        )
    return int(float(match[1]) * SIZE_UNITS[match[2].upper()])


def _human(n: int) -> str:
    size, unit = float(n), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"


def _remove_empty_parents(directory: Path, project: Path) -> None:
    while directory != project and project in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
