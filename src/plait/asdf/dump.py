"""Ask ASDF for the action graph: one SBCL loads the definitions, writes the graph as JSON and
saves a core with the definitions loaded. The result is cached by the digests of the .asd files
it read, SBCL's identity and the ASDF configuration, so an up-to-date build starts no Lisp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from plait import digest
from plait.errors import PlaitError, UsageError
from plait.store import CachedResult, Output, Store

# Where the dump pretends the sandbox is, to learn the paths compiles write their outputs to.
SANDBOX_MARK = "/PLAIT-SANDBOX/"

# The Lisp files the dump loads into the definitions core (their digests are in its identity).
DRIVERS = (
    "dump.lisp",
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

# Called with the dump's description of that ASDF: asd, source, outputs, version.
OnUpgrade = Callable[[dict[str, Any]], None]


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


@dataclass(frozen=True)
class Dump:
    """ASDF's graph for some roots, and the core that has their definitions loaded."""

    data: dict[str, Any]
    core: Path

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.data["nodes"])


def identity(store: Store, program: Path, roots: list[str], project: Path) -> dict[str, Any]:
    core = default_core(program)
    return {
        "roots": roots,
        "project": str(project),
        "sbcl": str(store.file_digest(program)),
        "core": str(store.file_digest(core)) if core else None,
        "dumper": [str(store.file_digest(lisp_file(f))) for f in DRIVERS],
        "env": {k: os.environ[k] for k in ASDF_ENVIRONMENT if k in os.environ},
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
) -> Dump:
    """The cached dump if none of the .asd files it read changed, else a fresh one, during
    which `on_upgrade` may start compiling the ASDF it loads."""
    ident = identity(store, program, roots, project)
    key = digest.of_canonical({"asdf-dump": 1, **ident})
    cached = store.lookup(key)
    if cached is not None:
        dump = _from_cache(store, cached)
        if dump is not None:
            return dump
    return _run(store, program, roots, key, ident, project, on_upgrade)


def _from_cache(store: Store, cached: CachedResult) -> Dump | None:
    by_path = {o.path: o for o in cached.outputs}
    graph, core = by_path.get("graph.json"), by_path.get("definitions.core")
    if graph is None or core is None:
        return None
    if not (store.has_blob(graph.digest) and store.has_blob(core.digest)):
        return None
    data = json.loads(store.blob_path(graph.digest).read_text())
    for path, recorded in data["asd_digests"].items():
        now = store.file_digest(Path(path))
        if now is None or str(now) != recorded:
            return None
    return Dump(data, store.blob_path(core.digest))


def _run(
    store: Store,
    program: Path,
    roots: list[str],
    key: str,
    ident: dict[str, Any],
    project: Path,
    on_upgrade: OnUpgrade | None,
) -> Dump:
    with tempfile.TemporaryDirectory(prefix="plait-dump-", dir=store.tmp) as tmp:
        out, core = Path(tmp) / "graph.json", Path(tmp) / "definitions.core"
        argv = [
            str(program),
            "--script",
            str(lisp_file("dump.lisp")),
            str(out),
            str(core),
            SANDBOX_MARK + "out/",
            str(project),
            *roots,
        ]
        proc = _dump(argv, Path(tmp), on_upgrade)
        if proc.returncode != 0 or not out.is_file():
            raise _dump_error(proc, roots)
        data = json.loads(out.read_text())
        data["asd_digests"] = {}
        for path in data["asd_files"]:
            d = store.file_digest(Path(path))
            if d is not None:
                data["asd_digests"][path] = str(d)
        out.write_text(json.dumps(data))
        outputs = (
            Output("graph.json", store.put_file(out, move=True), False),
            Output("definitions.core", store.put_file(core, move=True), False),
        )
    store.register(f"asdf-dump {' '.join(roots)}", key, ident, CachedResult(outputs, 0.0), ran=True)
    return Dump(data, store.blob_path(outputs[1].digest))


def _dump(
    argv: list[str], tmp: Path, on_upgrade: OnUpgrade | None
) -> subprocess.CompletedProcess[str]:
    """Run the dump; hand ASDF's upgrade to `on_upgrade` as soon as the dump names it, while the
    dump goes on. Its stderr goes to a file, so that nothing it writes can block it."""
    with (tmp / "stderr").open("w+") as err:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err, text=True, stdin=subprocess.DEVNULL, cwd=tmp
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(UPGRADE_LINE) and on_upgrade is not None:
                    on_upgrade(json.loads(line[len(UPGRADE_LINE) :]))
            status = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        return subprocess.CompletedProcess(argv, status, None, err.read())


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
            message,
            hint="the .asd file (or one it depends on) does not load in"
            " a fresh SBCL with ASDF; fix it, then build again",
        )
    return LispError(message, hint="this is what SBCL said while ASDF computed the graph")


def _looked(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("plait-looked: "):
            return line[len("plait-looked: ") :]
    return "(unknown)"
