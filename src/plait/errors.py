"""Every error plait reports to a user: named exceptions with a location and a hint.

The CLI renders them at one boundary as `plait: error: ...` and `hint: ...`. A failing action is
not an exception: it is a result, reported by the scheduler.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ACTION_FAILED = 1
EXIT_USAGE = 2
# `plait test` on a system that defines no tests (pytest's status for "no tests collected").
EXIT_NO_TESTS = 5
# `plait test` whose tests ran and failed nothing, but some in a way plait cannot read.
EXIT_NO_VERDICT = 6
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


@dataclass(frozen=True)
class Location:
    """A place in a build description: the file and the 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class PlaitError(Exception):
    """Base of the errors the CLI renders; `exit_code` is what plait exits with."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str = "", location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.message}"


class UsageError(PlaitError):
    """The command line is wrong: an unknown target, a bad option value."""


class BuildDescriptionError(PlaitError):
    """The Plaitfile is wrong: an exception in it, an unknown input, a clash of names or outputs.
    Its hint is required: a user who wrote the Plaitfile needs to be told what to do."""

    def __init__(self, message: str, *, hint: str, location: Location | None = None) -> None:
        super().__init__(message, hint=hint, location=location)


class CycleError(BuildDescriptionError):
    """The action graph has a cycle; `cycle` lists its nodes, the first repeated at the end."""

    def __init__(self, cycle: list[str], *, location: Location | None = None) -> None:
        where = f" (it closes at {location})" if location else ""
        super().__init__(
            "dependency cycle: " + " -> ".join(cycle),
            hint=f"break the cycle{where}: one of these actions must not need another's output",
        )
        self.cycle = cycle


def disk_full(e: BaseException) -> bool:
    """Whether `e` says the disk (or the user's quota) is full, as the OS or SQLite says it."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(e, sqlite3.OperationalError) and "full" in str(e)


class StoreError(PlaitError):
    """The store cannot be used as it is (a schema from another plait version, a corrupt file)."""
