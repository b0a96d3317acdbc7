"""The remote cache, against a real BuildGrid: a second machine takes what the first uploaded,
checks every byte, and builds here whenever the server cannot help."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from plait import digest
from tests.buildgrid import Farm, buildgrid, free_port
from tests.support import ROOT, plait, plaitfile_project
from tests.test_asdf import load_without_compiling

__all__ = ["buildgrid"]

pytestmark = pytest.mark.remote


def project(directory: Path, tag: str) -> Path:
    """Two actions whose outputs are unique to `tag`, one of them 3 MB (ByteStream, not a batch)."""
    return plaitfile_project(
        directory,
        f"action('one', ['sh', '-c', 'echo {tag} > one.txt'], outputs=['one.txt'])\n"
        "action('two', ['sh', '-c', 'cat one.txt one.txt > two.txt;"
        " yes one | head -c 3000000 > big.bin; cat one.txt >> big.bin'],\n"
        "       inputs=['one.txt'], outputs=['two.txt', 'big.bin'])\n",
    )


def machine(tmp_path: Path, name: str, source: Path) -> tuple[Path, dict[str, str]]:
    """A copy of `source`'s project on another "machine": a store, fasl cache and home of its
    own."""
    p = tmp_path / name / "project"
    shutil.copytree(source, p, ignore=shutil.ignore_patterns(".plait", "*.txt", "*.bin", "r.json"))
    return p, home(tmp_path / name)


def home(directory: Path) -> dict[str, str]:
    """The environment of a machine whose store, home and fasl cache are under `directory`."""
    (directory / "home").mkdir(parents=True)
    return {
        "PLAIT_CACHE": str(directory / "store"),
        "XDG_CACHE_HOME": str(directory / "home" / ".cache"),
        "HOME": str(directory / "home"),
    }


def statuses(p: Path) -> dict[str, tuple[str, str]]:
    report = json.loads((p / "r.json").read_text())
    return {a["name"]: (a["status"], a["reason"]) for a in report["actions"]}


def build(p: Path, env: dict[str, str], *args: str) -> str:
    result = plait("build", "--report", "r.json", *args, cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_a_second_machine_takes_what_the_first_uploaded(tmp_path: Path, buildgrid: Farm) -> None:
    first, env1 = machine(tmp_path, "first", project(tmp_path / "src", "hit"))
    build(first, env1, "--remote", buildgrid.url, "--remote-upload")
    assert {s for s, _ in statuses(first).values()} == {"ran"}
    second, env2 = machine(tmp_path, "second", first)
    said = build(second, env2, "--remote", buildgrid.url)
    hit = ("cached", "never built, restored from the remote cache")
    assert statuses(second) == dict.fromkeys(("one", "two"), hit), said
    for name in ("one.txt", "two.txt", "big.bin"):
        assert (second / name).read_bytes() == (first / name).read_bytes()
    # The second machine's own store has it now: no remote needed.
    for name in ("one.txt", "two.txt", "big.bin"):
        (second / name).unlink()
    build(second, env2)
    assert {s for s, _ in statuses(second).values()} == {"cached"}


def test_nothing_is_uploaded_without_remote_upload(tmp_path: Path, buildgrid: Farm) -> None:
    first, env1 = machine(tmp_path, "first", project(tmp_path / "src", "no-upload"))
    build(first, env1, "--remote", buildgrid.url)
    second, env2 = machine(tmp_path, "second", first)
    build(second, env2, "--remote", buildgrid.url)
    assert {s for s, _ in statuses(second).values()} == {"ran"}


def test_a_failed_action_is_never_uploaded(tmp_path: Path, buildgrid: Farm) -> None:
    src = plaitfile_project(
        tmp_path / "src",
        "action('good', ['sh', '-c', 'echo good-upload > good.txt'], outputs=['good.txt'])\n"
        "action('bad', ['sh', '-c', 'echo bad-upload > bad.txt; exit 1'], outputs=['bad.txt'])\n",
    )
    first, env1 = machine(tmp_path, "first", src)
    failed = plait("build", "-k", "--remote", buildgrid.url, "--remote-upload", cwd=first, env=env1)
    assert failed.returncode == 1
    second, env2 = machine(tmp_path, "second", src)
    again = plait(
        "build", "-k", "--report", "r.json", "--remote", buildgrid.url, cwd=second, env=env2
    )
    assert again.returncode == 1
    assert statuses(second)["good"][0] == "cached"
    assert statuses(second)["bad"][0] == "failed"


def test_a_blob_that_does_not_match_its_digest_is_never_used(
    tmp_path: Path, buildgrid: Farm
) -> None:
    first, env1 = machine(tmp_path, "first", project(tmp_path / "src", "poison"))
    build(first, env1, "--remote", buildgrid.url, "--remote-upload")
    wanted = (first / "one.txt").read_bytes()
    poisoned = buildgrid.blob(digest.of_bytes(wanted).hash)
    assert poisoned.is_file()
    poisoned.write_bytes(b"tampered with\n")
    second, env2 = machine(tmp_path, "second", first)
    said = build(second, env2, "--remote", buildgrid.url)
    assert statuses(second)["one"][0] == "ran"
    assert (second / "one.txt").read_bytes() == wanted
    warnings = [ln for ln in said.splitlines() if "do not match their digest" in ln]
    assert len(warnings) == 1, said


def test_blobs_evicted_since_their_result_was_stored_are_built_here(
    tmp_path: Path, buildgrid: Farm
) -> None:
    """one.txt comes in a batch, big.bin by ByteStream: both gone from the server's CAS."""
    first, env1 = machine(tmp_path, "first", project(tmp_path / "src", "evicted"))
    build(first, env1, "--remote", buildgrid.url, "--remote-upload")
    for name in ("one.txt", "big.bin"):
        blob = buildgrid.blob(digest.of_file(first / name).hash)
        assert blob.is_file()
        blob.unlink()
    second, env2 = machine(tmp_path, "second", first)
    said = build(second, env2, "--remote", buildgrid.url)
    assert {name: s for name, (s, _) in statuses(second).items()} == {"one": "ran", "two": "ran"}
    assert "warning" not in said, said
    for name in ("one.txt", "two.txt", "big.bin"):
        assert (second / name).read_bytes() == (first / name).read_bytes()


def test_a_server_that_is_not_there_leaves_the_build_local_with_one_warning(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens on it
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    p, env = machine(tmp_path, "alone", project(tmp_path / "src", "down"))
    said = build(p, env, "--remote", f"grpc://127.0.0.1:{port}", "--remote-upload")
    assert {s for s, _ in statuses(p).values()} == {"ran"}
    warnings = [ln for ln in said.splitlines() if "warning: the remote cache" in ln]
    assert len(warnings) == 1, said
    assert f"grpc://127.0.0.1:{port}" in warnings[0]


def test_a_build_with_nothing_to_run_does_not_load_the_remote_client(tmp_path: Path) -> None:
    """A no-op build stays fast with a farm configured: BuildGrid's client (half a second of
    imports) is loaded only by a call to the server."""
    p, env = machine(tmp_path, "idle", project(tmp_path / "src", "idle"))
    build(p, env)
    code = (
        "import sys\n"
        "from plait import cli\n"
        "status = cli.main(['build', '--remote', 'grpc://127.0.0.1:1', '--remote-exec'])\n"
        "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'buildgrid', 'grpc'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=p,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr


def test_the_remote_comes_from_plait_toml_or_plait_remote(tmp_path: Path, buildgrid: Farm) -> None:
    src = project(tmp_path / "src", "configured")
    (src / "plait.toml").write_text(f'[remote]\nurl = "{buildgrid.url}"\nupload = true\n')
    first, env1 = machine(tmp_path, "first", src)
    build(first, env1)
    second, env2 = machine(tmp_path, "second", src)
    (second / "plait.toml").unlink()
    build(second, {**env2, "PLAIT_REMOTE": buildgrid.url})
    assert {s for s, _ in statuses(second).values()} == {"cached"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[remote]\nurl = "grpc://h:1"\nupload = "yes"\n', "[remote] upload = 'yes'"),
        ("[remote\n", "plait.toml:1: "),
        ("[cache]\nurl = 1\n", "unknown setting 'cache'"),
        ('[remote]\nurl = "http://h:1"\n', "not a REAPI server address"),
    ],
)
def test_a_bad_configuration_is_an_error_with_a_hint(tmp_path: Path, text: str, said: str) -> None:
    p = project(tmp_path / "p", "bad-config")
    (p / "plait.toml").write_text(text)
    result = plait("build", cwd=p)
    assert result.returncode == 2
    assert said in result.stderr and "hint:" in result.stderr, result.stderr
    assert not (p / "one.txt").exists()


@pytest.mark.lisp
def test_a_lisp_build_on_a_second_machine_compiles_nothing_and_loads(
    tmp_path: Path, buildgrid: Farm
) -> None:
    """The project at one path on both machines (its fasls name their sources); each machine
    has a store, fasl cache and home of its own."""
    p = tmp_path / "wordcount"
    shutil.copytree(ROOT / "examples" / "wordcount", p)
    machines = [home(tmp_path / name) for name in ("first", "second")]
    build(p, machines[0], "--remote", buildgrid.url, "--remote-upload")
    assert any(s == "ran" for s, _ in statuses(p).values())
    build(p, machines[1], "--remote", buildgrid.url)
    ran = [name for name, (s, _) in statuses(p).items() if s == "ran"]
    assert ran == []
    fasls = [
        {str(f.relative_to(m["XDG_CACHE_HOME"])): f.read_bytes() for f in fasl_files(m)}
        for m in machines
    ]
    assert fasls[0] == fasls[1] and len(fasls[1]) >= 30
    out = load_without_compiling("wordcount", machines[1], p, registry=p)
    assert "LOADED wordcount" in out


def fasl_files(machine: dict[str, str]) -> list[Path]:
    return sorted(Path(machine["XDG_CACHE_HOME"]).rglob("*.fasl"))


def test_a_passing_test_verdict_is_shared_like_fasls(tmp_path: Path, buildgrid: Farm) -> None:
    """A verdict CI uploaded holds on a second machine, which neither compiles nor runs the
    tests; a failed one is never uploaded."""
    p = tmp_path / "frameworks"
    shutil.copytree(ROOT / "tests" / "data" / "lisp" / "frameworks", p)
    passing, failing = "plait-frameworks/fiveam-pass", "plait-frameworks/fiveam-fail"
    machines = [home(tmp_path / name) for name in ("first", "second")]
    first = plait(
        "test", passing, failing, "--remote", buildgrid.url, "--remote-upload",
        cwd=p, env=machines[0], timeout=600,
    )  # fmt: skip
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr
    second = plait(
        "test", passing, failing, "--remote", buildgrid.url, "--report", "r.json",
        cwd=p, env=machines[1], timeout=600,
    )  # fmt: skip
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr
    assert (
        f"plait: the tests of '{passing}' passed: 1 suite, 1 test passed"
        " (cached: found in the remote cache)"
    ) in second.stdout
    verdicts = {t["system"]: t for t in json.loads((p / "r.json").read_text())["tests"]}
    assert verdicts[passing]["cached"] == "found in the remote cache"
    assert verdicts[failing]["cached"] is None  # it ran again: its failure was not shared
    assert "Running test suite PLAIT-FW-FIVEAM-PASS" not in second.stdout
    assert "Running test suite PLAIT-FW-FIVEAM-FAIL" in second.stdout
