"""A REAPI farm on one machine: a BuildGrid server and N plait workers under DIR.

    deploy/farm start --dir DIR [--port PORT] [--workers N] [--execution] [--listen ADDRESS]
        installs what is missing under DIR, starts the server (a cache alone with no workers
        and no --execution, else with Execution, its job queue in a PostgreSQL cluster of its
        own) and N `plait worker`s, and returns once the farm answers
    deploy/farm stop --dir DIR
        stops all of it; nothing is left running

DIR holds BuildGrid's virtual environment (unless PLAIT_BUILDGRID names one), its storage, the
database cluster, the workers' stores, configuration, logs and the PIDs of what runs. The tests
and benchmarks start farms the same way (`start`, `stop`). For a farm over several machines, see
docs/remote.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = "0.4.4"
# Where `./setup --dev` puts BuildGrid for the tests; a farm without it installs its own.
SHARED_VENV = Path(
    os.environ.get("PLAIT_BUILDGRID", Path.home() / f".cache/plait/buildgrid-{VERSION}")
)


@dataclass
class Farm:
    directory: Path
    port: int
    workers: int = 0
    execution: bool = False

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.directory / "storage"

    def blob(self, hash_: str) -> Path:
        """Where the server keeps a blob (BuildGrid's disk storage)."""
        return self.storage / "cas" / "objects" / hash_[:2] / hash_[2:]


def venv(directory: Path) -> Path:
    """A virtual environment with BuildGrid's server: the shared one, else DIR/venv, made if
    missing (from the package registry, pinned by deploy/constraints.txt)."""
    if (SHARED_VENV / "bin" / "bgd").is_file():
        return SHARED_VENV
    own = directory / "venv"
    if not (own / "bin" / "bgd").is_file():
        print(f"farm: installing BuildGrid {VERSION} in {own}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(own)], check=True)
        pip = [str(own / "bin" / "pip"), "install", "-q", "-c", str(HERE / "constraints.txt")]
        subprocess.run([*pip, f"buildgrid=={VERSION}", "psycopg2-binary"], check=True)
    return own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(
    directory: Path,
    port: int | None = None,
    workers: int = 0,
    listen: str = "127.0.0.1",
    timeout: float = 120,
    execution: bool | None = None,
) -> Farm:
    """Start a server under `directory`: a cache (CAS, ByteStream, Action Cache) alone, or with
    `execution` (by default, when there are `workers`) Execution too, and that many `plait
    worker`s. It answers when this returns. Raises RuntimeError, with a log, if it does not."""
    if execution is None:
        execution = workers > 0
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    farm = Farm(directory, port or free_port(), workers, execution)
    config = directory / "buildgrid.yml"
    bgd = venv(directory) / "bin" / "bgd"
    template = (HERE / ("buildgrid-farm.yml" if execution else "buildgrid-cache.yml")).read_text()
    if execution:
        try:
            database = _postgres(directory, timeout)
            _run([str(bgd), "migrate", "apply", database], directory / "migrate.log")
        except RuntimeError:
            stop(directory)
            raise
        template = template.replace("@DATABASE@", database)
    config.write_text(
        template.replace("@PORT@", str(farm.port))
        .replace("@ADDRESS@", listen)
        .replace("@STORAGE@", str(farm.storage))
    )
    process = _spawn(directory, "bgd", [str(bgd), "server", "start", str(config)])
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            stop(directory)
            raise RuntimeError(f"bgd exited:\n{(directory / 'bgd.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", farm.port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop(directory)
                raise RuntimeError(
                    f"bgd did not listen on port {farm.port} within {timeout:.0f} s"
                ) from None
            time.sleep(0.2)
    started = []
    for i in range(workers):
        where = ["--dir", str(directory / "workers" / str(i)), "--name", f"farm-{i}"]
        worker = [sys.executable, "-m", "plait", "worker", "--remote", farm.url, *where]
        started.append((f"worker-{i}", _spawn(directory, f"worker-{i}", worker)))
    for name, process in started:
        log = directory / f"{name}.log"
        # A worker says it serves once the server has its bot session.
        while ": serving " not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                stop(directory)
                how = "exited" if process.returncode is not None else "did not start"
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} {how} (its log, {log}):\n{tail}")
            time.sleep(0.1)
    return farm


def _spawn(
    directory: Path, name: str, argv: list[str], user: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own, its output to DIR/NAME.log; `stop` kills it."""
    with (directory / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            user=user,
        )
    _remember(directory, name, process.pid)
    _STARTED.setdefault(directory, []).append(process)
    return process


def _run(argv: list[str], log: Path, user: str | None = None) -> None:
    """Run `argv` to its end, its output to `log`; RuntimeError with it if it fails."""
    done = subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, user=user, check=False
    )
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{(done.stdout + done.stderr)[-2000:]}")


def _postgres_bin() -> Path:
    """Debian's PostgreSQL programs (the setup script installs the `postgresql` package)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    if which := shutil.which("postgres"):
        return Path(which).parent
    raise RuntimeError("PostgreSQL is not installed: run ./setup (it installs postgresql)")


def _postgres(directory: Path, timeout: float) -> str:
    """Start the farm's own PostgreSQL cluster (made on first use), listening on a Unix socket
    only; its SQLAlchemy URL."""
    bindir = _postgres_bin()
    # PostgreSQL refuses to run as root: as root the cluster belongs to the postgres user, in a
    # directory of /tmp that user can reach (DIR may sit under a private one); DIR links to it.
    user = "postgres" if os.geteuid() == 0 else None
    owner = pwd.getpwnam(user) if user else None
    link = directory / "postgres"
    if not link.is_dir():
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        if owner:
            cluster = Path(tempfile.mkdtemp(prefix="plait-farm-pg-"))
            os.chown(cluster, owner.pw_uid, owner.pw_gid)
            link.symlink_to(cluster)
        else:
            link.mkdir()
    cluster = link.resolve()
    data, sock = cluster / "data", cluster / "sock"
    if not (data / "PG_VERSION").is_file():
        _run(
            [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "bgd", "-E", "UTF8"],
            directory / "initdb.log",
            user,
        )
    sock.mkdir(exist_ok=True)
    if owner:
        os.chown(sock, owner.pw_uid, owner.pw_gid)
    argv = [str(bindir / "postgres"), "-D", str(data), "-k", str(sock), "-p", "5432"]
    _spawn(directory, "postgres", [*argv, "-c", "listen_addresses="], user)
    ready = [str(bindir / "pg_isready"), "-q", "-h", str(sock), "-p", "5432"]
    deadline = time.monotonic() + timeout
    while subprocess.run(ready, check=False).returncode != 0:
        if time.monotonic() > deadline:
            log = (directory / "postgres.log").read_text()[-2000:]
            raise RuntimeError(f"PostgreSQL did not start within {timeout:.0f} s:\n{log}")
        time.sleep(0.2)
    created = subprocess.run(
        [str(bindir / "createdb"), "-h", str(sock), "-p", "5432", "-U", "bgd", "bgd"],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise RuntimeError(f"createdb failed: {created.stderr}")
    return f"postgresql+psycopg2://bgd@/bgd?host={sock}&port=5432"


def stop(directory: Path) -> None:
    """Kill what `start` started (each in a process group of its own), and wait for it."""
    pids = directory.resolve() / "pids"
    if not pids.is_dir():
        return
    # The workers and the server first; the database last, shut down cleanly (SIGINT is
    # PostgreSQL's fast shutdown) so that it leaves no shared memory behind.
    for entry in sorted(pids.iterdir(), key=lambda e: e.name == "postgres"):
        pid = int(entry.read_text())
        first = signal.SIGINT if entry.name == "postgres" else signal.SIGKILL
        for sig in (first, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        entry.unlink()
    for process in _STARTED.pop(directory.resolve(), []):
        process.wait(10)


# What this process started, by farm directory: reaped by `stop`.
_STARTED: dict[Path, list[subprocess.Popen[bytes]]] = {}


def _remember(directory: Path, name: str, pid: int) -> None:
    (directory / "pids").mkdir(exist_ok=True)
    (directory / "pids" / name).write_text(str(pid))


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie, dead but not yet reaped by its parent, does not."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/farm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("start", help="start a farm under DIR")
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--port", type=int, default=50051)
    up.add_argument(
        "--workers", type=int, default=0, help="plait workers to start (0: a cache alone)"
    )
    up.add_argument(
        "--execution",
        action="store_true",
        help="serve Execution even with no workers here (they run on other machines)",
    )
    up.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address to serve on (0.0.0.0 for workers and builds on other machines)",
    )
    down = sub.add_parser("stop", help="stop the farm under DIR")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "start":
        try:
            farm = start(
                args.dir, args.port, args.workers, args.listen, execution=args.execution or None
            )
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"farm: error: {e}", file=sys.stderr)
            return 1
        what = "a cache"
        if farm.execution:
            what = f"with {farm.workers} workers" if farm.workers else "executing, no workers here"
        print(
            f"farm: serving at {farm.url}, {what} (stop it with: deploy/farm stop --dir {args.dir})"
        )
    else:
        stop(args.dir)
        print(f"farm: stopped what ran under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
