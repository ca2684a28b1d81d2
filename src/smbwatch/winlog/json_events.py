"""JSON logs: JSON lines, arrays and pretty-printed streams, in the shapes responders receive.

- evtx_dump / Chainsaw / the ``evtx`` library: ``{"Event": {"System": ..., "EventData": ...}}``
  (the EVTX reader uses the same conversion);
- Winlogbeat / Elastic: ``winlog.event_data.*``, ``winlog.event_id`` or ``event.code``;
- NXLog: flat records (``EventID``, ``Hostname``, ``RecordNumber``, EventData fields at the top);
- Splunk exports: ``{"result": {...}}`` lines, with ``_raw`` (WinEventLog text or XML) or fields.

Each value is parsed, then kept only when the event id its record names is one smbwatch reports
(``worth_parsing`` with the id: a set lookup); the raw text is searched for the ids only where
no id is found so (arrays, exports, shapes of their own). JSON lines are parsed by orjson;
other layouts are decoded value by value with a bound on each value's size. (Decoded JSON
objects are dicts: tested as such, the test being much cheaper than one against ``Mapping``.)
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import orjson

from smbwatch.events import SmbEvent, parse_time
from smbwatch.interrupt import check as check_interrupt
from smbwatch.winlog.inputs import MAX_RECORD_CHARS, READ_SIZE, bounded_lines
from smbwatch.winlog.normalize import SERVICE_INSTALLED_SCM, normalize, worth_parsing
from smbwatch.winlog.numbers import event_code, parse_int, record_number
from smbwatch.winlog.record import RECORD_ERRORS, Source, WinRecord
from smbwatch.winlog.splunk_text import (
    data_from_splunk_fields,
    message_fields,
    record_from_splunk_text,
)
from smbwatch.winlog.timestamps import (
    MAX_ZONE_OFFSET,
    has_zone,
    local_offset,
    precision,
    system_time,
)
from smbwatch.winlog.xml_events import record_from_xml

# Between values of a stream: whitespace, array brackets, commas, evtx_dump's "Record N" lines.
_SEPARATORS = re.compile(r"[\s,\[\]]*(?:Record \d+[\s,\[\]]*)*")
_NEXT_OBJECT = re.compile(r"\n\s*\{")
# Keys of a value whose records are inside it, or in its text: its text decides (``_worth``).
_TEXT_DECIDES = ("result", "results", "_source", "_raw")
_LONGEST_INTEGER = 40  # digits converted; a longer integer is kept as its text (numbers.py)


def _integer(text: str) -> int | str:
    """A JSON integer; one too long to convert (or to be a Windows number) stays text, which
    ``numbers.parse_int`` refuses as out of range."""
    return int(text) if len(text) <= _LONGEST_INTEGER else text


_BOUNDED_JSON = json.JSONDecoder(parse_int=_integer)


def read_json(text: TextIO, source: Source) -> Iterator[SmbEvent]:
    """The events of a JSON log: line by line when its first line is a value, else streamed."""
    lines = bounded_lines(text, source)
    first = next(lines, "")
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        values = _stream_values(text, first, source)
    else:
        values = _line_values(first, lines, source)
    for value in values:
        for record_json in _records_in(value):
            try:
                record = record_from_json(record_json, source)
            except RECORD_ERRORS as error:
                source.warn("bad_record", f"unreadable record: {error!r}")
                continue
            if record is not None and (event := normalize(record, source)):
                yield event


def record_from_json(value: Mapping[str, Any], source: Source) -> WinRecord | None:
    """A record from any of the JSON shapes, or None (with a warning) for an unknown one."""
    event = value.get("Event")
    if isinstance(event, dict):
        return record_from_event_json(event, source)
    winlog = value.get("winlog")
    if isinstance(winlog, dict):
        return _from_winlogbeat(value, winlog, source)
    if "_raw" in value or "EventCode" in value:
        return _from_splunk(value, source)
    if "EventID" in value:
        return _from_flat(value, source)
    keys = ", ".join(list(value)[:8])
    source.warn_once("json_unknown_shape", f"records of an unknown shape skipped (keys {keys})")
    return None


def record_from_event_json(
    event: Mapping[str, Any], source: Source, record_id: int | None = None, time: str | None = None
) -> WinRecord:
    """The ``Event`` object of evtx / evtx_dump / Chainsaw / xmltodict JSON.

    ``record_id`` and ``time`` stand in for a System part that lacks them (EVTX record header).
    """
    system = event["System"]
    logged_id = record_number(_scalar(system.get("EventRecordID")), source)
    return WinRecord(
        event_code(_scalar(system["EventID"])),
        system_time(_attribute(system, "TimeCreated", "SystemTime") or time or ""),
        logged_id if logged_id is not None else record_id,
        _scalar(system.get("Computer")),
        _event_data(event.get("EventData")),
    )


def _from_winlogbeat(
    value: Mapping[str, Any], winlog: Mapping[str, Any], source: Source
) -> WinRecord:
    code = winlog.get("event_id") or value["event"]["code"]
    data = winlog.get("event_data")
    if data is not None and not isinstance(data, dict):
        source.warn("json_bad_shape", f"winlog.event_data is a {type(data).__name__}: ignored")
    return WinRecord(
        event_code=event_code(code),
        time=parse_time(value["@timestamp"]),
        record_id=record_number(winlog.get("record_id"), source),
        computer=winlog.get("computer_name"),
        data=data if isinstance(data, dict) else {},
        time_precision=precision(value["@timestamp"]),
    )


def _from_flat(value: Mapping[str, Any], source: Source) -> WinRecord:
    """NXLog's im_msvistalog records (and other flat exporters using EventData names)."""
    code = event_code(value["EventID"])
    data = value
    if code == SERVICE_INSTALLED_SCM and "EventReceivedTime" in value:
        # NXLog's own AccountName (the event's user) hides 7045's; its Message still has it.
        service_account = message_fields(str(value.get("Message") or "")).get("AccountName")
        data = {**value, "AccountName": service_account}
    text = _flat_time_text(value)
    return WinRecord(
        event_code=code,
        time=_flat_time(text, value, source),
        record_id=record_number(value.get("RecordNumber", value.get("EventRecordID")), source),
        computer=value.get("Hostname") or value.get("Computer"),
        data=data,
        time_precision=precision(text),
    )


def _flat_time_text(value: Mapping[str, Any]) -> str:
    return str(value.get("EventTime") or value.get("TimeCreated") or value["@timestamp"])


def _flat_time(text: str, value: Mapping[str, Any], source: Source) -> int:
    """NXLog's EventTime is local; its offset shows between EventReceivedTime and @timestamp."""
    if has_zone(text):
        return parse_time(text)
    received, stamp = value.get("EventReceivedTime"), value.get("@timestamp")
    if isinstance(received, str) and isinstance(stamp, str) and has_zone(stamp):
        offset = local_offset(received, stamp)
        if abs(offset) <= MAX_ZONE_OFFSET:
            return parse_time(text) - offset
        source.warn("time_zone_implausible", f"EventReceivedTime {received[:40]!r} ignored")
    source.warn_once("time_zone_unknown", "event times carry no zone: read as UTC")
    return parse_time(text)


def _from_splunk(value: Mapping[str, Any], source: Source) -> WinRecord | None:
    """A Splunk export row: its ``_raw`` event when present (text or XML), else its fields."""
    stamp = value.get("_time")
    time = parse_time(stamp) if isinstance(stamp, str) else None
    raw = value.get("_raw")
    if isinstance(raw, str) and raw.lstrip().startswith("<"):
        return record_from_xml(raw, source)
    shown = precision(stamp) if isinstance(stamp, str) else None
    if isinstance(raw, str):
        return record_from_splunk_text(raw, source, time, shown)
    if time is None:
        raise ValueError("a Splunk row without _time or _raw")
    return WinRecord(
        event_code=event_code(value["EventCode"]),
        time=time,
        record_id=record_number(value.get("RecordNumber"), source),
        computer=value.get("ComputerName"),
        data=data_from_splunk_fields(value),
        time_precision=shown,
    )


def _records_in(value: Any) -> Iterator[Mapping[str, Any]]:
    """The records inside one JSON value: itself, an array's items, or an export's wrapping."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("result"), dict):  # Splunk export line
            yield item["result"]
        elif isinstance(item.get("results"), list):  # Splunk REST answer
            yield from (row for row in item["results"] if isinstance(row, dict))
        elif isinstance(item.get("_source"), dict):  # Elasticsearch hit
            yield item["_source"]
        else:
            yield item


def _line_values(first: str, lines: Iterator[str], source: Source) -> Iterator[Any]:
    """JSON lines that may hold an event (``_worth``). Parsed first: orjson parses a record
    three times faster than its text is searched for the wanted ids (4 against 13 µs for a
    3.7 KB NXLog record), and the id it names is then a set lookup. A line that cannot be
    used is said (a warning) only when its text holds a wanted id, as before it was parsed."""
    for number, line in enumerate(itertools.chain([first], lines), 1):
        if "\ufffd" in line and worth_parsing(line):
            source.warn("undecodable_bytes", f"line {number}: bytes that are not UTF-8 replaced")
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            if not worth_parsing(line):
                continue
            try:  # orjson refuses 1e999 and Infinity, which the bounded decoder takes
                value = _BOUNDED_JSON.decode(line)
            except (ValueError, RecursionError):
                source.warn("json_bad_line", f"line {number}: {error}")
                continue
        if _worth(value, line):
            yield value


def _worth(value: Any, text: str) -> bool:
    """Whether a parsed value may hold an event: by the event id of the one record it is, in
    the shapes ``record_from_json`` reads (and a logon's type in its text, as
    ``worth_parsing`` tests it); by its text where it names no id so."""
    return worth_parsing(text, _event_id(value))


def _event_id(value: Any) -> int | None:
    """The event id ``record_from_json`` reads from ``value``, in its order of shapes, or None:
    an export's text or wrapping (``_records_in``), or no id that reads as one."""
    if not isinstance(value, dict) or any(key in value for key in _TEXT_DECIDES):
        return None
    event, winlog = value.get("Event"), value.get("winlog")
    if isinstance(event, dict):
        system = event.get("System")
        found = _scalar(system.get("EventID")) if isinstance(system, dict) else None
    elif isinstance(winlog, dict):
        found = winlog.get("event_id")
        if not found:
            outer = value.get("event")
            found = outer.get("code") if isinstance(outer, dict) else None
    else:  # Splunk's fields, then NXLog's
        found = value.get("EventCode", value.get("EventID"))
    try:
        return parse_int(found)
    except ValueError:
        return None


def _stream_values(text: TextIO, buffer: str, source: Source) -> Iterator[Any]:
    """Values of an array, of pretty-printed or concatenated JSON, that ``worth_parsing`` keeps.

    A value still incomplete when ``MAX_RECORD_CHARS`` of it are buffered, or malformed, costs
    one warning and is skipped to the next line that opens an object.
    """
    decoder = _BOUNDED_JSON
    position, at_end, resyncing = 0, False, False
    while True:
        position = _SEPARATORS.match(buffer, position).end()  # type: ignore[union-attr]
        if position == len(buffer):
            if at_end:
                return
            check_interrupt()
            buffer, position = text.read(READ_SIZE), 0
            at_end = not buffer
            continue
        try:
            value, end = decoder.raw_decode(buffer, position)
        except (json.JSONDecodeError, RecursionError) as error:
            pending = len(buffer) - position
            could_grow = buffer[position] in "{[" and pending <= MAX_RECORD_CHARS
            if could_grow and not at_end and not resyncing:
                more = text.read(min(max(READ_SIZE, pending), MAX_RECORD_CHARS + 1 - pending))
                buffer, position, at_end = buffer[position:] + more, 0, not more
                continue
            if not resyncing:
                source.warn(
                    "json_bad_value", f"a malformed or oversized JSON value skipped: {error}"
                )
            restart = _NEXT_OBJECT.search(buffer, position + 1)
            position = restart.start() + 1 if restart else len(buffer)
            resyncing = restart is None
            continue
        if end - position > MAX_RECORD_CHARS:
            source.warn("json_bad_value", f"a JSON value over {MAX_RECORD_CHARS} chars skipped")
            position = end
            continue
        resyncing = False
        text_of_value, position = buffer[position:end], end
        if "\ufffd" in text_of_value and worth_parsing(text_of_value):
            source.warn("undecodable_bytes", "bytes that are not UTF-8 replaced")
        if _worth(value, text_of_value):
            yield value


def _scalar(value: Any) -> Any:
    """A field's value, also when a format wrapped it with its attributes (``#text``)."""
    return value.get("#text") if isinstance(value, dict) else value


def _attribute(parent: Mapping[str, Any], element: str, name: str) -> str | None:
    """An XML attribute as JSON renderers keep it: ``#attributes``, ``_attributes`` or ``@``."""
    node = parent.get(element)
    if isinstance(node, dict):
        attributes = node.get("#attributes")
        if isinstance(attributes, dict) and name in attributes:
            return attributes[name]
        if f"@{name}" in node:
            return node[f"@{name}"]
    separate = parent.get(f"{element}_attributes")
    if isinstance(separate, dict):
        return separate.get(name)
    return None


def _event_data(value: Any) -> Mapping[str, Any]:
    """EventData by name: a plain object, or xmltodict's list of ``{"@Name", "#text"}``."""
    if not isinstance(value, dict):
        return {}
    items = value.get("Data")
    if isinstance(items, list) and all(isinstance(item, dict) for item in items):
        return {item.get("@Name"): item.get("#text") for item in items if item.get("@Name")}
    return value
