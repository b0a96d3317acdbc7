"""`plait lint`: the dependencies an .asd leaves out, named as edges to add.

ASDF's serial plan loads everything earlier first, so a file that uses what another defines
builds whether or not its component says `:depends-on`. plait's `--deps declared` shows only
what is declared, and each compile records what it defines and what it used and did not find
(plait/asdf/compile.lisp). Lint builds the systems in a scratch store and fasl cache: first as
ASDF would (`--deps plan`: each compile sees all that is earlier in the plan), which says who
defines what and what each file finds undefined even then (forward references, not missing
edges); then with `--deps declared`. A name a
compile misses only in the second is a missing edge, from the component that uses it to the
one that defines it, lifted to the siblings the .asd can name (or to the systems). Lint adds
those edges in memory and builds again, until the build works or no edge explains what fails.

Declared edges that nothing needs are found by the opposite experiment: one at a time, an edge
is taken away (in memory); if the component builds with nothing new undefined, the edge is
reported as unused, a weaker finding that `--fix` never applies (a file may use its dependency
in a way no compile sees, by a name it builds at run time)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import difflib
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait import cli
from plait.asdf import asd as asd_files
from plait.asdf.graph import Component, Edge, Translation, under
from plait.asdf.protocol import Node
from plait.asdf.warnings import records
from plait.build import Report
from plait.errors import EXIT_ACTION_FAILED, EXIT_OK, UsageError
from plait.store import Output, Store

# Passes of "add the edges found, build again" before lint says what is still unexplained.
MAX_PASSES = 20

# What a compile under --deps declared says it did not find (compile.lisp's note-unseen).
_UNSEEN = re.compile(r"^plait: undefined (package|function|variable|type) (.+)$", re.M)

# A compiler's complaint, as compile.lisp prints it: FILE:LINE:COL: error: MESSAGE.
_ERROR = re.compile(r"^\S+: error: .*$", re.M)

# A record's lists, by the kind of name they hold.
_DEFINED = {
    "function": "defined",
    "variable": "defined-variables",
    "type": "defined-types",
    "package": "packages",
}
_UNDEFINED = {
    "function": "undefined",
    "variable": "undefined-variables",
    "type": "undefined-types",
}


@dataclass(frozen=True)
class Finding:
    """`user` (a file) uses `name`, a `kind`, which `definer` defines: `edge` declares it."""

    edge: Edge
    user: Component
    kind: str
    name: str
    definer: Component


@dataclass
class Pass:
    """One build: what each compile recorded, what failed, and what each compile missed."""

    translation: Translation
    report: Report
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, set[tuple[str, str]]] = field(default_factory=dict)  # node -> unseen
    errors: dict[int, str] = field(default_factory=dict)  # node -> its log's first error


def lint(args: argparse.Namespace) -> int:
    systems: list[str] = args.systems
    with _scratch(cli.project_dir(args)) as scratch:
        store = Store.open(scratch / "project", scratch / "store")
        try:
            return _lint(args, scratch / "project", store, systems)
        finally:
            store.close()


@contextlib.contextmanager
def _scratch(project: Path) -> Iterator[Path]:
    """A scratch directory for lint's builds: their store, the fasls they make (ASDF's output
    translations follow XDG_CACHE_HOME) and a project directory, where a build puts what the
    translations do not reach (cffi-tests' libraries). The user's store, fasls and project
    stay as they were; ASDF still finds the project's systems (CL_SOURCE_REGISTRY)."""
    directory = Path(tempfile.mkdtemp(prefix="plait-lint-"))
    (directory / "project").mkdir()
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "CL_SOURCE_REGISTRY")}
    os.environ["XDG_CACHE_HOME"] = str(directory / "cache")
    os.environ["CL_SOURCE_REGISTRY"] = _with_directory(saved["CL_SOURCE_REGISTRY"], project)
    try:
        yield directory
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(directory, ignore_errors=True)


def _with_directory(registry: str | None, directory: Path) -> str:
    """CL_SOURCE_REGISTRY (as ASDF reads it: a list of directories, or a form) with
    `directory` first; the configuration after it is inherited as before."""
    written = str(directory).replace("\\", "\\\\").replace('"', '\\"')
    if registry and registry.lstrip().startswith("("):
        head, _, rest = registry.lstrip().partition(":source-registry")
        return f'{head}:source-registry (:directory "{written}/"){rest}'
    return f"{directory}/:{registry or ''}"


def _lint(args: argparse.Namespace, project: Path, store: Store, systems: list[str]) -> int:
    say(f"plait lint: building {', '.join(systems)} as ASDF would (--deps plan)")
    reference = _build(args, project, store, systems, "plan", ())
    if not reference.report.ok:
        failed = [f.name for f in reference.report.results.values() if f.status == "failed"]
        raise UsageError(
            f"{', '.join(systems)} does not build even as ASDF would: {', '.join(failed[:5])}"
            " failed",
            hint=f"make 'plait build {' '.join(systems)}' work first; lint looks for what"
            " the .asd leaves out of a build that works",
        )
    t = reference.translation
    definers = _definers(reference)
    known_undefined = {i: _undefined(r) for i, r in reference.records.items()}
    findings: list[Finding] = []
    edges: list[Edge] = []
    unexplained: dict[int, set[tuple[str, str]]] = {}
    last: Pass | None = None
    for number in range(1, MAX_PASSES + 1):
        say(f"plait lint: pass {number}: --deps declared, with {len(edges)} edge(s) added")
        last = _build(args, project, store, systems, "declared", tuple(edges))
        unexplained = {}
        missing: dict[int, set[tuple[str, str]]] = {}
        for i, record in last.records.items():
            extra = _undefined(record) - known_undefined.get(i, set())
            if extra:
                missing[i] = extra
        for i, unseen in last.failed.items():
            missing[i] = {u for u in unseen if u not in known_undefined.get(i, set())}
        if number == 1:
            fails = sum(1 for f in last.report.results.values() if f.status == "failed")
            say(
                f"plait lint: as declared, {fails} compile(s) fail and"
                f" {len(missing) - len(last.failed)} more miss what another file defines"
                if fails or missing
                else "plait lint: as declared, every compile builds and misses nothing"
            )
        if not missing and last.report.ok:
            break
        new: list[Finding] = []
        for i, names in sorted(missing.items()):
            found, unknown = _explain(i, names, t, definers, edges)
            new += found
            if unknown:
                unexplained[i] = unknown
        fresh = [f for f in new if f.edge not in edges]
        if not fresh:
            for i in last.failed:
                unexplained.setdefault(i, set())
            break
        for f in fresh:
            if f.edge not in edges:
                edges.append(f.edge)
        findings += fresh
    assert last is not None
    unused = []
    if last.report.ok and not args.no_unused:
        unused = _unused(args, project, store, systems, t, tuple(edges), last)
    edited = [f.edge[0][0] for f in findings] + [user[0] for (user, _), _ in unused]
    asds = _asds(t, edited)
    _report(findings, asds, t)
    for (user, target), files in unused:
        print(_unused_line(user, target, asds, t, files))
    builds = last.report.ok
    if unexplained:
        print("plait lint: unexplained:")
        for i, names in sorted(unexplained.items()):
            what = ", ".join(f"{k} {n}" for k, n in sorted(names))
            what = what or last.errors.get(i, "it failed (see its log)")
            print(f"  {_name(t.nodes[i])}: {what}")
    if builds:
        print(
            f"plait lint: {', '.join(systems)} builds with --deps declared"
            + (f" once {len(edges)} edge(s) are added" if edges else "")
        )
    else:
        print(f"plait lint: {', '.join(systems)} still fails with --deps declared")
    if args.fix and findings:
        _fix(findings, asds)
    return EXIT_OK if builds else EXIT_ACTION_FAILED


def say(line: str) -> None:
    print(line, flush=True)


def _build(
    args: argparse.Namespace,
    project: Path,
    store: Store,
    systems: list[str],
    deps: str,
    edges: tuple[Edge, ...],
    without: Edge | None = None,
) -> Pass:
    """Build `systems` with `deps`, `edges` added and `without` taken away, quietly, going on
    past failures; what each compile recorded or, having failed, said it missed."""
    from plait.asdf.frontend import AsdfPart

    options = copy.copy(args)
    options.deps, options.edges, options.keep_going = deps, edges, True
    options.hidden = (without,) if without is not None else ()
    options.verbose, options.force = False, False
    with contextlib.redirect_stdout(io.StringIO()):
        loaded, report = cli.load_and_build(options, project, store, systems)
    part = next(p for p in loaded.parts if isinstance(p, AsdfPart))
    return _read_pass(part.build.translation, store, part.produced, report)


def _read_pass(
    t: Translation, store: Store, produced: Mapping[str, Output], report: Report
) -> Pass:
    """What each compile of a build recorded, or said it missed when it failed."""
    compiles = {i for i, node in t.nodes.items() if node.operation == "compile-op"}
    recorded = records(t, store, produced, report)
    result = Pass(t, report, {i: r for i, r in recorded.items() if i in compiles})
    for i, action in t.actions.items():
        finished = report.results.get(action.name)
        if i in compiles and finished is not None and finished.status == "failed":
            log = store.log_path(action.name)
            text = log.read_text(errors="replace") if log.is_file() else ""
            result.failed[i] = {(k, n.strip()) for k, n in _UNSEEN.findall(text)}
            error = _ERROR.search(text)
            result.errors[i] = error.group(0).strip() if error else "it failed (see its log)"
    return result


def hints(
    t: Translation,
    store: Store,
    produced: Mapping[str, Output],
    report: Report,
    systems: list[str],
) -> list[str]:
    """After a build with --deps declared failed: for each failed compile, the edge lint would
    suggest, where a compile of this build defines what it missed; and where to go on."""
    seen = _read_pass(t, store, produced, report)
    if not seen.failed:
        return []
    definers = _definers(seen)
    found: list[Finding] = []
    for i, names in sorted(seen.failed.items()):
        found += _explain(i, names, t, definers, [])[0][:1]
    asds = _asds(t, [f.edge[0][0] for f in found])
    lines = [f"plait: hint: {line}" for line in _lines(found, asds, t)]
    lines.append(
        f"plait: hint: 'plait lint {' '.join(systems)}' names every :depends-on the .asd"
        " leaves out (--fix adds them)"
    )
    return lines


def _undefined(record: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(kind, n) for kind, key in _UNDEFINED.items() for n in record.get(key, ())}


def _definers(reference: Pass) -> dict[tuple[str, str], list[int]]:
    """Which compiles define each (kind, name), in plan order."""
    found: dict[tuple[str, str], list[int]] = {}
    for i in sorted(reference.records):
        for kind, key in _DEFINED.items():
            for name in reference.records[i].get(key, ()):
                found.setdefault((kind, name), []).append(i)
    return found


def _explain(
    i: int,
    names: set[tuple[str, str]],
    t: Translation,
    definers: Mapping[tuple[str, str], list[int]],
    edges: list[Edge],
) -> tuple[list[Finding], set[tuple[str, str]]]:
    """For compile `i`, which missed `names`: the edges that explain them, and the names none
    does. A name is defined by the first compile in plan order that is not `i` itself (ASDF
    loaded it before, which is why `i` builds under ASDF); one `i` defines itself, it missed
    for want of another's macro, and needs no edge of its own."""
    user = (t.nodes[i].system, t.nodes[i].path)
    found: list[Finding] = []
    unknown: set[tuple[str, str]] = set()
    for kind, name in sorted(names):
        defining = definers.get((kind, name), [])
        if i in defining:
            continue
        definer = next(((t.nodes[d].system, t.nodes[d].path) for d in defining), None)
        edge = _edge(user, definer, t, edges) if definer is not None else None
        if edge is None or definer is None:
            unknown.add((kind, name))
        else:
            found.append(Finding(edge, user, kind, name, definer))
    return found, unknown


def _edge(user: Component, definer: Component, t: Translation, edges: list[Edge]) -> Edge | None:
    """The edge the .asd can say that makes `user` see `definer`: between the two siblings
    containing them, or between their systems. None where it would make a cycle, or where one
    contains the other (a module's file using what a later file of it defines)."""
    (system, path), (other, there) = user, definer
    if system != other:
        edge: Edge = ((system, ()), (other, ()))
    else:
        common = 0
        while common < min(len(path), len(there)) and path[common] == there[common]:
            common += 1
        if common >= len(path) or common >= len(there):
            return None
        edge = ((system, path[: common + 1]), (other, there[: common + 1]))
    return None if _reaches(edge[1], edge[0], t, edges) else edge


def _reaches(start: Component, goal: Component, t: Translation, edges: list[Edge]) -> bool:
    """Whether loading `start` already needs something under `goal` (the edge goal -> start
    would make a cycle)."""
    first = t.load_of(start)
    if first is None:
        return False
    seen: set[int] = set()
    stack = [first]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        node = t.nodes[i]
        if under(node, goal):
            return True
        stack.extend(node.deps)
        stack.extend(t.added_loads(node, edges))
    return False


def _asds(t: Translation, systems: list[str]) -> dict[str, asd_files.Asd]:
    """The .asd files of `systems`, read, by system. One plait cannot read is said once and
    left out: its findings name the system instead of a line, and --fix leaves it."""
    asds: dict[str, asd_files.Asd] = {}
    unread: set[str] = set()
    for system in systems:
        path = t.system_asd(system)
        if system in asds or path is None or path in unread or not Path(path).is_file():
            continue
        try:
            asds[system] = asd_files.parse(Path(path).read_text(errors="replace"), path)
        except UsageError as e:
            unread.add(path)
            print(f"plait lint: warning: {e}", file=sys.stderr)
    return asds


def _where(asds: Mapping[str, asd_files.Asd], component: Component) -> str:
    system, path = component
    asd = asds.get(system)
    form = asd.form_of(system, path) if asd is not None else None
    if asd is None or form is None:
        return f"system {system!r}"
    return f"{Path(asd.path).name}:{asd.line(form)}"


def _describe(component: Component, t: Translation) -> str:
    system, path = component
    if not path:
        return f'system "{system}"'
    node = t.nodes.get(t.load_of(component) or -1)
    kind = "module" if node is not None and node.component_class.endswith("MODULE") else "file"
    return f'component "{path[-1]}" ({kind})'


def _report(findings: list[Finding], asds: Mapping[str, asd_files.Asd], t: Translation) -> None:
    if not findings:
        print("plait lint: no missing dependency found")
    for line in _lines(findings, asds, t):
        print(line)


def _lines(
    findings: list[Finding], asds: Mapping[str, asd_files.Asd], t: Translation
) -> Iterator[str]:
    """One line per edge: where the .asd defines the component, what it uses, the edit."""
    by_edge: dict[Edge, list[Finding]] = {}
    for f in findings:
        by_edge.setdefault(f.edge, []).append(f)
    for (user, target), found in by_edge.items():
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        if user[1]:
            fix = f':depends-on ("{target[1][-1]}")'
            source = f'from "{target[1][-1]}"'
        else:
            fix = f'"{target[0]}" to :depends-on of system "{user[0]}"'
            source = f'from system "{target[0]}"'
        yield (
            f"{_where(asds, user)}: {_describe(user, t)} uses {first.kind} {first.name} {source}"
            f"{more}: add {fix}"
        )


def _fix(findings: list[Finding], asds: Mapping[str, asd_files.Asd]) -> None:
    """Write each edge into its .asd, the smallest edit, and show the diff; files under /usr
    (the system's, not the user's) are left alone."""
    edited: dict[str, str] = {}
    for f in dict.fromkeys(f.edge for f in findings):
        (system, path), (other, there) = f
        asd = asds.get(system)
        if asd is None:
            continue
        if asd.path.startswith("/usr/") or not os.access(asd.path, os.W_OK):
            print(f"plait lint: not editing {asd.path}: not a file of yours", file=sys.stderr)
            continue
        reparsed = asd_files.parse(edited.get(asd.path, asd.text), asd.path)
        form = reparsed.form_of(system, path)
        if form is None:
            continue
        edited[asd.path] = reparsed.add_dependency(form, there[-1] if there else other)
    for file, text in edited.items():
        before = Path(file).read_text(errors="replace")
        diff = difflib.unified_diff(
            before.splitlines(keepends=True), text.splitlines(keepends=True), file, file
        )
        sys.stdout.writelines(diff)
        cli.write_whole(Path(file), text)
    if edited:
        print(f"plait lint: edited {', '.join(sorted(edited))}")


def _declared_edges(t: Translation, systems: list[str]) -> list[Edge]:
    """The edges the .asd files of `systems` declare, as the plan has them: between sibling
    components, and from each system to the source systems it depends on."""
    found: dict[Edge, None] = {}
    for node in t.nodes.values():
        if node.operation != "prepare-op" or node.system not in systems:
            continue
        for d in node.deps:
            dep = t.nodes[d]
            if dep.operation != "load-op":
                continue
            same = dep.system == node.system
            sibling = same and node.path and dep.path and dep.path[:-1] == node.path[:-1]
            if sibling and dep.path != node.path:
                found[((node.system, node.path), (dep.system, dep.path))] = None
            system = not (same or node.path or dep.path) and dep.system_kind == "source"
            if system:
                found[((node.system, ()), (dep.system, ()))] = None
    return list(found)


def _unused(
    args: argparse.Namespace,
    project: Path,
    store: Store,
    systems: list[str],
    t: Translation,
    added: tuple[Edge, ...],
    working: Pass,
) -> list[tuple[Edge, int]]:
    """Declared sibling edges whose removal (in memory) leaves the dependent's compiles as they
    were: nothing fails and nothing new is undefined. With the number of files tried."""
    baseline = {i: _undefined(r) for i, r in working.records.items()}
    unused = []
    for edge in _declared_edges(t, systems):
        (system, path), _ = edge
        trial = _build(args, project, store, systems, "declared", added, without=edge)
        users = [i for i in trial.records if under(t.nodes[i], (system, path))]
        failed = [i for i in trial.failed if under(t.nodes[i], (system, path))]
        if failed or not users:
            continue
        if all(_undefined(trial.records[i]) <= baseline.get(i, set()) for i in users):
            unused.append((edge, len(users)))
    return unused


def _unused_line(
    user: Component,
    target: Component,
    asds: Mapping[str, asd_files.Asd],
    t: Translation,
    files: int,
) -> str:
    what = target[1][-1] if target[1] else target[0]
    return (
        f"{_where(asds, user)}: note: {_describe(user, t)} declares :depends-on"
        f' ("{what}"), and its {files} file(s) build the same without it'
        " (a weaker finding; --fix leaves it)"
    )


def _name(node: Node) -> str:
    from plait.asdf.graph import node_name

    return node_name(node)
