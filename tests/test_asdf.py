"""Real ASDF systems built by the real `plait` with real SBCL (Debian's cl-* packages)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plait.asdf.protocol import DumpData, Upgrade
from tests.support import DATA, age, plait, running

pytestmark = [pytest.mark.e2e, pytest.mark.lisp]

DEBIAN = Path("/usr/share/common-lisp/source")
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

# Load a system in a fresh SBCL in which compiling is impossible: it must use plait's fasls.
NO_COMPILE = """
(require :asdf)
(sb-ext:without-package-locks
  (defun compile-file (&rest args) (error "COMPILE-FILE called: ~s" args)))
(asdf:load-system "{system}")
{then}
(format t "~&LOADED {system}~%")
"""

DIGEST_ABC = """(format t "~&SHA256 ~a~%" (ironclad:byte-array-to-hex-string
  (ironclad:digest-sequence :sha256 (map '(vector (unsigned-byte 8)) #'char-code "abc"))))"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One fasl cache and one store for the module: real systems are built once."""
    root = tmp_path_factory.mktemp("lisp")
    return {"XDG_CACHE_HOME": str(root / "cache"), "PLAIT_CACHE": str(root / "store")}


@pytest.fixture
def private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For tests that call plait's Python in this process: a fasl cache and a store of the
    test's own (returned), in the environment plait reads them from."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "store"))
    return tmp_path / "store"


def project(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(DATA / "lisp" / name, dest)
    return dest


def load_without_compiling(
    system: str, env: dict[str, str], cwd: Path, then: str = "", registry: Path | None = None
) -> str:
    script = cwd / "load.lisp"
    script.write_text(NO_COMPILE.format(system=system, then=then))
    full = {**os.environ, **env}
    if registry is not None:
        full["CL_SOURCE_REGISTRY"] = (
            f'(:source-registry (:directory "{registry}/") :inherit-configuration)'
        )
    result = subprocess.run(
        ["sbcl", "--script", str(script)],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert f"LOADED {system}" in result.stdout, result.stdout + result.stderr
    return result.stdout


def loaders_of(fasl: str, p: Path, env: dict[str, str]) -> set[str]:
    """The compiles whose inputs include `fasl`, from plait's own graph (the dump is cached)."""
    from plait.asdf import Policy, add_systems
    from plait.model import Graph
    from plait.store import Store

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        store = Store.open(p)
        graph = Graph()
        add_systems(graph, store, p, ["load:ironclad"], Policy())
        store.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {a.name for a in graph.actions.values() if any(i.endswith("/" + fasl) for i in a.inputs)}


def built(name: str, system: str, env: dict[str, str], tmp_path: Path) -> Path:
    """The project NAME of tests/data/lisp, copied under TMP_PATH, once SYSTEM built there."""
    p = project(name, tmp_path)
    result = plait("build", system, cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return p


def build_written(
    tmp_path: Path, env: dict[str, str], system: str, asd: str, files: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Build SYSTEM, whose .asd is ASD and whose FILES (name: text) are written in TMP_PATH."""
    (tmp_path / f"{system}.asd").write_text(asd)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return plait("build", system, cwd=tmp_path, env=env)


def value_after_loading(system: str, env: dict[str, str], p: Path, form: str) -> str:
    """What FORM prints (princ) in a fresh SBCL that loaded SYSTEM, from project P, with
    compilation impossible."""
    then = f'(format t "~&VALUE ~a~%" {form})'
    out = load_without_compiling(system, env, p, then=then, registry=p)
    found = re.search(r"^VALUE (.*)$", out, re.MULTILINE)
    assert found, out
    return found.group(1)


def report(p: Path) -> dict[str, str]:
    data: dict[str, Any] = json.loads((p / "r.json").read_text())
    return {a["name"]: a["status"] for a in data["actions"]}


@pytest.mark.parametrize(
    "system", ["alexandria", "cl-ppcre", "iterate", "split-sequence", "fiveam"]
)
def test_a_real_system_builds_and_loads_with_compilation_impossible(
    system: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = plait("build", system, "-j", "2", cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    load_without_compiling(system, env, tmp_path)


@pytest.mark.parametrize(
    "system", ["alexandria", "cl-ppcre", "iterate", "split-sequence", "fiveam", "ironclad"]
)
def test_plait_test_passes_where_the_framework_passes(
    system: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = plait("test", system, "-j", "2", cwd=tmp_path, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert f"plait: the tests of '{system}' passed" in result.stdout


@pytest.mark.parametrize(
    ("system", "said"),
    [
        ("plait-failing", "fiveam reported failures"),
        ("plait-failing/nested", "fiveam reported failures"),
        ("plait-failing/erroring", "the tests signalled an error: the test harness broke"),
    ],
)
def test_plait_test_fails_where_the_framework_fails(
    system: str, said: str, env: dict[str, str], tmp_path: Path
) -> None:
    p = project("failing", tmp_path)
    result = plait("test", system, cwd=p, env=env, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert said in result.stdout
    assert f"plait: the tests of '{system}' failed" in result.stdout


def test_plait_test_passes_a_suite_another_system_s_test_op_runs(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("failing", tmp_path)
    result = plait("test", "plait-failing/nested-passing", cwd=p, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plait: the tests of 'plait-failing/nested-passing' passed" in result.stdout


def test_a_test_run_past_its_timeout_is_stopped_and_says_where_it_was(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("failing", tmp_path)
    (p / "plait.toml").write_text("[test]\ntimeout = 3\n")
    started = time.monotonic()
    result = plait("test", "plait-failing/hanging", cwd=p, env=env, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "plait: the tests of 'plait-failing/hanging' timed out after 3 s"
        " (the last line they printed: 'Running test forever-and-ever')"
    ) in result.stdout
    assert time.monotonic() - started < 120
    assert not [pid for pid in running("plait-run:main") if str(p) in _cwd(pid)]
    # --timeout wins over the configuration; a bad one is a usage error.
    assert (
        "after 2 s"
        in plait(
            "test", "plait-failing/hanging", "--timeout", "2", cwd=p, env=env, timeout=300
        ).stdout
    )
    bad = plait("test", "plait-failing/hanging", "--timeout", "0", cwd=p, env=env)
    assert bad.returncode == 2 and "not a whole number of seconds above 0" in bad.stderr


def test_plait_test_runs_several_systems_at_once_and_tabulates_their_verdicts(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("failing", tmp_path)
    named = ["plait-failing/hanging", "plait-failing", "plait-failing/nested-passing"]
    result = plait("test", *named, "--timeout", "10", "-j", "2", cwd=p, env=env, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stdout
    # Two at once: the others end while the first named still runs.
    passed = said.index("plait: the tests of 'plait-failing/nested-passing' passed")
    assert passed < said.index("plait: the tests of 'plait-failing/hanging' timed out")
    table = said[said.index("SYSTEM  ") :].splitlines()[1:]
    verdicts = {row.split("  ")[0]: re.split(r"\s{2,}", row)[1] for row in table if row}
    assert verdicts == {
        "plait-failing/hanging": "timed out",
        "plait-failing": "failed",
        "plait-failing/nested-passing": "passed",
    }


def _cwd(pid: int) -> str:
    try:
        return str(Path(f"/proc/{pid}/cwd").readlink())
    except OSError:
        return ""


@pytest.fixture(scope="module")
def ironclad(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Path]:
    """A copy of ironclad (so that it may be edited), built once."""
    root = tmp_path_factory.mktemp("icl")
    p = root / "ironclad"
    shutil.copytree(DEBIAN / "ironclad", p)
    result = plait(
        "build", "ironclad", "-j", "2", "--report", "r.json", cwd=p, env=env, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    yield p


def test_ironclad_builds_in_parallel_and_its_fasls_work(
    ironclad: Path, env: dict[str, str]
) -> None:
    assert len(report(ironclad)) >= 130
    out = load_without_compiling("ironclad", env, ironclad, DIGEST_ABC, registry=ironclad)
    assert f"SHA256 {SHA256_ABC}" in out


def test_ironclad_bundle_loads_in_a_fresh_sbcl(ironclad: Path, env: dict[str, str]) -> None:
    result = plait("bundle", "ironclad", "-o", "ironclad.fasl", cwd=ironclad, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run(
        [
            "sbcl",
            "--non-interactive",
            "--no-userinit",
            "--load",
            "ironclad.fasl",
            "--eval",
            DIGEST_ABC.replace("\n", " "),
        ],
        cwd=ironclad,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert f"SHA256 {SHA256_ABC}" in run.stdout, run.stdout + run.stderr


def test_touching_ironclad_reruns_nothing_and_an_edit_reruns_one_compile(
    ironclad: Path, env: dict[str, str]
) -> None:
    aes = ironclad / "src" / "ciphers" / "aes.lisp"
    for touched in (aes, ironclad / "src" / "package.lisp"):
        age(touched, -5)  # newer, same bytes
    result = plait("build", "ironclad", "--report", "r.json", cwd=ironclad, env=env)
    assert result.returncode == 0
    assert set(report(ironclad).values()) == {"cached"}
    with aes.open("a") as out:
        out.write("\n(defun plait-test-extra () :extra)\n")
    result = plait("build", "ironclad", "--report", "r.json", cwd=ironclad, env=env)
    assert result.returncode == 0, result.stdout
    ran = {n for n, s in report(ironclad).items() if s == "ran"}
    assert ran == {"compile:ironclad/cipher/aes:aes", *loaders_of("aes.fasl", ironclad, env)}
    assert len(ran) < 5
    # The touched sources are older than every fasl again: ASDF still compiles nothing.
    load_without_compiling("ironclad", env, ironclad, registry=ironclad)


def test_an_edit_reruns_what_loads_the_changed_fasl(env: dict[str, str], tmp_path: Path) -> None:
    p = project("demo", tmp_path)
    assert plait("build", "plait-demo", cwd=p, env=env).returncode == 0
    (p / "util.lisp").write_text(
        "(in-package :plait-demo)\n\n(defun shout (s) (string-upcase s))"
        "\n(defun whisper (s) (string-downcase s))\n"
    )
    result = plait("build", "plait-demo", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0
    ran = sorted(n for n, s in report(p).items() if s == "ran")
    # In `system` mode a compile sees every earlier file of its system, as ASDF's image would.
    assert ran == ["compile:plait-demo:extra", "compile:plait-demo:main", "compile:plait-demo:util"]


def test_a_system_is_compiled_once_whatever_build_asks_for_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Each build's dump (its roots, its project) holds other definitions, but a compile
    # depends only on the .asd files ASDF's plan makes it depend on.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = project("demo", tmp_path)
    assert plait("build", "plait-demo", cwd=p, env=env).returncode == 0
    assert (
        plait("build", "alexandria", "--report", "r.json", cwd=elsewhere, env=env).returncode == 0
    )
    statuses = report(elsewhere)
    assert statuses and set(statuses.values()) == {"cached"}
    with (p / "plait-demo.asd").open("a") as asd:
        asd.write(";; a comment\n")
    result = plait("build", "plait-demo", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0
    ran = {n for n, s in report(p).items() if s == "ran"}
    assert ran == {f"compile:plait-demo:{f}" for f in ("package", "util", "main", "extra")}
    assert f"input '{p / 'plait-demo.asd'}' changed" in result.stdout
    # The dump made again keeps one core: the one it replaces is removed.
    cores = [core(p, env) for _ in range(2)]
    with (p / "plait-demo.asd").open("a") as asd:
        asd.write(";; another comment\n")
    assert plait("build", "plait-demo", cwd=p, env=env).returncode == 0
    assert cores[0] == cores[1] and not cores[0].exists() and core(p, env).is_file()


def core(p: Path, env: dict[str, str]) -> Path:
    """The definitions core a project's compiles run on."""
    graph = plait("graph", "plait-demo", "--format", "json", cwd=p, env=env)
    argvs = [a["argv"] for a in json.loads(graph.stdout)["actions"]]
    return Path(next(argv[2] for argv in argvs if "plait-compile:main" in argv))


def test_fasls_are_the_same_bytes_when_built_again_from_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("demo", tmp_path)
    private = {
        **env,
        "PLAIT_CACHE": str(tmp_path / "store1"),
        "XDG_CACHE_HOME": str(tmp_path / "cache1"),
    }
    assert plait("build", "plait-demo", cwd=p, env=private).returncode == 0
    first = {f.name: f.read_bytes() for f in (tmp_path / "cache1").rglob("demo/*.fasl")}
    assert set(first) == {"package.fasl", "util.fasl", "main.fasl", "extra.fasl"}
    for f in p.glob("*.lisp"):
        age(f, -30)
    again = {
        **private,
        "PLAIT_CACHE": str(tmp_path / "store2"),
        "XDG_CACHE_HOME": str(tmp_path / "cache2"),
    }
    assert plait("build", "plait-demo", cwd=p, env=again).returncode == 0
    second = {f.name: f.read_bytes() for f in (tmp_path / "cache2").rglob("demo/*.fasl")}
    assert first == second


def compile_logs(store: Path) -> dict[str, str]:
    """The last log of each compile, by the compiled file's name."""
    logs = {}
    for log in store.rglob("logs/*/compile_*.log"):
        logs[log.name.rsplit("-", 1)[0].rsplit("_", 1)[-1]] = log.read_text()
    return logs


def test_forked_compiles_make_the_same_fasls_as_fresh_ones(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("demo", tmp_path)
    fasls: dict[str, dict[str, bytes]] = {}
    logs: dict[str, dict[str, str]] = {}
    for mode in ("warm", "cold"):
        private = {
            **env,
            "PLAIT_CACHE": str(tmp_path / f"store-{mode}"),
            "XDG_CACHE_HOME": str(tmp_path / f"cache-{mode}"),
        }
        # Warm, with a job to spare: the compiles fork from the image the dump leaves.
        flags = ["--cold"] if mode == "cold" else ["-j", "2"]
        assert plait("build", "plait-demo", *flags, cwd=p, env=private).returncode == 0
        fasls[mode] = {
            f.name: f.read_bytes() for f in (tmp_path / f"cache-{mode}").rglob("demo/*.fasl")
        }
        logs[mode] = compile_logs(tmp_path / f"store-{mode}")
    assert set(fasls["warm"]) == {"package.fasl", "util.fasl", "main.fasl", "extra.fasl"}
    assert fasls["warm"] == fasls["cold"]
    # Forked from a server that has loaded what it shares with util and extra (alexandria and
    # package), main loads only util itself; a fresh SBCL loads them all.
    assert "loading 1 dependencies" in logs["warm"]["main"]
    assert "loading 29 dependencies" in logs["cold"]["main"]


def test_a_compile_s_worker_does_not_collect_garbage_once_it_has_compiled(
    env: dict[str, str], tmp_path: Path
) -> None:
    # After compiling, the worker loads the fasl to learn what it defines, then exits: what
    # the compile left is not worth collecting. This fasl's load conses ~160 MB of garbage.
    p = project("consing", tmp_path)
    private = {**env, "PLAIT_CACHE": str(tmp_path / "store")}
    assert plait("build", "plait-consing", "-j", "2", cwd=p, env=private).returncode == 0
    log = compile_logs(tmp_path / "store")["consing"]
    assert "plait-consing: no collection while loading 2000" in log


def sbcl_shim(tmp_path: Path, env: dict[str, str]) -> tuple[dict[str, str], Path]:
    """An environment whose sbcl writes its arguments to a file (returned) before it runs."""
    shim = tmp_path / "bin" / "sbcl"
    shim.parent.mkdir()
    log = tmp_path / "sbcl-calls"
    shim.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec /usr/bin/sbcl "$@"\n')
    shim.chmod(0o755)
    return {**env, "PATH": f"{shim.parent}:{os.environ['PATH']}"}, log


def test_compiles_fork_from_the_dumps_image_while_it_saves_the_core(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("demo", tmp_path)
    private = {**env, "PLAIT_CACHE": str(tmp_path / "store")}
    shimmed, log = sbcl_shim(tmp_path, private)
    assert plait("build", "plait-demo", "-j", "2", cwd=p, env=shimmed).returncode == 0
    calls = log.read_text().splitlines()
    # The dump forked the warm server the compiles fork from: none was started on the core.
    assert [c for c in calls if "dump.lisp" in c]
    assert not [c for c in calls if "plait-serve:main" in c]
    # The core is named by what made it: made again, it is the same core, and the compiles
    # that started from it are still up to date.
    (core,) = (tmp_path / "store").glob("cores/*.core")
    core.unlink()
    result = plait("build", "plait-demo", "-j", "2", "--report", "r.json", cwd=p, env=shimmed)
    assert result.returncode == 0
    assert core.is_file()
    assert set(report(p).values()) == {"cached"}


def test_the_dump_saves_its_core_only_once_asked_while_compiles_fork_from_its_server(
    tmp_path: Path, private: Path
) -> None:
    from plait.asdf import Policy, add_systems
    from plait.asdf.warm import WarmPool
    from plait.model import Graph
    from plait.store import Store

    p = project("demo", tmp_path)
    store = Store.open(p)
    pool = WarmPool()
    try:
        built = add_systems(Graph(), store, p, ["load:plait-demo"], Policy(), pool=pool)
        dump = built.dump
        (stderr,) = store.tmp.glob("plait-dump-*/stderr")
        time.sleep(1.5)  # unheld, the save would have begun at once
        assert "plait-dump: saving the core" not in stderr.read_text()
        assert not dump.core_path.exists()
        dump.save()
        assert dump.core.is_file()  # waits for the save it asked for
        dump.finish(store)
    finally:
        pool.close()
        store.close()


def test_a_build_lets_the_dump_save_its_core_when_a_job_slot_would_idle(
    tmp_path: Path, private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plait.asdf.dump import Dump
    from plait.cli import main

    p = project("demo", tmp_path)
    events: list[str] = []
    save, finish = Dump.save, Dump.finish

    def saving(self: Dump) -> None:
        if "save" not in events:
            events.append("save")
        save(self)

    def finishing(self: Dump, store: Any) -> None:
        events.append("finish")
        finish(self, store)

    monkeypatch.setattr(Dump, "save", saving)
    monkeypatch.setattr(Dump, "finish", finishing)
    # alexandria's files compile one after another: a slot idles while ASDF compiles itself.
    assert main(["build", "-C", str(p), "plait-demo", "-j", "2"]) == 0
    assert events == ["save", "finish"]  # asked for before the build's end


def test_an_up_to_date_build_starts_no_lisp(env: dict[str, str], tmp_path: Path) -> None:
    p = project("demo", tmp_path)
    shimmed, log = sbcl_shim(tmp_path, env)
    assert plait("build", "plait-demo", cwd=p, env=shimmed).returncode == 0
    assert log.read_text()
    log.unlink()
    result = plait("build", "plait-demo", "--report", "r.json", cwd=p, env=shimmed)
    assert result.returncode == 0
    assert set(report(p).values()) == {"cached"}
    assert not log.exists()


def test_declared_mode_names_an_undeclared_dependency(env: dict[str, str], tmp_path: Path) -> None:
    private = {**env, "PLAIT_CACHE": str(tmp_path / "store")}
    result = plait(
        "build", "alexandria", "--deps", "declared", "-k", cwd=tmp_path, env=private, timeout=600
    )
    assert result.returncode == 1
    assert "FAILED compile:alexandria:alexandria-2/package" in result.stdout
    assert "with --deps declared this compile saw only what the .asd declares" in result.stdout
    # The hint names the edge: alexandria-1, built by this build, defines the package.
    edge = r'plait: hint: alexandria\.asd:\d+: component "alexandria-2" .*'
    hint = re.search(edge, result.stdout)
    assert hint is not None, result.stdout
    assert hint.group(0).endswith('from "alexandria-1": add :depends-on ("alexandria-1")')
    assert "plait: hint: 'plait lint alexandria' names every :depends-on" in result.stdout


def test_a_compile_error_names_the_file_and_keep_going_builds_the_rest(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("broken", tmp_path)
    result = plait("build", "plait-broken", "-k", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 1
    assert "FAILED compile:plait-broken:bad" in result.stdout
    assert "bad.lisp" in result.stdout
    assert "NO-SUCH-PACKAGE" in result.stdout.upper()
    assert report(p)["compile:plait-broken:good"] == "ran"


def test_a_package_inferred_system_builds_and_loads(env: dict[str, str], tmp_path: Path) -> None:
    p = project("inferred", tmp_path)
    result = plait("build", "plait-inferred", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    # Each file is a system ASDF infers from its package; its one component is ASDF's.
    ran = {n for n, s in report(p).items() if s == "ran" and "plait-inferred" in n}
    assert ran == {f"compile:plait-inferred/{f}:file-type" for f in ("util", "more", "main")}
    assert value_after_loading("plait-inferred", env, p, "(plait-inferred/main:run)") == "12"


def test_a_file_that_requires_a_module_itself_does_not_make_asdf_compile_itself(
    env: dict[str, str], tmp_path: Path
) -> None:
    # REQUIRE makes ASDF operate, and an operate out of a session first upgrades ASDF, compiling
    # its newer self (4 s) when its fasl is not where the sandbox translates it. Under ASDF's
    # plan the session has ASDF upgraded already; so must a compile's, and a load's.
    p = project("requiring", tmp_path)
    result = plait("build", "plait-requiring", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("compile:plait-requiring:uses", "compile:plait-requiring:user"):
        assert report(p)[name] == "ran"
        log = plait("log", name, cwd=p, env=env)
        assert log.returncode == 0, log.stderr
        assert "plait: compiling took" in log.stdout
        assert "asdf.lisp" not in log.stdout
    assert (
        value_after_loading("plait-requiring", env, p, "(plait-requiring:twice-rotated 1)") == "4"
    )


def fasls_under(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*.fasl"))}


def test_cffi_grovel_files_build_deterministically_and_load_naming_where_the_user_has_them(
    tmp_path: Path,
) -> None:
    # cffi-grovel's process-op writes, in its sandbox, the Lisp file that the component's
    # compile-op compiles, and for a wrapper file a library, whose directory that Lisp file
    # names. What the user's images load must name the user's cache, not a sandbox.
    p = project("grovel", tmp_path)
    asdf_lisp = Path("/usr/share/common-lisp/source/cl-asdf/build/asdf.lisp")
    before = asdf_lisp.stat().st_mtime_ns if asdf_lisp.exists() else None
    cache = tmp_path / "cache"
    builds = []
    for store in ("store1", "store2"):  # the second starts afresh: other sandboxes
        env = {"XDG_CACHE_HOME": str(cache), "PLAIT_CACHE": str(tmp_path / store)}
        result = plait("build", "plait-grovel", "-j", "2", cwd=p, env=env, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ran process:plait-grovel:wrappers" in result.stdout
        # Each compile compiled its file alone: finding the system it compiles did not make
        # ASDF load its .asd again, compiling cffi-grovel, needed to load it, in the sandbox.
        for name in ("compile:plait-grovel:wrappers", "compile:plait-grovel:use"):
            log = plait("log", name, cwd=p, env=env).stdout
            assert log.count("; compiling file") == 1, log[-3000:]
        mine = next(cache.rglob("grovel/wrappers.fasl")).parent
        builds.append(fasls_under(mine))
    # The same bytes, from other sandboxes. (cffi's own fasls may differ: the first dump,
    # finding no fasls in the cache, compiles cffi-grovel to load the .asd, the second loads
    # plait's fasls, and cffi's files are compiled in that image.)
    assert len(builds[0]) == 4 and builds[0] == builds[1]
    generated = (mine / "wrappers.processed-wrapper-file").read_text()
    assert f'"{mine}/"' in generated  # the library's directory
    for f in [*mine.glob("*.fasl"), *mine.glob("*.processed-*")]:
        assert b"/work/out/" not in f.read_bytes(), f
    assert (
        f'compiled from "{mine}/wrappers.processed-wrapper-file"'.encode()
        in (mine / "wrappers.fasl").read_bytes()
    )
    # ASDF's own sources are not rewritten: "asdf/defsystem", which cffi-toolchain needs
    # through "asdf", concatenates them into asdf.lisp, and is preloaded.
    if before is not None:
        assert asdf_lisp.stat().st_mtime_ns == before
    assert value_after_loading("plait-grovel", env, p, "(plait-grovel:eintr-twice)") == "8"
    # A comment in the grovel file changes what the C program is, not what it prints: the
    # Lisp file it generates is the same, and nothing after it runs.
    with (p / "constants.lisp").open("a") as spec:
        spec.write(";; a comment\n")
    result = plait("build", "plait-grovel", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [n for n, s in report(p).items() if s == "ran"] == ["process:plait-grovel:constants"]


def test_a_fasl_a_compile_loads_is_where_the_user_s_images_load_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    # A file compiled after another sees the other's *load-truename* as under ASDF: its fasl
    # in the user's cache, not in plait's store (osicat's tests make a directory there).
    p = built("truename", "plait-truename", env, tmp_path)
    form = '(format nil "~a|~a" plait-truename:*compiled-seeing* plait-truename:*loaded-from*)'
    seen, loaded = value_after_loading("plait-truename", env, p, form).split("|")
    assert seen == loaded
    assert seen.startswith(env["XDG_CACHE_HOME"]) and seen.endswith(f"{p}/")


def test_a_compile_out_of_stack_or_heap_fails_saying_so(
    env: dict[str, str], tmp_path: Path
) -> None:
    # --script would make SBCL die with a frame dump on a stack overflow; under ASDF both are
    # conditions, and the failure's last lines must say which.
    p = project("exhausted", tmp_path)
    result = plait("build", "plait-exhausted/stack", "plait-exhausted/heap", "-k", cwd=p, env=env)
    assert result.returncode == 1
    stack, heap = (
        result.stdout.split(f"FAILED compile:plait-exhausted/{name}:")[1].split("full log:")[0]
        for name in ("stack", "heap")
    )
    assert f"  {p / 'stack.lisp'}:" in stack and ": error: Control stack exhausted" in stack
    assert "fatal error" not in stack
    assert f"  {p / 'heap.lisp'}:" in heap and ": error: Heap exhausted" in heap


def test_a_missing_system_is_named_with_where_asdf_looked(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = plait("build", "no-such-system", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "plait: error: ASDF cannot find system 'no-such-system'" in result.stderr
    assert "ASDF looked in" in result.stderr and str(tmp_path) in result.stderr


@pytest.mark.parametrize(
    ("depends_on", "said"),
    [
        ('"no-such-dependency"', "ASDF cannot find system 'no-such-dependency'"),
        ('(:version "alexandria" "99")', "ASDF cannot find system 'alexandria' (version 99)"),
    ],
)
def test_a_missing_dependency_is_named_with_what_needs_it_and_where_asdf_looked(
    depends_on: str, said: str, env: dict[str, str], tmp_path: Path
) -> None:
    asd = f'(defsystem "plait-needy" :depends-on ({depends_on}) :components ((:file "n")))\n'
    result = build_written(tmp_path, env, "plait-needy", asd, {"n.lisp": "(defun n () 1)\n"})
    assert result.returncode == 2
    first, *rest = result.stderr.splitlines()
    assert first == f"plait: error: {said}, which 'plait-needy' depends on"
    assert rest[0].startswith("hint: ASDF looked in") and str(tmp_path) in rest[0]


def test_a_fasl_that_does_not_load_fails_its_compile_saying_why(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Compiling evaluates the defconstant; loading the fasl in that image redefines it with a
    # list that is not EQL: under ASDF, the load-op after the compile fails so.
    asd = '(defsystem "plait-unloadable" :components ((:file "k")))\n'
    k = {"k.lisp": "(defconstant +tones+ (list 1 2))\n"}
    result = build_written(tmp_path, env, "plait-unloadable", asd, k)
    assert result.returncode == 1
    block = result.stdout.split("FAILED compile:plait-unloadable:k")[1]
    assert f"plait: loading the fasl of {tmp_path / 'k.lisp'} failed: " in block
    assert "The constant +TONES+ is being redefined" in block


def test_a_fasl_is_loaded_after_its_compile_by_asdf_s_load_op_with_the_class_s_methods(
    env: dict[str, str], tmp_path: Path
) -> None:
    # As clx's .asd does: its files' class has a method around every operation that keeps a
    # constant whose new value is EQUAL to the old one.
    asd = (
        "(defclass tolerant-file (cl-source-file) ())\n"
        "(defmethod perform :around (o (f tolerant-file))\n"
        "  (handler-bind ((sb-ext:defconstant-uneql\n"
        "                   (lambda (c)\n"
        "                     (when (equal (sb-ext:defconstant-uneql-old-value c)\n"
        "                                  (sb-ext:defconstant-uneql-new-value c))\n"
        "                       (abort c)))))\n"
        "    (call-next-method)))\n"
        '(defsystem "plait-tolerant"\n'
        '  :components ((tolerant-file "k") (:file "m" :depends-on ("k"))))\n'
    )
    files = {"k.lisp": "(defconstant +tones+ (list 1 2))\n", "m.lisp": "(defun tones () +tones+)\n"}
    result = build_written(tmp_path, env, "plait-tolerant", asd, files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert value_after_loading("plait-tolerant", env, tmp_path, "(tones)") == "(1 2)"


def test_a_source_file_the_asd_names_and_that_is_not_there_is_named(
    env: dict[str, str], tmp_path: Path
) -> None:
    asd = '(defsystem "plait-gone" :components ((:file "here") (:file "gone")))\n'
    result = build_written(tmp_path, env, "plait-gone", asd, {"here.lisp": "(defun here () t)\n"})
    assert result.returncode == 2
    first, hint = result.stderr.splitlines()[:2]
    gone = tmp_path / "gone.lisp"
    assert (
        first == f"plait: error: 'compile:plait-gone:gone' compiles '{gone}', which does not exist"
    )
    assert "'plait-gone' names a file that is not there" in hint


def test_a_definition_that_writes_much_does_not_block_the_dump(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The dump's output is read while it runs (stdout) or goes to a file (stderr): megabytes
    written while loading a .asd cannot fill a pipe and stop it."""
    p = tmp_path / "loud"
    p.mkdir()
    (p / "loud.lisp").write_text("(defun loud () :loud)\n")
    (p / "plait-loud.asd").write_text(
        '(dotimes (i 20000) (format t "~80,,,\'xa~%" i) (format *error-output* "~80,,,\'ya~%" i))\n'
        '(defsystem "plait-loud" :components ((:file "loud")))\n'
    )
    result = plait("build", "plait-loud", cwd=p, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran compile:plait-loud:loud" in result.stdout


def test_a_broken_asd_file_is_an_error_not_a_traceback(env: dict[str, str], tmp_path: Path) -> None:
    p = project("badasd", tmp_path)
    result = plait("build", "plait-badasd", cwd=p, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("plait: error: ")
    assert "plait-badasd" in result.stderr and "hint: " in result.stderr
    assert "Traceback" not in result.stderr


def test_without_sbcl_plait_says_how_to_install_it(tmp_path: Path) -> None:
    bare = {"PATH": str(tmp_path)}  # no sbcl here
    result = plait("build", "alexandria", cwd=tmp_path, env=bare)
    assert result.returncode == 2
    assert "SBCL is not installed" in result.stderr
    assert "apt-get install sbcl" in result.stderr


def test_an_undefined_function_is_reported_once_unless_some_file_defines_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("warn", tmp_path)
    strict = plait("build", "plait-warn", cwd=p, env=env)
    assert strict.returncode == 1  # as under ASDF on SBCL: a full WARNING fails the compile
    assert "FAILED compile:plait-warn:loud" in strict.stdout
    result = plait("build", "plait-warn", "--on-failure", "warn", cwd=p, env=env)
    assert result.returncode == 0, result.stdout
    lines = [ln for ln in result.stdout.splitlines() if "undefined function" in ln]
    assert len(lines) == 1
    assert "PLAIT-WARN::NEVER-DEFINED" in lines[0]
    assert "early.lisp" in lines[0] and "late.lisp" in lines[0]
    assert "DEFINED-LATER" not in result.stdout
    assert "DEFINED-AT-COMPILE-TIME" not in result.stdout
    # ASDF prints an undefined variable as a WARNING at the end; plait keeps it too.
    variables = [ln for ln in result.stdout.splitlines() if "undefined variable" in ln]
    early = p / "early.lisp"
    assert variables == [f"plait: undefined variable PLAIT-WARN::*NEVER-DEFINED*, used in {early}"]
    assert "loud.lisp: warning:" in result.stdout
    # ASDF's *compile-file-warnings-behaviour*: with :error, a warning fails the compile too.
    picky = plait(
        "build", "plait-warn", "--on-failure", "warn", "--on-warnings", "error", cwd=p, env=env
    )
    assert picky.returncode == 1
    assert "FAILED compile:plait-warn:loud" in picky.stdout


def test_a_program_runs_its_entry_point(env: dict[str, str], tmp_path: Path) -> None:
    p = project("demo", tmp_path)
    result = plait("program", "plait-demo", "-o", "demo", cwd=p, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run(
        [str(p / "demo"), "plait"], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0
    assert run.stdout.strip() == "hello, PLAIT: 0 1 2"


def test_a_program_needs_an_entry_point(env: dict[str, str], tmp_path: Path) -> None:
    result = plait("program", "split-sequence", "-o", "x", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "declares no :entry-point" in result.stderr


def test_an_entry_point_in_no_package_is_named_without_a_backtrace(
    env: dict[str, str], tmp_path: Path
) -> None:
    args = ("program", "split-sequence", "-o", "x", "--entry", "nopkg::nofn")
    result = plait(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1
    said = "plait: the entry point nopkg::nofn names no function: Package NOPKG does not exist."
    assert said in result.stdout
    assert "Backtrace" not in result.stdout


def test_a_plaitfile_can_build_an_asdf_system_beside_its_actions(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = project("demo", tmp_path)
    (p / "Plaitfile.py").write_text(
        'asdf_system("plait-demo")\n'
        'action("notes", ["cp", "package.lisp", "notes.txt"], inputs=["package.lisp"],'
        ' outputs=["notes.txt"])\n'
    )
    result = plait("build", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    status = report(p)
    assert status["notes"] in ("ran", "cached")
    assert "compile:plait-demo:main" in status
    assert (p / "notes.txt").exists()


def test_defsystem_depends_on_and_around_compile_work_as_under_asdf(
    env: dict[str, str], tmp_path: Path
) -> None:
    p = built("dsd", "plait-dsd", env, tmp_path)
    assert value_after_loading("plait-dsd", env, p, "(plait-dsd:compiled-inside-hook-p)") == "T"


def bundled_asdf_is_older_than_debians() -> bool:
    """Whether SBCL's own ASDF is older than the cl-asdf package's (ASDF then upgrades itself)."""
    argv = ["sbcl", "--non-interactive", "--no-userinit", "--eval", "(require :asdf)"]
    argv += ["--eval", '(format t "~a~%" (asdf:asdf-version))']
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()[-1]
    debian = json.loads((DEBIAN / "cl-asdf" / "version.lisp-expr").read_text())
    return tuple(map(int, out.split("."))) < tuple(map(int, debian.split(".")))


def test_asdf_upgrading_itself_is_a_compile_run_while_the_dump_runs(tmp_path: Path) -> None:
    """The dump loads the newer ASDF from source rather than compiling it first; the fasl that
    ASDF's own upgrade looks for is compiled on SBCL's own core, as ASDF's upgrade does it,
    starting while the dump still runs, so that a later asdf:load-system compiles nothing, not
    even ASDF. Its key owes nothing to the dump: another project's build finds it cached."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PLAIT_CACHE": str(tmp_path / "store")}
    graph = plait("graph", "split-sequence", "--format", "json", cwd=tmp_path, env=env)
    assert graph.returncode == 0, graph.stderr
    names = {a["name"] for a in json.loads(graph.stdout)["actions"]}

    def fasls() -> list[Path]:
        return list((tmp_path / "cache").rglob("cl-asdf/build/asdf.fasl"))

    assert fasls() == []  # asking ASDF for the graph compiled nothing
    if not bundled_asdf_is_older_than_debians():
        assert "compile:asdf:build/asdf" not in names
        return
    assert "compile:asdf:build/asdf" in names
    (tmp_path / "store").rename(tmp_path / "graph-only")  # the build runs the dump again
    args = ("build", "split-sequence", "-j", "2", "--report", "r.json")
    result = plait(*args, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran compile:asdf:build/asdf" in result.stdout
    assert "asdf.lisp" not in result.stdout.split("plait: ok:")[1]  # its style-warnings muffled
    starts = {
        a["name"]: a["start"] for a in json.loads((tmp_path / "r.json").read_text())["actions"]
    }
    upgrade = starts.pop("compile:asdf:build/asdf")
    # After naming the file, the dump still loads ASDF's source (over a second) before the
    # graph exists and any other compile can start.
    assert min(starts.values()) - upgrade > 0.5
    assert len(fasls()) == 1
    load_without_compiling("split-sequence", env, tmp_path)
    other = project("demo", tmp_path)
    again = plait("build", "plait-demo", "-j", "2", cwd=other, env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ran compile:asdf:build/asdf" not in again.stdout
    assert "ran compile:plait-demo:main" in again.stdout


def test_asdf_s_compile_of_itself_leaves_its_survivors_uncollected_longer(
    tmp_path: Path,
) -> None:
    """Like a compile's worker, the process compiling the newer ASDF collects generation 1 after
    200 MB survive into it rather than SBCL's ~10 MB: each such collection copied the compile's
    long-lived data again. An exit hook reports the setting once the compile is done."""
    if not bundled_asdf_is_older_than_debians():
        pytest.skip("SBCL's own ASDF is as new as Debian's: it does not upgrade itself")
    from plait.asdf.dump import sbcl
    from plait.asdf.graph import upgrade_action

    report = tmp_path / "survivors.txt"
    hook = (
        "(push (lambda () (with-open-file (s "
        + json.dumps(str(report))
        + ' :direction :output) (format s "~d" (sb-ext:generation-bytes-consed-between-gcs 1))))'
        " sb-ext:*exit-hooks*)"
    )
    upgrade = Upgrade(
        asd=str(DEBIAN / "cl-asdf" / "asdf.asd"),
        source=str(DEBIAN / "cl-asdf" / "build" / "asdf.lisp"),
        path=("asdf", "build/asdf"),
        outputs=(),
        version="3.3.6",
    )
    action = upgrade_action(upgrade, sbcl())
    argv = list(action.argv)
    main = argv.index("(plait-upgrade:main)") - 1  # its --eval
    argv[main:main] = ["--eval", hook]
    env = {**os.environ, **action.env}
    result = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.rglob("out/**/asdf.fasl"))
    assert int(report.read_text()) == 200 * 1024 * 1024


def test_the_dump_loads_the_newer_asdf_s_fasl_when_the_user_s_cache_has_it(
    tmp_path: Path, private: Path
) -> None:
    """As ASDF's upgrade of itself would: its fasl, where up to date, rather than its source
    (1.3 s). The ASDF version each dump ran tells which it loaded: here a fasl that is not
    ASDF at all leaves SBCL's own, and one SBCL cannot load leaves the source to be loaded."""
    from plait.asdf import dump as dumping
    from plait.store import Store

    if not bundled_asdf_is_older_than_debians():
        pytest.skip("SBCL's own ASDF is as new as Debian's: it does not upgrade itself")

    def dumped(project: str) -> DumpData:
        where = tmp_path / project
        where.mkdir()
        store = Store.open(where)
        try:
            return dumping.load(store, dumping.sbcl(), ["load:split-sequence"], where).data
        finally:
            store.close()

    source = dumped("first")
    assert source.asdf_upgrade is not None
    fasl = Path(next(f for f in source.asdf_upgrade.outputs if f.endswith(".fasl")))
    assert not fasl.exists()
    fasl.parent.mkdir(parents=True)
    (tmp_path / "other.lisp").write_text("(defvar cl-user::*not-asdf* t)\n")
    compiled = f'(compile-file "{tmp_path / "other.lisp"}" :output-file "{fasl}")'
    subprocess.run(
        ["sbcl", "--non-interactive", "--eval", compiled], check=True, capture_output=True
    )
    assert dumped("second").asdf_version != source.asdf_version
    fasl.write_bytes(b"not a fasl")
    assert dumped("third").asdf_version == source.asdf_version


def test_ctrl_c_during_a_lisp_build_stops_it_cleanly_and_the_next_build_goes_on(
    tmp_path: Path,
) -> None:
    """A terminal sends SIGINT to plait's whole process group: the SBCL that found the graph,
    and may be saving its core, is not in it. (ironclad: its compiles go on well after the core
    is saved, so the signal comes while the build runs.)"""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PLAIT_CACHE": str(tmp_path / "store")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "build", "ironclad", "-j", "2"],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a shell's job is
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "store" / "tmp").glob("run-*/plait-dump-*/definitions.core")):
        assert time.monotonic() < deadline and proc.poll() is None, "the core was never saved"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted" in out + err
    assert "Traceback" not in err and "failed" not in out + err, out + err
    again = plait("build", "ironclad", cwd=tmp_path, env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
