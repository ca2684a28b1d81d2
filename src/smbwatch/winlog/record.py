"""What every log format is reduced to before normalisation, and the file it came from.

Each reader turns its own shape (EVTX JSON, event XML, Winlogbeat, NXLog, Splunk text...) into a
``WinRecord`` whose ``data`` uses the Windows EventData field names (``ShareName``,
``RelativeTargetName``, ``SubjectUserName``...), so that one function normalises them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smbwatch.diagnostics import Diagnostics

# What a hostile record can make a shape conversion raise; each costs that record only.
RECORD_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError)


@dataclass(slots=True)
class WinRecord:
    """One Windows event: its id, when and where it was logged, and its EventData by name."""

    event_code: int
    time: int  # microseconds since the epoch, UTC
    record_id: int | None
    computer: str | None
    data: Mapping[str, Any]
    time_precision: str | None = None  # "s" or "ms": the clock had no finer digits


@dataclass
class Source:
    """The input file being read: where its events say they come from, and where losses go."""

    file: str
    format: str
    diagnostics: Diagnostics
    _warned: set[str] = field(default_factory=set)

    def warn(self, kind: str, message: str) -> None:
        """Count one lost or doubtful record of this file."""
        self.diagnostics.warn(kind, f"{self.file}: {message}")

    def warn_once(self, kind: str, message: str) -> None:
        """A fact about the whole file (a missing time zone...): said once, not per record."""
        if kind not in self._warned:
            self._warned.add(kind)
            self.warn(kind, message)

    def damaged(self, message: str) -> None:
        """The file could not be read to its end."""
        self.diagnostics.damaged(self.file, message)
