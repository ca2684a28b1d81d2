"""Clocks: corrections the user gives (``--clock-offset SOURCE=+5h``) and offsets estimated
between sources that saw the same thing.

Two sources saw the same thing when two captures hold the same SMB message (the same message
key), or when a host logged a record from a client's address and port and a capture holds that
connection (4624/5140/5145 ``IpPort`` is the client's TCP port). The median difference of their
times is the offset between the two clocks; an offset over ``WARN_OVER`` is reported naming both
sources (five hours is a time zone written as UTC), with the correction that would align them.

A correction's SOURCE is an input's path, file name or a glob of them (every event of those
inputs moves), or else a host name or alias (the records that host logged move).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

from smbwatch.case.store import Case

SECOND: Final = 1_000_000
QUARTER_HOUR: Final = 900 * SECOND  # every time zone is a multiple of it
WARN_OVER: Final = 3 * SECOND  # host records have whole seconds; a logon follows its SYN closely
_UNITS: Final = {"d": 86_400 * SECOND, "h": 3600 * SECOND, "m": 60 * SECOND, "s": SECOND}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


class ClockError(ValueError):
    """A duration or correction that cannot be read (one line for the user)."""


def parse_duration(text: str) -> int:
    """Microseconds of ``5h``, ``+1h30m``, ``-90s``, ``2d``, ``0.5s``."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    parts = _DURATION.findall(body)
    if not body or "".join(number + unit for number, unit in parts) != body:
        raise ClockError(f"{text!r} is not a duration such as 5h, -30m, 1h30m, 90s or 2d")
    return sign * round(sum(float(number) * _UNITS[unit] for number, unit in parts))


def parse_correction(text: str) -> tuple[str, int]:
    """``SOURCE=+5h`` → (SOURCE, microseconds)."""
    source, equals, offset = text.rpartition("=")
    if not equals or not source.strip():
        raise ClockError(f"--clock-offset {text!r}: give SOURCE=OFFSET, such as host.evtx=+5h")
    return source.strip(), parse_duration(offset)


def format_offset(micros: int) -> str:
    """``+5h00m02s``, ``-3.250s``."""
    sign = "-" if micros < 0 else "+"
    micros = abs(micros)
    if micros < 60 * SECOND:
        return f"{sign}{micros / SECOND:.3f}s"
    minutes, seconds = divmod(round(micros / SECOND), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{sign}{minutes}m{seconds:02d}s"


def matches(pattern: str, path: str) -> bool:
    """An input path matches a SOURCE given as its path, its file name, or a glob of either."""
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(PurePath(path).name, pattern)


def apply_corrections(case: Case, corrections: list[tuple[str, int]]) -> list[str]:
    """Store new corrections with the old ones and apply them all: each input takes the most
    specific correction naming it; the rest name hosts. The warnings for corrections that
    name neither."""
    for source, offset in corrections:
        case.db.execute("INSERT OR REPLACE INTO clock_rules VALUES (?, ?)", [source, offset])
    rules = sorted(case.rows("SELECT source, offset_us FROM clock_rules"), key=lambda r: -len(r[0]))
    inputs = case.rows("SELECT input_id, path FROM inputs")
    used = set()
    offsets = []
    for input_id, path in inputs:
        found = next(((s, o) for s, o in rules if matches(s, path)), None)
        offsets.append((found[1] if found else 0, input_id))
        if found:
            used.add(found[0])
    case.db.execute("CREATE OR REPLACE TEMP TABLE offsets (offset_us BIGINT, input_id INTEGER)")
    case.insert("offsets", ("offset_us", "input_id"), offsets)  # a statement a row: 0.4 ms each
    case.db.execute(
        "UPDATE inputs SET clock_offset_us = o.offset_us FROM offsets o"
        " WHERE inputs.input_id = o.input_id"
    )
    case.db.execute("DROP TABLE offsets")
    case.db.execute("DELETE FROM clock_hosts")
    warnings = []
    for source, offset in rules:
        if source in used or any(matches(source, path) for _, path in inputs):
            continue
        host = case.rows("SELECT host FROM host_keys WHERE key = upper(?)", [source])
        if host:
            rule = [host[0][0], offset]
            case.db.execute("INSERT OR REPLACE INTO clock_hosts VALUES (?, ?)", rule)
        else:
            warnings.append(f"--clock-offset {source}: names no input or host of the case")
    return warnings


@dataclass(frozen=True)
class Offset:
    """``later`` reads ``offset`` µs ahead of ``earlier`` (negative: behind)."""

    earlier: str
    later: str
    offset: int
    pairs: int
    method: str

    def warning(self) -> str:
        seen = "messages" if self.method == "same_message" else "connections"
        side = "ahead of" if self.offset > 0 else "behind"
        zone = round(self.offset / QUARTER_HOUR) * QUARTER_HOUR
        if zone and abs(self.offset - zone) <= WARN_OVER:  # whole-second clocks miss a little
            side += f"; {format_offset(zone)}: a time zone written as UTC?"
        else:
            zone = self.offset
        fix = f"{PurePath(self.later).name}={format_offset(-zone)}"
        return (
            f"clocks differ: {self.later} reads {format_offset(self.offset)} ({side}) against "
            f"{self.earlier}, from {self.pairs} {seen} both saw; if its clock is wrong, "
            f"correct it with --clock-offset '{fix}'"
        )


_SAME_MESSAGE: Final = """
SELECT ia.path, ib.path, median(epoch_us(b.time) - epoch_us(a.time))::BIGINT, count(*)
FROM sightings a
JOIN sightings b ON a.message_key = b.message_key AND a.input_id < b.input_id
JOIN inputs ia ON ia.input_id = a.input_id
JOIN inputs ib ON ib.input_id = b.input_id
GROUP BY ALL
"""
# Per capture and host log: the median difference between the first time the host logged a
# client address and port and the first time the capture saw a connection from it (the host's
# clock read ``offset_us`` ahead of the capture's). Correlation takes these offsets out too.
LOGON_PORT_PAIRS: Final = """
WITH wire AS (
    SELECT input_id, src_ip, src_port, min(time) AS time FROM sightings
    WHERE source = 'network' AND src_port IS NOT NULL GROUP BY ALL),
host AS (
    SELECT input_id, src_ip, src_port, min(time) AS time FROM sightings
    WHERE source = 'host' AND src_port IS NOT NULL GROUP BY ALL)
SELECT w.input_id AS wire_input, h.input_id AS host_input,
    median(epoch_us(h.time) - epoch_us(w.time))::BIGINT AS offset_us, count(*) AS pairs
FROM host h
JOIN wire w USING (src_ip, src_port)
GROUP BY ALL
"""
_LOGON_PORT: Final = f"""
SELECT iw.path, ih.path, p.offset_us, p.pairs
FROM ({LOGON_PORT_PAIRS}) p
JOIN inputs iw ON iw.input_id = p.wire_input
JOIN inputs ih ON ih.input_id = p.host_input
"""


def estimate(case: Case) -> list[Offset]:
    """Rebuild ``clocks`` from the whole case (times as corrected); every pair of sources."""
    found = [Offset(a, b, o, n, "same_message") for a, b, o, n in case.rows(_SAME_MESSAGE)]
    found += [Offset(a, b, o, n, "logon_port") for a, b, o, n in case.rows(_LOGON_PORT)]
    case.db.execute("DELETE FROM clocks")
    if found:
        case.db.executemany(
            "INSERT INTO clocks VALUES (?, ?, ?, ?, ?)",
            [(o.earlier, o.later, o.offset, o.pairs, o.method) for o in found],
        )
    return found


def warnings(offsets: list[Offset]) -> list[str]:
    return [o.warning() for o in offsets if abs(o.offset) > WARN_OVER]
