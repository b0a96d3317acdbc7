"""`plait lint`: the .asd reader and its edits, then crafted systems that build under ASDF and
not with --deps declared, each for a kind of missing edge, linted, fixed and built."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plait.asdf import asd
from plait.errors import UsageError
from tests.support import DATA, plait

ASD = """;;; A system; (:file "decoy") in a comment is no component.
(asdf:defsystem #:demo
  :depends-on (#:alexandria)
  :components ((:file "package")
               #+sbcl (:file "fast" :depends-on ())
               (:module "sub"
                :components ((:file "x" :depends-on ("y")) ; "y" first
                             (:file "y")))
               (:file "main" :depends-on ("package" "sub"))))
(defsystem "demo/test" :depends-on ("demo") :components ((:file "test")))
"""


def test_the_reader_finds_systems_and_components_with_their_lines() -> None:
    found = asd.parse(ASD, "demo.asd")
    assert sorted(found.systems) == ["demo", "demo/test"]
    assert sorted(found.components) == [
        ("demo", ("fast",)),
        ("demo", ("main",)),
        ("demo", ("package",)),
        ("demo", ("sub",)),
        ("demo", ("sub", "x")),
        ("demo", ("sub", "y")),
        ("demo/test", ("test",)),
    ]
    lines = {p: found.line(f) for (_, p), f in found.components.items()}
    assert lines[("sub", "x")] == 7
    assert lines[("main",)] == 9
    assert found.line(found.systems["demo/test"]) == 10


def edit(text: str, system: str, path: tuple[str, ...], dependency: str) -> str:
    found = asd.parse(text, "demo.asd")
    form = found.form_of(system, path)
    assert form is not None
    return found.add_dependency(form, dependency)


def test_an_edit_adds_to_the_list_or_adds_the_option_and_changes_nothing_else() -> None:
    added = edit(ASD, "demo", ("sub", "y"), "x2")
    assert added == ASD.replace('(:file "y")', '(:file "y" :depends-on ("x2"))')
    appended = edit(ASD, "demo", ("main",), "fast")
    assert appended == ASD.replace('("package" "sub")', '("package" "sub" "fast")')
    into_empty = edit(ASD, "demo", ("fast",), "package")
    assert into_empty == ASD.replace(":depends-on ()", ':depends-on ("package")')
    system = edit(ASD, "demo", (), "cl-ppcre")
    assert system == ASD.replace("(#:alexandria)", '(#:alexandria "cl-ppcre")')


NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)


@given(st.lists(NAMES, min_size=2, max_size=6, unique=True), st.data())
def test_an_edit_keeps_every_other_character_and_reads_back(
    names: list[str], data: st.DataObject
) -> None:
    components = "\n   ".join(f'(:file "{n}")' for n in names)
    text = f'(defsystem "s"\n  :components\n  ({components}))\n'
    user = data.draw(st.sampled_from(names))
    target = data.draw(st.sampled_from([n for n in names if n != user]))
    edited = edit(text, "s", (user,), target)
    assert edited.replace(f' :depends-on ("{target}")', "", 1) == text
    again = asd.parse(edited, "s.asd")
    form = again.form_of("s", (user,))
    assert form is not None and form.items is not None
    assert [f.text for f in form.items[3].items or []] == [target]


def test_an_unreadable_asd_is_an_error_with_its_line() -> None:
    with pytest.raises(UsageError) as e:
        asd.parse('(defsystem "s"\n  :components ((:file "a"))\n', "s.asd")
    assert str(e.value).startswith("s.asd:1: a '(' is not closed")


def test_lint_puts_the_project_first_on_the_source_registry_as_it_was_written() -> None:
    from plait.asdf.lint import _with_directory

    assert _with_directory(None, Path("/p")) == "/p/:"
    assert _with_directory("/x//:", Path("/p")) == "/p/:/x//:"
    form = '(:source-registry (:tree "/x/") :inherit-configuration)'
    assert _with_directory(form, Path('/p "q"')) == (
        '(:source-registry (:directory "/p \\"q\\"/") (:tree "/x/") :inherit-configuration)'
    )


# -- crafted systems ---------------------------------------------------------------------------

CASES = {
    "lint-package": (
        "lint-package",
        'lint-package.asd:4: component "code" (file) uses package LINT-PACKAGE from "package":'
        ' add :depends-on ("package")',
    ),
    "lint-macro": (
        "lint-macro",
        'lint-macro.asd:5: component "use" (file) uses function LINT-MACRO:DEFCONSTANT-ONCE'
        ' from "macros": add :depends-on ("macros")',
    ),
    "lint-systems": (
        "lint-app",
        'lint-tool.asd:1: system "lint-tool" uses package LINT-BASE from system "lint-base":'
        ' add "lint-base" to :depends-on of system "lint-tool"',
    ),
    "lint-serial": (
        "lint-serial",
        'lint-serial.asd:5: component "third" (file) uses function LINT-SERIAL::WITH-BASE'
        ' from "second": add :depends-on ("second")',
    ),
}


def copied(name: str, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / name
    shutil.copytree(DATA / "lisp" / name, dest)
    return dest


def fasls(cache: Path) -> dict[Path, tuple[int, bytes]]:
    return {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in cache.rglob("*.fasl")}


def machine(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PLAIT_CACHE": str(tmp_path / "store")}


@pytest.mark.lisp
@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_names_the_edge_fix_writes_it_and_the_system_builds_declared(
    case: str, tmp_path: Path
) -> None:
    system, expected = CASES[case]
    p = copied(case, tmp_path)
    env = machine(tmp_path)
    before = {f: f.read_text() for f in p.glob("*.asd")}
    declared = plait("build", system, "--deps", "declared", cwd=p, env=env, timeout=300)
    assert declared.returncode == 1, declared.stdout + declared.stderr
    assert f"plait: hint: 'plait lint {system}' names every :depends-on" in declared.stdout

    cache = fasls(tmp_path / "cache")
    files = sorted(p.rglob("*"))
    looked = plait("lint", system, cwd=p, env=env, timeout=600)
    assert looked.returncode == 0, looked.stdout + looked.stderr
    assert expected in looked.stdout.splitlines(), looked.stdout
    assert f"plait lint: {system} builds with --deps declared" in looked.stdout
    assert {f: f.read_text() for f in p.glob("*.asd")} == before  # no --fix: nothing written
    # Lint's builds went to a scratch store and fasl cache, not the user's.
    assert fasls(tmp_path / "cache") == cache
    assert sorted(p.rglob("*")) == files

    for f in p.glob("*.asd"):
        f.chmod(0o640)
    fixed = plait("lint", system, "--fix", cwd=p, env=env, timeout=600)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "+++ " in fixed.stdout and "plait lint: edited " in fixed.stdout
    assert {f: f.read_text() for f in p.glob("*.asd")} != before
    assert {f.stat().st_mode & 0o777 for f in p.glob("*.asd")} == {0o640}

    built = plait("build", system, "--deps", "declared", cwd=p, env=env, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    again = plait("lint", system, cwd=p, env=env, timeout=600)
    assert "plait lint: no missing dependency found" in again.stdout, again.stdout


@pytest.mark.lisp
def test_lint_reports_a_declared_edge_nothing_needs_and_fix_leaves_it(tmp_path: Path) -> None:
    p = copied("lint-unused", tmp_path)
    env = machine(tmp_path)
    before = (p / "lint-unused.asd").read_text()
    result = plait("lint", "lint-unused", "--fix", cwd=p, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        'lint-unused.asd:5: note: component "b" (file) declares :depends-on ("a"), and its 1'
        " file(s) build the same without it (a weaker finding; --fix leaves it)"
    ) in result.stdout.splitlines(), result.stdout
    assert 'declares :depends-on ("package")' not in result.stdout
    assert (p / "lint-unused.asd").read_text() == before


@pytest.mark.lisp
def test_lint_leaves_files_under_usr_alone(tmp_path: Path) -> None:
    env = machine(tmp_path)
    asd_file = Path("/usr/share/common-lisp/source/alexandria/alexandria.asd")
    before = asd_file.read_bytes()
    line = before.decode().splitlines().index('   (:module "alexandria-2"') + 1
    result = plait("lint", "alexandria", "--fix", cwd=tmp_path, env=env, timeout=900)
    assert (
        f'alexandria.asd:{line}: component "alexandria-2" (module) uses package ALEXANDRIA.1.0.0'
        ' from "alexandria-1": add :depends-on ("alexandria-1")'
    ) in result.stdout.splitlines(), result.stdout
    assert "not editing /usr/share/common-lisp/source/alexandria/alexandria.asd" in result.stderr
    assert asd_file.read_bytes() == before
