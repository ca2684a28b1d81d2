"""Stopping on SIGINT and SIGTERM at a safe point, every record written so far complete.

A Python signal handler that raises does so wherever the interpreter next looks for signals, and
in the compiled packet path that can be inside an integer operation that mypyc assumes cannot
fail: it then aborts the process ("fatal: out of memory", exit 134). So the handlers installed
here only note the signal, and the loops that can run for long (the frame loop, the log readers,
the wait for worker processes) call ``check``, which raises ``Interrupted`` there; the command
line then closes its output (complete records only) and exits 130 (SIGINT) or 143 (SIGTERM).
A second signal before the first took effect ends the process at once.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received = 0  # the signal noted, 0 when none


class Interrupted(BaseException):
    """A stop was asked for (a BaseException: no ``except Exception`` may swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum  # the shell's convention: 130, 143


def install() -> None:
    """From now on SIGINT and SIGTERM are noted, to be acted on at the next ``check``."""
    for signum in SIGNALS:
        signal.signal(signum, _note)


def check() -> None:
    """Raise ``Interrupted`` if a stop was asked for."""
    if _received:
        raise Interrupted(_received)


def _note(signum: int, _frame: FrameType | None) -> None:
    global _received
    if _received:
        os._exit(128 + signum)  # asked twice: whatever is running did not stop
    _received = signum
