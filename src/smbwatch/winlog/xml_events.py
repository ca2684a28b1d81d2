"""Windows event XML: ``wevtutil qe /f:xml``, ``Get-WinEvent ... ToXml()``, Event Viewer's
"Save as XML", Splunk's XmlWinEventLog.

Whatever wraps them (an ``<Events>`` document, one event per line, nothing at all), events are
cut out of the text as ``<Event>...</Event>`` elements, tested on their EventID text, and only
then parsed, each by its own expat parser with no DTD: a DOCTYPE or entity declaration is
refused, so an entity bomb or an external entity costs the event that uses it, nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TextIO
from xml.parsers import expat

from smbwatch.events import SmbEvent
from smbwatch.interrupt import check as check_interrupt
from smbwatch.winlog.inputs import MAX_RECORD_CHARS, READ_SIZE
from smbwatch.winlog.normalize import normalize, worth_parsing
from smbwatch.winlog.numbers import event_code, filter_code, record_number
from smbwatch.winlog.record import RECORD_ERRORS, Source, WinRecord
from smbwatch.winlog.timestamps import system_time

_EVENT_START = re.compile(r"<Event[\s>]")
_EVENT_END = "</Event>"
_EVENT_ID = re.compile(r"<EventID[^>]*>\s*(\d+)\s*<")
_DECLARATIONS = ("<!DOCTYPE", "<!ENTITY")
_KEPT_TAIL = 16  # enough of a chunk's end to see a tag or declaration cut in two
_SYSTEM_FIELDS = frozenset({"EventID", "EventRecordID", "Computer"})


class RefusedXml(ValueError):
    """A DOCTYPE or entity declaration: smbwatch never expands entities."""


def read_xml(text: TextIO, source: Source) -> Iterator[SmbEvent]:
    """The events of an XML log."""
    for element in _elements(text, source):
        match = _EVENT_ID.search(element)
        if match is None or not worth_parsing(element, filter_code(match.group(1), source)):
            continue
        if "\ufffd" in element:
            source.warn("undecodable_bytes", "bytes that are not UTF-8 replaced in an event")
        try:
            record = record_from_xml(element, source)
        except (expat.ExpatError, *RECORD_ERRORS) as error:
            source.warn("xml_bad_event", f"event {match.group(1)} skipped: {error}")
            continue
        if event := normalize(record, source):
            yield event


def record_from_xml(element: str, source: Source) -> WinRecord:
    """One ``<Event>`` element (also Splunk's ``_raw``) as a record."""
    reader = _EventReader()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.characters
    parser.Parse(element, True)
    system = reader.system
    return WinRecord(
        event_code=event_code(system["EventID"]),
        time=system_time(system["SystemTime"]),
        record_id=record_number(system.get("EventRecordID"), source),
        computer=system.get("Computer"),
        data=reader.data,
    )


def _refuse(*_declaration: object) -> None:
    raise RefusedXml("a DOCTYPE or entity declaration (refused)")


class _EventReader:
    """expat handlers keeping the System fields and the named EventData values of one event."""

    def __init__(self) -> None:
        self.system: dict[str, str] = {}
        self.data: dict[str, str] = {}
        self._path: list[str] = []
        self._text: list[str] = []
        self._data_name: str | None = None

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        name = tag.rpartition(":")[2]
        self._path.append(name)
        self._text = []
        if name == "TimeCreated":
            self.system["SystemTime"] = attributes.get("SystemTime", "")
        elif name == "Data":
            self._data_name = attributes.get("Name")

    def end(self, _tag: str) -> None:
        name = self._path.pop()
        parent = self._path[-1] if self._path else None
        if parent == "System" and name in _SYSTEM_FIELDS:
            self.system[name] = "".join(self._text).strip()
        elif parent == "EventData" and name == "Data" and self._data_name:
            self.data[self._data_name] = "".join(self._text)
        self._text = []

    def characters(self, data: str) -> None:
        self._text.append(data)


def _elements(text: TextIO, source: Source) -> Iterator[str]:
    """Each ``<Event>...</Event>`` of the text, at most ``MAX_RECORD_CHARS`` long."""
    buffer, skipping, at_end = "", False, False
    while not at_end:
        check_interrupt()
        chunk = text.read(READ_SIZE)
        at_end = not chunk
        buffer += chunk
        if skipping:  # inside an oversized event: drop it through its end tag
            end = buffer.find(_EVENT_END)
            if end < 0:
                buffer = buffer[-_KEPT_TAIL:]
                continue
            buffer, skipping = buffer[end + len(_EVENT_END) :], False
        position = 0
        while start := _EVENT_START.search(buffer, position):
            _check_declarations(buffer[position : start.start()], source)
            end = buffer.find(_EVENT_END, start.end())
            if end < 0:
                position = start.start()
                break
            position = end + len(_EVENT_END)
            if position - start.start() > MAX_RECORD_CHARS:
                _too_large(source)
                continue
            yield buffer[start.start() : position]
        else:
            _check_declarations(buffer[position:], source)
            position = max(position, len(buffer) - _KEPT_TAIL)
        buffer = buffer[position:]
        if len(buffer) > MAX_RECORD_CHARS:
            _too_large(source)
            buffer, skipping = buffer[-_KEPT_TAIL:], True
    if _EVENT_START.search(buffer) or skipping:
        source.damaged("the last XML event is cut off")


def _too_large(source: Source) -> None:
    source.warn("xml_event_too_large", f"an event over {MAX_RECORD_CHARS} characters skipped")


def _check_declarations(between_events: str, source: Source) -> None:
    if any(declaration in between_events for declaration in _DECLARATIONS):
        source.warn_once("xml_dtd_refused", "DOCTYPE/ENTITY declarations ignored: never expanded")
