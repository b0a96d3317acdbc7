"""Which Plaitfile is being loaded, so that what it declares knows its file:line."""

from __future__ import annotations

import bisect
import sys
from pathlib import Path
from types import CodeType, FrameType

from plait.errors import Location

_loading: list[Path] = []
# By id of code object (hashing a code object hashes all of it): the code object itself, which
# keeps the id from being reused, the instruction offsets where lines start, and those lines.
_line_tables: dict[int, tuple[CodeType, list[int], list[int | None]]] = {}


def push(path: Path) -> None:
    _loading.append(path)


def pop() -> None:
    _loading.pop()
    if not _loading:
        _line_tables.clear()


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
            return Location(target, _line(frame))
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _line(frame: FrameType) -> int:
    """The frame's line. `frame.f_lineno` scans the code's line table from its start, which makes
    a Plaitfile of n calls cost n^2; a table per code object makes each lookup a bisection."""
    code = frame.f_code
    table = _line_tables.get(id(code))
    if table is None:
        starts: list[int] = []
        lines: list[int | None] = []
        for start, _end, line in code.co_lines():
            starts.append(start)
            lines.append(line)
        table = _line_tables[id(code)] = (code, starts, lines)
    i = bisect.bisect_right(table[1], frame.f_lasti) - 1
    line = table[2][i] if i >= 0 else None
    return line if line is not None else frame.f_lineno
