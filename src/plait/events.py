"""The typed events a build emits; progress lines, reports and logs are their subscribers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["ran", "cached", "failed", "skipped"]


@dataclass(frozen=True)
class Failure:
    """Why an action failed: the command, its exit status, the end of its output, its log, and
    the lines of its output that say where and what went wrong (`file:line:col: error: ...`)."""

    argv: tuple[str, ...]
    exit_status: int | None
    message: str
    log_tail: str = ""
    log_path: str = ""
    diagnostics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planned:
    names: tuple[str, ...]
    jobs: int


@dataclass(frozen=True)
class Started:
    name: str
    start: float
    reason: str


@dataclass(frozen=True)
class Finished:
    """An action's outcome. `start` and `end` are seconds since the build began."""

    name: str
    status: Status
    reason: str
    start: float
    end: float
    key: str = ""
    failure: Failure | None = None
    slot: int | None = None  # the job slot it ran in; None if it did not run
    warnings: tuple[str, ...] = ()  # what the user should know of a run that succeeded

    @property
    def ok(self) -> bool:
        return self.status in ("ran", "cached")


@dataclass(frozen=True)
class BuildEnded:
    ok: bool
    wall: float
    interrupted: int | None = None  # the signal number, if a signal stopped the build


Event = Planned | Started | Finished | BuildEnded
Subscriber = Callable[[Event], None]


@dataclass
class Bus:
    subscribers: list[Subscriber] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        for subscriber in self.subscribers:
            subscriber(event)
