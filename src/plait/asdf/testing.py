"""A test run of an ASDF system: its command and what run.lisp records of it, the verdict,
the run as an action whose passing verdict the store keeps, and what CI reads of it (a table,
JUnit XML)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from plait import config, digest
from plait.asdf import AsdfBuild
from plait.asdf.dump import lisp_toolchain
from plait.asdf.graph import node_name
from plait.content import LocalContent
from plait.digest import Digest
from plait.errors import UsageError
from plait.remote import Remote, RemoteUnavailable, reapi_action
from plait.request import Input, Request
from plait.store import CachedResult, Output, Store

# Seconds a test run may take when neither --timeout nor plait.toml says.
DEFAULT_TEST_TIMEOUT = 3600

# Seconds an interrupted test run has to print where it was before it is killed.
INTERRUPT_GRACE = 5.0

# The variable that tells run.lisp where to write its records.
RECORD_ENV = "PLAIT_TEST_RECORD"

# The verdict's output in the store, under the run's key.
VERDICT_OUTPUT = "verdict.json"

# Bumped when what a verdict's key covers changes meaning.
VERDICT_VERSION = 1


@dataclass(frozen=True)
class Case:
    """One test a framework named: passed, failed, skipped, or expected (a known failure)."""

    name: str
    status: str
    message: str | None = None


@dataclass(frozen=True)
class Suite:
    """What one outermost run of a framework reported: its tests, or when the framework says
    nothing of them (a runner that returns a boolean), only whether it was `ok`."""

    name: str
    framework: str
    system: str | None
    ok: bool
    tests: tuple[Case, ...]

    @property
    def counted(self) -> bool:
        return bool(self.tests)

    def count(self, status: str) -> int:
        return sum(1 for t in self.tests if t.status == status)


@dataclass
class Outcome:
    """A system's test verdict — passed, failed, timed out or no verdict — and what decided it."""

    system: str
    verdict: str
    why: str
    suites: list[Suite] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # test-ops that ran no suite plait knows
    seconds: float = 0.0
    output: str = ""
    cached: str | None = None  # why the verdict was not rerun, when it was not

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def checks(self) -> tuple[int, int] | None:
        """Tests passed and failed, over the suites whose framework counts them."""
        counted = [s for s in self.suites if s.counted]
        if not counted:
            return None
        return sum(s.count("passed") for s in counted), sum(s.count("failed") for s in counted)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], cached: str | None = None) -> Outcome:
        suites = [
            Suite(**{**s, "tests": tuple(Case(**c) for c in s["tests"])}) for s in data["suites"]
        ]
        return cls(**{**data, "suites": suites, "cached": cached})


def read_records(text: str) -> tuple[list[Suite], list[str], list[str]]:
    """The suites, unknown test-ops and errors run.lisp recorded. A line cut short by a kill
    is no record."""
    suites: list[Suite] = []
    unknown: list[str] = []
    errors: list[str] = []
    for line in text.splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "suite" in r:
            tests = tuple(Case(t["name"], t["status"], t["message"]) for t in r["tests"])
            suites.append(Suite(r["suite"], r["framework"], r["system"], r["ok"], tests))
        elif "unknown" in r:
            unknown.append(str(r["unknown"] or r.get("framework") or "?"))
        elif "error" in r:
            errors.append(str(r["error"]))
    return suites, unknown, errors


def judge(system: str, status: int | None, records: str, last: str, timeout: int) -> Outcome:
    """The verdict of a run that exited with `status` (None: it outlived `timeout`), from what
    it recorded. A failure anywhere fails it; a suite plait cannot read leaves no verdict."""
    suites, unknown, errors = read_records(records)
    outcome = Outcome(system, "passed", "", suites, unknown)
    failed = [s for s in suites if not s.ok]
    if status is None:
        said = f" (the last line they printed: {last!r})" if last else ""
        outcome.verdict, outcome.why = "timed out", f"timed out after {timeout} s{said}"
    elif errors:
        outcome.verdict, outcome.why = "failed", f"the tests signalled an error: {errors[0]}"
    elif failed:
        s = failed[0]
        failing = s.count("failed")
        count = f" {failing} of {s.count('passed') + failing} tests" if s.counted else ""
        outcome.verdict = "failed"
        outcome.why = f"{s.framework} reported{count} failing in suite {s.name}"
    elif status != 0:
        outcome.verdict, outcome.why = "failed", f"the test run exited with status {status}"
    elif unknown:
        n = len(unknown)
        outcome.verdict = "no verdict"
        outcome.why = (
            f"{n} suite{'s' if n > 1 else ''} unknown: the test-op of"
            f" {', '.join(repr(u) for u in unknown)} runs no test framework plait reads"
        )
    else:
        checks = outcome.checks()
        counted = f", {checks[0]} test{'s' if checks[0] != 1 else ''} passed" if checks else ""
        n = len(suites)
        outcome.why = f"{n} suite{'s' if n != 1 else ''}{counted}"
    return outcome


def say(outcome: Outcome) -> None:
    """The verdict line of one system."""
    if outcome.verdict == "timed out":
        print(f"plait: the tests of '{outcome.system}' {outcome.why}", flush=True)
    elif outcome.verdict == "no verdict":
        print(f"plait: the tests of '{outcome.system}': no verdict: {outcome.why}", flush=True)
    else:
        cached = f" (cached: {outcome.cached})" if outcome.cached else ""
        print(
            f"plait: the tests of '{outcome.system}' {outcome.verdict}: {outcome.why}{cached}",
            flush=True,
        )


# -- running -------------------------------------------------------------------------------


def configured_timeout(project: Path) -> int:
    """[test] timeout from the configuration files, else DEFAULT_TEST_TIMEOUT."""
    value = config.settings(project).get("test", {}).get("timeout", DEFAULT_TEST_TIMEOUT)
    if isinstance(value, bool) or value <= 0:  # config checks it is an int; True is one
        raise UsageError(
            f"[test] timeout = {value!r} is not a number of seconds above 0",
            hint=f"set it in {project / config.PROJECT_FILE} or {config.user_file()}",
        )
    return int(value)


def execute(run: Run, timeout: int, scratch: Path, out: BinaryIO | None = None) -> Outcome:
    """Run the tests and judge them; their output is passed through as it comes (to `out`, or
    this process's standard output). run.lisp's records go to a file in `scratch`."""
    fd, name = tempfile.mkstemp(dir=scratch, prefix="test-", suffix=".jsonl")
    os.close(fd)
    record = Path(name)
    started = time.monotonic()
    try:
        status, last, printed = run_tests(run.argv, timeout, record, out)
        outcome = judge(run.system, status, record.read_text(errors="replace"), last, timeout)
    finally:
        record.unlink(missing_ok=True)
    outcome.seconds = time.monotonic() - started
    outcome.output = printed.decode(errors="replace")
    return outcome


def run_tests(
    argv: list[str], timeout: int, record: Path, out: BinaryIO | None = None
) -> tuple[int | None, str, bytes]:
    """Run the test command, run.lisp's records going to `record` and its output passed
    through as it comes, its errors among it (to `out`, or this process's standard output):
    its exit status, or None if it outlived `timeout` — then it is interrupted (SBCL prints
    its stack, which shows the test it was in), and after INTERRUPT_GRACE killed with all it
    started. Also the last non-blank line it printed before the interrupt, and all it
    printed."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, RECORD_ENV: str(record)},
    )
    assert process.stdout is not None
    last = [""]
    printed: list[bytes] = []
    interrupted = threading.Event()

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line)
            sink = out if out is not None else sys.stdout.buffer
            sink.write(line)
            sink.flush()
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
    return status, last[0], b"".join(printed)


# -- the run as an action ------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A system's test run: the request whose key its passing verdict is kept under, here and
    in a remote cache (its argv is the command's, after a word for the key's version)."""

    system: str
    request: Request
    producer: dict[str, str]  # a fasl's path -> the action that made it

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def argv(self) -> list[str]:
        return list(self.request.argv[1:])

    @functools.cached_property
    def key(self) -> str:
        return self.request.key()

    @property
    def material(self) -> dict[str, Any]:
        return self.request.material()


def test_run(
    build: AsdfBuild, root: str, store: Store, produced: Mapping[str, Output], system: str
) -> Run:
    """The run of `root`'s test-op. Its key covers what the run loads — the sources, .asd files
    and fasls of every action the test-op needs —, the command, SBCL and plait's runner: not the
    project's other files. A file a test reads at run time is covered when the .asd declares it
    as a component (a static-file)."""
    t = build.translation
    needed = t.needed(build.root_id(root))
    inputs: dict[str, Input] = {}
    producer: dict[str, str] = {}

    def add(paths: Iterable[str]) -> None:
        for path in paths:
            d = store.file_digest(Path(path))
            if d is not None:
                inputs[path] = Input(d)

    add(t.asds_of(needed))
    built = {out for i in needed if t.is_builder(t.nodes[i]) for out in t.nodes[i].outputs}
    for i in needed:
        node = t.nodes[i]
        add(p for p in node.inputs if p not in built)  # a load's fasls are added below
        if t.is_builder(node):
            # By their paths in the build's sandbox: where the user's translations put them
            # differs from one home to the next, and the key must not.
            for rel in t.fasls(node):
                if rel in produced:
                    inputs[rel] = Input(produced[rel].digest)
                    producer[rel] = node_name(node)
    request = Request(
        name=f"test:{system}",
        argv=(f"plait-test-v{VERDICT_VERSION}", *build.test_argv(root)),
        env={},
        inputs=inputs,
        outputs=(VERDICT_OUTPUT,),
        named={str(build.dump.core): "<definitions core>"},
        toolchain={"lisp": digest.of_canonical(lisp_toolchain(store, t.sbcl))},
    )
    return Run(system, request, producer)


def cached(store: Store, run: Run) -> Outcome | None:
    """The passing verdict the store keeps for `run`'s key, if it has one."""
    result = store.lookup(run.key)
    if result is None or not result.outputs or not store.has_blob(result.outputs[0].digest):
        return None
    return _outcome(
        store.blob_path(result.outputs[0].digest).read_bytes(),
        "nothing it loads changed since it passed",
    )


def _outcome(data: bytes, cached: str) -> Outcome | None:
    try:
        return Outcome.from_json(json.loads(data), cached=cached)
    except (ValueError, KeyError, TypeError):
        return None


def keep(store: Store, run: Run, outcome: Outcome) -> Digest | None:
    """Keep a passing verdict under the run's key, and return its digest. Failed, timed-out
    and undecided verdicts are never kept: they run again."""
    if not outcome.passed:
        return None
    tmp = store.tmp / f"verdict-{run.key}.json"
    tmp.write_text(json.dumps(outcome.to_json()))
    d = store.put_file(tmp, move=True)
    result = CachedResult((Output(VERDICT_OUTPUT, d, False),), outcome.seconds)
    store.register(run.name, run.key, run.material, result, ran=True)
    return d


def fetch(remote: Remote, store: Store, run: Run) -> Outcome | None:
    """The passing verdict a remote cache holds for `run`, downloaded into the store as a
    build's outputs are (its bytes checked against their digest); None if it has none, or
    cannot be reached (it then says so once)."""
    try:
        result = remote.lookup(reapi_action(run.request))
        files = [f for f in result.output_files if f.path == VERDICT_OUTPUT] if result else []
        if result is None or result.exit_code != 0 or not files:
            return None
        wanted = Digest(files[0].digest.hash, files[0].digest.size_bytes)
        wrong = remote.fetch_into(LocalContent(store), [wanted], store.tmp)
    except RemoteUnavailable:
        return None
    if wrong:
        remote.warn_once(
            "poisoned",
            f"plait: warning: the remote cache at {remote.endpoint} sent bytes for the verdict"
            f" of '{run.system}' that do not match their digest: its tests run here",
        )
    if wrong is None or wrong:  # evicted, or not its bytes
        return None
    return _outcome(store.blob_path(wanted).read_bytes(), "found in the remote cache")


def share(remote: Remote, store: Store, run: Run, verdict: Digest, outcome: Outcome) -> None:
    """Put a passing verdict in the remote cache (--remote-upload), as a build's results are."""
    with contextlib.suppress(RemoteUnavailable):
        remote.publish(
            reapi_action(run.request),
            {VERDICT_OUTPUT: (verdict, False)},
            {verdict: store.blob_path(verdict)},
            outcome.seconds,
        )


# -- reports -------------------------------------------------------------------------------


def table(outcomes: list[Outcome], untested: list[str]) -> list[str]:
    """One row per system: its verdict, its tests passed/failed, its time, ran or cached."""
    rows = [("SYSTEM", "VERDICT", "TESTS", "TIME", "")]
    for o in outcomes:
        checks = o.checks()
        rows.append(
            (
                o.system,
                o.verdict,
                f"{checks[0]}/{checks[0] + checks[1]}" if checks else "-",
                f"{o.seconds:.1f}s",
                "cached" if o.cached else "ran",
            )
        )
    rows += [(s, "no tests", "", "", "") for s in untested]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def junit(outcomes: list[Outcome]) -> str:
    """JUnit XML: a testsuite per system, a testcase per test a framework named (else one per
    suite), as GitLab, GitHub and Jenkins read it."""
    top = ET.Element("testsuites", name="plait test")
    totals = {"tests": 0, "failures": 0, "errors": 0}  # the schema has no skipped here
    for o in outcomes:
        cases = _cases(o)
        counts = {
            "tests": len(cases),
            "failures": sum(1 for _, kind, _ in cases if kind == "failure"),
            "errors": sum(1 for _, kind, _ in cases if kind == "error"),
            "skipped": sum(1 for _, kind, _ in cases if kind == "skipped"),
        }
        attributes = {"name": _xml(o.system), **{k: str(v) for k, v in counts.items()}}
        suite = ET.SubElement(top, "testsuite", attributes, time=f"{o.seconds:.3f}")
        for (classname, name), kind, message in cases:
            case = ET.SubElement(
                suite, "testcase", name=_xml(name), classname=_xml(classname), time="0"
            )
            if kind:
                ET.SubElement(case, kind, message=_xml((message or "")[:1000]))
        ET.SubElement(suite, "system-out").text = _xml(o.output)
        for k in totals:
            totals[k] += counts[k]
    for k, v in totals.items():
        top.set(k, str(v))
    ET.indent(top)
    return ET.tostring(top, encoding="unicode", xml_declaration=True) + "\n"


# What XML 1.0 cannot hold: control characters but tab and newlines, surrogates, U+FFFE/F.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    """`text` with what XML cannot hold shown as U+FFFD (a test's output may hold anything)."""
    return _NOT_XML.sub("\ufffd", text)


def _cases(o: Outcome) -> list[tuple[tuple[str, str], str, str | None]]:
    """((classname, name), failure|error|skipped|"", message) for each testcase of `o`."""
    cases: list[tuple[tuple[str, str], str, str | None]] = []
    kinds = {"failed": "failure", "skipped": "skipped", "expected": "skipped"}
    for s in o.suites:
        classname = f"{o.system}.{s.name}"
        named = [c for c in s.tests if c.name]
        if named:
            for c in named:
                message = c.message or ("an expected failure" if c.status == "expected" else None)
                cases.append(((classname, c.name), kinds.get(c.status, ""), message))
        else:
            kind = "" if s.ok else "failure"
            cases.append(((classname, s.name), kind, None if s.ok else f"{s.framework} failed"))
    failing = any(kind == "failure" for _, kind, _ in cases)
    if o.verdict == "timed out" or (o.verdict == "failed" and not failing):
        cases.append(((o.system, "(run)"), "error", o.why))
    cases += [((o.system, u), "skipped", "no verdict: no framework plait reads") for u in o.unknown]
    return cases
