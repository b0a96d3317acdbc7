"""The namespace sandbox (--sandbox namespace, plait.namespace): a command sees its inputs, the
toolchain and nothing else, by any path; it makes the same outputs as in a directory sandbox."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plait import cli, namespace
from plait.executor import LocalExecutor
from plait.request import Request
from tests.support import DATA, ROOT, Contents, plait, plaitfile_project

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _namespaces_here() -> None:
    # ./setup installs bubblewrap; a machine that cannot make namespaces is a failure to see.
    why = namespace.available()
    assert why is None, why


def reader(tmp_path: Path) -> Path:
    """A project whose action reads a file outside it, by absolute path, undeclared."""
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not declared\n")
    return plaitfile_project(
        tmp_path / "project",
        f'action("peek", ["sh", "-c", "cat {secret} > seen.txt"], outputs=["seen.txt"])\n',
    )


def test_an_undeclared_absolute_read_fails_only_in_namespaces(tmp_path: Path) -> None:
    p = reader(tmp_path)
    env = {"PLAIT_CACHE": str(tmp_path / "store")}
    jailed = plait("build", cwd=p, env=env)  # namespaces are the default
    assert jailed.returncode == 1
    assert f"{tmp_path / 'elsewhere' / 'secret.txt'}: No such file or directory" in jailed.stdout
    # The directory sandbox does not stop it (no chroot): the documented difference.
    free = plait("build", "--sandbox", "directory", cwd=p, env=env)
    assert free.returncode == 0, free.stdout
    assert (p / "seen.txt").read_text() == "not declared\n"


def test_without_namespaces_plait_says_so_and_uses_the_directory_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = reader(tmp_path)
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "store"))
    which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, **kw: None if name == "bwrap" else which(name, **kw)
    )
    namespace.available.cache_clear()
    try:
        assert cli.main(["build", "-C", str(p), "--sandbox", "namespace"]) == 0
    finally:
        namespace.available.cache_clear()
    err = capsys.readouterr().err
    assert "plait: warning: bubblewrap is not installed" in err
    assert "using the directory sandbox" in err
    assert (p / "seen.txt").read_text() == "not declared\n"  # run, unconfined


def test_a_c_project_builds_and_tests_in_namespaces(tmp_path: Path) -> None:
    p = tmp_path / "hello-c"
    shutil.copytree(ROOT / "examples" / "hello-c", p)
    env = {"PLAIT_CACHE": str(tmp_path / "store")}
    result = plait("build", "--sandbox", "namespace", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran test:hello" in result.stdout


@pytest.mark.lisp
def test_a_lisp_file_reading_an_undeclared_file_fails_only_in_namespaces(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("undeclared")
    p = tmp_path / "peek"
    p.mkdir()
    (p / "plait-peek.asd").write_text('(defsystem "plait-peek" :components ((:file "peek")))\n')
    (p / "peek.lisp").write_text(f'(defparameter *peek* #.(uiop:read-file-string "{secret}"))\n')
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PLAIT_CACHE": str(tmp_path / "store")}
    jailed = plait("build", "--sandbox", "namespace", cwd=p, env=env)
    assert jailed.returncode == 1
    assert "FAILED compile:plait-peek:peek" in jailed.stdout
    assert str(secret) in jailed.stdout
    assert plait("build", "--sandbox", "directory", cwd=p, env=env).returncode == 0


@pytest.mark.lisp
@pytest.mark.parametrize(("name", "system"), [("demo", "plait-demo"), ("dsd", "plait-dsd")])
def test_fasls_are_the_same_bytes_in_either_sandbox(name: str, system: str, tmp_path: Path) -> None:
    p = tmp_path / name
    shutil.copytree(DATA / "lisp" / name, p)
    fasls: dict[str, dict[str, bytes]] = {}
    for mode in ("directory", "namespace"):
        cache = tmp_path / f"cache-{mode}"
        env = {"XDG_CACHE_HOME": str(cache), "PLAIT_CACHE": str(tmp_path / f"store-{mode}")}
        built = plait("build", system, "--sandbox", mode, cwd=p, env=env)
        assert built.returncode == 0, built.stdout + built.stderr
        # The project's own fasls (a :defsystem-depends-on's are compiled in the dump's image).
        fasls[mode] = {
            str(f.relative_to(cache)): f.read_bytes()
            for f in cache.rglob("*.fasl")
            if str(p) in str(f)
        }
    assert fasls["directory"]
    assert fasls["directory"] == fasls["namespace"]


def test_an_absolute_input_is_its_content_at_its_path_wherever_the_content_is(
    tmp_path: Path,
) -> None:
    """A request's absolute input names where the command reads it, not where its content is
    here: the namespace sandbox binds the content there; the directory sandbox, which cannot,
    says that the file is not on this machine."""
    kept = tmp_path / "cas" / "blob"
    kept.parent.mkdir()
    kept.write_text("from the store\n")
    content = Contents()
    wanted = "/plait-no-such-dir/data.txt"
    request = Request(
        "abs",
        ("sh", "-c", f"cat {wanted} > out.txt"),
        {},
        {wanted: content.add(kept)},
        ("out.txt",),
    )
    with LocalExecutor(namespaces=True) as jailed:
        result = jailed.execute(request, content, tmp_path / "ns.log")
    assert result.ok, (tmp_path / "ns.log").read_text()
    assert content.data[result.outputs["out.txt"][0].hash] == b"from the store\n"
    with LocalExecutor() as free:
        result = free.execute(request, content, tmp_path / "dir.log")
    assert not result.ok
    assert (
        result.error
        == f"input '{wanted}' is not on this machine, where the directory sandbox reads it"
    )


def test_a_declared_toolchain_is_shown_and_its_content_is_in_the_key(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "version").write_text("1\n")
    p = plaitfile_project(
        tmp_path / "project",
        f'action("use", ["sh", "-c", "cat {tools}/version > out.txt"], outputs=["out.txt"],'
        f' toolchain=["{tools}"])\n',
    )
    env = {"PLAIT_CACHE": str(tmp_path / "store")}
    assert plait("build", cwd=p, env=env).returncode == 0
    assert (p / "out.txt").read_text() == "1\n"
    again = plait("build", "-v", cwd=p, env=env)
    assert "ran use" not in again.stdout
    (tools / "version").write_text("2\n")
    changed = plait("build", cwd=p, env=env)
    assert "ran use (toolchain changed)" in changed.stdout, changed.stdout
    assert (p / "out.txt").read_text() == "2\n"
