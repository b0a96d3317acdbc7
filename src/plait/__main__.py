"""`python -m plait` is `plait`; `run` is the `plait` command."""

import os
import signal
import sys
from types import FrameType
from typing import NoReturn

_received: list[int] = []


def _note(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signum)


def run() -> int:
    # A SIGINT or SIGTERM while plait loads (its modules and frontends: a tenth of a second) is
    # noted, then answered once it has loaded: an exception raised inside the import machinery
    # can escape as a traceback. From then on it raises KeyboardInterrupt, which `main` turns
    # into one line and the status a shell expects; a build replaces these handlers with its
    # own, which stop it at a safe point.
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _note)
    from plait import cli

    cli.load()
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _interrupt)
        if _received:  # noted before the handlers changed
            raise KeyboardInterrupt(_received[0])
        return cli.main()
    except KeyboardInterrupt as e:  # main answers its own; this, one between the two
        _interrupted(e)


def _interrupted(e: KeyboardInterrupt) -> NoReturn:
    """Say so, and end the process with 128 + the signal. It ends here, every file flushed and
    closed by the code it unwound, because CPython, once a KeyboardInterrupt has crossed an
    exec of a string (as a dataclass's definition does), kills itself with SIGINT at exit
    whatever status it was to exit with."""
    signum = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
    print(f"plait: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


if __name__ == "__main__":
    sys.exit(run())
