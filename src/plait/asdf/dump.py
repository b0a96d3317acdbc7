"""Ask ASDF for the action graph: one SBCL loads the definitions, writes the graph as JSON and
saves a core with the definitions loaded. The result is cached by the digests of the .asd files
it read, SBCL's identity and the ASDF configuration, so an up-to-date build starts no Lisp."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from plait import digest
from plait.asdf.protocol import DumpData, Node, Upgrade, decode, upgrade
from plait.asdf.warm import Hosted, lisp_list, lisp_string
from plait.errors import PlaitError, UsageError
from plait.store import Store

# Where the dump pretends the sandbox is, to learn the paths compiles write their outputs to.
SANDBOX_MARK = "/PLAIT-SANDBOX/"

# The Lisp files the dump loads into the definitions core (their digests are in its identity).
DRIVERS = (
    "sbcl.lisp",
    "dump.lisp",
    "json.lisp",
    "upgrade.lisp",
    "common.lisp",
    "compile.lisp",
    "checkpoint.lisp",
    "run.lisp",
    "serve.lisp",
)

# The environment that decides what ASDF finds and where its fasls go.
ASDF_ENVIRONMENT = (
    "HOME",
    "CL_SOURCE_REGISTRY",
    "ASDF_OUTPUT_TRANSLATIONS",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
    "XDG_DATA_HOME",
    "XDG_DATA_DIRS",
    "XDG_CACHE_HOME",
    "SBCL_HOME",
)


# The line on which the dump names the newer ASDF that ASDF would upgrade itself to.
UPGRADE_LINE = "plait-upgrade: "

# The line on which the dump says that the graph is written; it goes on to save the core.
GRAPH_LINE = "plait-graph: written"

# Called with the dump's description of that ASDF: asd, source, outputs, version.
OnUpgrade = Callable[[Upgrade], None]


class LispError(PlaitError):
    """SBCL is missing, a system cannot be found, or a definition does not load."""


def lisp_file(name: str) -> Path:
    return Path(str(resources.files("plait.asdf").joinpath(name)))


def sbcl() -> Path:
    found = shutil.which("sbcl")
    if found is None:
        raise LispError(
            "SBCL is not installed (no 'sbcl' on PATH)",
            hint="install it, e.g. 'apt-get install sbcl'; plait builds ASDF systems with SBCL",
        )
    return Path(os.path.realpath(found))


class Host(Protocol):
    """Who takes over the warm server the dump forks for its core, before the core is saved."""

    def prepare(self) -> Hosted: ...

    def adopt(self, hosted: Hosted, core: Path, saved: Callable[[], None]) -> None: ...


class Dump:
    """ASDF's graph for some roots, and the core that has their definitions loaded. The core's
    path names what it was made from (the dump's identity and its .asd files), not its bytes:
    a build can start before the core is saved, and a dump made again gives the same path."""

    def __init__(self, data: DumpData, core_path: Path, saving: _Saving | None = None):
        self.data = data
        self.core_path = core_path
        self._saving = saving
        # The core of the dump this one replaces, removed once this one's is saved.
        self.replaces: Path | None = None

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.data.nodes

    @property
    def core(self) -> Path:
        """The core, once it is saved."""
        if self._saving is not None:
            self._saving.saved()
        return self.core_path

    def save(self) -> None:
        """Let the dump save the core now, if it waits to (it does when it forked a server):
        for when a core would otherwise idle. Cheap, and may be called often."""
        if self._saving is not None:
            self._saving.save()

    def finish(self, store: Store) -> None:
        """Wait for the core to be saved, and remember the dump; a LispError if it was not."""
        saving, self._saving = self._saving, None
        if saving is not None:
            saving.finish(store)
        if self.replaces is not None:
            self.replaces.unlink(missing_ok=True)
            self.replaces = None


def identity(store: Store, program: Path, roots: list[str], project: Path) -> dict[str, Any]:
    return {
        "roots": roots,
        "project": str(project),
        **lisp_toolchain(store, program),
        "env": {k: os.environ[k] for k in ASDF_ENVIRONMENT if k in os.environ},
    }


def lisp_toolchain(store: Store, program: Path) -> dict[str, Any]:
    """What a run of plait's Lisp drivers depends on beyond its inputs: SBCL, its core, and the
    drivers themselves (the dump's identity; a test run's key)."""
    core = default_core(program)
    return {
        "sbcl": str(store.file_digest(program)),
        "core": str(store.file_digest(core)) if core else None,
        "dumper": [str(store.file_digest(lisp_file(f))) for f in DRIVERS],
    }


def default_core(program: Path) -> Path | None:
    for candidate in (
        Path(os.environ.get("SBCL_HOME", "/nonexistent")) / "sbcl.core",
        program.parent.parent / "lib" / "sbcl" / "sbcl.core",
    ):
        if candidate.is_file():
            return candidate
    return None


def load(
    store: Store,
    program: Path,
    roots: list[str],
    project: Path,
    on_upgrade: OnUpgrade | None = None,
    host: Host | None = None,
) -> Dump:
    """The cached dump if none of the .asd files it read changed, else a fresh one, during
    which `on_upgrade` may start compiling the ASDF it loads. With a `host`, a fresh dump is
    returned once its graph is written, with a warm server the host adopts, while the core is
    saved: `Dump.finish` then waits for the save."""
    ident = identity(store, program, roots, project)
    key = digest.of_canonical({"asdf-dump": 1, **ident})
    graph = store.dump_graph(key)
    data = decode(json.loads(store.blob_path(graph).read_text())) if graph is not None else None
    replaced = None
    if data is not None:
        core = core_path(store, data.key, data.asd_digests)
        if core.is_file() and _up_to_date(store, data):
            return Dump(data, core)
        replaced = core
    dump = _run(store, program, roots, key, ident, project, on_upgrade, host)
    # The core of the dump this one replaces (an .asd file changed) is no one's once this one's
    # is saved: a dump keeps one core, not one per edit (each ~45 MB).
    if replaced != dump.core_path:
        dump.replaces = replaced
    if host is None:
        dump.finish(store)
    return dump


def core_path(store: Store, key: str, asd_digests: dict[str, str]) -> Path:
    """Where the core of a dump with that key, which read those .asd files, is kept."""
    made_of = digest.of_canonical({"dump": key, "asd": asd_digests})
    return store.root / "cores" / f"{made_of}.core"


def _up_to_date(store: Store, data: DumpData) -> bool:
    """Whether every .asd file the dump read is as it was."""
    for path, recorded in data.asd_digests.items():
        now = store.file_digest(Path(path))
        if now is None or str(now) != recorded:
            return False
    return True


def _run(
    store: Store,
    program: Path,
    roots: list[str],
    key: str,
    ident: dict[str, Any],
    project: Path,
    on_upgrade: OnUpgrade | None,
    host: Host | None,
) -> Dump:
    tmp = Path(tempfile.mkdtemp(prefix="plait-dump-", dir=store.tmp))
    out, core = tmp / "graph.json", tmp / "definitions.core"
    hosted = host.prepare() if host is not None else None
    serve = "-"
    if hosted is not None:
        # The arguments of plait-serve:detach, as one printed list.
        files = (hosted.requests, hosted.replies, hosted.log, lisp_file("call.lisp"), program)
        serve = "(" + " ".join(lisp_string(str(f)) for f in files)
        serve += " " + lisp_list(hosted.environment) + ")"
    argv = [
        str(program),
        "--script",
        str(lisp_file("dump.lisp")),
        str(out),
        str(core),
        serve,
        SANDBOX_MARK + "out/",
        str(project),
        *roots,
    ]
    saving = _Saving(argv, tmp, roots, key, ident, held=hosted is not None)
    try:
        written = saving.read_until_graph(on_upgrade)
        if not written:
            raise _dump_error(saving.wait(), roots)
        raw = json.loads(out.read_text())
    except BaseException:
        saving.abandon()
        raise
    raw["key"] = key
    # What the core is, as far as a compile on it can tell, but for the definitions it holds:
    # SBCL, plait's drivers and the ASDF it runs; not which roots the dump was asked for, nor
    # from where, nor ASDF's configuration (the user's home, XDG directories, registries):
    # those decide which files the dump finds, and a compile's inputs name the files it reads;
    # a compile runs with plait's output translations and HOME. So machines with other homes
    # share compiles. A compile's key names the core so (plait.asdf.graph).
    image = {k: v for k, v in ident.items() if k not in ("roots", "project", "env")}
    raw["image"] = digest.of_canonical({"asdf-image": 1, **image, "asdf": raw["asdf_version"]})
    raw["asd_digests"] = {}
    for path in sorted({asd for _, asd in raw["system_asds"]}):
        d = store.file_digest(Path(path))
        if d is not None:
            raw["asd_digests"][path] = str(d)
    data = decode(raw)
    out.write_text(json.dumps(raw))
    saving.keep(core, core_path(store, key, data.asd_digests))
    if hosted is not None:
        assert host is not None
        host.adopt(hosted, saving.destination, saving.saved)
    return Dump(data, saving.destination, saving)


class _Saving:
    """A dump process that goes on saving the core once the graph is written: a thread waits
    for it and puts the core in its place; `finish` remembers the dump in the store. A `held`
    dump saves only once `save` closes its standard input."""

    def __init__(
        self,
        argv: list[str],
        tmp: Path,
        roots: list[str],
        key: str,
        ident: dict[str, Any],
        held: bool,
    ) -> None:
        self.tmp = tmp
        self.roots, self.key, self.ident = roots, key, ident
        self.done = threading.Event()
        self.destination = Path()
        self._saved: Path | None = None
        self._error: PlaitError | None = None
        # stderr goes to a file, so that nothing the dump writes can block it.
        self._stderr = (tmp / "stderr").open("w+")
        # In a session of its own: a terminal's Ctrl-C goes to plait, which stops the build and
        # ends the dump (or lets it finish saving a core that is valid), never to SBCL, which
        # would die in the middle of saving it.
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            stdin=subprocess.PIPE if held else subprocess.DEVNULL,
            cwd=tmp,
            start_new_session=True,
        )

    def save(self) -> None:
        """Let a held dump go on to save the core (closing a closed pipe does nothing)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def saved(self) -> None:
        """Until the core is saved (or the save failed), asking for it first."""
        self.save()
        self.done.wait()

    def read_until_graph(self, on_upgrade: OnUpgrade | None) -> bool:
        """Hand ASDF's upgrade to `on_upgrade` as soon as the dump names it; True once the
        graph is written, False if the dump ended first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(UPGRADE_LINE) and on_upgrade is not None:
                on_upgrade(upgrade(json.loads(line[len(UPGRADE_LINE) :])))
            elif line.rstrip("\n") == GRAPH_LINE:
                return True
        return False

    def wait(self) -> subprocess.CompletedProcess[str]:
        """The dump's end, with what it said on stderr (asked again after a failure)."""
        assert self.proc.stdout is not None
        if not self.proc.stdout.closed:
            self.proc.stdout.read()
            self.proc.stdout.close()
        status = self.proc.wait()
        self._stderr.seek(0)
        return subprocess.CompletedProcess(self.proc.args, status, None, self._stderr.read())

    def keep(self, saved: Path, destination: Path) -> None:
        """Once the dump ends, its core `saved` goes to `destination`."""
        self._saved, self.destination = saved, destination
        threading.Thread(target=self._wait_and_keep, daemon=True).start()

    def _wait_and_keep(self) -> None:
        try:
            proc = self.wait()
            assert self._saved is not None
            if proc.returncode != 0 or not self._saved.is_file():
                tail = "\n".join(proc.stderr.splitlines()[-15:])
                self._error = LispError(
                    f"saving the core with the definitions of {', '.join(self.roots)} failed:"
                    f"\n{tail}",
                    hint="the messages above are SBCL's; is the disk full?",
                )
                return
            self.destination.parent.mkdir(parents=True, exist_ok=True)
            self._saved.replace(self.destination)
        except OSError as e:
            self._error = LispError(f"cannot keep the definitions core: {e}")
        finally:
            self.done.set()

    def finish(self, store: Store) -> None:
        self.saved()
        try:
            if self._error is not None:
                raise self._error
            store.record_dump(self.key, store.put_file(self.tmp / "graph.json", move=True))
        finally:
            self._stderr.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def abandon(self) -> None:
        """The dump failed or the build stops: end it, and forget what it made."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.save()  # closes the pipe to a held dump
        self.wait()
        self._stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.done.set()


def _dump_error(proc: subprocess.CompletedProcess[str], roots: list[str]) -> PlaitError:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("plait-error: ")]
    if not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        return LispError(
            f"asking ASDF for the graph of {', '.join(roots)} failed:\n{tail}",
            hint="the messages above are SBCL's; fix the system definition they name",
        )
    kind, _, message = lines[0][len("plait-error: ") :].partition(": ")
    if kind == "missing-system":
        return UsageError(
            message,
            hint="ASDF looked in its source registry: "
            + _looked(proc.stderr)
            + "; install the system (e.g. Debian's cl-* package) or run plait where its"
            " .asd file is",
        )
    if kind == "definition":
        return LispError(
            _definition_error(message, proc.stderr),
            hint="the .asd file (or one it depends on) does not load in"
            " a fresh SBCL with ASDF; fix it, then build again",
        )
    return LispError(message, hint="this is what SBCL said while ASDF computed the graph")


# SBCL's words, as it loads an .asd file, for the form whose evaluation failed (the innermost
# load's come first) and for where its reader stopped.
_EVALUATING = re.compile(
    r'While evaluating the form starting at line (\d+), column (\d+)\s+of #P"([^"]+)"'
)
_READING = re.compile(r'Line: (\d+), Column: (\d+).*?Stream: #<[^>]*? for "file ([^"]+)"', re.S)
_WRAPPED = re.compile(
    r"^.*?Error while trying to load definition for system \S+ from pathname \S+?: "
)


def _definition_error(message: str, stderr: str) -> str:
    """`file:line:col: what went wrong` for an .asd file that does not load, where SBCL
    said where (1-based column; SBCL counts from 0 where the form starts, and gives the reader's
    column just past the character it stopped at)."""
    read = _READING.search(message)
    evaluating = _EVALUATING.search(stderr)
    what = " ".join(_WRAPPED.sub("", message).split())
    if read is not None:
        where = f"{read[3]}:{read[1]}:{read[2]}"
        what = " ".join(what.split(" Line: ")[0].replace("READ error during LOAD:", "").split())
        return f"{where}: read error: {what}"
    if evaluating is not None:
        line, column, path = evaluating.groups()
        return f"{path}:{line}:{int(column) + 1}: {what}"
    return message


def _looked(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("plait-looked: "):
            return line[len("plait-looked: ") :]
    return "(unknown)"
