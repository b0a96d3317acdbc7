"""Requests in content terms: a request names no file of the machine that made it, its key is
computed from it alone, and an executor runs it on content it gets by digest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plait import digest
from plait.build import Build, Options
from plait.content import Content, LocalContent, MissingContent
from plait.executor import LocalExecutor, Result
from plait.model import Action, Graph
from plait.request import Request
from plait.store import Store
from tests.support import Contents, Harness, act, graph_of


class Recording:
    """An executor that records each request, then has another run it."""

    def __init__(self, inner: LocalExecutor) -> None:
        self.inner = inner
        self.requests: list[Request] = []

    def execute(self, request: Request, content: Content, log: Path) -> Result:
        self.requests.append(request)
        return self.inner.execute(request, content, log)

    def cancel(self) -> None:
        self.inner.cancel()


def pipeline(project: Path) -> Graph:
    """An executable script, a transform of a source and a join of both outputs."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "words.txt").write_text("the cat\n")
    (project / "gen.sh").write_text("#!/bin/sh\necho generated > gen.txt\n")
    (project / "gen.sh").chmod(0o755)
    return graph_of(
        [
            Action("gen", ("./gen.sh",), ("gen.sh",), ("gen.txt",)),
            Action(
                "up", ("sh", "-c", "tr a-z A-Z < words.txt > up.txt"), ("words.txt",), ("up.txt",)
            ),
            Action(
                "join",
                ("sh", "-c", "cat up.txt gen.txt > all.txt"),
                ("up.txt", "gen.txt"),
                ("all.txt",),
            ),
        ],
        ["words.txt", "gen.sh"],
    )


def build(project: Path, graph: Graph, executor: Recording | LocalExecutor) -> dict[str, str]:
    """Build everything; the key the store recorded for each action."""
    store = Store.open(project)
    try:
        report = Build(project, graph, store, executor, lambda e: None, Options(jobs=2)).run([])
        assert report.ok, report.results
        return {name: f.key for name, f in report.results.items()}
    finally:
        store.close()


def test_a_request_runs_unchanged_elsewhere_on_content_it_gets_by_digest(tmp_path: Path) -> None:
    project = tmp_path / "project"
    graph = pipeline(project)
    with LocalExecutor() as local:
        recording = Recording(local)
        keys = build(project, graph, recording)
    made = {p.name: digest.of_file(p) for p in project.iterdir() if p.suffix == ".txt"}
    # The key is computed from the request alone.
    assert {r.name: r.key() for r in recording.requests} == keys
    # Another machine: only a CAS holding the sources' content; the project is gone.
    (tmp_path / "cas").mkdir()
    cas = Contents(tmp_path / "cas")
    for source in ("words.txt", "gen.sh"):
        kept = tmp_path / "cas" / source
        shutil.copyfile(project / source, kept)
        cas.add(kept)
    shutil.rmtree(project)
    by_name = {r.name: r for r in recording.requests}
    with LocalExecutor() as elsewhere:
        for name in ("gen", "up", "join"):  # an order the graph allows
            result = elsewhere.execute(by_name[name], cas, tmp_path / f"{name}.log")
            assert result.ok, (tmp_path / f"{name}.log").read_text()
            for rel, (d, _) in result.outputs.items():
                assert d == made[rel]
    assert cas.data[made["all.txt"].hash] == b"THE CAT\ngenerated\n"


def test_an_input_s_executable_bit_is_part_of_its_key(tmp_path: Path) -> None:
    h = Harness(tmp_path / "project")
    h.write("tool.sh", "echo hi")
    g = graph_of([act("run", ["tool.sh"], ["out"])], ["tool.sh"])
    h.build(g)
    (h.project / "tool.sh").chmod(0o755)
    report = h.build(g)
    assert h.executor.ran == ["run"]
    assert report.results["run"].reason == "an input's executable bit changed"


class EditFirst:
    """An executor that edits a source after the build hashed it, then runs the command."""

    def __init__(self, inner: LocalExecutor, path: Path) -> None:
        self.inner = inner
        self.path = path

    def execute(self, request: Request, content: Content, log: Path) -> Result:
        self.path.write_text("edited while building, and longer\n")
        return self.inner.execute(request, content, log)

    def cancel(self) -> None:
        self.inner.cancel()


def test_a_source_edited_after_it_was_hashed_is_not_built_under_the_old_key(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.txt").write_text("as hashed\n")
    g = graph_of([Action("copy", ("cp", "a.txt", "b.txt"), ("a.txt",), ("b.txt",))], ["a.txt"])
    store = Store.open(project)
    try:
        with LocalExecutor() as local:
            build = Build(
                project, g, store, EditFirst(local, project / "a.txt"), lambda e: None, Options()
            )
            report = build.run([])
        failure = report.results["copy"].failure
        assert not report.ok and failure is not None
        assert "input 'a.txt'" in failure.message and "changed during the build" in failure.message
        assert store.lookup(report.results["copy"].key) is None
        assert not (project / "b.txt").exists()
    finally:
        store.close()


def test_local_content_prefers_an_unchanged_placed_file_then_a_sound_blob(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    placed = project / "x.txt"
    placed.write_text("content\n")
    store = Store.open(project)
    try:
        content = LocalContent(store)
        d = store.file_digest(placed)  # as a build finds a source's digest
        assert d is not None
        content.place(d, placed)
        assert content.file(d) == placed
        placed.write_text("changed since\n")
        with pytest.raises(MissingContent):  # a changed file is not given for its old digest
            content.file(d)
        kept = tmp_path / "kept.txt"
        kept.write_text("content\n")
        assert content.put(kept) == d
        assert content.file(d) == store.blob_path(d)
        assert content.file(d).read_text() == "content\n"
    finally:
        store.close()
