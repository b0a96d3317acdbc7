"""The namespace sandbox: a command run by bubblewrap in mount, PID, network, IPC and UTS
namespaces of its own, seeing only its sandbox directory, the files it declares it reads where
they are, and the system's toolchain (/usr) read-only; a private /tmp, /proc and /dev; no
network. A read of an undeclared file fails by any path, absolute or relative.

What the directory sandbox alone cannot stop (`/etc/hostname`, the project's own files read by
absolute path) fails here; the same command writes the same outputs in both."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

# The toolchain every command sees, read-only: programs and libraries live under /usr (on a
# merged-/usr system /bin, /lib... are links into it), Debian's alternatives (cc -> gcc) and the
# dynamic linker's cache under /etc.
TOOLCHAIN = ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/opt")
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@functools.cache
def available() -> str | None:
    """None if namespaces can be had here; else why not, in a few words."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian's bubblewrap package: ./setup installs it)"
    probe = subprocess.run(
        [bwrap, *_system(), "--unshare-all", "--die-with-parent", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot make namespaces here: {probe.stderr.strip()[:200]}"
    return None


def _system() -> list[str]:
    args: list[str] = []
    for path in TOOLCHAIN:
        if Path(path).exists():
            args += ["--ro-bind", path, path]
    for path in TOP_LINKS:
        if Path(path).is_symlink():
            args += ["--symlink", str(Path(path).readlink()), path]
        elif Path(path).is_dir():
            args += ["--ro-bind", path, path]
    return args


def wrap(
    argv: Iterable[str],
    root: Path,
    cwd: Path,
    reads: Iterable[str],
    binds: Mapping[str, str] | None = None,
) -> list[str]:
    """`argv` run in namespaces where `root` (the sandbox) is writable at its own path, each of
    `reads` (absolute paths read where they are: files of the toolchain outside /usr, a Lisp
    core, the targets of the sandbox's links) is there read-only, each key of `binds` (an
    absolute input) shows the file its value names, read-only, and nothing else is there but
    the toolchain."""
    argv = list(argv)
    words = [w for w in argv if w.startswith("/")]
    view = _view(root, [*reads, *words, *_prefix(argv[0])], binds or {})
    return [*view, "--proc", "/proc", "--unshare-all", "--chdir", str(cwd), "--", *argv]


# What a holder says once its namespaces are made.
READY = "ready"


def holder(root: Path, reads: Iterable[str], binds: Mapping[str, str] | None = None) -> list[str]:
    """The argv of a process that holds namespaces showing what `wrap` shows, for a process
    forked elsewhere (a warm Lisp worker) to join: it says READY and the pid of the process in
    them (bubblewrap's own stays outside) once they are made, and ends when its standard input
    closes. Its PID namespace is not unshared, since a process cannot join one itself, and it
    has no /proc, which would show the host's."""
    view = _view(root, reads, binds or {})
    unshare = ["--unshare-user-try", "--unshare-ipc", "--unshare-net", "--unshare-uts"]
    return [*view, *unshare, "--", "/bin/sh", "-c", f"echo {READY} $$; exec cat >/dev/null"]


def _prefix(program: str) -> list[str]:
    """The installation a program outside /usr runs from (/opt/x for /opt/x/bin/y, whose
    libraries are under /opt/x/lib): its toolchain."""
    if not program.startswith("/") or program.startswith("/usr/"):
        return []
    real = Path(os.path.realpath(program))
    return [str(real.parent.parent)] if real.parent.name == "bin" else []


def _view(root: Path, reads: Iterable[str], binds: Mapping[str, str]) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, *_system(), "--dev", "/dev", "--tmpfs", "/tmp"]
    # An input whose content is where it is read is bound as it is, links and all, so that
    # the command finds the same truename as in the directory sandbox.
    here = {path for path, source in binds.items() if path == source}
    seen: set[str] = set()
    for path in sorted({*reads, *here}):
        # Bound by what it is: a link's target is what the command reads.
        real = os.path.realpath(path)
        for p in dict.fromkeys((path, real)):
            if p not in seen and not p.startswith("/usr/") and Path(p).exists():
                seen.add(p)
                args += ["--ro-bind", p, p]
    for path, source in sorted(binds.items()):
        if path not in seen and path not in here:
            seen.add(path)
            args += ["--ro-bind", source, path]
    args += ["--bind", str(root), str(root), "--die-with-parent"]
    return args
