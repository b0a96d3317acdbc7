"""Temporary directories that a killed plait does not leave behind. A process makes its temporary
files (sandboxes, the warm servers' fifos, blobs and dumps not yet in the store) under a directory
of its own, on which it holds a lock for as long as it lives. Whoever next makes one in the same
place removes those whose process is gone: killed with SIGKILL, or stopped with its machine,
which no `finally` survives. In /dev/shm, where sandboxes go, a directory left behind holds
memory until the machine restarts."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

# The file whose lock says that the directory's process lives.
OWNER = ".owner"

# A directory is made hidden and renamed once locked; one still hidden after this long was
# left by a process killed in between.
HIDDEN_GRACE = 60.0


class Scratch:
    """This process's directory under `parent`, named `prefix` then its pid: made when `path` is
    first asked for, and this process's until `remove`. Making the Scratch removes the
    directories of processes that are gone, so each place is reaped once per process."""

    def __init__(self, parent: Path, prefix: str) -> None:
        self.parent, self.prefix = parent, prefix
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._fd = -1
        reap(parent, prefix)

    @property
    def path(self) -> Path:
        with self._lock:
            if self._path is None:
                self.parent.mkdir(parents=True, exist_ok=True)
                # Made hidden, locked, then renamed: no one sees it unlocked.
                hidden = Path(
                    tempfile.mkdtemp(prefix=f".{self.prefix}{os.getpid()}-", dir=self.parent)
                )
                self._fd = os.open(hidden / OWNER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                self._path = hidden.with_name(hidden.name[1:])
                hidden.rename(self._path)
            return self._path

    def remove(self) -> None:
        """Remove the directory, if made, and what is in it; the lock goes last. Idempotent;
        asked for again, `path` makes a new one."""
        with self._lock:
            if self._path is None:
                return
            remove_tree(self._path)
            os.close(self._fd)
            self._path = None


def reap(parent: Path, prefix: str) -> list[Path]:
    """Remove the directories `Scratch` made under `parent` for processes that are gone (their
    lock is free), and return them."""
    gone = []
    for entry in [*parent.glob(f"{prefix}*"), *parent.glob(f".{prefix}*")]:
        if entry.name.startswith(".") and time.time() - _mtime(entry) < HIDDEN_GRACE:
            continue  # being made right now
        try:
            fd = os.open(entry / OWNER, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue  # not a scratch directory, or removed meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process lives
            remove_tree(entry)
            gone.append(entry)
        finally:
            os.close(fd)
    return gone


def remove_tree(root: Path) -> None:
    """Remove a tree, even where a command left read-only directories in it (only then is the
    tree walked twice)."""
    try:
        shutil.rmtree(root)
    except FileNotFoundError:
        pass
    except OSError:
        for path in root.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.chmod(0o700)
        shutil.rmtree(root, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
