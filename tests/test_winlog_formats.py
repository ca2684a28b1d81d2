"""The same Windows events written in every format responders receive give the same SmbEvents.

Each EVTX file of the corpus is read by python-evtx (``winlog_oracle``) and rewritten by the
tests' own writers (``winlog_convert``) as event XML, Winlogbeat, evtx_dump, Splunk text and
Splunk JSON, plain and gzip-compressed. smbwatch must find in each exactly the events it finds
in the EVTX file itself.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import shared_dir
from winlog_convert import (
    json_lines,
    to_elastic_hit,
    to_evtx_dump,
    to_splunk_fields,
    to_splunk_json,
    to_splunk_text,
    to_splunk_xml_json,
    to_winlogbeat,
    to_xml,
    to_xml_document,
)
from winlog_oracle import OracleEvent, evtx_events, nxlog_records

from smbwatch.diagnostics import Diagnostics
from smbwatch.winlog import NotALogError, read_events, sniff_format

pytestmark = pytest.mark.oracle

HOST = shared_dir() / "data" / "host"
EVTX_FILES = sorted(HOST.glob("*.evtx"))
OTRF = shared_dir() / "data" / "otrf"
CONVERTED = ("source_format", "source_file")


def _xml_lines(events: list[OracleEvent]) -> bytes:
    return "".join(to_xml(event) + "\n" for event in events).encode()


def _splunk_xml(events: list[OracleEvent]) -> bytes:
    """Splunk's XmlWinEventLog ``_raw``: single-quoted attributes, one event per line."""
    return "".join(to_xml(event, quote="'") + "\n" for event in events).encode()


def _xml_utf16(events: list[OracleEvent]) -> bytes:
    """PowerShell's ``Out-File`` (Windows PowerShell 5.1) writes UTF-16 LE with a BOM."""
    document = to_xml_document(events).replace('encoding="UTF-8"', 'encoding="UTF-16"')
    return document.encode("utf-16")


def _winlogbeat_array(events: list[OracleEvent]) -> bytes:
    return json.dumps([to_winlogbeat(event) for event in events], indent=2).encode()


def _evtx_dump_pretty(events: list[OracleEvent]) -> bytes:
    """evtx_dump's default output: "Record N" lines, each followed by an indented object."""
    return "".join(
        f"Record {number}\n{json.dumps(to_evtx_dump(event), indent=2)}\n"
        for number, event in enumerate(events, 1)
    ).encode()


def _lines_of(writer: Callable[[OracleEvent], dict]) -> Callable[[list[OracleEvent]], bytes]:
    return lambda events: json_lines([writer(event) for event in events]).encode()


WRITERS: dict[str, tuple[str, Callable[[list[OracleEvent]], bytes]]] = {
    "xml-lines": ("xml", _xml_lines),
    "xml-document": ("xml", lambda events: to_xml_document(events).encode()),
    "xml-splunk": ("xml", _splunk_xml),
    "xml-utf16": ("xml", _xml_utf16),
    "winlogbeat-lines": ("json", _lines_of(to_winlogbeat)),
    "winlogbeat-array": ("json", _winlogbeat_array),
    "elastic-hits": ("json", _lines_of(to_elastic_hit)),
    "evtx_dump-lines": ("json", _lines_of(to_evtx_dump)),
    "evtx_dump-pretty": ("json", _evtx_dump_pretty),
    "splunk-json": ("json", _lines_of(to_splunk_json)),
    "splunk-json-xml": ("json", _lines_of(to_splunk_xml_json)),
    "splunk-fields": ("json", _lines_of(to_splunk_fields)),
    "splunk-text": ("splunk", lambda events: "".join(map(to_splunk_text, events)).encode()),
}


def events_of(path: Path) -> tuple[list[dict], Diagnostics]:
    diagnostics = Diagnostics()
    found = [event.to_dict() for event in read_events(str(path), diagnostics)]
    for event in found:
        for key in CONVERTED:
            event.pop(key)
    return found, diagnostics


@pytest.fixture(scope="module", params=EVTX_FILES, ids=lambda path: path.name[:40])
def evtx_file(request: pytest.FixtureRequest) -> tuple[Path, list[dict]]:
    events, diagnostics = events_of(request.param)
    assert events and not diagnostics.counts
    return request.param, events


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_format_gives_the_events_of_the_evtx(
    evtx_file: tuple[Path, list[dict]], writer: str, compressed: bool, tmp_path: Path
) -> None:
    path, from_evtx = evtx_file
    expected_format, write = WRITERS[writer]
    content = write(list(evtx_events(path)))
    assert sniff_format(content[:65536]) == expected_format
    target = tmp_path / ("events.gz" if compressed else "events")  # no telling suffix
    target.write_bytes(gzip.compress(content) if compressed else content)

    found, diagnostics = events_of(target)

    if writer == "splunk-text":  # WinEventLog times are zone-less seconds: read as UTC
        assert list(diagnostics.counts) == ["time_zone_unknown"]
        assert {event.pop("time_precision") for event in found} == {"s"}
        from_evtx = [{**event, "time": event["time"][:19]} for event in from_evtx]
        found = [{**event, "time": event["time"][:19]} for event in found]
    else:
        assert not diagnostics.counts, diagnostics.summary_lines()
    assert found == from_evtx


def test_a_json_record_is_kept_or_skipped_by_the_id_it_is_read_with() -> None:
    """A parsed JSON record is kept or skipped by its event id (a set lookup) rather than by a
    search of its text: the id is the one ``record_from_json`` reads, in every shape that names
    one (every record of the corpus's EVTX files in each JSON writer's shape, the OTRF NXLog
    logs of many other ids), and an export's text is left to the text search."""
    from smbwatch.winlog.json_events import _event_id, record_from_json
    from smbwatch.winlog.record import Source

    source = Source("records", "json", Diagnostics())
    events = [event for path in EVTX_FILES for event in evtx_events(path)]
    shapes = {
        "winlogbeat": [to_winlogbeat(event) for event in events],
        "evtx_dump": [to_evtx_dump(event) for event in events],
        "splunk-fields": [to_splunk_fields(event)["result"] for event in events],
        "nxlog": [r for path in sorted(OTRF.glob("*.json.gz")) for r in nxlog_records(path)],
    }
    for shape, records in shapes.items():
        for record in records:
            read = record_from_json(record, source)
            assert read is not None and _event_id(record) == read.event_code, (shape, record)
    nxlog_ids = {_event_id(record) for record in shapes["nxlog"]}
    assert {4624, 5145} < nxlog_ids and len(nxlog_ids) > 20  # the wanted ids, and many others
    for wrapped in (to_splunk_json, to_splunk_xml_json, to_elastic_hit):  # text decides
        assert all(_event_id(wrapped(event)) is None for event in events)
    assert not source.diagnostics.counts


def test_hostile_event_ids_cost_their_record_only(tmp_path: Path) -> None:
    """Records whose id reads as none (past 64 bits, text, an object, no System) among a real
    NXLog log: each is left to the search of its text, as before records were parsed first.
    The one whose text names a wanted id is a record lost with a warning, the others are
    skipped quietly, and the log's own events are all there."""
    log = OTRF / "empire_psexec_dcerpc_tcp_svcctl_2020-09-20121608.json.gz"
    lines = gzip.decompress(log.read_bytes()).decode().splitlines()
    hostile = [
        {"EventID": 2**64, "Hostname": "H", "LogonType": 3, "Message": "Logon Type: 3 (4624)"},
        {"EventID": "not a number", "Hostname": "H"},
        {"EventID": {"#text": [1]}, "Hostname": "H"},
        {"Event": {"System": 5}},
    ]
    clean, dirty = tmp_path / "clean.json", tmp_path / "dirty.json"
    clean.write_text("\n".join(lines) + "\n")
    dirty.write_text("\n".join(lines[:10] + [json.dumps(h) for h in hostile] + lines[10:]) + "\n")
    expected, clean_diagnostics = events_of(clean)
    found, diagnostics = events_of(dirty)
    assert expected and not clean_diagnostics.counts
    assert found == expected
    assert dict(diagnostics.counts) == {"bad_record": 1}


def test_a_forced_format_overrides_detection(tmp_path: Path) -> None:
    events = list(evtx_events(next(p for p in EVTX_FILES if "PSexec" in p.name)))
    target = tmp_path / "events.txt"
    target.write_bytes(_xml_lines(events))
    as_xml, _ = events_of(target)
    diagnostics = Diagnostics()
    as_json = list(read_events(str(target), diagnostics, input_format="json"))
    assert as_xml and as_json == []
    with pytest.raises(NotALogError, match="not an EVTX file"):
        read_events(str(target), Diagnostics(), input_format="evtx")
    with pytest.raises(ValueError, match="unknown input format"):
        read_events(str(target), Diagnostics(), input_format="csv")


def test_a_capture_is_not_a_log(shared_data: Path, tmp_path: Path) -> None:
    capture = next((shared_data / "pcap").iterdir())
    with pytest.raises(NotALogError, match="not a Windows event log"):
        read_events(str(capture), Diagnostics())
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(NotALogError, match="empty"):
        read_events(str(empty), Diagnostics())
    assert sniff_format(capture.read_bytes()[:65536]) is None


def nxlog_7045() -> tuple[dict, OracleEvent]:
    """A real NXLog 7045 (System channel), and the same event as an independent reading."""
    path = next(HOST.glob("covenant*.json.gz"))
    record = next(r for r in nxlog_records(path) if r["EventID"] == 7045)
    account = re.search(r"Service Account:\s+(\S+)", record["Message"]).group(1)  # type: ignore[union-attr]
    event = OracleEvent(
        event_id=7045,
        record_id=record["RecordNumber"],
        system_time=record["@timestamp"],
        computer=record["Hostname"],
        provider=record["SourceName"],
        channel=record["Channel"],
        data={
            "ServiceName": record["ServiceName"],
            "ImagePath": record["ImagePath"],
            "ServiceType": record["ServiceType"],
            "StartType": record["StartType"],
            "AccountName": account,
        },
        chunk=None,
        parser="json",
    )
    return record, event


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_service_install_reads_the_same_in_every_format(writer: str, tmp_path: Path) -> None:
    """The NXLog 7045, rewritten by the tests in each format, gives the event NXLog gives."""
    record, event = nxlog_7045()
    from_nxlog = [
        found
        for found in events_of(next(HOST.glob("covenant*.json.gz")))[0]
        if found["source_ref"] == record["RecordNumber"]
    ]
    target = tmp_path / "service"
    target.write_bytes(WRITERS[writer][1]([event]))
    rewritten, _ = events_of(target)
    assert len(from_nxlog) == len(rewritten) == 1
    assert from_nxlog[0]["time_precision"] == "s"  # NXLog's EventTime has whole seconds
    for reading in (from_nxlog, rewritten):
        reading[0].pop("time")
        reading[0].pop("time_precision", None)
    assert rewritten == from_nxlog
    assert from_nxlog[0]["account"] == event.data["AccountName"] != record["AccountName"]


# 5142/5143/5144 (share added, modified, deleted) are in none of the shared logs: these records
# carry the fields Microsoft documents for each event, with values in its examples' style.
_SUBJECT = {
    "SubjectUserSid": "S-1-5-21-3457937927-2839227994-823803824-1104",
    "SubjectUserName": "dadmin",
    "SubjectDomainName": "CONTOSO",
    "SubjectLogonId": "0x4a2a0e",
}
SHARE_CHANGES = [
    OracleEvent(
        event_id=5142,
        record_id=268495,
        system_time="2015-09-17T01:35:05.7499397Z",
        computer="DC01.contoso.local",
        provider="Microsoft-Windows-Security-Auditing",
        channel="Security",
        data={**_SUBJECT, "ShareName": "\\\\*\\Documents", "ShareLocalPath": "C:\\Documents"},
        chunk=None,
        parser="documented",
    ),
    OracleEvent(
        event_id=5143,
        record_id=268496,
        system_time="2015-09-17T01:36:10.1234567Z",
        computer="DC01.contoso.local",
        provider="Microsoft-Windows-Security-Auditing",
        channel="Security",
        data={
            **_SUBJECT,
            "ObjectType": "Directory",
            "ShareName": "\\\\*\\Documents",
            "ShareLocalPath": "C:\\Documents",
            "OldRemark": "N/A",
            "NewRemark": "Documents of Contoso",
            "OldMaxUsers": "0xffffffff",
            "NewMaxUsers": "0x100",
            "OldShareFlags": "0x800",
            "NewShareFlags": "0x800",
            "OldSD": "O:BAG:DUD:(A;;0x1200a9;;;WD)",
            "NewSD": "O:BAG:DUD:(A;;FA;;;WD)",
        },
        chunk=None,
        parser="documented",
    ),
    OracleEvent(
        event_id=5144,
        record_id=268497,
        system_time="2015-09-17T01:37:00.0000001Z",
        computer="DC01.contoso.local",
        provider="Microsoft-Windows-Security-Auditing",
        channel="Security",
        data={**_SUBJECT, "ShareName": "\\\\*\\Documents", "ShareLocalPath": "C:\\Documents"},
        chunk=None,
        parser="documented",
    ),
]


@pytest.mark.parametrize("writer", list(WRITERS))
def test_share_changes_read_the_same_in_every_format(writer: str, tmp_path: Path) -> None:
    target = tmp_path / "changes"
    target.write_bytes(WRITERS[writer][1](SHARE_CHANGES))
    found, _ = events_of(target)
    assert [event["event_code"] for event in found] == [5142, 5143, 5144]
    for event, logged in zip(found, SHARE_CHANGES, strict=True):
        assert event["action"] == "share_change"
        assert event["source_ref"] == logged.record_id
        assert event["share"] == "\\\\*\\Documents" and event["share_name"] == "Documents"
        assert event["share_path"] == "C:\\Documents"
        assert (event["user"], event["domain"]) == ("dadmin", "CONTOSO")
        assert event["session_id"] == "0x4a2a0e"
        assert event["server"] == "DC01.contoso.local"
        if writer != "splunk-text":
            assert event["time"] == logged.system_time[:26] + "Z"
    assert found[1]["object_type"] == "Directory"
