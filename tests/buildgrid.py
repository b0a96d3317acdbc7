"""A BuildGrid server for the tests: started from the virtual environment `./setup --dev` makes
(PLAIT_BUILDGRID, else ~/.cache/plait/buildgrid-0.4.4), on a free loopback port, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

VENV = Path(os.environ.get("PLAIT_BUILDGRID", Path.home() / ".cache/plait/buildgrid-0.4.4"))

CACHE_ONLY = """
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
storages:
  - !disk-storage &cas
    path: {cas}
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 100000
    allow-updates: true
    cache-failed-actions: false
instances:
  - name: ""
    services:
      - !action-cache
        cache: *ac
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
"""


@dataclass
class Server:
    url: str
    cas: Path
    process: subprocess.Popen[bytes]

    def blob(self, hash_: str) -> Path:
        """Where the server keeps a blob (BuildGrid's disk storage)."""
        return self.cas / "cas" / "objects" / hash_[:2] / hash_[2:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(directory: Path) -> Server:
    bgd = VENV / "bin" / "bgd"
    if not bgd.is_file():
        pytest.fail(f"BuildGrid is not installed at {VENV}: run ./setup --dev")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "cache.yml"
    config.write_text(CACHE_ONLY.format(port=port, cas=directory / "storage"))
    with (directory / "bgd.log").open("wb") as log:
        process = subprocess.Popen(
            [str(bgd), "server", "start", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"grpc://127.0.0.1:{port}", directory / "storage", process)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            pytest.fail(f"bgd exited: {(directory / 'bgd.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail("bgd did not listen within 90 s")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def buildgrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a module's tests: each builds contents of its own."""
    server = start(tmp_path_factory.mktemp("buildgrid"))
    try:
        yield server
    finally:
        server.stop()
