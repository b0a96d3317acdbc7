"""Seeing and replaying builds: explain, trace and summary, graph, record/replay/shuffle, export to
ninja and make, log — on a Plaitfile project and on an ASDF system."""

from __future__ import annotations

import io
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from plait.events import BuildEnded, Finished, Planned, Started
from plait.reporter import ConsoleReporter
from plait.trace import critical_path
from tests.conftest import need
from tests.support import DATA, ROOT, plait

pytestmark = pytest.mark.e2e


def hello(tmp_path: Path, name: str = "hello") -> Path:
    dest = tmp_path / name
    shutil.copytree(
        ROOT / "examples" / "hello-c", dest, ignore=shutil.ignore_patterns(".plait", "build")
    )
    return dest


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = plait(*args, cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_explain_says_why_each_action_would_run_and_why_the_last_ones_ran(tmp_path: Path) -> None:
    p = hello(tmp_path)
    assert ok("explain", cwd=p).splitlines()[0] == "compile:hello/greetings: never built"
    ok("build", cwd=p)
    assert ok("explain", cwd=p).strip() == "plait: nothing would run"
    with (p / "data/greetings.txt").open("a") as f:
        f.write("hej\n")
    with (p / "tests/expected.txt").open("a") as f:
        f.write("hej, world!\n")
    (p / "src/main.c").write_text((p / "src/main.c").read_text() + "\n/* edited */\n")
    lines = ok("explain", cwd=p).splitlines()
    assert "compile:hello/greetings: input 'data/greetings.txt' changed" in lines
    assert "compile:hello/src/main: dependency 'compile:hello/greetings' will run" in lines
    ok("build", cwd=p)
    last = ok("explain", "--last", cwd=p).splitlines()
    assert "compile:hello/greetings: input 'data/greetings.txt' changed" in last
    assert any(
        line.startswith(
            "compile:hello/src/greet: dependency 'compile:hello/greetings'"
            " produced different output"
        )
        for line in last
    )


def test_the_trace_is_valid_trace_event_json_and_the_summary_names_the_critical_path(
    tmp_path: Path,
) -> None:
    p = hello(tmp_path)
    out = ok("build", "-j", "2", "--trace", "t.json", "--report", "r.json", cwd=p)
    events = read(p / "t.json")["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    report = read(p / "r.json")["actions"]
    assert sorted(e["name"] for e in complete) == sorted(a["name"] for a in report)
    for e in complete:
        assert set(e) >= {"name", "ph", "ts", "dur", "pid", "tid", "args"}
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0
        assert e["args"]["status"] == "ran" and len(e["args"]["key"]) == 64
        assert e["tid"] in (0, 1)  # one track per job slot
    names = {
        e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert names[0] == "job 0" and names[1] == "job 1"
    # Two actions on one slot never overlap.
    for slot in (0, 1):
        spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in complete if e["tid"] == slot)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # The summary's critical path is the one the graph and the recorded durations give.
    graph = read_graph(p)
    durations = {a["name"]: a["end"] - a["start"] for a in report}
    length, path = critical_path(
        [a["name"] for a in graph["actions"]],
        {a["name"]: a["deps"] for a in graph["actions"]},
        durations,
    )
    summary = next(line for line in out.splitlines() if "critical path" in line)
    assert summary.endswith(f"critical path {length:.2f}s: " + " -> ".join(path))
    assert path[0] == "compile:hello/greetings" and path[-1] == "test:hello"


def read_graph(p: Path) -> Any:
    return json.loads(ok("graph", "--format", "json", cwd=p))


def test_graph_renders_with_graphviz(tmp_path: Path) -> None:
    p = hello(tmp_path)
    text = ok("graph", cwd=p)
    assert '"compile:hello/greetings" -> "compile:hello/src/greet";' in text
    if shutil.which("dot"):
        svg = subprocess.run(
            ["dot", "-Tsvg"], input=text, capture_output=True, text=True, check=True
        ).stdout
        assert "<svg" in svg and "link:hello" in svg
    assert [a["name"] for a in read_graph(p)["actions"]][-1] == "test:hello"


def test_a_replay_starts_actions_in_the_recorded_order(tmp_path: Path) -> None:
    p = scenario_wide(tmp_path)
    ok("build", "-j", "2", "--shuffle", "7", "--record", "first.json", cwd=p)
    recorded = read(p / "first.json")["started"]
    shutil.rmtree(p / ".plait")
    # The store that knew plait wrote the outputs is gone: replacing them takes --force.
    ok("build", "-j", "2", "--force", "--replay", "first.json", "--record", "second.json", cwd=p)
    assert read(p / "second.json")["started"] == recorded


def test_the_same_shuffle_seed_gives_the_same_order_and_another_seed_another(
    tmp_path: Path,
) -> None:
    p = scenario_wide(tmp_path)
    orders = []
    for seed in ("1", "1", "2"):
        shutil.rmtree(p / ".plait", ignore_errors=True)
        ok("build", "-j", "1", "--force", "--shuffle", seed, "--record", "r.json", cwd=p)
        orders.append(read(p / "r.json")["started"])
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]
    assert sorted(orders[0]) == sorted(orders[2])


def scenario_wide(tmp_path: Path) -> Path:
    """Twelve independent actions and one that needs them all."""
    p = tmp_path / "wide"
    p.mkdir()
    lines = [
        f'action("a{i}", ["sh", "-c", "echo {i} > o{i}"], outputs=["o{i}"])' for i in range(12)
    ]
    lines.append(
        'action("all", ["sh", "-c", "cat o* > all"], '
        f'inputs={[f"o{i}" for i in range(12)]!r}, outputs=["all"])'
    )
    (p / "Plaitfile.py").write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("tool", ["ninja", "make"])
def test_an_exported_build_file_builds_the_same_bytes(tool: str, tmp_path: Path) -> None:
    need(tool)
    built = hello(tmp_path, "with-plait")
    ok("build", cwd=built)
    fresh = hello(tmp_path, f"with-{tool}")
    ok("export", "--format", tool, "-o", "exported", cwd=fresh)
    argv = ["ninja", "-f", "exported"] if tool == "ninja" else ["make", "-f", "exported", "-j"]
    subprocess.run(argv, cwd=fresh, check=True, capture_output=True)
    outputs = [o for a in read_graph(built)["actions"] for o in a["outputs"]]
    assert len(outputs) == 5
    for rel in outputs:
        assert (fresh / rel).read_bytes() == (built / rel).read_bytes(), rel


def test_log_prints_the_last_run_of_an_action(tmp_path: Path) -> None:
    p = hello(tmp_path)
    ok("build", cwd=p)
    assert ok("log", "test:hello", cwd=p).startswith("PASS: build/hello")
    result = plait("log", "nope", cwd=p)
    assert result.returncode == 2 and "no log for action 'nope'" in result.stderr


# -- the same on an ASDF system ----------------------------------------------------------------


@pytest.fixture
def lisp(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    need("sbcl")
    p = tmp_path / "demo"
    shutil.copytree(DATA / "lisp" / "demo", p)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    return p, env


def test_explain_trace_graph_record_and_log_on_an_asdf_system(
    lisp: tuple[Path, dict[str, str]],
) -> None:
    p, env = lisp
    lines = ok("explain", "plait-demo", cwd=p, env=env).splitlines()
    assert "compile:alexandria:alexandria-1/package: never built" in lines
    assert (
        "compile:plait-demo:main: dependency 'compile:alexandria:alexandria-1/package'"
        " will run" in lines
    )
    out = ok(
        "build", "plait-demo", "-j", "2", "--trace", "t.json", "--record", "r.json", cwd=p, env=env
    )
    assert "critical path" in out
    events = [e for e in read(p / "t.json")["traceEvents"] if e["ph"] == "X"]
    assert "compile:plait-demo:main" in {e["name"] for e in events}
    assert read(p / "r.json")["started"][-1].startswith("compile:plait-demo:")
    assert "compile:plait-demo:main: never built" in ok("explain", "--last", cwd=p, env=env)
    assert '"compile:plait-demo:util" -> "compile:plait-demo:main";' in ok(
        "graph", "plait-demo", cwd=p, env=env
    )
    log = ok("log", "compile:plait-demo:main", cwd=p, env=env)
    # Each phase of a compile says its wall time, its GC, its CPU and the pages it faulted in.
    phases = re.findall(
        r"plait: (loading \d+ dependencies|compiling|recording definitions) took [\d.]+s "
        r"\(gc [\d.]+s, cpu ([\d.]+)s, (\d+) page faults\)",
        log,
    )
    assert [phase[0] for phase in phases][1:] == ["compiling", "recording definitions"], log
    assert float(phases[1][1]) > 0 and int(phases[1][2]) > 0
    recorded = read(p / "r.json")["started"]
    shutil.rmtree(p / ".plait")
    fresh = {**env, "XDG_CACHE_HOME": str(p.parent / "cache2")}
    ok(
        "build",
        "plait-demo",
        "-j",
        "2",
        "--replay",
        "r.json",
        "--record",
        "again.json",
        cwd=p,
        env=fresh,
    )
    assert read(p / "again.json")["started"] == recorded


@pytest.mark.parametrize("tool", ["ninja", "make"])
def test_an_exported_build_file_compiles_the_system_as_plait_does(
    tool: str, lisp: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    need(tool)
    p, env = lisp
    ok("build", "plait-demo", cwd=p, env=env)
    elsewhere = tmp_path / f"{tool}-run"
    elsewhere.mkdir()
    exported = str(elsewhere / "exported")
    ok("export", "plait-demo", "--format", tool, "-o", exported, cwd=p, env=env)
    argv = ["ninja", "-f", "exported"] if tool == "ninja" else ["make", "-f", "exported", "-j2"]
    subprocess.run(argv, cwd=elsewhere, check=True, capture_output=True, timeout=600)
    mine = {f.name: f.read_bytes() for f in (tmp_path / "cache").rglob("demo/*.fasl")}
    theirs = {f.name: f.read_bytes() for f in elsewhere.rglob("demo/*.fasl")}
    assert set(mine) == {"package.fasl", "util.fasl", "main.fasl", "extra.fasl"}
    assert theirs == mine


def test_a_replay_file_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    p = scenario_wide(tmp_path)
    (p / "bad.json").write_text('{"order": []}')
    result = plait("build", "--replay", "bad.json", cwd=p)
    assert result.returncode == 2
    assert "is not a recording of a build" in result.stderr and "hint:" in result.stderr


def test_on_a_terminal_a_status_line_shows_the_running_actions_then_goes() -> None:
    # The status line (rich's progress display) is drawn only on a terminal; it is transient,
    # and the lines of the actions that ran and the summary stay.
    out = io.StringIO()
    reporter = ConsoleReporter(out, live=True)
    reporter(Planned(("compile a", "link b"), 2))
    reporter(Started("compile a", 0.0, "never built"))
    assert reporter.progress is not None
    reporter(Finished("compile a", "ran", "never built", 0.0, 0.5))
    reporter(Finished("link b", "cached", "up to date", 0.5, 0.5))
    reporter(BuildEnded(True, 0.6))
    text = out.getvalue()
    assert "[1/2] ran compile a (never built) 0.50s" in text
    assert "plait: ok: 1 ran, 1 cached in 0.60s" in text
