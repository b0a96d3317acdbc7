"""`python -m plait` is `plait`; `run` is the `plait` command."""

import signal
import sys
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signum)


def run() -> int:
    # Loading plait takes a tenth of a second; a SIGINT or SIGTERM then ends it quietly, with
    # the status a shell expects. A build replaces these with handlers of its own, which stop
    # it at a safe point.
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _interrupt)
    try:
        from plait.cli import main
    except KeyboardInterrupt as e:
        return _interrupted(e)
    return main()


def _interrupted(e: KeyboardInterrupt) -> int:
    signum = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
    print(f"plait: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(run())
