"""Event times from each format's clock, as microseconds since the epoch (UTC).

EVTX, event XML, Winlogbeat and Splunk JSON carry UTC or an explicit offset. NXLog's ``EventTime``
and Splunk's WinEventLog header are the logging host's local time without a zone: NXLog's offset
can be recovered from its own receive time against the collector's UTC ``@timestamp``; Splunk
text has no such clue and is read as UTC, with a warning.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from smbwatch.events import parse_time

_QUARTER_HOUR = 15 * 60 * 1_000_000
MAX_ZONE_OFFSET = 14 * 60 * 60 * 1_000_000  # no zone is further from UTC (Kiribati, +14:00)
_ZONE = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")
_FRACTION = re.compile(r"\d\d:\d\d:\d\d(?:[.,](\d+))?")  # after the seconds
_SPLUNK_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S")


def system_time(text: str) -> int:
    """``TimeCreated/@SystemTime`` in any rendering (evtx adds `` UTC``, python-evtx a space).
    The evtx library's own (``2021-04-21T09:40:32.342397Z``, every record of an EVTX file) is
    one of the forms ``parse_time`` reads by its fast path."""
    return parse_time(text.removesuffix(" UTC"))


def precision(text: str) -> str | None:
    """``"s"`` or ``"ms"`` when an ISO time has no or at most three fraction digits (NXLog's
    ``EventTime``, Winlogbeat's ``@timestamp``): the event says so rather than print invented
    microseconds. None for microseconds or finer."""
    match = _FRACTION.search(text)
    if match is None:
        return None
    digits = len(match.group(1) or "")
    return "s" if digits == 0 else "ms" if digits <= 3 else None


def has_zone(text: str) -> bool:
    """Whether an ISO time says which zone it is in (asked of every NXLog record twice: a
    ``Z``, or no sign in the last six characters, answers without the expression)."""
    text = text.rstrip()
    if text.endswith("Z"):
        return True
    if "+" not in text[-6:] and "-" not in text[-6:]:
        return False
    return _ZONE.search(text) is not None


def local_offset(local_text: str, utc_text: str) -> int:
    """The zone offset between a local clock reading and a UTC reading of about the same moment.

    Rounded to the quarter hour (every zone is a multiple of it), which absorbs the delay
    between the two readings as long as it stays under 7.5 minutes.
    """
    difference = parse_time(local_text) - parse_time(utc_text)
    return round(difference / _QUARTER_HOUR) * _QUARTER_HOUR


def splunk_time(text: str) -> int:
    """Splunk's WinEventLog header (``04/21/2021 09:40:32 AM``), read as UTC."""
    for layout in _SPLUNK_FORMATS:
        try:
            moment = datetime.strptime(text.strip(), layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(moment.timestamp()) * 1_000_000
    raise ValueError(f"not a WinEventLog time: {text.strip()[:40]!r}")
