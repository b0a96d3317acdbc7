"""bench/gen.py writes one graph three times: Plaitfile.py, build.ninja and Makefile agree."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from plait import plaitfile
from tests.support import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import gen

Edge = tuple[tuple[str, ...], frozenset[str], frozenset[str]]


def from_plaitfile(root: Path) -> set[Edge]:
    graph = plaitfile.load(root)
    return {(a.argv, frozenset(a.inputs), frozenset(a.outputs)) for a in graph.actions.values()}


def from_ninja(root: Path) -> set[Edge]:
    edges: set[Edge] = set()
    lines = (root / "build.ninja").read_text().splitlines()
    for line, nxt in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith("build ") and ": run " in line:
            outs, ins = line[len("build ") :].split(": run ")
            assert nxt.startswith("  cmd = ")
            argv = tuple(shlex.split(nxt[len("  cmd = ") :]))
            edges.add((argv, frozenset(ins.split()), frozenset(outs.split())))
    return edges


def from_make(root: Path) -> set[Edge]:
    edges: set[Edge] = set()
    lines = (root / "Makefile").read_text().splitlines()
    for line, nxt in zip(lines, [*lines[1:], ""], strict=True):
        if ": " in line and nxt.startswith("\t") and not line.startswith("."):
            outs, ins = line.split(": ")
            edges.add(
                (tuple(shlex.split(nxt[1:])), frozenset(ins.split()), frozenset(outs.split()))
            )
    return edges


def test_the_three_build_files_describe_the_same_graph(tmp_path: Path) -> None:
    steps = gen.generate(120, tmp_path)
    plait_edges = from_plaitfile(tmp_path)
    assert len(plait_edges) == len(steps) == 120 + 3 + 2  # objects, 3 archives, main, link
    assert from_ninja(tmp_path) == plait_edges
    assert from_make(tmp_path) == plait_edges


def test_each_common_header_is_used_by_a_tenth_of_the_files(tmp_path: Path) -> None:
    steps = gen.generate(200, tmp_path)
    users = [s for s in steps if "include/common3.h" in s.inputs]
    assert len(users) == 20
    for s in users:  # and the file really includes it
        source = next(i for i in s.inputs if i.endswith(".c"))
        assert '#include "common3.h"' in (tmp_path / source).read_text()
