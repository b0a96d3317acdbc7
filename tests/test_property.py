"""Random DAGs of file-producing actions and random edits: the incremental build's outputs equal a
clean build's, and no action runs whose key did not change."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait.model import Graph
from tests.support import Harness, act, graph_of


@dataclass(frozen=True)
class Spec:
    sources: int
    actions: tuple[tuple[tuple[int, ...], str], ...]  # (indices into sources+outputs, mode)


def paths(spec: Spec) -> list[str]:
    return [f"src/{i}.txt" for i in range(spec.sources)] + [
        f"out/{i}.txt" for i in range(len(spec.actions))
    ]


def make_graph(spec: Spec) -> Graph:
    names = paths(spec)
    actions = [
        act(f"a{i}", [names[k] for k in inputs], [f"out/{i}.txt"], argv=("fake", mode))
        for i, (inputs, mode) in enumerate(spec.actions)
    ]
    return graph_of(actions, names[: spec.sources])


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    sources = draw(st.integers(1, 3))
    n = draw(st.integers(1, 7))
    actions = []
    for i in range(n):
        available = sources + i
        inputs = draw(st.sets(st.integers(0, available - 1), min_size=1, max_size=3))
        actions.append((tuple(sorted(inputs)), draw(st.sampled_from(["cat", "len"]))))
    return Spec(sources, tuple(actions))


# An edit: ("write", source, text) | ("touch", source, "") | ("delete", output, "")
edits = st.lists(
    st.tuples(
        st.sampled_from(["write", "touch", "delete"]),
        st.integers(0, 6),
        st.text(alphabet="ab", max_size=3),  # short texts of few lengths: early cutoff is common
    ),
    min_size=1,
    max_size=6,
)


def outputs(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "out").glob("*"))}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), changes=edits)
def test_incremental_builds_equal_clean_builds_and_run_only_changed_keys(
    spec: Spec, changes: list[tuple[str, int, str]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Harness(Path(tmp) / "incremental")
        for i in range(spec.sources):
            work.write(f"src/{i}.txt", f"source {i}")
        report = work.build(make_graph(spec))
        assert report.ok
        keys = {name: f.key for name, f in report.results.items()}

        for step, (kind, index, text) in enumerate(changes):
            if kind == "write":
                work.write(f"src/{index % spec.sources}.txt", text)
            elif kind == "touch":
                path = work.project / f"src/{index % spec.sources}.txt"
                os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
            else:
                (work.project / f"out/{index % len(spec.actions)}.txt").unlink(missing_ok=True)

            report = work.build(make_graph(spec))
            assert report.ok
            for name, finished in report.results.items():
                if finished.status == "ran":
                    assert finished.key != keys[name], f"{name} ran with an unchanged key"
            keys = {name: f.key for name, f in report.results.items()}

            clean = Harness(Path(tmp) / f"clean{step}")
            for src in (work.project / "src").iterdir():
                clean.write(f"src/{src.name}", src.read_text())
            assert clean.build(make_graph(spec)).ok
            assert outputs(work.project) == outputs(clean.project)
