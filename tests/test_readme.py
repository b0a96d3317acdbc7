"""The README's code runs as written: its two commands, its tour, its Plaitfiles."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, plait

README = ROOT / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def commands() -> list[str]:
    """The README's opening commands: set up and run the main job; set up and test."""
    return blocks("sh")[0].strip().splitlines()


def test_the_readme_stays_a_short_user_s_document() -> None:
    assert len(README.read_bytes()) <= 12 * 1024


def test_ci_runs_the_readme_s_test_command() -> None:
    test_command = commands()[1]
    assert test_command == "./setup --dev && python3 -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci
    assert ci.index("./setup --dev") < ci.index(test_command)


def lisp_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PLAIT_CACHE": str(tmp_path / "store"),
    }


@pytest.mark.lisp
def test_the_first_command_builds_a_lisp_program_and_runs_it(tmp_path: Path) -> None:
    # Run from the checkout, as a newcomer would (./setup is quick once everything is there).
    first = commands()[0].replace("/tmp/wordcount", str(tmp_path / "wordcount"))
    result = subprocess.run(
        ["bash", "-c", first], cwd=ROOT, env=lisp_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = [line.split() for line in result.stdout.splitlines() if line.startswith("   ")]
    assert counts == [["2", "the"], ["1", "cat"], ["1", "hat"], ["1", "saw"]]


@pytest.mark.lisp
def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    tour = blocks("sh")[1]
    script = "set -ex\n" + tour
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=lisp_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    project = tmp_path / "examples" / "wordcount"
    assert "ran compile:wordcount:main (input " in out and "main.lisp' changed)" in out
    assert "plait: ok: 1 ran" in out  # the edit reran one compile and nothing else
    assert "plait: the tests of 'wordcount' passed" in out
    assert "(cached: nothing it loads changed since it passed)" in out
    assert re.search(r"^\s+2 a$", out, re.M) and re.search(r"^\s+1 b$", out, re.M)
    assert (project / "wordcount.fasl").stat().st_size > 0
    trace = json.loads((project / "trace.json").read_text())
    assert "compile:wordcount:main" in {e["name"] for e in trace["traceEvents"]}


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_plaitfile_example_builds(index: int, tmp_path: Path) -> None:
    text = blocks("python")[index]
    first = text.splitlines()[0]
    # "# Plaitfile.py, beside a.txt and b.txt": the files the example reads.
    beside = re.findall(r"(\S+\.\w+)", first.partition("beside")[2])
    for name in beside:
        (tmp_path / name).write_text(f"{name.split('.')[0]}\n")
    (tmp_path / "Plaitfile.py").write_text(text)
    result = plait("build", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran " in result.stdout and "failed" not in result.stdout


@pytest.mark.remote
@pytest.mark.lisp
def test_the_farm_runs_as_written(tmp_path: Path) -> None:
    """The README's farm on one machine, in a directory and on a port of the test's own."""
    from tests.buildgrid import farm, free_port

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    block = next(b for b in blocks("sh") if "deploy/farm start" in b)
    port = str(free_port())
    script = (
        block.replace("/tmp/farm", str(tmp_path / "farm"))
        .replace("50051", port)
        .replace("deploy/farm", str(ROOT / "deploy" / "farm"))
    )
    try:
        result = subprocess.run(
            ["bash", "-c", "set -ex\n" + script],
            cwd=tmp_path,
            env=lisp_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        farm.stop(tmp_path / "farm")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "with 2 workers" in out
    # ASDF's own compile needs no definitions core: it goes to the farm at once.
    assert re.search(r"ran compile:asdf:build/asdf \(never built, on farm-[01]\)", out), out
    assert "plait: warning" not in out
