"""`plait gc`: what no project's last build uses goes; what one does stays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from plait import digest
from plait.store import Store
from tests.support import plait, plaitfile_project

PLAITFILE = """
action("copy", ["cp", "in.txt", "out.txt"], inputs=["in.txt"], outputs=["out.txt"])
"""


def project(tmp_path: Path, name: str = "p") -> Path:
    p = plaitfile_project(tmp_path / name, PLAITFILE)
    (p / "in.txt").write_text("first\n")
    return p


def blobs(store: Path) -> set[str]:
    return {b.name for b in (store / "blobs").glob("*/*")}


def ran(p: Path, env: dict[str, str]) -> list[str]:
    result = plait("build", "--report", "r.json", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((p / "r.json").read_text())
    return [a["name"] for a in report["actions"] if a["status"] == "ran"]


def test_gc_removes_what_no_last_build_uses_and_keeps_the_rest(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {"PLAIT_CACHE": str(store)}
    p = project(tmp_path)
    assert ran(p, env) == ["copy"]
    first = digest.of_bytes(b"first\n").hash
    (p / "in.txt").write_text("second\n")
    assert ran(p, env) == ["copy"]
    second = digest.of_bytes(b"second\n").hash
    assert {first, second} <= blobs(store)
    # Young enough: kept.
    kept = plait("gc", cwd=p, env=env)
    assert kept.returncode == 0, kept.stderr
    assert "removed 0 results" in kept.stdout
    assert first in blobs(store)
    gone = plait("gc", "--older-than", "0", cwd=p, env=env)
    assert gone.returncode == 0, gone.stderr
    assert "removed 1 results" in gone.stdout
    assert first not in blobs(store) and second in blobs(store)
    # The last build's result stayed: nothing runs, and a deleted output comes back.
    (p / "out.txt").unlink()
    assert ran(p, env) == []
    assert (p / "out.txt").read_text() == "second\n"
    # Going back to the first input runs again: its result was collected.
    (p / "in.txt").write_text("first\n")
    assert ran(p, env) == ["copy"]


def test_a_project_that_is_gone_is_forgotten_and_its_results_collected(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    env = {"PLAIT_CACHE": str(store)}
    a, b = project(tmp_path, "a"), project(tmp_path, "b")
    (b / "in.txt").write_text("only b\n")
    assert ran(a, env) == ["copy"] and ran(b, env) == ["copy"]
    only_b = digest.of_bytes(b"only b\n").hash
    subprocess.run(["rm", "-rf", str(b)], check=True)
    result = plait("gc", "--older-than", "0", cwd=a, env=env)
    assert result.returncode == 0, result.stderr
    assert "forgot 1 projects" in result.stdout
    assert only_b not in blobs(store)
    assert digest.of_bytes(b"first\n").hash in blobs(store)
    assert ran(a, env) == []


def test_max_size_collects_the_oldest_results_first_but_never_a_last_build(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    env = {"PLAIT_CACHE": str(store)}
    p = project(tmp_path)
    for text in ("one\n", "two\n", "three\n"):
        (p / "in.txt").write_text(text)
        assert ran(p, env) == ["copy"]
    result = plait("gc", "--max-size", "0", cwd=p, env=env)
    assert result.returncode == 0, result.stderr
    assert "removed 2 results" in result.stdout
    assert blobs(store) >= {digest.of_bytes(b"three\n").hash}
    assert digest.of_bytes(b"one\n").hash not in blobs(store)
    assert ran(p, env) == []


def test_max_size_collects_the_least_recently_used_result_first(tmp_path: Path) -> None:
    """'one' is the oldest result but was taken again since; 'two' was not."""
    store = tmp_path / "store"
    env = {"PLAIT_CACHE": str(store)}
    p = project(tmp_path)
    for text in ("one\n", "two\n", "three\n"):
        (p / "in.txt").write_text(text)
        assert ran(p, env) == ["copy"]
    for text in ("one\n", "three\n"):
        (p / "in.txt").write_text(text)
        assert ran(p, env) == []
    kept = {digest.of_bytes(t).hash: len(t) for t in (b"one\n", b"three\n")}
    result = plait("gc", "--max-size", str(sum(kept.values())), cwd=p, env=env)
    assert result.returncode == 0, result.stderr
    assert "removed 1 results" in result.stdout
    assert blobs(store) == set(kept)


def test_gc_waits_until_no_other_plait_has_the_store_open(tmp_path: Path) -> None:
    store = tmp_path / "store"
    p = project(tmp_path)
    other = Store.open(p, store)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "plait", "gc"],
            cwd=p,
            env={"PLAIT_CACHE": str(store), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        assert "waiting for the other plaits using this store" in proc.stderr.readline()
        assert proc.poll() is None
    finally:
        other.close()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "removed" in out


def test_a_bad_size_or_age_is_a_usage_error(tmp_path: Path) -> None:
    p = project(tmp_path)
    env = {"PLAIT_CACHE": str(tmp_path / "store")}
    bad = plait("gc", "--max-size", "lots", cwd=p, env=env)
    assert bad.returncode == 2
    assert "--max-size 'lots' is not a size" in bad.stderr and "hint:" in bad.stderr
    assert plait("gc", "--older-than", "-1", cwd=p, env=env).returncode == 2
