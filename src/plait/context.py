"""Which Plaitfile is being loaded, so that what it declares knows its file:line."""

from __future__ import annotations

import sys
from pathlib import Path

from plait.errors import Location

_loading: list[Path] = []


def push(path: Path) -> None:
    _loading.append(path)


def pop() -> None:
    _loading.pop()


def current() -> Path | None:
    return _loading[-1] if _loading else None


def caller_location() -> Location | None:
    """The innermost line of the Plaitfile being loaded on the current call stack."""
    path = current()
    if path is None:
        return None
    target = str(path)
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == target:
            return Location(target, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return None
