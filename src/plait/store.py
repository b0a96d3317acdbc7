"""The store: an SQLite action cache, stat cache and run history beside a directory of blobs.

Invariant: an action cache row is committed only after every blob it names is in place, so a
crash leaves either the whole result or none of it. Blobs are written under a temporary name
and renamed into place; a blob's name is its content's sha256.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait import digest
from plait.digest import Digest
from plait.errors import StoreError
from plait.scratch import Scratch

SCHEMA_VERSION = 2

# A file whose mtime is this close to the moment it was hashed may change again within the
# file system's timestamp granularity without its stat changing: it is hashed again next time.
RACY_NS = 1_000_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS action_cache (
    key TEXT PRIMARY KEY, outputs TEXT NOT NULL, duration REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL, hashed_ns INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS last_build (
    project TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, material TEXT NOT NULL,
    duration REAL NOT NULL, PRIMARY KEY (project, name));
CREATE TABLE IF NOT EXISTS installed (
    project TEXT NOT NULL, path TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (project, path));
CREATE TABLE IF NOT EXISTS dumps (
    key TEXT PRIMARY KEY, graph TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, project TEXT NOT NULL, started REAL NOT NULL, ok INTEGER,
    report TEXT);
"""


@dataclass(frozen=True)
class Output:
    """One output of a cached action: its path, content and whether it is executable."""

    path: str
    digest: Digest
    executable: bool

    def to_json(self) -> list[Any]:
        return [self.path, self.digest.hash, self.digest.size, self.executable]

    @classmethod
    def from_json(cls, row: list[Any]) -> Output:
        return cls(row[0], Digest(row[1], row[2]), bool(row[3]))


@dataclass(frozen=True)
class CachedResult:
    outputs: tuple[Output, ...]
    duration: float


@dataclass(frozen=True)
class LastBuild:
    """What an action computed from the last time it ran or was found in the cache here."""

    key: str
    material: dict[str, Any]
    duration: float


def default_root(project: Path) -> Path:
    env = os.environ.get("PLAIT_CACHE")
    return Path(env).resolve() if env else project / ".plait"


# What this process's directory under tmp/ is named after (plait.scratch).
SCRATCH = "run-"


class Store:
    """One project's view of a (possibly shared) store. Use `Store.open` and `close`."""

    def __init__(self, root: Path, project: Path, db: sqlite3.Connection) -> None:
        self.root = root
        self.project = str(project)
        self.db = db
        self.blobs = root / "blobs"
        self._scratch = Scratch(root / "tmp", SCRATCH)
        self.logs = root / "logs" / hashlib.sha256(self.project.encode()).hexdigest()[:16]
        self._stats: dict[str, tuple[int, int, int, int, str]] = {}
        self._dirty_stats: dict[str, tuple[int, int, int, int, str]] = {}
        self.hashed: list[str] = []  # files hashed this session, for tests and `--verbose`
        # Invariant: a blob is used (restored, fed to a command) only once its content was
        # found to have its name's digest in this process; a blob that has not is removed.
        self._verified: set[str] = set()
        self._blob_lock = threading.Lock()
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, project: Path, root: Path | None = None) -> Store:
        root = root or default_root(project)
        for sub in ("blobs", "tmp", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        db = connect(root / "store.db")
        store = cls(root, project, db)
        store._preload_stats()
        return store

    def close(self) -> None:
        self.flush()
        self.db.close()
        self.unlock()
        self._scratch.remove()

    @property
    def tmp(self) -> Path:
        """This process's directory for what is not in the store yet (blobs being written, a
        dump's files), under the store's tmp/: made when first asked for, removed on `close`,
        and removed by the next process if this one is killed (plait.scratch)."""
        return self._scratch.path

    def log_path(self, name: str) -> Path:
        """Where the output of an action's last run is kept."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]
        return self.logs / f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.log"

    # -- the project lock ------------------------------------------------------------------

    def lock(self, on_wait: Any = None) -> None:
        """Hold the project's build lock; waits (calling `on_wait` once) while another has it."""
        name = hashlib.sha256(self.project.encode()).hexdigest()[:16]
        fd = os.open(self.root / f"lock-{name}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, d: Digest) -> Path:
        return self.blobs / d.hash[:2] / d.hash

    def has_blob(self, d: Digest) -> bool:
        return self.blob_path(d).is_file()

    def sound_blob(self, d: Digest) -> bool:
        """Whether the blob is there and its content has its digest (checked once a process).
        A blob whose content does not is removed: what made it must make it again."""
        with self._blob_lock:
            if d.hash in self._verified:
                return True
        path = self.blob_path(d)
        try:
            actual = digest.of_file(path)
        except FileNotFoundError:
            return False
        if actual != d:
            path.unlink(missing_ok=True)
            return False
        with self._blob_lock:
            self._verified.add(d.hash)
        return True

    def put_file(self, path: Path, *, move: bool = False) -> Digest:
        """Add a file's content to the blobs; with `move` the file may be taken, not copied."""
        d = digest.of_file(path)
        dest = self.blob_path(d)
        if self.sound_blob(d):
            return d
        dest.parent.mkdir(exist_ok=True)

        def fill(tmp: Path) -> None:
            if move:
                try:
                    path.replace(tmp)
                    return
                except OSError as e:
                    if e.errno != errno.EXDEV:
                        raise
            shutil.copyfile(path, tmp)

        _write_whole(dest, fill, 0o444, tmp_dir=self.tmp)
        return d

    def materialize(self, d: Digest, dest: Path, executable: bool) -> None:
        """Write a blob to `dest`, whole (another plait may be writing the same file: the user's
        ASDF cache is every project's), then record its stat."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        blob = self.blob_path(d)
        if not self.sound_blob(d):
            raise StoreError(
                f"the store's copy of '{dest.name}' ({d.hash[:12]}) is damaged; it was removed",
                hint="build again: the action that made it runs again",
            )
        _write_whole(dest, lambda tmp: shutil.copyfile(blob, tmp), 0o755 if executable else 0o644)
        self.remember_stat(dest, d)

    # -- the stat cache --------------------------------------------------------------------

    def _preload_stats(self) -> None:
        prefix = self.project.rstrip("/") + "/"
        rows = self.db.execute(
            "SELECT path, size, mtime_ns, ino, hashed_ns, hash FROM stat_cache"
            " WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + "0"),
        )
        for path, *entry in rows:
            self._stats[path] = tuple(entry)

    def file_digest(self, path: Path) -> Digest | None:
        """The digest of a file, hashing only when its stat changed; None if it is missing."""
        state = self.file_state(path)
        return state[0] if state else None

    def file_state(self, path: Path) -> tuple[Digest, bool] | None:
        """The digest of a file and whether it is executable; None if it is missing."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return self._digest(path, st), bool(st.st_mode & stat.S_IXUSR)

    def _digest(self, path: Path, st: os.stat_result) -> Digest:
        key = str(path)
        entry = self._stats.get(key)
        if entry is None and not key.startswith(self.project):
            row = self.db.execute(
                "SELECT size, mtime_ns, ino, hashed_ns, hash FROM stat_cache WHERE path = ?",
                (key,),
            ).fetchone()
            entry = tuple(row) if row else None
            if entry is not None:  # outside the project: asked again by other actions
                self._stats[key] = entry
        if entry is not None:
            size, mtime_ns, ino, hashed_ns, hash_ = entry
            if (size, mtime_ns, ino) == (st.st_size, st.st_mtime_ns, st.st_ino) and (
                mtime_ns + RACY_NS < hashed_ns
            ):
                return Digest(hash_, size)
        self.hashed.append(key)
        d = digest.of_file(path)
        self._record(key, st, d)
        return d

    def remember_stat(self, path: Path, d: Digest) -> None:
        self._record(str(path), path.stat(), d)

    def _record(self, key: str, st: os.stat_result, d: Digest) -> None:
        entry = (st.st_size, st.st_mtime_ns, st.st_ino, time.time_ns(), d.hash)
        self._stats[key] = entry
        self._dirty_stats[key] = entry

    def flush(self) -> None:
        if not self._dirty_stats:
            return
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO stat_cache VALUES (?, ?, ?, ?, ?, ?)",
                [(k, *v) for k, v in self._dirty_stats.items()],
            )
        self._dirty_stats.clear()

    # -- the action cache and the project's last build ------------------------------------

    def lookup(self, key: str) -> CachedResult | None:
        row = self.db.execute(
            "SELECT outputs, duration FROM action_cache WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return CachedResult(tuple(Output.from_json(o) for o in json.loads(row[0])), row[1])

    def last_builds(self) -> dict[str, LastBuild]:
        rows = self.db.execute(
            "SELECT name, key, material, duration FROM last_build WHERE project = ?",
            (self.project,),
        )
        return {name: LastBuild(key, json.loads(m), dur) for name, key, m, dur in rows}

    def register(
        self,
        name: str,
        key: str,
        material: dict[str, Any],
        result: CachedResult,
        *,
        ran: bool,
        installed: dict[str, Path] | None = None,
    ) -> None:
        """Record a result in one transaction, with where its outputs were installed (output ->
        absolute path). Invariant: its blobs are already in place."""
        missing = [o.path for o in result.outputs if not self.has_blob(o.digest)]
        if missing:
            raise StoreError(f"refusing to register '{name}': blobs missing for {missing}")
        outputs = json.dumps([o.to_json() for o in result.outputs])
        with self.db:
            if ran:
                self.db.execute(
                    "INSERT OR REPLACE INTO action_cache VALUES (?, ?, ?, ?)",
                    (key, outputs, result.duration, time.time()),
                )
            self.db.execute(
                "INSERT OR REPLACE INTO last_build VALUES (?, ?, ?, ?, ?)",
                (self.project, name, key, json.dumps(material, sort_keys=True), result.duration),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO installed VALUES (?, ?, ?)",
                [
                    (self.project, str(where), o.digest.hash)
                    for o in result.outputs
                    if (where := (installed or {}).get(o.path)) is not None
                ],
            )

    def installed(self) -> dict[Path, str]:
        """Every file this project's builds installed (in the project, or where ASDF looks for
        fasls), with the content hash plait wrote there."""
        rows = self.db.execute(
            "SELECT path, hash FROM installed WHERE project = ?", (self.project,)
        )
        return {Path(p): h for p, h in rows.fetchall()}

    def forget_installed(self, paths: list[Path]) -> None:
        with self.db:
            self.db.executemany(
                "DELETE FROM installed WHERE project = ? AND path = ?",
                [(self.project, str(p)) for p in paths],
            )

    # -- a frontend's records: the graphs ASDF dumps ---------------------------------------

    def record_dump(self, key: str, graph: Digest) -> None:
        """Remember the graph (a blob, already in place) that a dump with `key` wrote."""
        if not self.has_blob(graph):
            raise StoreError(f"refusing to record dump '{key}': its graph's blob is missing")
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO dumps VALUES (?, ?, ?, ?)",
                (key, graph.hash, graph.size, time.time()),
            )

    def dump_graph(self, key: str) -> Digest | None:
        """The graph a dump with `key` wrote, if its blob is still here."""
        row = self.db.execute("SELECT graph, size FROM dumps WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        graph = Digest(row[0], row[1])
        return graph if self.has_blob(graph) else None

    def last_run(self) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT report FROM runs WHERE project = ? ORDER BY id DESC LIMIT 1", (self.project,)
        ).fetchone()
        return dict(json.loads(row[0])) if row else None

    def record_run(self, report: dict[str, Any], started: float) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO runs (project, started, ok, report) VALUES (?, ?, ?, ?)",
                (self.project, started, int(bool(report.get("ok"))), json.dumps(report)),
            )


def connect(path: Path) -> sqlite3.Connection:
    """The one place the database is opened: pragmas, schema, version check."""
    try:
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        db.isolation_level = "DEFERRED"
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=60000")
        if _needs_schema(db):
            db.executescript(_SCHEMA)
        with db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            _migrate(db)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row[0] != str(SCHEMA_VERSION):
                raise StoreError(
                    f"the store at '{path.parent}' has schema version {row[0]}, this plait"
                    f" uses {SCHEMA_VERSION}",
                    hint=f"remove '{path.parent}' (it is only a cache) or use the plait that"
                    " made it",
                )
    except sqlite3.DatabaseError as e:
        raise StoreError(
            f"cannot open the store database '{path}': {e}",
            hint=f"remove '{path.parent}' (it is only a cache) and build again",
        ) from e
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a store of schema 1 to 2 (in the caller's transaction): files installed are kept
    by absolute path, and dumps have a table of their own rather than fake actions' rows."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row[0] != "1":
        return
    for statement in _SCHEMA.split(";"):
        if "installed" in statement or "dumps" in statement:
            db.execute(statement)
    db.execute(
        "INSERT OR IGNORE INTO installed SELECT project, project || '/' || path, hash"
        " FROM materialized"
    )
    db.execute("DROP TABLE materialized")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")


def _needs_schema(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone()
    return row is None


def _write_whole(
    dest: Path, fill: Callable[[Path], object], mode: int, tmp_dir: Path | None = None
) -> None:
    """Put a file at `dest` that no reader sees half-written: `fill` writes it under a
    temporary name of this call's own, in `tmp_dir` (on `dest`'s file system; by default beside
    `dest`), which then gets `mode` and is renamed into place."""
    where = tmp_dir if tmp_dir is not None else dest.parent
    fd, name = tempfile.mkstemp(dir=where, prefix=f".{dest.name}.", suffix=".plait")
    os.close(fd)
    tmp = Path(name)
    try:
        fill(tmp)
        tmp.chmod(mode)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
