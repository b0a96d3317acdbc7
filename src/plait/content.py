"""Where an executor gets the content a request names: the content-store interface, and the
local one over plait's store and the files this machine already has."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from plait.digest import Digest
from plait.store import Store


class MissingContent(Exception):
    """No file with this content can be had."""

    def __init__(self, digest: Digest) -> None:
        super().__init__(f"no file has content {digest.hash[:12]} ({digest.size} bytes)")
        self.digest = digest


class Content(Protocol):
    def file(self, digest: Digest) -> Path:
        """A local file holding exactly this content, to be read and not changed; raises
        MissingContent. Called from worker threads."""
        ...

    def put(self, path: Path) -> Digest:
        """Keep the file's content (the file may be taken); its digest."""
        ...


Stat = tuple[int, int, int]


class LocalContent:
    """The store's blobs, and the files of this machine whose digest the build knows (`place`):
    sources in the tree, outputs where they were installed. A placed file is preferred while it
    is unchanged since: nothing is copied into the store to be read, and a program that asks
    where the file it reads is (Lisp's *load-truename* of a fasl) learns where it is installed,
    as when it runs outside plait."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._places: dict[Digest, tuple[Path, Stat]] = {}

    def place(self, digest: Digest, path: Path) -> None:
        """`path` has this content now (its digest was just computed or checked)."""
        try:
            st = path.stat()
        except OSError:
            return
        with self._lock:
            self._places[digest] = (path, (st.st_size, st.st_mtime_ns, st.st_ino))

    def file(self, digest: Digest) -> Path:
        with self._lock:
            placed = self._places.get(digest)
        if placed is not None:
            path, then = placed
            try:
                st = path.stat()
            except OSError:
                pass
            else:
                if (st.st_size, st.st_mtime_ns, st.st_ino) == then:
                    return path
        if self.store.sound_blob(digest):
            return self.store.blob_path(digest)
        raise MissingContent(digest)

    def put(self, path: Path) -> Digest:
        return self.store.put_file(path, move=True)
