"""The ASDF frontend as a plug-in of the core (plait.frontend): its options, its commands (test,
bundle, program), and its part in a build — the dump, the warm servers compiles fork from, the
core's save when a job slot idles, the fasls' dates and the warnings once the build ends."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from plait import cli, config
from plait.asdf import AsdfBuild, Policy, add_systems
from plait.asdf.graph import BEHAVIOURS, DEPS_MODES
from plait.asdf.products import add_bundle, add_program
from plait.asdf.warm import WarmStrategy
from plait.asdf.warnings import summarize
from plait.build import Report
from plait.errors import EXIT_ACTION_FAILED, EXIT_NO_TESTS, EXIT_OK, UsageError
from plait.frontend import Handler, Part, Session
from plait.model import Graph
from plait.store import Output, Store

# The operations a name on the command line may start with to ask for a root other than
# load-op: `plait test` asks for test:SYSTEM.
_ROOT_OPERATIONS = ("load:", "test:")

_ONLY_SYSTEM = "an ASDF system (default: the one .asd file in the project directory)"


class AsdfPart:
    """An ASDF build's part in one command."""

    def __init__(self, build: AsdfBuild, store: Store) -> None:
        self.build = build
        self.store = store
        self.produced: Mapping[str, Output] = {}  # what the build made, once it ended

    def freeze_failed(self) -> None:
        self.build.translation.check_sources()

    def idle(self) -> None:
        # The dump's core is saved when a core would otherwise idle: compiles fork from the
        # dump's server meanwhile (plait.asdf.dump).
        self.build.dump.save()

    def ended(self, produced: Mapping[str, Output], report: Report) -> list[str]:
        self.produced = produced
        self.build.fix_stamps(self.store, produced)
        lines = summarize(self.build, self.store, produced, report)
        t = self.build.translation
        if t.policy.deps == "declared" and not report.ok:
            from plait.asdf.lint import hints

            systems = [root.partition(":")[2] for root in self.build.roots]
            lines += hints(t, self.store, produced, report, systems)
        return lines

    def close(self) -> None:
        self.build.dump.finish(self.store)


class AsdfFrontend:
    name = "asdf"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--deps",
            choices=DEPS_MODES,
            default="system",
            help="what a Lisp compile sees: only what the .asd declares, also the earlier"
            " files of its system (default), or all that is earlier in ASDF's plan",
        )
        parser.add_argument(
            "--on-warnings",
            choices=BEHAVIOURS,
            default="warn",
            help="ASDF's *compile-file-warnings-behaviour* (default: warn)",
        )
        parser.add_argument(
            "--on-failure",
            choices=BEHAVIOURS,
            default="error",
            help="ASDF's *compile-file-failure-behaviour* (default on SBCL: error)",
        )
        parser.add_argument(
            "--cold",
            action="store_true",
            help="start each Lisp compile in a fresh SBCL, sharing loads through saved cores,"
            " instead of forking it from a warm SBCL that has loaded them",
        )

    def add_commands(
        self, commands: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> dict[str, Handler]:
        test = commands.add_parser(
            "test", help="build an ASDF system's tests and run them (test-op)"
        )
        test.add_argument(
            "systems",
            metavar="SYSTEM",
            nargs="*",
            help="the systems to test, in parallel under -j (default: the directory's one"
            " .asd file's system)",
        )
        test.add_argument(
            "--timeout",
            type=_seconds,
            metavar="SECONDS",
            help=f"stop the tests after this long (default: [test] timeout in plait.toml,"
            f" else {DEFAULT_TEST_TIMEOUT})",
        )
        bundle = commands.add_parser(
            "bundle", help="one fasl holding an ASDF system and all it depends on, in load order"
        )
        bundle.add_argument("system", metavar="SYSTEM", nargs="?", help=_ONLY_SYSTEM)
        bundle.add_argument("-o", dest="output", type=Path, required=True, metavar="FILE")
        program = commands.add_parser("program", help="an executable of an ASDF system")
        program.add_argument("system", metavar="SYSTEM", nargs="?", help=_ONLY_SYSTEM)
        program.add_argument("-o", dest="output", type=Path, required=True, metavar="FILE")
        program.add_argument(
            "--entry",
            metavar="PKG::FUNCTION",
            help="the function to run (default: the system's :entry-point)",
        )
        lint = commands.add_parser(
            "lint",
            help="name the dependencies the .asd files leave out, and the edits that add them",
        )
        lint.add_argument("systems", metavar="SYSTEM", nargs="+")
        lint.add_argument(
            "--fix",
            action="store_true",
            help="write the missing :depends-on into your .asd files, and show the diff",
        )
        lint.add_argument(
            "--no-unused",
            action="store_true",
            help="skip the search for declared edges nothing needs (a build per edge)",
        )
        for p in (test, bundle, program, lint):
            cli.add_build_options(p)
            self.add_options(p)
        return {
            "test": self.test,
            "bundle": self.product,
            "program": self.product,
            "lint": self.lint,
        }

    def add(
        self, session: Session, graph: Graph, names: list[str], included: list[str]
    ) -> Part | None:
        roots = [f"load:{name}" for name in included]
        roots += [n if n.startswith(_ROOT_OPERATIONS) else f"load:{n}" for n in names]
        if not roots:
            if session.plaitfile:
                return None
            roots = [f"load:{only_system(session.project, session.args.command)}"]
        args = session.args
        policy = Policy(
            args.deps,
            args.on_warnings,
            args.on_failure,
            warm=not args.cold,
            edges=getattr(args, "edges", ()),
            hidden=getattr(args, "hidden", ()),
        )
        strategy = None
        executor = session.executor
        if executor is not None and policy.warm:
            strategy = WarmStrategy(lambda: executor.directory)
            if not executor.use(strategy):  # the build is stopping
                strategy = None
        start = session.early.start if session.early is not None else None
        # With jobs to spare, compiles start from the dump's own warm image while it saves it.
        pool = strategy.pool() if strategy is not None and args.jobs > 1 else None
        build = add_systems(graph, session.store, session.project, roots, policy, start, pool)
        if strategy is not None:
            strategy.plans.update(build.translation.warm)
        if session.remote_execution:
            build.dump.save()  # the farm's workers start from the core itself
        return AsdfPart(build, session.store)

    # -- the commands ----------------------------------------------------------------------

    def test(self, args: argparse.Namespace) -> int:
        """Build what ASDF's test-op on each SYSTEM needs, then run each test-op in a fresh
        SBCL, several at once under -j."""
        project = cli.project_dir(args)
        systems = list(dict.fromkeys(args.systems)) or [only_system(project, args.command)]
        roots = [f"test:{system}" for system in systems]
        store = cli.open_store(project)
        try:
            loaded, report = cli.load_and_build(args, project, store, roots, roots)
            asdf = _build_of(loaded.parts)
            if not report.ok:
                return cli.exit_status(report)
            tested = {s: r for s, r in zip(systems, roots, strict=True) if asdf.defines_tests(r)}
            argvs = {system: asdf.test_argv(root) for system, root in tested.items()}
        finally:
            store.close()
        untested = [s for s in systems if s not in argvs]
        for system in untested:
            print(
                f"plait: '{system}' defines no tests: no test-op method of its own, nor one"
                " on a system its test-op depends on (:in-order-to ((test-op (test-op ...))))"
            )
        if not argvs:
            return EXIT_NO_TESTS
        timeout = args.timeout or _configured_timeout(project)
        if len(systems) == 1:
            ((system, argv),) = argvs.items()
            print(f"plait: running the tests of '{system}'", flush=True)
            verdict = _verdict(system, *run_tests(argv, timeout), timeout)
            return EXIT_OK if verdict == "passed" else EXIT_ACTION_FAILED
        return _test_many(argvs, untested, timeout, args.jobs or 1)

    def lint(self, args: argparse.Namespace) -> int:
        """Find the dependencies SYSTEMs' .asd files leave out (plait.asdf.lint)."""
        from plait.asdf.lint import lint

        return lint(args)

    def product(self, args: argparse.Namespace) -> int:
        """Build SYSTEM, then its bundle or program at -o FILE."""
        project = cli.project_dir(args)
        system = _system(args, project)
        out = args.output.resolve()
        root = f"load:{system}"
        names: list[str] = []

        def add(graph: Graph, parts: list[Part]) -> None:
            asdf = _build_of(parts)
            node = asdf.root_id(root)
            if args.command == "bundle":
                names.append(add_bundle(graph, asdf.translation, system, node, out))
            else:
                names.append(add_program(graph, asdf.translation, system, node, out, args.entry))

        store = cli.open_store(project)
        try:
            _, report = cli.load_and_build(args, project, store, names, [root], add)
        finally:
            store.close()
        if report.ok:
            print(f"plait: wrote {out}")
        return cli.exit_status(report)


# Seconds a test run may take when neither --timeout nor plait.toml says.
DEFAULT_TEST_TIMEOUT = 3600

# Seconds an interrupted test run has to print where it was before it is killed.
INTERRUPT_GRACE = 5.0


def _configured_timeout(project: Path) -> int:
    """[test] timeout from the configuration files, else DEFAULT_TEST_TIMEOUT."""
    value = config.settings(project).get("test", {}).get("timeout", DEFAULT_TEST_TIMEOUT)
    if isinstance(value, bool) or value <= 0:
        raise UsageError(
            f"[test] timeout = {value!r} is not a number of seconds above 0",
            hint=f"set it in {project / config.PROJECT_FILE} or {config.user_file()}",
        )
    return int(value)


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of seconds above 0")
    return value


def run_tests(argv: list[str], timeout: int, out: BinaryIO | None = None) -> tuple[int | None, str]:
    """Run the test command, its output passed through as it comes (to `out`, or this
    process's standard output); its exit status, or None
    if it outlived `timeout`: then it is interrupted (SBCL prints its stack, which shows the
    test it was in), and after INTERRUPT_GRACE killed with all it started. Also the last
    non-blank line it printed before the interrupt."""
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    last = [""]
    interrupted = threading.Event()

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if out is not None:
                out.write(line)
            else:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            if line.strip() and not interrupted.is_set():
                last[0] = line.decode(errors="replace").strip()

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        status: int | None = process.wait(timeout)
    except subprocess.TimeoutExpired:
        interrupted.set()
        status = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(INTERRUPT_GRACE)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:  # interrupted here: nothing of the run outlives plait
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(10)
    return status, last[0]


def _verdict(system: str, status: int | None, last: str, timeout: int) -> str:
    """Say and return the verdict of one system's test run."""
    if status is None:
        said = f" (the last line they printed: {last!r})" if last else ""
        print(f"plait: the tests of '{system}' timed out after {timeout} s{said}", flush=True)
        return "timed out"
    verdict = "passed" if status == 0 else "failed"
    print(f"plait: the tests of '{system}' {verdict}", flush=True)
    return verdict


def _test_many(argvs: dict[str, list[str]], untested: list[str], timeout: int, jobs: int) -> int:
    """Run the systems' tests `jobs` at once; each one's output is shown whole when it ends,
    then a table of the verdicts."""
    lock = threading.Lock()
    rows: dict[str, tuple[str, float]] = {}

    def one(system: str) -> None:
        out = io.BytesIO()
        started = time.monotonic()
        status, last = run_tests(argvs[system], timeout, out)
        with lock:
            print(f"plait: the tests of '{system}':", flush=True)
            sys.stdout.buffer.write(out.getvalue())
            sys.stdout.flush()
            rows[system] = (_verdict(system, status, last, timeout), time.monotonic() - started)

    print(f"plait: running the tests of {len(argvs)} systems, {jobs} at once", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, system) for system in argvs]:
            future.result()
    width = max(len(s) for s in [*argvs, *untested, "SYSTEM"])
    print(f"\n{'SYSTEM':<{width}}  {'VERDICT':<9}  TIME")
    for system in [*argvs, *untested]:
        verdict, took = rows.get(system, ("no tests", 0.0))
        shown = f"{took:.1f}s" if system in rows else ""
        print(f"{system:<{width}}  {verdict:<9}  {shown}".rstrip())
    failed = [s for s, (v, _) in rows.items() if v != "passed"]
    return EXIT_ACTION_FAILED if failed else EXIT_OK


def _build_of(parts: list[Part]) -> AsdfBuild:
    """The ASDF build among a command's parts (an ASDF command always has one)."""
    return next(p.build for p in parts if isinstance(p, AsdfPart))


def only_system(project: Path, command: str) -> str:
    """The system a command with none named works on: the one `.asd` file in the project."""
    asds = sorted(p.stem for p in project.glob("*.asd"))
    if len(asds) == 1:
        return asds[0]
    if not asds:
        raise UsageError(
            f"no Plaitfile.py and no .asd file in '{project}', and no system named",
            hint=f"name an ASDF system (e.g. 'plait {command} alexandria'), or write"
            " a Plaitfile.py",
        )
    raise UsageError(
        f"'{project}' defines {len(asds)} systems: {', '.join(asds)}",
        hint=f"name the one to work on, e.g. 'plait {command} {asds[0]}'",
    )


def _system(args: argparse.Namespace, project: Path) -> str:
    """The SYSTEM argument of test, bundle and program, or the project's one system."""
    name: str | None = args.system
    return name if name is not None else only_system(project, args.command)


FRONTEND = AsdfFrontend()
