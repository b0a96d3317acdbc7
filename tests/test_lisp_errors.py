"""What a Lisp programmer sees when a system does not build, and the defaults of the Lisp
commands: errors as file:line:col, a project's one system, a system with no tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import DATA, plait

pytestmark = [pytest.mark.e2e, pytest.mark.lisp]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("lisp-errors")
    return {"XDG_CACHE_HOME": str(root / "cache"), "PLAIT_CACHE": str(root / "store")}


def copy(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / Path(name).name
    shutil.copytree(DATA / "lisp" / name, dest)
    return dest


def asdf_loads(cwd: Path, env: dict[str, str], *forms: str) -> str:
    """What a fresh SBCL with ASDF prints evaluating `forms` in `cwd`, having compiled nothing
    (plait built it all)."""
    argv = ["sbcl", "--noinform", "--non-interactive", "--eval", "(require :asdf)"]
    for form in forms:
        argv += ["--eval", form]
    loaded = subprocess.run(
        argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "; compiling file" not in loaded.stdout + loaded.stderr
    return loaded.stdout


def failed_build(name: str, tmp_path: Path, env: dict[str, str], *args: str) -> tuple[Path, str]:
    """Build the scenario's one system (named by no argument); it must fail. Its output."""
    p = copy(f"errors/{name}", tmp_path)
    result = plait("build", *args, cwd=p, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    return p, result.stdout


@pytest.mark.parametrize(
    ("name", "where", "message"),
    [
        ("reader", "5:14", "error: read error: unmatched close parenthesis"),
        ("package", "4:14", "error: read error: Package NOPKG does not exist."),
        ("inpackage", "2:3", 'error: The name "NOPKG-HERE" does not designate any package.'),
        ("macro", "5:7", "error: during macroexpansion of (M). macro boom"),
    ],
)
def test_a_failed_compile_shows_the_file_line_and_column_first(
    name: str, where: str, message: str, tmp_path: Path, env: dict[str, str]
) -> None:
    p, out = failed_build(name, tmp_path, env)
    lines = out.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("FAILED compile:"))
    assert lines[failed + 1] == f"  {(p / 'bad.lisp').resolve()}:{where}: {message}"
    assert lines[failed + 2].startswith("  full log: ")
    # The command (every load spelled out) is in the log, and with -v, not in the way.
    assert "--core" not in out
    log = Path(lines[failed + 2].removeprefix("  full log: "))
    assert log.read_text().startswith("$ ")


def test_a_full_warning_fails_the_compile_at_its_line_and_says_why(
    tmp_path: Path, env: dict[str, str]
) -> None:
    p, out = failed_build("warning", tmp_path, env)
    bad = (p / "bad.lisp").resolve()
    assert f'  {bad}:3:3: warning: Constant "a" conflicts with its asserted type NUMBER.' in out
    assert f"  {bad}: error: a WARNING fails the compile (--on-failure error" in out


def test_with_on_failure_warn_the_end_summary_gives_the_warning_s_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    p = copy("errors/warning", tmp_path)
    result = plait("build", "--on-failure", "warn", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = (p / "bad.lisp").resolve()
    assert f"  {bad}:3:3: warning: Constant" in result.stdout


def test_verbose_shows_the_failed_command(tmp_path: Path, env: dict[str, str]) -> None:
    _, out = failed_build("reader", tmp_path, env, "-v")
    assert "  command: " in out and "plait-compile:main" in out


def test_an_error_in_an_asd_file_names_its_line(tmp_path: Path, env: dict[str, str]) -> None:
    p = copy("errors/asd", tmp_path)
    result = plait("build", cwd=p, env=env)
    assert result.returncode == 2
    asd = (p / "errs-asd.asd").resolve()
    assert f"plait: error: {asd}:4:1: boom in asd" in result.stderr


def test_a_read_error_in_an_asd_file_names_its_line(tmp_path: Path, env: dict[str, str]) -> None:
    p = copy("errors/asd", tmp_path)
    asd = p / "errs-asd.asd"
    asd.write_text('(defsystem "errs-asd"\n  :components ((:file "a"))))\n')
    result = plait("build", cwd=p, env=env)
    assert result.returncode == 2
    expected = f"plait: error: {asd.resolve()}:2:29: read error: unmatched close parenthesis"
    assert expected in result.stderr


def test_with_no_target_the_project_s_one_system_is_built_and_tested(
    tmp_path: Path, env: dict[str, str]
) -> None:
    p = copy("notests", tmp_path)
    built = plait("build", cwd=p, env=env)
    assert built.returncode == 0, built.stderr
    assert "ran compile:plait-notests:a" in built.stdout
    tested = plait("test", cwd=p, env=env)
    assert tested.returncode == 5, tested.stdout + tested.stderr
    assert "plait: 'plait-notests' defines no tests" in tested.stdout
    assert "passed" not in tested.stdout


def test_with_several_systems_and_no_target_build_lists_them_and_test_takes_all(
    tmp_path: Path, env: dict[str, str]
) -> None:
    p = copy("two", tmp_path)
    result = plait("build", cwd=p, env=env)
    assert result.returncode == 2
    assert "defines 2 systems: plait-two-a, plait-two-b" in result.stderr
    assert "hint: name the one to work on, e.g. 'plait build plait-two-a'" in result.stderr
    # plait test tests them all (tests/test_asdf_testing.py has some that define tests).
    tested = plait("test", cwd=p, env=env)
    assert tested.returncode == 5, tested.stdout + tested.stderr
    assert "plait: 'plait-two-a' defines no tests" in tested.stdout
    assert "plait: 'plait-two-b' defines no tests" in tested.stdout


def test_a_system_whose_tests_are_another_system_s_has_tests(
    tmp_path: Path, env: dict[str, str]
) -> None:
    p = tmp_path / "wordcount"
    shutil.copytree(DATA.parent.parent / "examples" / "wordcount", p)
    result = plait("test", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pass: 2" in result.stdout
    assert "plait: the tests of 'wordcount' passed" in result.stdout


def test_plait_test_works_in_a_project_that_has_a_plaitfile_too(
    tmp_path: Path, env: dict[str, str]
) -> None:
    p = tmp_path / "wordcount"
    shutil.copytree(DATA.parent.parent / "examples" / "wordcount", p)
    (p / "Plaitfile.py").write_text(
        'action("notes", ["sh", "-c", "echo n > notes.txt"], outputs=["notes.txt"])\n'
    )
    result = plait("test", "wordcount", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plait: the tests of 'wordcount' passed" in result.stdout


def test_clean_removes_the_fasls_a_build_installed_and_the_next_build_restores_them(
    tmp_path: Path,
) -> None:
    p = copy("notests", tmp_path)
    cache = tmp_path / "cache"
    private = {"XDG_CACHE_HOME": str(cache), "PLAIT_CACHE": str(tmp_path / "store")}
    assert plait("build", cwd=p, env=private).returncode == 0
    fasls = sorted(cache.rglob("*.fasl"))
    assert any(f.name == "a.fasl" for f in fasls)
    cleaned = plait("clean", cwd=p, env=private)
    assert cleaned.returncode == 0
    assert f"plait: removed {len(fasls)} files" in cleaned.stdout
    assert not list(cache.rglob("*.fasl"))
    again = plait("build", "--report", "r.json", cwd=p, env=private)
    assert again.returncode == 0, again.stdout + again.stderr
    statuses = {a["status"] for a in json.loads((p / "r.json").read_text())["actions"]}
    assert statuses == {"cached"}  # restored from the store, nothing compiled
    assert sorted(cache.rglob("*.fasl")) == fasls


def test_an_asd_that_loads_a_system_extending_asdf_while_it_loads_builds(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # As cl-containers.asd loads asdf-system-connections: ASDF must not load itself again in
    # the dump meanwhile, which would drop what that system exported from ASDF's package.
    p = copy("connections", tmp_path)
    registry = f'(:source-registry (:tree "{p}") :inherit-configuration)'
    result = plait("build", "plait-conn", cwd=p, env={**env, "CL_SOURCE_REGISTRY": registry})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran compile:plait-conn:main" in result.stdout
    # The connection ASDF loads once plait-conn and its helper are loaded is built too, and a
    # fresh image's load-system then compiles nothing.
    assert "ran compile:plait-conn/extra:extra" in result.stdout
    loaded = asdf_loads(
        p,
        {**env, "CL_SOURCE_REGISTRY": registry},
        '(progn (asdf:load-system "plait-conn") (princ (cl-user::plait-conn-extra)))',
    )
    assert "CONNECTED" in loaded


def test_outputs_written_where_asdf_runs_are_built_in_the_project(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # cffi-tests links its test libraries where ASDF runs, and a later file loads them from
    # there; uffi-tests says its library is done already. Under plait, where ASDF runs is the
    # project for the user and the sandbox for a compile.
    p = copy("cwdout", tmp_path)
    # Done, to ASDF, when its output is newer than what it depends on (Debian installs
    # uffi-tests' library after its sources).
    os.utime(p / "ready.txt")
    result = plait("build", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (p / "thing.out").read_text() == "MADE BY A BUILDER\n"
    ran = {a["name"] for a in json.loads((p / "r.json").read_text())["actions"]}
    assert "compile:plait-cwdout:thing" in ran and "compile:plait-cwdout:main" in ran
    assert "compile:plait-cwdout:ready" not in ran  # done already: never performed
    loaded = asdf_loads(
        p,
        env,
        '(asdf:load-asd (truename "plait-cwdout.asd"))',
        '(progn (asdf:load-system "plait-cwdout") (princ cl-user::*plait-cwdout*))',
    )
    assert "MADE BY A BUILDER" in loaded
