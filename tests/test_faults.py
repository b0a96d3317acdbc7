"""Faults a build survives: what its commands start does not outlive it."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, plait, plaitfile_project, running

pytestmark = pytest.mark.e2e


def gone(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while running(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def project(tmp_path: Path, command: str) -> Path:
    return plaitfile_project(
        tmp_path / "p", f"action('a', ['sh', '-c', {command!r}], outputs=['out.txt'])\n"
    )


def test_what_a_command_leaves_running_ends_with_it_even_in_a_session_of_its_own(
    tmp_path: Path,
) -> None:
    marker = "61.2345"
    p = project(tmp_path, f"setsid sh -c 'sleep {marker}' & sleep 0.5; echo done > out.txt")
    result = plait("build", cwd=p, env={"PLAIT_CACHE": str(tmp_path / "store")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (p / "out.txt").read_text() == "done\n"
    assert gone(marker)


def test_a_killed_build_leaves_no_command_running(tmp_path: Path) -> None:
    marker = "62.3456"
    p = project(tmp_path, f"(setsid sleep {marker} &); sleep {marker}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "build"],
        cwd=p,
        env={**os.environ, "PLAIT_CACHE": str(tmp_path / "store")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(running(marker)) < 2:
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert gone(marker)


def holds_open(pid: int, directory: Path) -> bool:
    """Whether process `pid` has a file under `directory` open."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if fd.readlink().is_relative_to(directory):
                return True
        except OSError:
            continue
    return False


def test_plaits_sharing_a_store_build_an_action_once(tmp_path: Path) -> None:
    """The second waits for the first's claim on the action's key, then reuses its result."""
    runs, go = tmp_path / "runs.txt", tmp_path / "go"
    plaitfile = (
        f"action('copy', ['sh', '-c', 'echo run >> {runs}; while [ ! -e {go} ]; do sleep 0.05;"
        " done; cat in.txt > out.txt'], inputs=['in.txt'], outputs=['out.txt'])\n"
    )
    projects = []
    for name in ("one", "two"):
        p = plaitfile_project(tmp_path / name, plaitfile)
        (p / "in.txt").write_text("same\n")
        projects.append(p)
    store = tmp_path / "store"
    env = {**os.environ, "PLAIT_CACHE": str(store)}
    command = [sys.executable, "-m", "plait", "build", "--sandbox", "directory", "-v"]
    with subprocess.Popen(
        command, cwd=projects[0], env=env, stdout=subprocess.PIPE, text=True
    ) as first:
        deadline = time.monotonic() + 30
        while not runs.exists():
            assert time.monotonic() < deadline, "the first build never ran its command"
            time.sleep(0.02)
        with subprocess.Popen(
            command, cwd=projects[1], env=env, stdout=subprocess.PIPE, text=True
        ) as second:
            try:
                while not holds_open(second.pid, store / "claims"):
                    assert time.monotonic() < deadline and second.poll() is None
                    time.sleep(0.02)
            finally:
                go.touch()  # the first build ends, whatever happened
            procs = [(first, first.communicate(timeout=30)[0])]
            procs.append((second, second.communicate(timeout=30)[0]))
    assert [p.returncode for p, _ in procs] == [0, 0], procs
    assert runs.read_text() == "run\n"  # once
    assert "ran copy (never built)" in procs[0][1]
    assert "built meanwhile by another plait sharing the store" in procs[1][1], procs[1][1]
    assert (projects[1] / "out.txt").read_text() == "same\n"


def read_only_store(p: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`plait ARGS` in `p`, with its store mounted read-only (as it is to root too)."""
    store = str(p / ".plait")
    bwrap = ["bwrap", "--bind", "/", "/", "--ro-bind", store, store, "--dev", "/dev"]
    bwrap += ["--proc", "/proc", "--"]
    return subprocess.run(
        [*bwrap, sys.executable, "-m", "plait", *args],
        cwd=p,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_read_only_store_serves_builds_that_need_nothing_new(tmp_path: Path) -> None:
    p = plaitfile_project(
        tmp_path / "p",
        "action('copy', ['cp', 'in.txt', 'out.txt'], inputs=['in.txt'], outputs=['out.txt'])\n",
    )
    (p / "in.txt").write_text("first\n")
    assert plait("build", cwd=p).returncode == 0
    before = sorted(str(f.relative_to(p)) for f in (p / ".plait").rglob("*"))
    # Nothing new: it builds.
    same = read_only_store(p, "build", "--sandbox", "directory")
    assert same.returncode == 0, same.stdout + same.stderr
    # A deleted output comes back from it.
    (p / "out.txt").unlink()
    restored = read_only_store(p, "build", "--sandbox", "directory")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert (p / "out.txt").read_text() == "first\n"
    # Something new: the action fails, saying why, and nothing is written.
    (p / "in.txt").write_text("second\n")
    new = read_only_store(p, "build", "--sandbox", "directory")
    assert new.returncode == 1
    assert "it would have to run (input 'in.txt' changed)" in new.stdout, new.stdout
    assert "is read-only here" in new.stdout
    for command in (["gc"], ["clean"]):
        refused = read_only_store(p, *command)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "is read-only here" in refused.stderr and "hint:" in refused.stderr
    assert (p / "out.txt").read_text() == "first\n"
    assert sorted(str(f.relative_to(p)) for f in (p / ".plait").rglob("*")) == before


def test_a_full_disk_fails_the_action_saying_so_and_the_store_stays_sound(
    tmp_path: Path,
) -> None:
    """The store on a 1 MB file system; the action writes 2 MB."""
    p = plaitfile_project(
        tmp_path / "p",
        "action('big', ['sh', '-c', 'head -c 2000000 /dev/zero > big.bin'], outputs=['big.bin'])\n"
        "action('small', ['sh', '-c', 'echo small > small.txt'], outputs=['small.txt'])\n",
    )
    store = tmp_path / "store"
    store.mkdir()
    plait_command = shlex.join([sys.executable, "-m", "plait"])
    # The build and the check in one mount namespace, which the tmpfs lives as long as.
    script = (
        f"mount -t tmpfs -o size=1000000 tmpfs {store} && "
        f"{plait_command} build -k --sandbox directory > out.txt 2>&1; echo $? > rc; "
        f"{plait_command} store verify > verify.txt 2>&1; echo $? >> rc"
    )
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        cwd=p,
        env={**os.environ, "PLAIT_CACHE": str(store)},
        check=False,
    )
    said = (p / "out.txt").read_text()
    assert (p / "rc").read_text().split() == ["1", "0"], said + (p / "verify.txt").read_text()
    assert "FAILED big: cannot keep its outputs: No space left on device" in said
    assert "checked 1 blobs" in (p / "verify.txt").read_text()  # small.txt's, on the tmpfs
    assert "Traceback" not in said
    assert (p / "small.txt").read_text() == "small\n"
    assert not (p / "big.bin").exists()


def test_a_store_path_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    p = plaitfile_project(tmp_path / "p", "action('a', ['true'], outputs=['a.txt'])\n")
    (tmp_path / "file").write_text("not a store\n")
    result = plait("build", cwd=p, env={"PLAIT_CACHE": str(tmp_path / "file")})
    assert result.returncode == 2
    assert f"the store '{tmp_path / 'file'}' is not a directory" in result.stderr
    assert "hint: PLAIT_CACHE names the directory" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_from_plaits_first_line_on_ends_it_with_one_line(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """While plait loads its modules, reads the Plaitfile and starts the build: 128 + the
    signal, a word, no traceback."""
    sys.path.insert(0, str(ROOT / "bench"))
    import torture

    p = plaitfile_project(tmp_path / "p", "action('a', ['sleep', '30'], outputs=['a.txt'])\n")
    for after in (0.0, 0.005, 0.02, 0.05, 0.1):
        process = subprocess.Popen(
            [sys.executable, "-m", "plait", "build"],
            cwd=p,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        torture.answering(process.pid)
        time.sleep(after)
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 128 + sig, (after, out, err)
        assert "Traceback" not in out + err
        assert "interrupted" in out + err or "terminated" in out + err
