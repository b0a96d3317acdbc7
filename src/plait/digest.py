"""Content digests in the shape of the Remote Execution API: lowercase sha256 hex and a size."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    hash: str
    size: int

    def __str__(self) -> str:
        return f"{self.hash}/{self.size}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        hash_, _, size = text.partition("/")
        return cls(hash_, int(size))


def of_bytes(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


def of_file(path: Path) -> Digest:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return Digest(h.hexdigest(), size)


def of_canonical(value: Any) -> str:
    """The sha256 hex of a canonical JSON encoding: equal values give equal digests."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
