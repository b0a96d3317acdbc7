"""The ASDF frontend as a plug-in of the core (plait.frontend): its options, its commands (test,
bundle, program), and its part in a build — the dump, the warm servers compiles fork from, the
core's save when a job slot idles, the fasls' dates and the warnings once the build ends."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from plait import cli
from plait.asdf import AsdfBuild, Policy, add_systems, testing
from plait.asdf.graph import BEHAVIOURS, DEPS_MODES
from plait.asdf.products import add_bundle, add_program
from plait.asdf.testing import DEFAULT_TEST_TIMEOUT
from plait.asdf.warm import WarmStrategy
from plait.asdf.warnings import summarize
from plait.build import Report
from plait.errors import EXIT_ACTION_FAILED, EXIT_NO_TESTS, EXIT_NO_VERDICT, EXIT_OK, UsageError
from plait.frontend import Handler, Part, Session
from plait.model import Graph
from plait.planner import why_changed
from plait.remote import Remote, warn_to_stderr
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
            help="the systems to test, in parallel under -j (default: the systems of the"
            " project's .asd files)",
        )
        test.add_argument(
            "--timeout",
            type=seconds,
            metavar="SECONDS",
            help=f"stop the tests after this long (default: [test] timeout in plait.toml,"
            f" else {DEFAULT_TEST_TIMEOUT})",
        )
        test.add_argument(
            "--rerun",
            action="store_true",
            help="run the tests even where a passing verdict is kept for what they load",
        )
        test.add_argument(
            "--junit",
            type=Path,
            metavar="FILE",
            help="write the verdicts as JUnit XML (a testsuite per system) to FILE",
        )
        test.add_argument(
            "--report",
            type=Path,
            metavar="FILE",
            help="write a JSON report of every action and every system's verdict",
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
        SBCL, several at once under -j, unless a passing verdict kept for it still holds
        (plait.asdf.testing)."""
        project = cli.project_dir(args)
        systems = list(dict.fromkeys(args.systems)) or project_systems(project, args.command)
        roots = [f"test:{system}" for system in systems]
        store = cli.open_store(project)
        try:
            loaded, report = cli.load_and_build(args, project, store, roots, roots)
            if not report.ok:
                return cli.exit_status(report)
            part = asdf_part(loaded.parts)
            asdf = part.build
            runs = [
                testing.test_run(asdf, root, store, part.produced, system)
                for system, root in zip(systems, roots, strict=True)
                if asdf.defines_tests(root)
            ]
            untested = [s for s in systems if s not in {r.system for r in runs}]
            for system in untested:
                print(
                    f"plait: '{system}' defines no tests: no test-op method of its own, nor one"
                    " on a system its test-op depends on (:in-order-to ((test-op (test-op"
                    " ...))))"
                )
            if not runs:
                return EXIT_NO_TESTS
            timeout = args.timeout or testing.configured_timeout(project)
            settings = cli.remote_settings(args, project)
            remote = Remote(settings.endpoint, warn_to_stderr) if settings is not None else None
            try:
                outcomes = _run_all(store, runs, timeout, args, remote)
            finally:
                if remote is not None:
                    remote.close()
        finally:
            store.close()
        if len(systems) > 1:
            print("\n" + "\n".join(testing.table(outcomes, untested)))
        if args.junit is not None:
            cli.write_whole(args.junit, testing.junit(outcomes))
        if args.report is not None:
            tests = [o.to_json() | {"cached": o.cached} for o in outcomes]
            cli.write_json(args.report, {**report.to_json(), "tests": tests})
        if all(o.passed for o in outcomes):
            return EXIT_OK
        if any(o.verdict in ("failed", "timed out") for o in outcomes):
            return EXIT_ACTION_FAILED
        return EXIT_NO_VERDICT

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
            asdf = asdf_part(parts).build
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


def seconds(text: str) -> int:
    """--timeout's type: a whole number of seconds above 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of seconds above 0")
    return value


def _run_all(
    store: Store,
    runs: list[testing.Run],
    timeout: int,
    args: argparse.Namespace,
    remote: Remote | None,
) -> list[testing.Outcome]:
    """Each run's outcome, in the order given: kept here or in the remote cache, or run -j at
    once. One run's output is relayed as it comes; several runs' outputs are shown whole as
    each ends, so that they do not interleave. Passing verdicts are kept (in this thread: the
    store's), and shared with --remote-upload."""
    outcomes: dict[str, testing.Outcome] = {}
    last = store.last_builds()
    to_run: list[testing.Run] = []
    rerun, jobs = args.rerun, args.jobs or 1
    upload = remote is not None and args.remote_upload
    for run in runs:
        kept = None if rerun else testing.cached(store, run)
        if kept is None and remote is not None and not rerun:
            kept = testing.fetch(remote, store, run)
            if kept is not None:
                testing.keep(store, run, kept)
        if kept is not None:
            outcomes[run.system] = kept
            testing.say(kept)
        else:
            to_run.append(run)
    alone = len(runs) == 1

    def one(run: testing.Run) -> testing.Outcome:
        return testing.execute(run, timeout, store.tmp, None if alone else io.BytesIO())

    if to_run:
        reasons = {
            r.system: "--rerun" if rerun else why_changed(r.material, last.get(r.name), r.producer)
            for r in to_run
        }
        if alone:
            (run,) = to_run
            print(f"plait: running the tests of '{run.system}' ({reasons[run.system]})", flush=True)
        else:
            print(f"plait: running the tests of {len(to_run)} systems, {jobs} at once", flush=True)
            for run in to_run:
                print(f"  {run.system}: {reasons[run.system]}")
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(one, run): run for run in to_run}
            for future in as_completed(futures):
                run, outcome = futures[future], future.result()
                if not alone:
                    print(f"plait: the tests of '{run.system}':", flush=True)
                    sys.stdout.write(outcome.output)
                    sys.stdout.flush()
                testing.say(outcome)
                verdict = testing.keep(store, run, outcome)
                if upload and verdict is not None:
                    assert remote is not None
                    testing.share(remote, store, run, verdict, outcome)
                outcomes[run.system] = outcome
    return [outcomes[run.system] for run in runs]


def asdf_part(parts: list[Part]) -> AsdfPart:
    """The ASDF part among a command's parts (an ASDF command always has one)."""
    return next(p for p in parts if isinstance(p, AsdfPart))


def project_systems(project: Path, command: str) -> list[str]:
    """The systems of the project's .asd files (each file's own), by name."""
    asds = sorted(p.stem for p in project.glob("*.asd"))
    return asds or [only_system(project, command)]


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
