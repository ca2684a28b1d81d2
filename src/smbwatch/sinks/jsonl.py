"""JSON lines: one object per row, the format pipelines and SIEMs ingest."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

_fallback = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def encode(row: dict[str, Any]) -> str:
    """One compact JSON object. Names with lone surrogates (undecodable UTF-16 from the wire)
    are not valid UTF-8 for orjson; the standard encoder writes them as escapes instead."""
    try:
        return orjson.dumps(row, default=str).decode()
    except TypeError:
        return _fallback(row)


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write each row as one compact JSON line; the number written."""
    count = 0
    for row in rows:
        out.write(encode(row))
        out.write("\n")
        count += 1
    return count
