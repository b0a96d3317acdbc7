"""Remote execution on a real BuildGrid with plait workers: the same bytes as a local build,
a command's failure reported as its own, a worker's death survived, a farm started and stopped
by deploy/farm with nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plait.content import LocalContent
from plait.executor import LocalExecutor
from plait.remote import Remote, RemoteCache, parse_endpoint
from plait.request import Request
from plait.store import Store
from tests.buildgrid import Farm, buildgrid, farm, free_port, workers
from tests.support import ROOT, plait, plaitfile_project, running
from tests.test_asdf import load_without_compiling
from tests.test_remote import build, fasl_files, home, machine, project, statuses

__all__ = ["buildgrid", "workers"]

pytestmark = pytest.mark.remote


def test_actions_run_on_the_farm_give_the_bytes_of_a_local_build(
    tmp_path: Path, workers: Farm
) -> None:
    src = project(tmp_path / "src", "executed")
    farm, env1 = machine(tmp_path, "farm", src)
    build(farm, env1, "--remote", workers.url, "--remote-exec")
    ran = statuses(farm)
    assert {s for s, _ in ran.values()} == {"ran"}
    assert all(" on farm-" in reason for _, reason in ran.values()), ran
    local, env2 = machine(tmp_path, "local", src)
    build(local, env2)
    for name in ("one.txt", "two.txt", "big.bin"):
        assert (farm / name).read_bytes() == (local / name).read_bytes()
    # What the farm ran is in its cache for everyone.
    third, env3 = machine(tmp_path, "third", src)
    build(third, env3, "--remote", workers.url)
    assert {s for s, _ in statuses(third).values()} == {"cached"}


def test_a_command_that_fails_on_the_farm_fails_with_its_own_output(
    tmp_path: Path, workers: Farm
) -> None:
    src = plaitfile_project(
        tmp_path / "src",
        "action('bad', ['sh', '-c', 'echo broke-on-the-farm >&2; exit 3'], outputs=['bad.txt'])\n",
    )
    p, env = machine(tmp_path, "first", src)
    result = plait(
        "build", "--report", "r.json", "--remote", workers.url, "--remote-exec", cwd=p, env=env
    )
    assert result.returncode == 1, result.stdout + result.stderr
    status, reason = statuses(p)["bad"]
    assert status == "failed" and " on farm-" in reason, reason
    assert "broke-on-the-farm" in result.stdout + result.stderr
    assert "warning" not in result.stderr, result.stderr
    local, env2 = machine(tmp_path, "local", src)
    assert plait("build", cwd=local, env=env2).returncode == 1
    assert (
        plait("log", "bad", cwd=p, env=env).stdout
        == plait("log", "bad", cwd=local, env=env2).stdout
    )


def test_a_server_without_execution_runs_actions_here_from_its_cache(
    tmp_path: Path, buildgrid: Farm
) -> None:
    src = project(tmp_path / "src", "no-execution")
    first, env1 = machine(tmp_path, "first", src)
    said = build(first, env1, "--remote", buildgrid.url, "--remote-exec", "--remote-upload")
    assert {s for s, _ in statuses(first).values()} == {"ran"}
    warnings = [ln for ln in said.splitlines() if "does not execute actions" in ln]
    assert len(warnings) == 1, said
    second, env2 = machine(tmp_path, "second", src)
    build(second, env2, "--remote", buildgrid.url, "--remote-exec")
    assert {s for s, _ in statuses(second).values()} == {"cached"}


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        chain.append(pid)
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")))
    return chain


def test_deploy_farm_survives_a_worker_killed_mid_action_and_stops_clean(
    tmp_path: Path,
) -> None:
    """`deploy/farm start` as a user runs it; a worker dies running an action; the server gives
    the action to the other worker once the dead one misses its keepalive."""
    directory = tmp_path / "farm"
    port = free_port()
    up = subprocess.run(
        [
            str(ROOT / "deploy" / "farm"),
            "start",
            "--dir",
            str(directory),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        pids = {e.name: int(e.read_text()) for e in (directory / "pids").iterdir()}
        assert sorted(pids) == ["bgd", "postgres", "worker-0", "worker-1"]
        marker = f"killed-mid-action-{port}"
        src = plaitfile_project(
            tmp_path / "src",
            f"action('slow', ['sh', '-c', 'sleep 3; echo {marker} > slow.txt'],"
            " outputs=['slow.txt'])\n",
        )
        p, env = machine(tmp_path, "first", src)
        building = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plait",
                "build",
                "--report",
                "r.json",
                "--remote",
                f"grpc://127.0.0.1:{port}",
                "--remote-exec",
            ],
            cwd=p,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline:
            for pid in running(marker):
                chain = _ancestors(pid)
                victim = next((n for n, w in pids.items() if w in chain), victim)
            time.sleep(0.05)
        assert victim is not None and victim.startswith("worker-")
        os.killpg(pids[victim], signal.SIGKILL)
        said, _ = building.communicate(timeout=120)
        assert building.returncode == 0, said
        assert (p / "slow.txt").read_text() == f"{marker}\n"
        survivor = "farm-" + ("1" if victim == "worker-0" else "0")
        assert statuses(p)["slow"] == ("ran", f"never built, on {survivor}"), said
    finally:
        down = subprocess.run(
            [str(ROOT / "deploy" / "farm"), "stop", "--dir", str(directory)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert down.returncode == 0, down.stderr
    assert not (directory / "pids").exists() or not list((directory / "pids").iterdir())
    for name, pid in pids.items():
        assert not farm.alive(pid), f"{name} ({pid}) still runs"
    assert running(str(directory)) == []
    assert running(str((directory / "postgres").resolve())) == []


def test_deploy_farm_start_fails_when_a_worker_cannot_start(tmp_path: Path) -> None:
    """A worker that dies at its start fails `start`, with its log, and nothing runs after."""
    directory = tmp_path / "farm"
    (directory / "workers").mkdir(parents=True)
    (directory / "workers" / "0").write_text("in the way of worker 0's directory\n")
    start = [str(ROOT / "deploy" / "farm"), "start", "--dir", str(directory)]
    up = subprocess.run(
        [*start, "--port", str(free_port()), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert up.returncode == 1, up.stdout + up.stderr
    assert "farm: error: worker-0 exited" in up.stderr
    assert str(directory / "worker-0.log") in up.stderr
    assert not (directory / "pids").exists() or not list((directory / "pids").iterdir())
    assert running(str(directory)) == []
    assert running(str((directory / "postgres").resolve())) == []


@pytest.mark.lisp
def test_lisp_compiles_on_the_farm_give_a_local_builds_fasls_which_load(
    tmp_path: Path, workers: Farm
) -> None:
    """Every compile of wordcount, alexandria and cl-ppcre runs on a worker, which fetches
    the definitions core and the sources from the CAS; the fasls are byte for byte those of a
    build on this machine alone, and ASDF loads them without compiling."""
    p = tmp_path / "wordcount"
    shutil.copytree(ROOT / "examples" / "wordcount", p)
    machines = [home(tmp_path / name) for name in ("farm", "local")]
    # The definitions core saved first (`plait graph` runs the dump): else the compiles that
    # start while it is being saved run here, as they would without a farm.
    assert plait("graph", cwd=p, env=machines[0]).returncode == 0
    build(p, machines[0], "--remote", workers.url, "--remote-exec")
    ran = statuses(p)
    assert len(ran) >= 30
    elsewhere = {name for name, (s, reason) in ran.items() if s == "ran" and " on farm-" in reason}
    assert elsewhere == set(ran), sorted(set(ran) - elsewhere)
    build(p, machines[1])
    fasls = [
        {str(f.relative_to(m["XDG_CACHE_HOME"])): f.read_bytes() for f in fasl_files(m)}
        for m in machines
    ]
    assert len(fasls[0]) >= 30
    assert fasls[0].keys() == fasls[1].keys()
    differ = sorted(f for f in fasls[0] if fasls[0][f] != fasls[1][f])
    assert differ == []
    out = load_without_compiling("wordcount", machines[0], p, registry=p)
    assert "LOADED wordcount" in out


def test_a_worker_without_the_clients_toolchain_fails_the_lease_not_the_action(
    tmp_path: Path, workers: Farm
) -> None:
    """The worker checks the toolchain the request names against its own: another one is the
    worker's failure (FAILED_PRECONDITION), and the action runs here, with one warning."""
    store = Store.open(tmp_path, tmp_path / "store")
    said: list[str] = []
    remote = Remote(parse_endpoint(workers.url), said.append)
    try:
        request = Request(
            name="elsewhere",
            argv=("sh", "-c", "echo toolchain > out.txt"),
            env={},
            inputs={},
            outputs=("out.txt",),
            toolchain={"/usr/lib/sbcl": "not-what-the-worker-has"},
        )
        with LocalExecutor() as local:
            cache = RemoteCache(local, remote, False, store.tmp, execute=True)
            result = cache.execute(request, LocalContent(store), tmp_path / "log")
        assert result.ok and result.where == "", result
        d, _ = result.outputs["out.txt"]
        assert store.blob_path(d).read_bytes() == b"toolchain\n"
        assert len(said) == 1, said
        assert "could not run elsewhere" in said[0] and "/usr/lib/sbcl" in said[0], said
    finally:
        remote.close()
        store.close()


def test_a_worker_walks_its_toolchain_again_once_the_digest_is_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk of a toolchain directory is kept between leases for a while, and a change to
    the directory is seen once that while is over."""
    from plait import worker

    toolchain = tmp_path / "sbcl"
    (toolchain / "contrib").mkdir(parents=True)
    (toolchain / "contrib" / "sb-posix.fasl").write_bytes(b"one")
    serving = worker.Worker(parse_endpoint("grpc://127.0.0.1:1"), tmp_path / "worker", "farm-test")
    try:
        before = serving._toolchain(str(toolchain))
        (toolchain / "contrib" / "sb-posix.fasl").write_bytes(b"two, upgraded")
        assert serving._toolchain(str(toolchain)) == before  # kept: not walked again
        monkeypatch.setattr(worker, "TOOLCHAIN_SECONDS", 0.0)
        after = serving._toolchain(str(toolchain))
        assert after != before
        assert after == serving.store.tree_digest(toolchain)
    finally:
        serving.close()
