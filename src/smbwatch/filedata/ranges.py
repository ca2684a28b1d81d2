"""Which bytes of a file crossed the wire, as sorted, disjoint ranges, in bounded memory.

Data usually arrives one message after another: the bytes being seen in a row (the run) cost two
integers; a range is inserted into the sorted list only when the run breaks. Beyond
``MAX_RANGES`` separate ranges, the nearest two are joined (the hole between them then counts as
seen), with one counted warning per file and direction.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import itemgetter
from typing import Final

from smbwatch.diagnostics import Diagnostics

MAX_RANGES: Final = 1024  # separate ranges remembered per file and direction
_START: Final = itemgetter(0)


class Ranges:
    """The ranges [start, end) of one file and direction."""

    __slots__ = ("diagnostics", "ranges", "run_start", "run_end", "joined")

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics
        self.ranges: list[list[int]] = []  # sorted, disjoint [start, end) seen before the run
        self.run_start = self.run_end = -1  # the bytes being seen one after another now
        self.joined = False  # ranges were joined to stay within MAX_RANGES

    def seen(self, start: int, end: int) -> None:
        """Bytes [start, end) crossed the wire."""
        if start == self.run_end:  # they continue the run: the usual case
            self.run_end = end
            return
        if self.run_end >= 0:
            self._insert(self.run_start, self.run_end)
        self.run_start, self.run_end = start, end

    def all(self) -> list[list[int]]:
        """Every range seen, sorted and disjoint."""
        if self.run_end >= 0:
            self._insert(self.run_start, self.run_end)
            self.run_start = self.run_end = -1
        return self.ranges

    def _insert(self, start: int, end: int) -> None:
        ranges = self.ranges
        i = bisect_right(ranges, start, key=_START)
        if i and ranges[i - 1][1] >= start:
            i -= 1
            start = ranges[i][0]
        j = i
        while j < len(ranges) and ranges[j][0] <= end:
            end = max(end, ranges[j][1])
            j += 1
        ranges[i:j] = [[start, end]]
        if len(ranges) > MAX_RANGES:
            self._join(i)

    def _join(self, i: int) -> None:
        """Too many separate ranges: join range ``i`` to its nearest neighbour (the hole
        between them is then counted as seen)."""
        ranges = self.ranges
        before = ranges[i][0] - ranges[i - 1][1] if i else None
        after = ranges[i + 1][0] - ranges[i][1] if i + 1 < len(ranges) else None
        if after is None or (before is not None and before <= after):
            i -= 1
        ranges[i : i + 2] = [[ranges[i][0], ranges[i + 1][1]]]
        if not self.joined:
            self.joined = True
            self.diagnostics.warn(
                "file_ranges_joined", f"more than {MAX_RANGES} separate ranges in one file"
            )
