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

    def put(self, path: Path, known: Digest | None = None) -> Digest:
        """Keep the file's content (the file may be taken); its digest. `known` is the digest
        the caller has just computed of a file nobody else writes: it is not computed again."""
        ...


class LocalContent:
    """The store's blobs, and the files of this machine whose digest the build knows (`place`):
    sources in the tree, outputs where they were installed. A placed file is preferred while the
    store's stat cache says it is unchanged: nothing is copied into the store to be read, and a
    program that asks where the file it reads is (Lisp's *load-truename* of a fasl) learns where
    it is installed, as when it runs outside plait. Placing costs nothing: a build that runs no
    command looks at no placed file."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._places: dict[Digest, Path] = {}

    def place(self, digest: Digest, path: Path) -> None:
        """`path` had this content when the store last hashed or wrote it."""
        with self._lock:
            self._places[digest] = path

    def file(self, digest: Digest) -> Path:
        with self._lock:
            placed = self._places.get(digest)
        if placed is not None and self.store.unchanged(placed, digest):
            return placed
        if self.store.sound_blob(digest):
            return self.store.blob_path(digest)
        raise MissingContent(digest)

    def put(self, path: Path, known: Digest | None = None) -> Digest:
        return self.store.put_file(path, move=True, known=known)
