"""JSON lines: one object per row, the format pipelines and SIEMs ingest; safe to ``cat``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

from smbwatch.events import SmbEvent
from smbwatch.sinks.escape import json_escape

_fallback = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def encode(row: dict[str, Any]) -> str:
    """One compact JSON object, with DEL, C1 and direction controls escaped (``sinks.escape``).
    Names with lone surrogates (undecodable UTF-16 from the wire) are not valid UTF-8 for
    orjson; the standard encoder writes them as escapes instead."""
    try:
        text = orjson.dumps(row, default=str).decode()
    except TypeError:
        text = _fallback(row)
    if text.isascii() and "\x7f" not in text:  # nearly every line: one C-level scan
        return text
    return json_escape(text)


def line(event: SmbEvent) -> str:
    """The JSON line of an event (without its line feed): what a worker process sends when
    the events are only written (``parallel.Readers.render``)."""
    return encode(event.to_dict())


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write each row as one compact JSON line; the number written."""
    return write_lines(map(encode, rows), out)


def write_lines(lines: Iterable[str], out: TextIO) -> int:
    """Write JSON lines made already (``line``), each in one write: an interrupted run leaves
    whole lines only; the number written."""
    count = 0
    for text in lines:
        out.write(text + "\n")
        count += 1
    return count
