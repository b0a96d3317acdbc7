"""The local executor and its sandbox, with real processes."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from plait import sandbox
from plait.errors import UsageError
from plait.executor import LocalExecutor, Result
from plait.request import Input, Request
from plait.sandbox import sandbox_base
from tests.support import Contents


def run(
    tmp_path: Path,
    argv: list[str],
    inputs: dict[str, str] | None = None,
    outputs: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    executor: LocalExecutor | None = None,
) -> tuple[Result, Contents, str]:
    src = tmp_path / "src"
    content = Contents()
    files: dict[str, Input] = {}
    for rel, text in (inputs or {}).items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[rel] = content.add(path, rel.endswith(".sh"))
    log = tmp_path / "log.txt"
    request = Request("t", tuple(argv), env or {}, files, outputs)
    if executor is not None:
        result = executor.execute(request, content, log)
    else:
        with LocalExecutor() as made:
            result = made.execute(request, content, log)
    return result, content, log.read_text() if log.exists() else ""


def alive(pid: int) -> bool:
    """Whether a process is still running (a zombie waiting to be reaped is not)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.02)
    return True


def output(result: Result, blobs: Contents, rel: str) -> str:
    return blobs.data[result.outputs[rel][0].hash].decode()


def test_the_sandbox_holds_exactly_the_declared_inputs(tmp_path: Path) -> None:
    result, blobs, _ = run(
        tmp_path,
        ["sh", "-c", "find . -type f | sort > ../tmp/listing; cp ../tmp/listing out/"],
        inputs={"a.c": "a", "sub/b.h": "b"},
        outputs=("out/listing",),
    )
    assert result.ok
    assert output(result, blobs, "out/listing") == "./a.c\n./sub/b.h\n"


def test_reading_an_undeclared_file_fails(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "secret.h").write_text("undeclared")
    result, _, log = run(tmp_path, ["cat", "secret.h"], inputs={"a.c": "a"})
    assert result.exit_status != 0
    assert "secret.h" in log


def test_the_environment_is_clean_but_for_what_the_action_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY", "from the user's shell")
    result, blobs, _ = run(
        tmp_path, ["sh", "-c", "env > env.txt"], outputs=("env.txt",), env={"CFLAGS": "-O2"}
    )
    seen = dict(line.split("=", 1) for line in output(result, blobs, "env.txt").splitlines())
    seen.pop("PWD", None)  # the shell sets this one itself
    assert set(seen) == {"PATH", "HOME", "TMPDIR", "CFLAGS"}
    assert seen["CFLAGS"] == "-O2"
    assert seen["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    sandbox_root = Path(seen["HOME"]).parent
    assert Path(seen["TMPDIR"]).parent == sandbox_root
    assert (sandbox_base() or Path(tempfile.gettempdir())) in sandbox_root.parents
    assert not sandbox_root.exists()  # removed afterwards


def test_sandboxes_are_made_where_plait_sandbox_base_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    monkeypatch.setenv("PLAIT_SANDBOX_BASE", str(boxes))
    result, blobs, _ = run(tmp_path, ["sh", "-c", "pwd > where.txt"], outputs=("where.txt",))
    # In the run's directory there (plait.scratch), which its executor removes once closed.
    assert Path(output(result, blobs, "where.txt").strip()).parent.parent.parent == boxes
    assert list(boxes.iterdir()) == []


def test_a_sandbox_base_plait_cannot_write_in_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        sandbox_base({"PLAIT_SANDBOX_BASE": str(tmp_path / "missing")})
    assert "PLAIT_SANDBOX_BASE" in caught.value.message
    assert str(tmp_path / "missing") in caught.value.message
    assert "unset PLAIT_SANDBOX_BASE" in caught.value.hint


def room(free: int, flags: int = 0) -> Callable[[str | Path], SimpleNamespace]:
    """A statvfs that says `free` bytes are free on a mount with `flags`."""
    return lambda path: SimpleNamespace(f_bavail=free // 4096, f_frsize=4096, f_flag=flags)


def test_sandboxes_go_to_shared_memory_only_when_it_has_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sandbox_base({}, shared_memory=tmp_path / "missing") is None
    monkeypatch.setattr(os, "statvfs", room(sandbox.SHARED_MEMORY_ROOM))
    assert sandbox_base({}, shared_memory=tmp_path) == tmp_path
    monkeypatch.setattr(os, "statvfs", room(sandbox.SHARED_MEMORY_ROOM - 4096))
    assert sandbox_base({}, shared_memory=tmp_path) is None


def test_sandboxes_do_not_go_to_shared_memory_mounted_noexec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "statvfs", room(1 << 40, os.ST_NOEXEC))
    assert sandbox_base({}, shared_memory=tmp_path) is None


def test_a_declared_output_not_written_is_reported(tmp_path: Path) -> None:
    result, _, _ = run(tmp_path, ["touch", "one"], outputs=("one", "two"))
    assert result.exit_status == 0
    assert not result.ok
    assert result.missing == ["two"]


def test_output_directories_are_made_and_the_executable_bit_kept(tmp_path: Path) -> None:
    result, _, _ = run(
        tmp_path,
        ["sh", "-c", "printf '#!/bin/sh\\n' > bin/tool && chmod +x bin/tool"],
        outputs=("bin/tool",),
    )
    assert result.ok
    assert result.outputs["bin/tool"][1] is True


def test_an_executable_input_stays_executable(tmp_path: Path) -> None:
    result, blobs, _ = run(
        tmp_path, ["./gen.sh"], inputs={"gen.sh": "#!/bin/sh\necho hi > o\n"}, outputs=("o",)
    )
    assert result.ok
    assert output(result, blobs, "o") == "hi\n"


def test_a_program_that_does_not_exist_is_an_error_naming_it(tmp_path: Path) -> None:
    result, _, _ = run(tmp_path, ["no-such-program-here"])
    assert result.exit_status is None
    assert result.error == "program 'no-such-program-here' not found"


def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    executor = LocalExecutor()
    outcome: list[Result] = []
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    thread = threading.Thread(
        target=lambda: outcome.append(run(tmp_path, ["sh", "-c", script], executor=executor)[0])
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.01)
    child = int(pidfile.read_text())
    executor.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert outcome[0].exit_status is not None and outcome[0].exit_status < 0
    assert not alive(child)


def test_what_a_command_leaves_running_is_killed_when_it_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    result, _, _ = run(tmp_path, ["sh", "-c", f"sleep 60 & echo $! > {pidfile}"])
    assert result.exit_status == 0
    assert not alive(int(pidfile.read_text()))


def test_a_linked_input_is_a_symlink_to_its_content_not_a_copy(tmp_path: Path) -> None:
    big = tmp_path / "src" / "big.core"
    big.parent.mkdir(parents=True)
    big.write_text("a core")
    blobs = Contents()
    request = Request(
        "t",
        ("sh", "-c", "test -L big.core && cat big.core > out"),
        {},
        {"big.core": blobs.add(big)},
        ("out",),
        frozenset({"big.core"}),
    )
    result = LocalExecutor().execute(request, blobs, tmp_path / "log")
    assert result.ok, (tmp_path / "log").read_text()
    assert output(result, blobs, "out") == "a core"


def test_a_sandbox_is_removed_even_with_read_only_directories_left_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "boxes"))
    (tmp_path / "boxes").mkdir()
    tempfile.tempdir = None  # let tempfile see TMPDIR
    try:
        script = "mkdir -p d/e && echo x > d/e/f && echo y > out && chmod a-w d/e d"
        result, _, _ = run(tmp_path, ["sh", "-c", script], outputs=("out",))
    finally:
        tempfile.tempdir = None
    assert result.ok
    assert list((tmp_path / "boxes").iterdir()) == []
