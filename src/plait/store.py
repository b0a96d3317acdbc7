"""The store: an SQLite action cache, stat cache and run history beside a directory of blobs.

Invariant: an action cache row is committed only after every blob it names is in place, so a
crash leaves either the whole result or none of it. Blobs are written under a temporary name
and renamed into place; a blob's name is its content's sha256.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait import digest
from plait.digest import Digest
from plait.errors import StoreError, disk_full
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
CREATE TABLE IF NOT EXISTS used (key TEXT PRIMARY KEY, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class Verified:
    """What `Store.verify` found: SQLite's integrity check, the blobs and their bytes, the
    damaged ones, and how many results and dumps name a blob that is missing or damaged."""

    integrity: str
    blobs: int
    size: int
    damaged: list[str]
    broken: int

    @property
    def sound(self) -> bool:
        return self.integrity == "ok" and not self.damaged and not self.broken


@dataclass(frozen=True)
class Collected:
    """What `Store.collect` removed, and what the store's files hold now (bytes)."""

    results: int
    blobs: int
    cores: int
    freed: int
    kept: int
    projects: int


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

    def __init__(
        self, root: Path, project: Path, db: sqlite3.Connection, read_only: bool = False
    ) -> None:
        self.root = root
        self.project = str(project)
        self.db = db
        self.blobs = root / "blobs"
        # A store this process cannot write (a read-only mount, another user's) serves builds
        # that need nothing new: it is read as it is, and what this process would add goes
        # nowhere. Its scratch directory is then outside it.
        self.read_only = read_only
        scratch_parent = Path(tempfile.gettempdir()) if read_only else root / "tmp"
        self._scratch = Scratch(scratch_parent, SCRATCH)
        self.logs = root / "logs" / _project_tag(self.project)
        self._stats: dict[str, tuple[int, int, int, int, str]] = {}
        self._dirty_stats: dict[str, tuple[int, int, int, int, str]] = {}
        self.hashed: list[str] = []  # files hashed this session, for tests and `--verbose`
        # Invariant: a blob is used (restored, fed to a command) only once its content was
        # found to have its name's digest in this process; a blob that has not is removed.
        self._verified: set[str] = set()
        self._blob_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._users_fd: int | None = None
        # Whether the scratch directory is on each device files are restored to.
        self._tmp_devices: dict[int, bool] = {}

    @classmethod
    def open(cls, project: Path, root: Path | None = None) -> Store:
        """Open the store, sharing it with the other plaits that have it open: `collect` waits
        until none has."""
        root = root or default_root(project)
        if root.exists() and not root.is_dir():
            raise StoreError(
                f"the store '{root}' is not a directory",
                hint="PLAIT_CACHE names the directory plait keeps its store in (made if it is"
                " not there); unset it to use .plait in the project",
            )
        read_only = (root / "store.db").is_file() and not os.access(root, os.W_OK)
        if not read_only:
            try:
                for sub in ("blobs", "tmp", "logs"):
                    (root / sub).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(
                    f"cannot make the store at '{root}': {e.strerror}",
                    hint="give plait a directory it can write (PLAIT_CACHE), or make this one",
                ) from e
        users = _lock_file(root / "users.lock", read_only)
        if users is not None:
            fcntl.flock(users, fcntl.LOCK_SH)
        try:
            db = connect_read_only(root / "store.db") if read_only else connect(root / "store.db")
        except BaseException:
            if users is not None:
                os.close(users)
            raise
        store = cls(root, project, db, read_only)
        store._users_fd = users
        store._preload_stats()
        return store

    def close(self) -> None:
        self.flush()
        self.db.close()
        self.unlock()
        self._scratch.remove()
        if self._users_fd is not None:
            os.close(self._users_fd)
            self._users_fd = None

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
        fd = _lock_file(self.root / f"lock-{_project_tag(self.project)}", self.read_only)
        if fd is None:
            return  # a read-only store: no build of this project writes to it
        _flock_waiting(fd, on_wait)
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

    def put_file(self, path: Path, *, move: bool = False, known: Digest | None = None) -> Digest:
        """Add a file's content to the blobs; with `move` the file may be taken, not copied.
        `known`: its digest, just computed by the caller. A moved file's blob is known sound:
        it is the file that was hashed, so reading it needs no second hash."""
        d = known if known is not None else digest.of_file(path)
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

        write_whole(dest, fill, 0o444, tmp_dir=self.tmp)
        if move:
            with self._blob_lock:
                self._verified.add(d.hash)
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
        write_whole(
            dest,
            lambda tmp: shutil.copyfile(blob, tmp),
            0o755 if executable else 0o644,
            tmp_dir=self._tmp_for(dest.parent),
        )
        self.remember_stat(dest, d)

    def _tmp_for(self, directory: Path) -> Path | None:
        """Where a file for `directory` is written before it is renamed there: this process's
        scratch directory when it is on the same file system, so that a process killed in the
        middle of a restore leaves nothing in the user's directories (the next plait removes
        its scratch); else None, beside the file."""
        try:
            device = directory.stat().st_dev
        except OSError:
            return None
        if device not in self._tmp_devices:
            self._tmp_devices[device] = self.tmp.stat().st_dev == device
        return self.tmp if self._tmp_devices[device] else None

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

    def tree_digest(self, path: Path) -> str:
        """One digest of what is at `path`: a file's content and mode, or a directory's files,
        executable bits and links, by relative path; "missing" if nothing is there."""
        if path.is_symlink() or path.is_file():
            return digest.of_canonical(self._entry(path))
        if not path.is_dir():
            return "missing"
        entries = {}
        for found in sorted(path.rglob("*")):
            if found.is_symlink() or found.is_file():
                entries[str(found.relative_to(path))] = self._entry(found)
        return digest.of_canonical(entries)

    def _entry(self, path: Path) -> str:
        if path.is_symlink():
            return f"-> {path.readlink()}"
        state = self.file_state(path)
        return f"{state[0]}{' x' if state[1] else ''}" if state else "missing"

    def unchanged(self, path: Path, d: Digest) -> bool:
        """Whether `path` has the stat it had when the store last found or wrote its digest,
        and that digest is `d`. From any thread: it reads the stat cache in memory only."""
        entry = self._stats.get(str(path))
        if entry is None or entry[4] != d.hash:
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        return (st.st_size, st.st_mtime_ns, st.st_ino) == entry[:3]

    def remember_stat(self, path: Path, d: Digest) -> None:
        self._record(str(path), path.stat(), d)

    def _record(self, key: str, st: os.stat_result, d: Digest) -> None:
        entry = (st.st_size, st.st_mtime_ns, st.st_ino, time.time_ns(), d.hash)
        self._stats[key] = entry
        self._dirty_stats[key] = entry

    def flush(self) -> None:
        if not self._dirty_stats or self.read_only:
            return
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO stat_cache VALUES (?, ?, ?, ?, ?, ?)",
                [(k, *v) for k, v in self._dirty_stats.items()],
            )
        self._dirty_stats.clear()

    # -- the action cache and the project's last build ------------------------------------

    def lookup(self, key: str) -> CachedResult | None:
        return _cached(self.db, key)

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
        if self.read_only:
            return  # what a restore put back is the store's already; nothing new to record
        missing = [o.path for o in result.outputs if not self.has_blob(o.digest)]
        if missing:
            raise StoreError(f"refusing to register '{name}': blobs missing for {missing}")
        outputs = json.dumps([o.to_json() for o in result.outputs])
        now = time.time()
        with self.db:
            if ran:
                self.db.execute(
                    "INSERT OR REPLACE INTO action_cache VALUES (?, ?, ?, ?)",
                    (key, outputs, result.duration, now),
                )
            # When a result was last used, for gc: now, and so was the one this action's last
            # build had (used by every build until this one).
            before = self.db.execute(
                "SELECT key FROM last_build WHERE project = ? AND name = ?", (self.project, name)
            ).fetchone()
            self.db.executemany(
                "INSERT OR REPLACE INTO used VALUES (?, ?)",
                [(k, now) for k in {key, *(before or ())}],
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

    # -- claims: one plait builds a key at a time -------------------------------------------

    def claim(self, key: str) -> tuple[int, bool]:
        """The store-wide claim on building `key`, a descriptor to `take` and then `release`,
        so that plaits sharing the store do not build one action twice at once; and whether
        this plait is the first to claim it (else another may have built it meanwhile, or be
        building it). Called from worker threads."""
        path = self.root / "claims" / key[:2] / key
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            return os.open(path, os.O_RDWR), False

    @staticmethod
    def take(claim: int) -> bool:
        """Hold the claim; False if another plait holds it."""
        return _flock_now(claim)

    @staticmethod
    def release(claim: int) -> None:
        os.close(claim)

    def lookup_now(self, key: str) -> CachedResult | None:
        """`lookup` on a connection of its own, from any thread: what another plait may have
        registered since this one looked."""
        db = connect(self.root / "store.db")
        try:
            return _cached(db, key)
        finally:
            db.close()

    # -- verification ----------------------------------------------------------------------

    def verify(self, repair: bool, on_wait: Any = None) -> Verified:
        """Check the database's integrity and every blob against its digest; with `repair`,
        remove the damaged blobs and forget the results and dumps that name a blob that is not
        sound. Holds the store alone, as `collect` does."""
        if repair:
            self.writable("repairing it")
        with self._alone(on_wait):
            (integrity,) = self.db.execute("PRAGMA integrity_check").fetchone()
            blobs = sorted(self.blobs.glob("*/*"))
            size = sum(p.stat().st_size for p in blobs)
            damaged = {p.name for p in blobs if digest.of_file(p).hash != p.name}
            present = {p.name for p in blobs} - damaged
            rows = list(self.db.execute("SELECT key, outputs FROM action_cache"))
            broken = [
                key
                for key, outputs in rows
                if any(Output.from_json(o).digest.hash not in present for o in json.loads(outputs))
            ]
            dumps = [
                k for k, g in self.db.execute("SELECT key, graph FROM dumps") if g not in present
            ]
            if repair:
                for hash_ in damaged:
                    (self.blobs / hash_[:2] / hash_).unlink(missing_ok=True)
                with self.db:
                    self.db.executemany(
                        "DELETE FROM action_cache WHERE key = ?", [(k,) for k in broken]
                    )
                    self.db.executemany("DELETE FROM dumps WHERE key = ?", [(k,) for k in dumps])
            return Verified(integrity, len(blobs), size, sorted(damaged), len(broken) + len(dumps))

    @contextlib.contextmanager
    def _alone(self, on_wait: Any) -> Iterator[None]:
        """Hold the store with no other plait using it (waiting, calling `on_wait` once)."""
        assert self._users_fd is not None
        _flock_waiting(self._users_fd, on_wait)
        try:
            yield
        finally:
            fcntl.flock(self._users_fd, fcntl.LOCK_SH)

    # -- garbage collection ----------------------------------------------------------------

    def writable(self, what: str) -> None:
        """A StoreError saying that `what` needs to write a store this process cannot."""
        if self.read_only:
            raise StoreError(
                f"the store at '{self.root}' is read-only here: {what} needs to write it",
                hint="run it as the store's owner, or use a store of your own (PLAIT_CACHE)",
            )

    def collect(
        self, older_than: float, max_size: int | None = None, on_wait: Any = None
    ) -> Collected:
        """Forget what no project's last build uses and was last used (stored, or taken by a
        build) more than `older_than` seconds ago, and (with `max_size`) more of it, least
        recently used first, until the blobs and cores fit in `max_size` bytes; forget the
        projects whose directory is gone; remove the blobs nothing kept names, and the cores
        not used for `older_than`. What a project's last build used is always kept: its next
        build is a no-op. Waits for the other plaits that have the store open (calling
        `on_wait` once)."""
        self.writable("gc")
        with self._alone(on_wait):
            return self._collect(older_than, max_size)

    def _collect(self, older_than: float, max_size: int | None) -> Collected:
        self.flush()
        cutoff = time.time() - older_than
        gone = [
            p
            for (p,) in self.db.execute(
                "SELECT project FROM last_build UNION SELECT project FROM installed"
            )
            if not Path(p).is_dir()
        ]
        with self.db:
            for table in ("last_build", "installed", "runs"):
                self.db.executemany(f"DELETE FROM {table} WHERE project = ?", [(p,) for p in gone])
            stale = [(p,) for (p,) in self.db.execute("SELECT path FROM stat_cache")]
            stale = [row for row in stale if not Path(row[0]).exists()]
            self.db.executemany("DELETE FROM stat_cache WHERE path = ?", stale)
        for p in gone:
            shutil.rmtree(self.root / "logs" / _project_tag(p), ignore_errors=True)
        live = {k for (k,) in self.db.execute("SELECT key FROM last_build")}
        rows = self.db.execute(
            "SELECT a.key, a.outputs, MAX(a.created, COALESCE(u.at, 0)) AS t"
            " FROM action_cache a LEFT JOIN used u ON u.key = a.key ORDER BY t"
        )
        entries = [(k, [Output.from_json(o) for o in json.loads(out)], c) for k, out, c in rows]
        dumps = list(self.db.execute("SELECT key, graph, size, created FROM dumps"))
        # Blobs and cores by size, and how many kept entries name each blob.
        blobs = {p.name: p.stat().st_size for p in self.blobs.glob("*/*") if p.is_file()}
        cores = {p: p.stat() for p in (self.root / "cores").glob("*.core")}
        refs: dict[str, int] = {}
        for _, outputs, _ in entries:
            for o in outputs:
                refs[o.digest.hash] = refs.get(o.digest.hash, 0) + 1
        for _, graph, _, _ in dumps:
            refs[graph] = refs.get(graph, 0) + 1
        forget: list[str] = []
        old_cores = [p for p, st in cores.items() if st.st_mtime < cutoff and st.st_atime < cutoff]
        size = sum(n for h, n in blobs.items() if refs.get(h, 0) > 0)
        size += sum(st.st_size for p, st in cores.items() if p not in old_cores)

        def drop(outputs: list[Output]) -> int:
            """Forget an entry's outputs; the bytes of the blobs nothing else names."""
            freed = 0
            for o in outputs:
                refs[o.digest.hash] -= 1
                if refs[o.digest.hash] == 0:
                    freed += blobs.get(o.digest.hash, 0)
            return freed

        for key, outputs, created in entries:
            if key not in live and created < cutoff:
                forget.append(key)
                size -= drop(outputs)
        if max_size is not None:
            # The oldest cores, then the least recently used results, until the rest fits.
            for p in sorted(cores, key=lambda p: cores[p].st_mtime):
                if size <= max_size:
                    break
                if p not in old_cores:
                    old_cores.append(p)
                    size -= cores[p].st_size
            for key, outputs, _ in entries:
                if size <= max_size:
                    break
                if key not in live and key not in forget:
                    forget.append(key)
                    size -= drop(outputs)
        old_dumps = [(k, g) for k, g, _, c in dumps if c < cutoff]
        for _, graph in old_dumps:
            refs[graph] -= 1
        with self.db:
            self.db.executemany("DELETE FROM action_cache WHERE key = ?", [(k,) for k in forget])
            self.db.executemany("DELETE FROM used WHERE key = ?", [(k,) for k in forget])
            self.db.executemany("DELETE FROM dumps WHERE key = ?", [(k,) for k, _ in old_dumps])
        freed = 0
        removed = 0
        for hash_, n in blobs.items():
            if refs.get(hash_, 0) <= 0:
                (self.blobs / hash_[:2] / hash_).unlink(missing_ok=True)
                freed += n
                removed += 1
        for p in old_cores:
            freed += cores[p].st_size
            p.unlink(missing_ok=True)
        # No plait holds a claim now (they all hold the store open): the files can go.
        shutil.rmtree(self.root / "claims", ignore_errors=True)
        return Collected(len(forget), removed, len(old_cores), freed, size, len(gone))

    def installed(self) -> dict[Path, str]:
        """Every file this project's builds installed (in the project, or where ASDF looks for
        fasls), with the content hash plait wrote there."""
        rows = self.db.execute(
            "SELECT path, hash FROM installed WHERE project = ?", (self.project,)
        )
        return {Path(p): h for p, h in rows.fetchall()}

    def forget_installed(self, paths: list[Path]) -> None:
        self.writable("plait clean")
        with self.db:
            self.db.executemany(
                "DELETE FROM installed WHERE project = ? AND path = ?",
                [(self.project, str(p)) for p in paths],
            )

    # -- a frontend's records: the graphs ASDF dumps ---------------------------------------

    def record_dump(self, key: str, graph: Digest) -> None:
        """Remember the graph (a blob, already in place) that a dump with `key` wrote."""
        self.writable("finding the systems' graph afresh")
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
        if self.read_only:
            return
        with self.db:
            self.db.execute(
                "INSERT INTO runs (project, started, ok, report) VALUES (?, ?, ?, ?)",
                (self.project, started, int(bool(report.get("ok"))), json.dumps(report)),
            )


def _flock_now(fd: int) -> bool:
    """Hold an exclusive flock on `fd`; False if another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _flock_waiting(fd: int, on_wait: Any) -> None:
    """Hold an exclusive flock on `fd`, calling `on_wait` once if it must wait for it."""
    if not _flock_now(fd):
        if on_wait is not None:
            on_wait()
        fcntl.flock(fd, fcntl.LOCK_EX)


def _cached(db: sqlite3.Connection, key: str) -> CachedResult | None:
    row = db.execute("SELECT outputs, duration FROM action_cache WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    return CachedResult(tuple(Output.from_json(o) for o in json.loads(row[0])), row[1])


def _lock_file(path: Path, read_only: bool) -> int | None:
    """A descriptor to flock `path` by; in a read-only store, None if it is not there."""
    if not read_only:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def connect_read_only(path: Path) -> sqlite3.Connection:
    """The database of a store this process cannot write, read as it is (SQLite's immutable
    mode, which needs neither its journal nor a lock)."""
    try:
        db = sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError as e:
        raise StoreError(
            f"cannot read the store database '{path}': {e}",
            hint="the store is read-only here: ask its owner to run 'plait store reset' in it",
        ) from e
    if row is None or row[0] != str(SCHEMA_VERSION):
        raise StoreError(
            f"the read-only store at '{path.parent}' has schema version"
            f" {row[0] if row else 'none'}, this plait uses {SCHEMA_VERSION}",
            hint="use the plait that made it, or another store (PLAIT_CACHE)",
        )
    return db


def _project_tag(project: str) -> str:
    """A project's name among the store's directories."""
    return hashlib.sha256(project.encode()).hexdigest()[:16]


def connect(path: Path) -> sqlite3.Connection:
    """The one place the database is opened: pragmas, schema, version check. Plaits opening
    one store take turns (an flock beside it): switching a new database to WAL and making its
    tables can fail at once as "locked", without waiting, when another plait does the same."""
    lock = os.open(path.parent / "open.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _connect(path)
    finally:
        os.close(lock)


def _connect(path: Path) -> sqlite3.Connection:
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
        if disk_full(e) or _no_room(path.parent):
            raise StoreError(
                f"cannot open the store database '{path}': {e}: the disk it is on is full",
                hint="free some space (plait gc shrinks the store), or set PLAIT_CACHE to a"
                " directory on another disk",
            ) from e
        if "locked" in str(e):
            raise StoreError(
                f"cannot open the store database '{path}': {e}",
                hint="another program holds it: try again when it is done",
            ) from e
        raise StoreError(
            f"cannot open the store database '{path}': {e}",
            hint="'plait store reset' puts it aside and starts the store's records afresh (the"
            " next build rebuilds what it does not find)",
        ) from e
    return db


def _no_room(directory: Path) -> bool:
    """Whether the file system of `directory` has less room than SQLite needs to open a
    database (which it may report as a mere I/O error)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 256 * 1024


def reset(root: Path) -> Path | None:
    """Put a store's database aside (renamed, with its journal) so that the next plait starts
    its records afresh; where it went, or None if there was none. Blobs stay: `gc` removes the
    ones nothing names any more."""
    db = root / "store.db"
    if not db.exists():
        return None
    aside = root / f"store.db.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    db.replace(aside)
    for suffix in ("-wal", "-shm"):
        (root / f"store.db{suffix}").unlink(missing_ok=True)
    return aside


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
    row = db.execute("SELECT name FROM sqlite_master WHERE name = 'used'").fetchone()
    return row is None


# What the temporary name of a file being written ends with.
SUFFIX = ".plait"


def write_whole(
    dest: Path, fill: Callable[[Path], object], mode: int, tmp_dir: Path | None = None
) -> None:
    """Put a file at `dest` that no reader sees half-written: `fill` writes it under a
    temporary name of this call's own, in `tmp_dir` (on `dest`'s file system; by default beside
    `dest`), which then gets `mode` and is renamed into place."""
    where = tmp_dir if tmp_dir is not None else dest.parent
    fd, name = tempfile.mkstemp(dir=where, prefix=f".{dest.name}.", suffix=SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        fill(tmp)
        tmp.chmod(mode)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
