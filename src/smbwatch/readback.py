"""smbwatch's own output as input: its JSON lines and its Parquet files, so that events decoded
once can be filtered, merged and run through the rules again (``smbwatch detect events.jsonl``).

The events keep what they say of themselves (``source_file``, ``source_format``...): they were
read from a capture or a log, and that is where their evidence points. Such a file is no more
trusted than any input: a value of the wrong type for its field (see ``smbwatch.schema``) costs
that value, a line that is no event costs that line, each with a counted warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import orjson

from smbwatch import schema
from smbwatch.containers import InputFile, damage
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent, parse_time
from smbwatch.winlog.inputs import bounded_lines, open_text
from smbwatch.winlog.record import Source

FORMATS: Final = ("smbwatch", "parquet")  # JSON lines as ``smbwatch events`` writes them
PARQUET_MAGIC: Final = b"PAR1"
_SOURCES: Final = ("network", "host")
_INTEGER_RANGES: Final = {schema.INTEGER: (-(2**63), 2**63 - 1), schema.UNSIGNED: (0, 2**64 - 1)}


class NotOursError(ValueError):
    """The file is not smbwatch output after all (one-line message)."""


def sniff_format(head: bytes) -> str | None:
    """``smbwatch`` when the first line is an event as smbwatch writes it, ``parquet`` for a
    Parquet file, else None."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    first = head.split(b"\n", 1)[0]
    try:
        value = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None
    return "smbwatch" if _is_event(value) else None


def _is_event(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("time"), str)
        and value.get("source") in _SOURCES
        and isinstance(value.get("action"), str)
    )


def read_events(log: InputFile, diagnostics: Diagnostics, kind: str) -> Iterator[SmbEvent]:
    """The events of one smbwatch JSON lines (gzip or not, on disk or in a zip archive) or
    Parquet file."""
    if kind == "parquet":
        return _parquet_events(log, diagnostics)
    return _jsonl_events(log, diagnostics)


def _jsonl_events(log: InputFile, diagnostics: Diagnostics) -> Iterator[SmbEvent]:
    source = Source(log.name, "smbwatch", diagnostics)
    stream = log.open()
    with open_text(stream) as text:
        for line in bounded_lines(text, source):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                source.warn("bad_record", "a line that is not JSON skipped")
                continue
            event = event_from_json(value, source)
            if event is not None:
                yield event
        problem = damage(stream)
    if problem is not None:  # a truncated or corrupt stream, a bomb: read up to there
        source.damaged(problem)


def event_from_json(value: Any, source: Source) -> SmbEvent | None:
    """The event of one JSON object as ``SmbEvent.to_dict`` writes it, or None (a warning)."""
    if not _is_event(value):
        source.warn("bad_record", "a line that is not an smbwatch event skipped")
        return None
    try:
        time = parse_time(value["time"])
    except (ValueError, OverflowError):
        source.warn("bad_record", f"an event with the time {value['time'][:40]!r} skipped")
        return None
    fields: dict[str, Any] = {}
    for name, item in value.items():
        field = schema.BY_NAME.get(name)
        if field is None:
            source.warn_once("unknown_field", f"fields smbwatch does not know ignored ({name})")
        elif name != "time" and item is not None:
            if _fits(field, item):
                fields[name] = item
            else:
                source.warn("value_not_read", f"{name}: {str(item)[:40]!r} is not {field.kind}")
    fields["time"] = time
    return SmbEvent(**fields)


def _fits(field: schema.Field, value: Any) -> bool:
    kind = field.kind
    if field.name == "session_id" and type(value) is str:  # a host record's logon id
        return True
    if kind in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[kind]
        return type(value) is int and low <= value <= high
    if kind == schema.TEXT:
        return type(value) is str
    if kind == schema.BOOLEAN:
        return type(value) is bool
    if kind == schema.TEXT_LIST:
        return type(value) is list and all(type(item) is str for item in value)
    return schema.is_json_of(kind, value)  # OBJECT, OBJECT_LIST


def _parquet_events(log: InputFile, diagnostics: Diagnostics) -> Iterator[SmbEvent]:
    """A Parquet file is read where it lies (its footer first: it needs a file it can seek in,
    so one inside a zip archive is not read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smbwatch.arrow import batch_events

    name = log.name
    if log.member is not None:
        raise NotOursError(f"{name}: a Parquet file inside a zip archive is not read (unzip it)")
    try:
        batches = pq.ParquetFile(log.path).iter_batches(batch_size=32768)
    except (pa.ArrowException, OSError) as error:
        raise NotOursError(f"{name}: not a Parquet file smbwatch can read ({error})") from None
    try:
        yield from batch_events(batches, diagnostics, name)
    except (pa.ArrowException, OSError) as error:
        diagnostics.damaged(name, f"read stopped: {error}")
