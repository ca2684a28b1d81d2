"""CSV for spreadsheets, with formula injection neutralised.

File and share names come from attackers: a name such as ``=HYPERLINK(...)`` must not become a
live formula when a responder opens the export, so such cells are prefixed with a quote; a
carriage return, which would end the row in some readers and start an undefused cell, and the
other control and direction characters (``sinks.escape``) are written escaped (``\x0d``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from smbwatch.sinks.escape import visible_escape

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(value: Any) -> str:
    """One CSV cell: lists and objects as JSON, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = visible_escape(str(value))
    if text.startswith(FORMULA_STARTS) and not isinstance(value, (int, float)):
        return "'" + text
    return text


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO, columns: Sequence[str]) -> int:
    """Write a header and one line per row with the given columns; the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([cell(row.get(name)) for name in columns])
        count += 1
    return count
