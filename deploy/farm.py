"""A REAPI farm on one machine: a BuildGrid server (and, later, plait workers) under DIR.

    deploy/farm start --dir DIR [--port PORT]   installs what is missing under DIR, starts the
                                                server, and returns once it answers
    deploy/farm stop --dir DIR                  stops all of it; nothing is left running

DIR holds BuildGrid's virtual environment (unless PLAIT_BUILDGRID names one), its storage, its
configuration, logs and the PIDs of what runs. The tests and benchmarks start farms the same way
(`start`, `stop`). For a farm over several machines, see docs/remote.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
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


def start(directory: Path, port: int | None = None, timeout: float = 120) -> Farm:
    """Start a cache-only server (CAS, ByteStream, Action Cache) under `directory`; it answers
    when this returns. Raises RuntimeError, with its log, if it does not."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    farm = Farm(directory, port or free_port())
    config = directory / "buildgrid.yml"
    template = (HERE / "buildgrid-cache.yml").read_text()
    config.write_text(
        template.replace("@PORT@", str(farm.port)).replace("@STORAGE@", str(farm.storage))
    )
    bgd = venv(directory) / "bin" / "bgd"
    with (directory / "bgd.log").open("ab") as log:
        process = subprocess.Popen(
            [str(bgd), "server", "start", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _remember(directory, "bgd", process.pid)
    _STARTED.setdefault(directory, []).append(process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"bgd exited:\n{(directory / 'bgd.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", farm.port), timeout=1):
                return farm
        except OSError:
            if time.monotonic() > deadline:
                stop(directory)
                raise RuntimeError(
                    f"bgd did not listen on port {farm.port} within {timeout:.0f} s"
                ) from None
            time.sleep(0.2)


def stop(directory: Path) -> None:
    """Kill what `start` started (each in a process group of its own), and wait for it."""
    pids = directory.resolve() / "pids"
    if not pids.is_dir():
        return
    for entry in pids.iterdir():
        pid = int(entry.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        entry.unlink()
    for process in _STARTED.pop(directory.resolve(), []):
        process.wait(10)


# What this process started, by farm directory: reaped by `stop`.
_STARTED: dict[Path, list[subprocess.Popen[bytes]]] = {}


def _remember(directory: Path, name: str, pid: int) -> None:
    (directory / "pids").mkdir(exist_ok=True)
    (directory / "pids" / name).write_text(str(pid))


def _alive(pid: int) -> bool:
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
    down = sub.add_parser("stop", help="stop the farm under DIR")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "start":
        try:
            farm = start(args.dir, args.port)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"farm: error: {e}", file=sys.stderr)
            return 1
        print(f"farm: serving at {farm.url} (stop it with: deploy/farm stop --dir {args.dir})")
    else:
        stop(args.dir)
        print(f"farm: stopped what ran under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
