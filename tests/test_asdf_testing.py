"""plait test's verdicts: what run.lisp records of each test framework Debian ships, the verdict
and reports made of it, and passing verdicts kept until something the tests load changes."""

from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given
from hypothesis import strategies as st

from plait.asdf.testing import Case, Outcome, Suite, configured_timeout, judge, junit, table
from plait.errors import UsageError
from tests.support import DATA, plait

# Jenkins' xunit schema for JUnit XML, which `./setup --dev` fetches (from pytest's sdist).
JUNIT_XSD = Path(
    os.environ.get("PLAIT_JUNIT_XSD", Path.home() / ".cache" / "plait" / "junit-10.xsd")
)

FRAMEWORKS = "plait-frameworks"

# Each framework system's verdict and tests passed/run, as the framework itself reports them.
EXPECTED = {
    "rt-pass": ("passed", "2/2"),
    "rt-fail": ("failed", "2/3"),
    "rt-expected": ("passed", "2/2"),  # its one failure is on rt's *expected-failures*
    "sb-rt-pass": ("passed", "1/1"),
    "sb-rt-fail": ("failed", "1/2"),
    "rt-copy-fail": ("failed", "1/2"),  # a copy of rt inside the test suite
    "fiveam-pass": ("passed", "1/1"),
    "fiveam-fail": ("failed", "1/2"),
    "fiveam-skip": ("passed", "1/1"),  # a skipped test is no failure
    "xlunit-pass": ("passed", "2/2"),
    "xlunit-fail": ("failed", "2/3"),
    "xptest-pass": ("passed", "1/1"),
    "xptest-fail": ("failed", "1/2"),
    "ptester-pass": ("passed", "2/2"),
    "ptester-fail": ("failed", "1/2"),
    "ptester-known": ("passed", "1/1"),  # its failure is a :known-failure
    "fiasco-pass": ("passed", "1/1"),
    "fiasco-fail": ("failed", "1/2"),
    "own-runner": ("no verdict", "-"),
}


def schema() -> xmlschema.XMLSchema:
    assert JUNIT_XSD.is_file(), f"{JUNIT_XSD} is missing: run ./setup --dev, which fetches it"
    return xmlschema.XMLSchema(JUNIT_XSD)


def rows(stdout: str) -> dict[str, list[str]]:
    """The verdict table's rows, by system."""
    lines = stdout[stdout.rindex("\nSYSTEM  ") + 1 :].splitlines()[1:]
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", row) for row in lines if row)}


def suite(name: str, ok: bool, tests: list[tuple[str, str]]) -> Suite:
    cases = tuple(Case(n, status, "why" if status == "failed" else None) for n, status in tests)
    return Suite(name, "fiveam", "s", ok, cases)


def records(*lines: Mapping[str, object]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def suite_record(ok: bool, failed: int = 0) -> dict[str, object]:
    tests = [{"name": "a", "status": "passed", "message": None}]
    tests += [{"name": f"f{i}", "status": "failed", "message": "no"} for i in range(failed)]
    return {"suite": "S", "framework": "fiveam", "system": "s", "ok": ok, "tests": tests}


# -- the verdict, from what a run recorded ---------------------------------------------------


def test_a_failing_suite_fails_the_run_whatever_its_exit_status() -> None:
    outcome = judge("s", 0, records(suite_record(True), suite_record(False, 2)), "", 10)
    assert outcome.verdict == "failed"
    assert outcome.why == "fiveam reported 2 of 3 tests failing in suite S"
    assert outcome.checks() == (2, 2)


def test_a_run_with_an_unknown_suite_has_no_verdict_unless_something_failed() -> None:
    unknown = {"unknown": "own-runner"}
    outcome = judge("s", 0, records(suite_record(True), unknown), "", 10)
    assert outcome.verdict == "no verdict"
    assert outcome.why.startswith("1 suite unknown: the test-op of 'own-runner'")
    assert judge("s", 1, records(suite_record(False, 1), unknown), "", 10).verdict == "failed"


def test_an_error_a_crash_and_a_timeout_are_verdicts_of_their_own() -> None:
    error = judge("s", 1, records(suite_record(True), {"error": "boom", "system": "s"}), "", 10)
    assert (error.verdict, error.why) == ("failed", "the tests signalled an error: boom")
    crash = judge("s", 137, records(suite_record(True)), "", 10)
    assert (crash.verdict, crash.why) == ("failed", "the test run exited with status 137")
    # A record cut short by the kill is no record.
    late = judge("s", None, records(suite_record(True)) + '{"suite": "S", "fra', "Running x", 7)
    assert late.verdict == "timed out"
    assert late.why == "timed out after 7 s (the last line they printed: 'Running x')"
    assert len(late.suites) == 1


def test_a_run_whose_suites_all_passed_passes() -> None:
    outcome = judge("s", 0, records(suite_record(True), suite_record(True)), "", 10)
    assert (outcome.verdict, outcome.why) == ("passed", "2 suites, 2 tests passed")


@given(
    st.lists(
        st.tuples(
            st.text(
                st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]),
                min_size=1,
                max_size=12,
            ),
            st.sampled_from(["passed", "failed", "skipped", "expected"]),
        ),
        max_size=6,
    ),
    st.sampled_from(["passed", "failed", "timed out", "no verdict"]),
)
def test_junit_counts_agree_with_its_testcases_and_validate(
    tests: list[tuple[str, str]], verdict: str
) -> None:
    ok = not any(status == "failed" for _, status in tests)
    unknown = ["own"] if verdict == "no verdict" else []
    outcome = Outcome("sys<&>", verdict, "why", [suite("S", ok, tests)], unknown, 1.5, "out\x1b")
    text = junit([outcome])
    # Control characters in a run's output are not XML: they must not make the file invalid.
    schema().validate(text)
    top = ET.fromstring(text)
    (element,) = top.findall("testsuite")
    cases = element.findall("testcase")
    assert element.get("name") == "sys<&>"
    assert int(element.get("tests", "-1")) == len(cases)
    for kind in ("failure", "error", "skipped"):
        found = sum(1 for c in cases if c.find(kind) is not None)
        assert int(element.get(f"{kind}s" if kind != "skipped" else kind, "-1")) == found
    if tests:  # each test a framework named is a testcase, in its order
        assert [c.get("name") for c in cases][: len(tests)] == [n for n, _ in tests]


def test_the_table_says_each_verdict_its_tests_and_whether_it_ran() -> None:
    ran = Outcome("a", "passed", "", [suite("S", True, [("x", "passed")])], seconds=2.0)
    kept = Outcome("bb", "failed", "", [], cached="nothing changed")
    lines = table([ran, kept], ["c"])
    assert [re.split(r"\s{2,}", line) for line in lines] == [
        ["SYSTEM", "VERDICT", "TESTS", "TIME"],
        ["a", "passed", "1/1", "2.0s", "ran"],
        ["bb", "failed", "-", "0.0s", "cached"],
        ["c", "no tests"],
    ]


@pytest.mark.parametrize("setting", ["0", "-5", "true"])
def test_a_test_timeout_in_the_configuration_must_be_seconds_above_0(
    setting: str, tmp_path: Path
) -> None:
    (tmp_path / "plait.toml").write_text(f"[test]\ntimeout = {setting}\n")
    with pytest.raises(UsageError, match=r"\[test\] timeout = .* is not a number of seconds"):
        configured_timeout(tmp_path)
    (tmp_path / "plait.toml").write_text("[test]\ntimeout = 7\n")
    assert configured_timeout(tmp_path) == 7


# -- the frameworks, end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("lisp")
    return {"XDG_CACHE_HOME": str(root / "cache"), "PLAIT_CACHE": str(root / "store")}


def project(tmp_path: Path) -> Path:
    dest = tmp_path / "frameworks"
    shutil.copytree(DATA / "lisp" / "frameworks", dest)
    return dest


@pytest.mark.e2e
@pytest.mark.lisp
def test_each_framework_s_verdict_and_counts_are_what_it_reported(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project(tmp_path)
    systems = [f"{FRAMEWORKS}/{name}" for name in EXPECTED]
    result = plait(
        "test", *systems, "-j", "2", "--junit", "j.xml", "--report", "r.json",
        cwd=p, env=env, timeout=900,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    table = rows(result.stdout)
    assert {s.removeprefix(f"{FRAMEWORKS}/"): tuple(r[:2]) for s, r in table.items()} == EXPECTED
    assert all(r[3] == "ran" for r in table.values())
    assert (
        f"plait: the tests of '{FRAMEWORKS}/own-runner': no verdict: 1 suite unknown"
    ) in result.stdout
    # What each framework printed on its error output is part of that system's output.
    assert "Begin arithmetic test" in result.stdout
    # JUnit: valid, a testsuite per system, the failing tests named.
    schema().validate(str(p / "j.xml"))
    suites = {s.get("name"): s for s in ET.parse(p / "j.xml").getroot().findall("testsuite")}
    assert set(suites) == set(systems)
    failed = {
        c.get("name")
        for c in suites[f"{FRAMEWORKS}/fiasco-fail"].findall("testcase")
        if c.find("failure") is not None
    }
    assert failed == {"WRONG"}
    xlunit = suites[f"{FRAMEWORKS}/xlunit-pass"].findall("testcase")
    assert [c.get("name") for c in xlunit] == ["TEST-ADDS", "TEST-MULTIPLIES"]
    # The report carries every verdict, with its suites.
    report = json.loads((p / "r.json").read_text())
    verdicts = {t["system"]: t["verdict"] for t in report["tests"]}
    assert verdicts == {f"{FRAMEWORKS}/{k}": v for k, (v, _) in EXPECTED.items()}
    assert report["actions"]
    # A run whose only suite plait cannot read is no pass: its own exit status says so.
    unknown = plait("test", f"{FRAMEWORKS}/own-runner", cwd=p, env=env, timeout=300)
    assert unknown.returncode == 6, unknown.stdout[-3000:] + unknown.stderr


@pytest.mark.e2e
@pytest.mark.lisp
def test_a_passing_verdict_is_kept_until_something_the_tests_load_changes(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project(tmp_path)
    passing, failing = f"{FRAMEWORKS}/fiveam-pass", f"{FRAMEWORKS}/fiveam-fail"

    def test(*more: str) -> dict[str, list[str]]:
        result = plait("test", passing, failing, *more, "-j", "2", cwd=p, env=env, timeout=600)
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr
        return rows(result.stdout)

    assert test()[passing][3] == "ran"
    second = test()
    assert second[passing][3] == "cached"
    assert second[failing][3] == "ran"  # a failed verdict is never kept
    # A file the tests do not load: the verdict holds.
    (p / "rt-pass.lisp").write_text((p / "rt-pass.lisp").read_text() + ";; edited\n")
    (p / "NOTES").write_text("not part of any system\n")
    assert test()[passing][3] == "cached"
    # A file they load: the tests run again, and say why.
    (p / "fiveam-pass.lisp").write_text((p / "fiveam-pass.lisp").read_text() + ";; edited\n")
    result = plait("test", passing, cwd=p, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert (
        f"plait: running the tests of '{passing}' (input '{p / 'fiveam-pass.lisp'}' changed)"
    ) in result.stdout
    kept = plait("test", passing, cwd=p, env=env, timeout=600)
    assert "(cached: nothing it loads changed since it passed)" in kept.stdout
    assert "Running test suite" not in kept.stdout
    # --rerun runs it anyway.
    rerun = plait("test", passing, "--rerun", cwd=p, env=env, timeout=600)
    assert f"plait: running the tests of '{passing}' (--rerun)" in rerun.stdout
    assert "Running test suite" in rerun.stdout


@pytest.mark.e2e
@pytest.mark.lisp
def test_with_no_system_named_every_system_of_the_project_is_tested(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = tmp_path / "two"
    p.mkdir()
    frameworks = project(tmp_path)
    for name in ("fiveam-pass.lisp", "rt-fail.lisp"):
        shutil.copy(frameworks / name, p / name)
    (p / "one.asd").write_text(
        '(defsystem "one" :depends-on ("fiveam") :components ((:file "fiveam-pass"))\n'
        "  :perform (test-op (o c) (symbol-call :plait-fw-fiveam-pass :run!)))\n"
    )
    (p / "two.asd").write_text(
        '(defsystem "two" :depends-on ("rt") :components ((:file "rt-fail"))\n'
        "  :perform (test-op (o c) (symbol-call :plait-fw-rt-fail :do-tests)))\n"
    )
    (p / "three.asd").write_text('(defsystem "three")\n')
    result = plait("test", cwd=p, env=env, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    table = rows(result.stdout)
    assert {s: r[0] for s, r in table.items()} == {
        "one": "passed",
        "three": "no tests",
        "two": "failed",
    }
