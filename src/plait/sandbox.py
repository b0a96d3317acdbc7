"""A builder's sandbox: a fresh directory outside the project holding exactly the declared inputs,
and the clean environment its command runs in."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plait.errors import UsageError

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
SHARED_MEMORY = Path("/dev/shm")
SHARED_MEMORY_ROOM = 1 << 30  # what must be free there for sandboxes to go there by default


@dataclass(frozen=True)
class Sandbox:
    """`work` is the command's working directory; `home` and `tmp` are its HOME and TMPDIR."""

    root: Path
    _made: set[Path] = field(default_factory=set, compare=False, repr=False)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def populate(
        self,
        inputs: Mapping[str, tuple[Path, bool]],
        outputs: Iterable[str],
        links: Iterable[str] = (),
    ) -> None:
        """Copy each input to its relative path, and make the directories outputs go in. Copies,
        not links, so that a command that writes to an input cannot change the user's file or
        the store; only `links`, which the action promises only to read, are symlinked."""
        linked = set(links)
        for d in (self.work, self.home, self.tmp):
            d.mkdir(parents=True)
        for rel in outputs:
            self._directory_of(rel)
        for rel, (src, executable) in inputs.items():
            if rel in linked:
                self.link(rel, src)
                continue
            dest = self._directory_of(rel) / Path(rel).name
            shutil.copyfile(src, dest)
            dest.chmod(0o755 if executable else 0o644)

    def link(self, rel: str, src: Path) -> None:
        """Symlink an input that the command only reads."""
        (self._directory_of(rel) / Path(rel).name).symlink_to(src)

    def _directory_of(self, rel: str) -> Path:
        parent = (self.work / rel).parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
        return parent

    def environment(self, declared: Mapping[str, str]) -> dict[str, str]:
        """Only what the action declares, over PATH, HOME and TMPDIR set by plait."""
        env = {"PATH": DEFAULT_PATH, "HOME": str(self.home), "TMPDIR": str(self.tmp)}
        env.update(declared)
        return env


def sandbox_base(
    environ: Mapping[str, str] = os.environ, shared_memory: Path = SHARED_MEMORY
) -> Path | None:
    """Where sandboxes are made: the directory PLAIT_SANDBOX_BASE names; else shared memory (a
    tmpfs) when it has room and lets programs run, because making a file or a link there takes
    microseconds where a disk may take half a millisecond, and a compile's sandbox is a dozen of
    them (Bazel's --sandbox_base=/dev/shm); else None, the system's temporary directory."""
    chosen = environ.get("PLAIT_SANDBOX_BASE")
    if chosen:
        base = Path(chosen)
        if not (base.is_dir() and os.access(base, os.W_OK | os.X_OK)):
            raise UsageError(
                f"PLAIT_SANDBOX_BASE '{chosen}' is not a directory plait can write in",
                hint="make the directory, or unset PLAIT_SANDBOX_BASE to use /dev/shm or $TMPDIR",
            )
        return base
    try:
        room = os.statvfs(shared_memory)
    except OSError:
        return None
    # Commands run programs from their sandbox (a declared script): not on a noexec mount.
    if room.f_bavail * room.f_frsize < SHARED_MEMORY_ROOM or room.f_flag & os.ST_NOEXEC:
        return None
    return shared_memory if os.access(shared_memory, os.W_OK | os.X_OK) else None


def search_path(declared: Mapping[str, str]) -> str:
    return declared.get("PATH", DEFAULT_PATH)


def resolve_program(program: str, declared: Mapping[str, str]) -> Path | None:
    """The file a bare program name runs, as the sandbox's PATH finds it; None if not found."""
    found = shutil.which(program, path=search_path(declared))
    return Path(os.path.realpath(found)) if found else None


def kill_group(pid: int) -> None:
    """Kill the process group a command runs in (its own: it was started in a new session),
    with whatever it left running there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
