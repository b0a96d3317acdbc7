"""The real `plait` command on scenario projects under tests/data/ and on examples/."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import DATA, ROOT, age, plait, plaitfile_project

pytestmark = pytest.mark.e2e


def scenario(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(DATA / name, dest)
    return dest


Report = dict[str, Any]

# The "slow" scenario's command writes its pid to $PIDDIR and waits for a file there: outside
# its sandbox, which only the directory sandbox lets it reach.
OUTSIDE = ("--sandbox", "directory")


def report_of(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Report]:
    result = plait("build", "--report", "r.json", *args, cwd=project, env=env)
    return result, json.loads((project / "r.json").read_text())


def status(report: Report) -> dict[str, str]:
    return {a["name"]: a["status"] for a in report["actions"]}


def test_build_then_nothing_then_exactly_what_changed(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    first, report = report_of(p, "-j", "2")
    assert first.returncode == 0, first.stderr
    assert set(status(report).values()) == {"ran"}
    assert (p / "build/report.txt").read_text().split() == ["3", "HELLO", "PLAIT", "WORLD"]

    again, report = report_of(p)
    assert again.returncode == 0
    assert set(status(report).values()) == {"cached"}
    assert "5 cached" in again.stdout

    age(p / "text.txt", -3)  # touched, same bytes
    _, report = report_of(p)
    assert set(status(report).values()) == {"cached"}

    (p / "text.txt").write_text("HELLO plait world\n")  # words change; upper and count do not
    _, report = report_of(p)
    assert status(report) == {
        "words": "ran",
        "upper": "ran",
        "count": "ran",
        "report": "cached",
        "other": "cached",
    }
    reasons = {a["name"]: a["reason"] for a in report["actions"]}
    assert reasons["words"] == "input 'text.txt' changed"
    assert reasons["upper"] == "dependency 'words' produced different output 'build/words.txt'"


def test_the_report_has_one_entry_per_needed_action_with_times(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    _, report = report_of(p, "build/count.txt")
    assert report["ok"] is True
    assert [a["name"] for a in report["actions"]] == ["words", "count"]
    for a in report["actions"]:
        assert set(a) == {"name", "status", "reason", "start", "end"}
        assert isinstance(a["start"], float) and 0 <= a["start"] <= a["end"]
    words, count = report["actions"]
    assert words["end"] <= count["start"]


def test_a_deleted_output_comes_back_from_the_store_without_running(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    plait("build", cwd=p)
    (p / "build/upper.txt").unlink()
    _, report = report_of(p)
    assert status(report)["upper"] == "cached"
    assert "restored from the store" in {a["name"]: a["reason"] for a in report["actions"]}["upper"]
    assert (p / "build/upper.txt").read_text() == "HELLO\nPLAIT\nWORLD\n"
    assert "ran" not in status(report).values()


def test_files_a_command_writes_but_does_not_declare_are_named_and_dropped(
    tmp_path: Path,
) -> None:
    p = plaitfile_project(
        tmp_path / "p",
        "action('a', ['sh', '-c', 'echo a > a.txt; echo x > extra.txt; mkdir d; echo y > d/y'],\n"
        "       outputs=['a.txt'])\n"
        "action('b', ['sh', '-c', 'cat a.txt > b.txt'], inputs=['a.txt'], outputs=['b.txt'])\n",
    )
    result = plait("build", cwd=p)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [ln.strip() for ln in result.stdout.splitlines() if "warning" in ln]
    assert warnings == [
        "warning: it also wrote 'd/y', 'extra.txt', which it does not declare as outputs: "
        "dropped (hint: add to its outputs what the build needs)"
    ]
    assert not (p / "extra.txt").exists() and not (p / "d").exists()
    assert (p / "b.txt").read_text() == "a\n"


def test_targets_by_action_name_and_output_path(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    _, report = report_of(p, "other")
    assert list(status(report)) == ["other"]
    _, report = report_of(p, "build/upper.txt")
    assert list(status(report)) == ["words", "upper"]


def test_an_unknown_target_exits_2_with_a_hint(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    result = plait("build", "uper", cwd=p)
    assert result.returncode == 2
    assert "plait: error: unknown target 'uper'" in result.stderr
    assert "hint: did you mean 'upper'?" in result.stderr


def test_a_bad_option_exits_2(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    assert plait("build", "-j", "0", cwd=p).returncode == 2
    assert plait("build", "--no-such-option", cwd=p).returncode == 2


def test_a_failure_shows_command_status_output_and_log_and_stops(tmp_path: Path) -> None:
    p = scenario("failing", tmp_path)
    result, report = report_of(p, "-j", "1")
    assert result.returncode == 1
    out = result.stdout
    assert "FAILED bad: exited with status 3" in out
    # What the compiler said, where; the command is at the top of the log, and shown with -v.
    assert "\n  bad.c:3: error: oops\n  full log: " in out
    assert "command:" not in out
    log = out.split("full log: ")[1].split()[0]
    assert Path(log).read_text().startswith("$ sh -c 'echo compiling;")
    assert "compiling" in Path(log).read_text()
    assert report["ok"] is False
    assert status(report)["after-bad"] == "skipped"


def test_verbose_shows_the_command_of_a_failure(tmp_path: Path) -> None:
    p = scenario("failing", tmp_path)
    result, _ = report_of(p, "-j", "1", "-v")
    assert "  command: sh -c 'echo compiling;" in result.stdout


def test_keep_going_builds_all_that_does_not_depend_on_the_failure(tmp_path: Path) -> None:
    p = scenario("failing", tmp_path)
    result, report = report_of(p, "-k", "-j", "1")
    assert result.returncode == 1
    assert status(report) == {
        "bad": "failed",
        "after-bad": "skipped",
        "good": "ran",
        "good-too": "ran",
    }
    assert (p / "good2.o").exists()


def test_a_cycle_is_found_before_anything_runs(tmp_path: Path) -> None:
    p = scenario("cycle", tmp_path)
    result = plait("build", cwd=p)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first in (
        "plait: error: dependency cycle: a -> b -> a",
        "plait: error: dependency cycle: b -> a -> b",
    )
    assert not (p / ".plait").exists() or not list((p / ".plait").glob("logs/*/*"))


ERRORS = sorted(d.name for d in (DATA / "errors").iterdir())


@pytest.mark.parametrize("case", ERRORS)
def test_plaitfile_errors_name_the_line_and_give_a_hint_never_a_traceback(
    case: str, tmp_path: Path
) -> None:
    p = tmp_path / case
    shutil.copytree(DATA / "errors" / case, p)
    text = (p / "Plaitfile.py").read_text().splitlines()
    line = next(i for i, s in enumerate(text, 1) if "# <- error" in s)
    result = plait("build", cwd=p)
    assert result.returncode == 2, result.stdout
    assert f"Plaitfile.py:{line}: " in result.stderr
    assert "\nhint: " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_dry_run_says_what_would_run_and_runs_nothing(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    result = plait("build", "--dry-run", cwd=p)
    assert result.returncode == 0
    assert "would run words (never built)" in result.stdout
    assert "would run upper (dependency 'words' will run)" in result.stdout
    assert not (p / "build").exists()
    plait("build", cwd=p)
    (p / "other.txt").write_text("changed\n")
    result = plait("build", "-n", cwd=p)
    assert result.stdout.splitlines() == [
        "would run other (input 'other.txt' changed)",
        "plait: 1 action would run",
    ]


def test_clean_removes_what_plait_built_and_nothing_else(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    plait("build", cwd=p)
    (p / "build/other.txt").write_text("edited by the user\n")
    result = plait("clean", cwd=p)
    assert result.returncode == 0
    assert sorted(f.name for f in (p / "build").iterdir()) == ["other.txt"]
    assert "kept 'build/other.txt'" in result.stderr
    assert (p / "text.txt").exists() and (p / "Plaitfile.py").exists()
    _, report = report_of(p)  # the store stayed: everything comes back without running
    assert status(report)["words"] == "cached"


def test_the_store_can_live_elsewhere_and_serve_several_projects(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one, two = scenario("basic", tmp_path / "1"), scenario("basic", tmp_path / "2")
    env = {"PLAIT_CACHE": str(cache)}
    assert plait("build", cwd=one, env=env).returncode == 0
    result = plait("build", "--report", "r.json", cwd=two, env=env)
    assert result.returncode == 0
    assert set(status(json.loads((two / "r.json").read_text())).values()) == {"cached"}
    assert not (one / ".plait").exists() and (cache / "store.db").exists()


def test_python_dash_m_plait_is_plait(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    exe = shutil.which("plait")
    assert exe is not None
    via_script = subprocess.run([exe, "build"], cwd=p, capture_output=True, text=True, check=False)
    assert via_script.returncode == 0
    assert plait("build", cwd=p).stdout.strip().startswith("plait: ok: 5 cached")


def test_on_a_terminal_a_live_status_is_shown(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "build"],
        cwd=p,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(30) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in screen  # rich drew on the terminal
    assert "ok" in screen and "5 ran" in screen


def _wait_for(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_kills_running_commands_and_the_next_build_goes_on(
    tmp_path: Path, sig: int, code: int
) -> None:
    p = scenario("slow", tmp_path)
    piddir, tmpdir = tmp_path / "pids", tmp_path / "tmp"
    piddir.mkdir()
    tmpdir.mkdir()
    env = {**os.environ, "PIDDIR": str(piddir), "PLAIT_SANDBOX_BASE": str(tmpdir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "build", "-j", "2", *OUTSIDE],
        cwd=p,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(piddir / "slow.pid")
    time.sleep(0.2)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == code
    assert "interrupted" in out
    deadline = time.monotonic() + 5
    while _alive(int((piddir / "slow.pid").read_text())) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(int((piddir / "slow.pid").read_text()))
    assert list(tmpdir.iterdir()) == []  # sandboxes removed
    db = sqlite3.connect(p / ".plait" / "store.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()

    (piddir / "fast").touch()
    result = plait("build", "--report", "r.json", *OUTSIDE, cwd=p, env={"PIDDIR": str(piddir)})
    assert result.returncode == 0
    assert status(json.loads((p / "r.json").read_text())) == {"quick": "cached", "slow": "ran"}
    assert (p / "slow.txt").read_text() == "data\n"


def test_what_a_killed_build_left_is_removed_by_the_next(tmp_path: Path) -> None:
    # SIGKILL runs no `finally`: the build's sandboxes (in shared memory, by default) and its
    # unfinished store files stay, until another build sees that their process is gone.
    p = scenario("slow", tmp_path)
    piddir, base = tmp_path / "pids", tmp_path / "sandboxes"
    piddir.mkdir()
    base.mkdir()
    env = {"PIDDIR": str(piddir), "PLAIT_SANDBOX_BASE": str(base)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "build", "-j", "2", *OUTSIDE],
        cwd=p,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(piddir / "slow.pid")
    _wait_for(p / "quick.txt")  # its output went through the store's tmp/
    assert [d.name.split("-")[:2] for d in base.iterdir()] == [["plait", "run"]]
    assert [d.name.split("-")[0] for d in (p / ".plait" / "tmp").iterdir()] == ["run"]
    proc.kill()
    proc.wait()
    slow = int((piddir / "slow.pid").read_text())
    os.killpg(slow, signal.SIGKILL)  # the command, in a session of its own, lives on
    assert list(base.iterdir()) != []  # nothing removed them

    (piddir / "fast").touch()
    assert plait("build", *OUTSIDE, cwd=p, env=env).returncode == 0
    assert list(base.iterdir()) == []
    assert list((p / ".plait" / "tmp").iterdir()) == []
    assert (p / "slow.txt").read_text() == "data\n"


def test_two_builds_of_one_project_at_once_do_not_corrupt_it(tmp_path: Path) -> None:
    p = scenario("slow", tmp_path)
    piddir = tmp_path / "pids"
    piddir.mkdir()
    (piddir / "fast").touch()
    env = {**os.environ, "PIDDIR": str(piddir)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "plait", "build", *OUTSIDE],
            cwd=p,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outs
    db = sqlite3.connect(p / ".plait" / "store.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    _, report = report_of(p, *OUTSIDE, env={"PIDDIR": str(piddir)})
    assert set(status(report).values()) == {"cached"}


def test_the_c_example_builds_tests_and_rebuilds_what_changed(tmp_path: Path) -> None:
    p = tmp_path / "hello-c"
    shutil.copytree(
        ROOT / "examples" / "hello-c", p, ignore=shutil.ignore_patterns(".plait", "build")
    )
    result, report = report_of(p, "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(status(report).values()) == {"ran"}
    run = subprocess.run(
        [str(p / "build/hello"), "you"], capture_output=True, text=True, check=True
    )
    assert run.stdout.splitlines()[1] == "bonjour, you!"
    assert (p / "build/hello.test.log").read_text().startswith("PASS")

    with (p / "data/greetings.txt").open("a") as f:
        f.write("hej\n")
    (p / "tests/expected.txt").write_text(
        "".join(f"{w}, world!\n" for w in ["hello", "bonjour", "hallo", "ciao", "hej"])
    )
    result, report = report_of(p)
    assert result.returncode == 0, result.stdout
    assert status(report) == {
        "compile:hello/greetings": "ran",
        "compile:hello/src/greet": "ran",  # includes the generated header
        "compile:hello/src/main": "ran",  # sees the header too, but writes the same object
        "link:hello": "ran",
        "test:hello": "ran",
    }
    _, report = report_of(p)
    assert set(status(report).values()) == {"cached"}
    assert plait("build", "hello", "--report", "r.json", cwd=p).returncode == 0
    assert [a["name"] for a in json.loads((p / "r.json").read_text())["actions"]][
        -1
    ] == "link:hello"


def _blob(store: Path, content: bytes) -> Path:
    """The blob in `store` that holds `content`."""
    return next(
        f for f in (store / "blobs").rglob("*") if f.is_file() and f.read_bytes() == content
    )


def _damage(blob: Path) -> None:
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))


def _built_then_damaged(tmp_path: Path, use: str) -> tuple[Path, dict[str, str], Path]:
    """A project where `gen` makes gen.txt and `use` (its Plaitfile line) reads it, built once;
    then gen.txt's blob is damaged. The project, its environment and its store."""
    p = plaitfile_project(
        tmp_path / "p",
        'action("gen", ["sh", "-c", "echo generated > gen.txt"], outputs=["gen.txt"])\n' + use,
    )
    store = tmp_path / "store"
    env = {"PLAIT_CACHE": str(store)}
    assert plait("build", cwd=p, env=env).returncode == 0
    _damage(_blob(store, b"generated\n"))
    return p, env, store


def test_a_damaged_blob_is_never_restored_its_producer_reruns(tmp_path: Path) -> None:
    use = (
        'action("use", ["sh", "-c", "cat gen.txt gen.txt > use.txt"], inputs=["gen.txt"],'
        ' outputs=["use.txt"])\n'
    )
    p, env, store = _built_then_damaged(tmp_path, use)
    (p / "gen.txt").unlink()
    result = plait("build", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran gen (the store's copy of 'gen.txt' was damaged (removed))" in result.stdout
    assert (p / "gen.txt").read_text() == "generated\n"
    assert _blob(store, b"generated\n")  # stored again, sound


def test_a_damaged_blob_is_not_fed_to_a_command(tmp_path: Path) -> None:
    use = (
        'action("use", ["sh", "-c", "cat gen.txt > use.txt; echo $0 >> use.txt", "1"],'
        ' inputs=["gen.txt"], outputs=["use.txt"])\n'
    )
    p, env, _ = _built_then_damaged(tmp_path, use)
    # The consumer's command changes: it runs again, reading gen.txt, whose blob is damaged.
    text = (p / "Plaitfile.py").read_text().replace('"1"]', '"2"]')
    (p / "Plaitfile.py").write_text(text)
    result = plait("build", cwd=p, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (p / "use.txt").read_text() == "generated\n2\n"


def test_a_build_never_replaces_a_file_the_user_wrote(tmp_path: Path) -> None:
    p = plaitfile_project(
        tmp_path / "p",
        'action("ow", ["sh", "-c", "echo generated > notes.txt"], outputs=["notes.txt"])\n',
    )
    (p / "notes.txt").write_text("my own notes\n")
    env = {"PLAIT_CACHE": str(tmp_path / "store")}
    result = plait("build", cwd=p, env=env)
    assert result.returncode == 1
    assert "'notes.txt' is in the way: it exists, plait did not write it" in result.stdout
    assert (p / "notes.txt").read_text() == "my own notes\n"
    # Asked to, it replaces it; then the file is plait's, and plait clean may remove it.
    assert plait("build", "--force", cwd=p, env=env).returncode == 0
    assert (p / "notes.txt").read_text() == "generated\n"
    (p / "notes.txt").write_text("edited by hand\n")
    # Edited since plait wrote it, it is the user's again.
    changed = plait("build", cwd=p, env=env)
    assert changed.returncode == 1
    assert "'notes.txt' is in the way" in changed.stdout
    assert (p / "notes.txt").read_text() == "edited by hand\n"


@pytest.mark.parametrize(
    ("declaration", "said"),
    [
        (
            'action("x", ["true"], outputs=["Plaitfile.py"])',
            "action 'x' declares Plaitfile.py as an output",
        ),
        (
            'action("x", ["true"], inputs=["a.txt"], outputs=["a.txt"])',
            "action 'x' declares 'a.txt' as both an input and an output",
        ),
    ],
)
def test_an_output_that_would_replace_what_the_user_wrote_is_refused_at_load(
    declaration: str, said: str, tmp_path: Path
) -> None:
    p = tmp_path / "p"
    p.mkdir()
    (p / "a.txt").write_text("mine\n")
    plaitfile = p / "Plaitfile.py"
    plaitfile.write_text("# the build\n" + declaration + "\n")
    before = plaitfile.read_text()
    result = plait("build", cwd=p, env={"PLAIT_CACHE": str(tmp_path / "store")})
    assert result.returncode == 2
    assert f"{plaitfile.resolve()}:2: {said}" in result.stderr
    assert plaitfile.read_text() == before and (p / "a.txt").read_text() == "mine\n"


@pytest.mark.parametrize("option", ["--report", "--trace", "--record"])
def test_a_report_that_cannot_be_written_is_refused_before_the_build(
    option: str, tmp_path: Path
) -> None:
    p = plaitfile_project(
        tmp_path / "p", 'action("a", ["sh", "-c", "echo a > a.txt"], outputs=["a.txt"])\n'
    )
    env = {"PLAIT_CACHE": str(tmp_path / "store")}
    missing = plait("build", option, str(tmp_path / "no" / "such" / "r.json"), cwd=p, env=env)
    assert missing.returncode == 2
    assert f"plait: error: {option} '{tmp_path / 'no' / 'such' / 'r.json'}': cannot write" in (
        missing.stderr
    )
    directory = plait("build", option, str(tmp_path), cwd=p, env=env)
    assert directory.returncode == 2 and "is a directory" in directory.stderr
    assert not (p / "a.txt").exists()  # nothing ran
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []


def test_a_plaitfile_that_calls_sys_exit_is_an_error(tmp_path: Path) -> None:
    p = plaitfile_project(tmp_path / "p", "import sys\n\nsys.exit(0)\n")
    result = plait("build", cwd=p, env={"PLAIT_CACHE": str(tmp_path / "store")})
    assert result.returncode == 2
    assert f"{(p / 'Plaitfile.py').resolve()}:3: the Plaitfile called sys.exit(0)" in result.stderr


def test_a_damaged_database_is_put_aside_and_the_next_build_goes_on(tmp_path: Path) -> None:
    """The error names `plait store reset`; after it, a build whose outputs are already there,
    with the bytes its actions make, takes them as its own rather than refusing them."""
    p = scenario("basic", tmp_path)
    assert plait("build", cwd=p).returncode == 0
    before = {f: (p / f).read_bytes() for f in ("build/words.txt", "build/upper.txt")}
    (p / ".plait" / "store.db").write_bytes(b"not a database at all" * 100)
    broken = plait("build", cwd=p)
    assert broken.returncode == 2
    assert "hint: 'plait store reset'" in broken.stderr
    reset = plait("store", "reset", cwd=p)
    assert reset.returncode == 0, reset.stderr
    assert list((p / ".plait").glob("store.db.damaged-*"))
    again = plait("build", cwd=p)
    assert again.returncode == 0, again.stdout
    assert {f: (p / f).read_bytes() for f in before} == before
    assert plait("clean", cwd=p).returncode == 0  # they are plait's again
    assert not (p / "build" / "words.txt").exists()


def test_store_verify_finds_a_damaged_blob_and_repair_drops_it(tmp_path: Path) -> None:
    p = scenario("basic", tmp_path)
    assert plait("build", cwd=p).returncode == 0
    clean = plait("store", "verify", cwd=p)
    assert clean.returncode == 0 and " 0 damaged" in clean.stdout, clean.stdout
    blob = sorted((p / ".plait" / "blobs").glob("*/*"))[0]
    blob.chmod(0o644)
    blob.write_bytes(b"flipped")
    found = plait("store", "verify", cwd=p)
    assert found.returncode == 1
    assert f"damaged: blobs/{blob.parent.name}/{blob.name}" in found.stdout
    assert "--repair" in found.stdout
    repaired = plait("store", "verify", "--repair", cwd=p)
    assert repaired.returncode == 0 and not blob.exists()
    assert plait("store", "verify", cwd=p).returncode == 0
    assert plait("build", cwd=p).returncode == 0


@pytest.mark.parametrize(
    ("plaitfile", "said", "status"),
    [
        (
            'action("a", ["true"], outputs=["a.txt"], after=["zzzz"])\n',
            "hint: after= names actions of this Plaitfile",
            2,
        ),
        (
            f'action("big", ["true", "{"x" * 200_000}"], outputs=["a.txt"])\n',
            "its command is too long for the system (2 words",
            1,
        ),
    ],
    ids=["unknown-after", "argv-too-long"],
)
def test_more_bad_descriptions_are_errors_with_a_hint(
    tmp_path: Path, plaitfile: str, said: str, status: int
) -> None:
    p = plaitfile_project(tmp_path / "p", plaitfile)
    result = plait("build", cwd=p, env={"PLAIT_CACHE": str(tmp_path / "store")})
    assert result.returncode == status, result.stdout + result.stderr
    assert said in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_plaitfile_that_is_a_directory_is_named(tmp_path: Path) -> None:
    p = tmp_path / "p"
    (p / "Plaitfile.py").mkdir(parents=True)
    result = plait("build", cwd=p, env={"PLAIT_CACHE": str(tmp_path / "store")})
    assert result.returncode == 2
    assert f"'{p / 'Plaitfile.py'}' is not a file" in result.stderr
    assert "hint:" in result.stderr
