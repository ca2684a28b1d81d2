"""JSON lines: one object per row, the format pipelines and SIEMs ingest."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write each row as one compact JSON line; the number written."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    count = 0
    for row in rows:
        out.write(encode(row))
        out.write("\n")
        count += 1
    return count
