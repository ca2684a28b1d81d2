"""Independent views of Windows logs for the winlog tests: python-evtx, and plain json for NXLog.

Nothing here imports smbwatch. A test counts or reads events with these and compares smbwatch
with them, never with itself. python-evtx cannot render forwarded events (WEC "RenderedText"
records: it fails on their null substitutions); for those records only, the ``evtx`` library's
XML rendering, parsed with ElementTree, stands in, and ``OracleEvent.parser`` says which one read
the record.

python-evtx converts FILETIMEs through a float, which is off by up to ~2 µs today; the oracle
replaces that one function with the exact integer conversion (100 ns ticks since 1601).
"""

from __future__ import annotations

import datetime
import functools
import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import evtx
import Evtx.BinaryParser
import Evtx.Evtx

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
SHARE_EVENT_IDS = (5140, 5145)
_FILETIME_EPOCH = datetime.datetime(1601, 1, 1, tzinfo=datetime.UTC)


def _exact_filetime(ticks: int) -> datetime.datetime:
    return _FILETIME_EPOCH + datetime.timedelta(microseconds=ticks // 10)


Evtx.BinaryParser.parse_filetime = _exact_filetime


@dataclass
class OracleEvent:
    """One record as an independent parser read it (EventData values as the XML text)."""

    event_id: int
    record_id: int | None
    system_time: str
    computer: str
    provider: str
    channel: str
    data: dict[str, str]
    chunk: int | None
    parser: str


@functools.cache
def evtx_events(path: Path) -> tuple[OracleEvent, ...]:
    """Every record of an EVTX file, read by python-evtx (evtx's XML where it cannot)."""
    events, unrendered = [], []
    with Evtx.Evtx.Evtx(str(path)) as log:
        for chunk_index, chunk in enumerate(log.chunks()):
            for record in chunk.records():
                try:
                    xml = record.xml()
                except Exception:  # noqa: BLE001 - python-evtx's own failures, counted below
                    unrendered.append(record.record_num())
                    continue
                events.append(from_xml(xml, chunk_index, "python-evtx"))
    if unrendered:
        wanted = set(unrendered)
        for record in evtx.PyEvtxParser(str(path)).records():
            if record["event_record_id"] in wanted:
                events.append(from_xml(record["data"], None, "evtx-xml"))
    return tuple(events)


def from_xml(xml: str, chunk: int | None, parser: str) -> OracleEvent:
    root = ElementTree.fromstring(xml.encode())
    system = root.find(f"{NS}System")
    assert system is not None
    data = {
        item.get("Name", ""): item.text or ""
        for item in root.iterfind(f"{NS}EventData/{NS}Data")
        if item.get("Name")
    }
    provider = system.find(f"{NS}Provider")
    return OracleEvent(
        event_id=int(_text(system, "EventID")),
        record_id=int(_text(system, "EventRecordID") or 0) or None,
        system_time=system.find(f"{NS}TimeCreated").get("SystemTime"),  # type: ignore[union-attr]
        computer=_text(system, "Computer"),
        provider=provider.get("Name", "") if provider is not None else "",
        channel=_text(system, "Channel"),
        data=data,
        chunk=chunk,
        parser=parser,
    )


def _text(parent: ElementTree.Element, tag: str) -> str:
    node = parent.find(f"{NS}{tag}")
    return (node.text or "").strip() if node is not None else ""


def nxlog_records(path: Path) -> list[dict]:
    """The records of an NXLog JSON-lines file, with the standard json module."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def share_event_counts(path: Path) -> Counter[int]:
    """How many 5140 and 5145 events a shared log holds, counted without smbwatch."""
    if path.suffix == ".evtx":
        ids = [event.event_id for event in evtx_events(path)]
    else:
        ids = [int(record["EventID"]) for record in nxlog_records(path)]
    return Counter(event_id for event_id in ids if event_id in SHARE_EVENT_IDS)
