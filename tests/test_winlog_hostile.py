"""Hostile and damaged logs cost the damaged records, with a counted warning, never the run.

Damage is done to real files (the shared corpus, and the tests' conversions of it); what must
survive is known from python-evtx's reading of the undamaged parts.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path

import pytest
from conftest import shared_dir
from winlog_convert import to_splunk_text, to_winlogbeat, to_xml, to_xml_document
from winlog_oracle import evtx_events
from winlog_surgery import (
    CHUNK_SIZE,
    FILE_HEADER_SIZE,
    chunk_start,
    mark_dirty_with_stale_header,
    records_span,
    reseal_chunk,
)

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.winlog import read_events
from smbwatch.winlog.inputs import MAX_RECORD_CHARS

pytestmark = pytest.mark.oracle

HOST = shared_dir() / "data" / "host"
FILE_COPY = next(HOST.glob("*Remote_FileCopy.evtx"))  # 10 chunks of 5145s
PSEXEC = next(HOST.glob("*PSexec*.evtx"))
NXLOG = next(HOST.glob("empire*.json.gz"))


def read(path: Path, input_format: str | None = None) -> tuple[list[SmbEvent], Diagnostics]:
    diagnostics = Diagnostics()
    return list(read_events(str(path), diagnostics, input_format)), diagnostics


def record_ids(events: list[SmbEvent]) -> set[int | None]:
    return {event.source_ref for event in events}


def oracle_ids(path: Path, chunks: set[int] | None = None) -> set[int | None]:
    return {
        event.record_id for event in evtx_events(path) if chunks is None or event.chunk in chunks
    }


def damaged_copy(tmp_path: Path, content: bytes | bytearray, name: str = "damaged") -> Path:
    target = tmp_path / name
    target.write_bytes(bytes(content))
    return target


# EVTX ----------------------------------------------------------------------------------------


def test_a_truncated_evtx_keeps_its_whole_chunks(tmp_path: Path) -> None:
    data = FILE_COPY.read_bytes()
    path = damaged_copy(tmp_path, data[: chunk_start(4) + 20_000])
    events, diagnostics = read(path)
    assert record_ids(events) == oracle_ids(FILE_COPY, {0, 1, 2, 3})
    assert diagnostics.damaged_inputs == [str(path)]
    assert "truncated" in diagnostics.examples["input_damaged"][0]


def test_a_chunk_with_a_bad_checksum_is_skipped_and_counted(tmp_path: Path) -> None:
    data = bytearray(FILE_COPY.read_bytes())
    data[records_span(data, 3).start + 3000] ^= 0xFF
    events, diagnostics = read(damaged_copy(tmp_path, data))
    assert record_ids(events) == oracle_ids(FILE_COPY) - oracle_ids(FILE_COPY, {3})
    assert diagnostics.counts["evtx_chunk_skipped"] == 1
    assert "CRC32" in diagnostics.examples["evtx_chunk_skipped"][0]


def test_a_chunk_without_its_magic_is_skipped_and_counted(tmp_path: Path) -> None:
    data = bytearray(FILE_COPY.read_bytes())
    data[chunk_start(5) : chunk_start(5) + 8] = b"XXXXXXXX"
    events, diagnostics = read(damaged_copy(tmp_path, data))
    assert record_ids(events) == oracle_ids(FILE_COPY) - oracle_ids(FILE_COPY, {5})
    assert diagnostics.counts["evtx_chunk_skipped"] == 1


def test_garbage_records_under_a_valid_checksum_cost_only_their_chunk(tmp_path: Path) -> None:
    """An attacker who edits records and reseals the chunk: the other chunks stay intact."""
    data = bytearray(FILE_COPY.read_bytes())
    span = records_span(data, 3)
    chance = random.Random(1)
    for _ in range(50):
        data[chance.randrange(span.start, span.stop)] = chance.randrange(256)
    reseal_chunk(data, 3)
    events, diagnostics = read(damaged_copy(tmp_path, data))
    clean = {event.source_ref: event for event in read(FILE_COPY)[0]}
    others = oracle_ids(FILE_COPY) - oracle_ids(FILE_COPY, {3})
    kept = [event for event in events if event.source_ref in others]
    assert without_source_file(kept) == without_source_file([clean[ref] for ref in sorted(others)])
    assert diagnostics.counts["evtx_record_skipped"] > 0


def test_a_dirty_evtx_with_a_stale_header_is_read_to_its_end(tmp_path: Path) -> None:
    data = bytearray(FILE_COPY.read_bytes())
    mark_dirty_with_stale_header(data, chunk_count=2)
    events, diagnostics = read(damaged_copy(tmp_path, data))
    assert record_ids(events) == oracle_ids(FILE_COPY)
    assert list(diagnostics.counts) == ["evtx_dirty"]


def test_an_evtx_cut_in_its_file_header(tmp_path: Path) -> None:
    events, diagnostics = read(damaged_copy(tmp_path, FILE_COPY.read_bytes()[:3000]))
    assert events == []
    assert "file header" in diagnostics.examples["input_damaged"][0]


def test_random_chunks_behind_a_valid_header(tmp_path: Path) -> None:
    noise = random.Random(2).randbytes(3 * CHUNK_SIZE)
    path = damaged_copy(tmp_path, FILE_COPY.read_bytes()[:FILE_HEADER_SIZE] + noise)
    events, diagnostics = read(path)
    assert events == []
    assert diagnostics.counts["evtx_chunk_skipped"] == 3


def test_a_truncated_gzip_evtx_keeps_what_it_held(tmp_path: Path) -> None:
    packed = gzip.compress(FILE_COPY.read_bytes())
    cut = packed[: len(packed) // 2]
    held = len(zlib.decompressobj(wbits=31).decompress(cut))  # what a reader can get back
    whole_chunks = set(range((held - FILE_HEADER_SIZE) // CHUNK_SIZE))
    events, diagnostics = read(damaged_copy(tmp_path, cut, "Security.evtx.gz"))
    assert whole_chunks and record_ids(events) == oracle_ids(FILE_COPY, whole_chunks)
    assert diagnostics.counts["input_damaged"] == 2  # the gzip stream, then the cut chunk


# XML -----------------------------------------------------------------------------------------

BOMB = """<?xml version="1.0"?>
<!DOCTYPE Events [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
  <!ENTITY % remote SYSTEM "http://127.0.0.1:9/dtd">
  %remote;
]>
<Events>
"""


def share_events() -> list:
    return [event for event in evtx_events(PSEXEC) if event.event_id in (5140, 5145)]


@pytest.mark.parametrize("entity", ["&lol9;", "&xxe;"])
def test_xml_entities_are_never_expanded(tmp_path: Path, entity: str) -> None:
    events = share_events()
    poisoned = to_xml(events[0]).replace("</Computer>", f"{entity}</Computer>", 1)
    document = BOMB + poisoned + "\n" + "\n".join(map(to_xml, events[1:])) + "\n</Events>\n"
    found, diagnostics = read(damaged_copy(tmp_path, document.encode(), "bomb.xml"))
    assert record_ids(found) == {event.record_id for event in events[1:]}
    assert diagnostics.counts["xml_dtd_refused"] == 1
    assert diagnostics.counts["xml_bad_event"] == 1
    assert "undefined entity" in diagnostics.examples["xml_bad_event"][0]
    assert not any("root:" in str(event.to_dict()) for event in found)


def test_a_doctype_inside_an_event_is_refused(tmp_path: Path) -> None:
    events = share_events()
    inner = to_xml(events[0]).replace("<System>", '<!DOCTYPE x [<!ENTITY a "b">]><System>', 1)
    content = inner + "\n" + to_xml(events[1]) + "\n"
    found, diagnostics = read(damaged_copy(tmp_path, content.encode(), "inner.xml"))
    assert record_ids(found) == {events[1].record_id}
    assert diagnostics.counts["xml_bad_event"] == 1


def test_non_utf8_bytes_in_xml_cost_nothing_but_a_warning(tmp_path: Path) -> None:
    events = share_events()
    content = "\n".join(map(to_xml, events)).encode()
    content = content.replace(b"PSEXESVC.exe", b"PSEXE\xff\xfe.exe", 1)
    found, diagnostics = read(damaged_copy(tmp_path, content, "latin.xml"))
    assert record_ids(found) == {event.record_id for event in events}
    assert "PSEXE\ufffd\ufffd.exe" in {event.path for event in found}
    assert diagnostics.counts["undecodable_bytes"] == 1


def test_an_oversized_xml_event_is_skipped(tmp_path: Path) -> None:
    events = share_events()
    huge = to_xml(events[0]).replace("</Computer>", "A" * (MAX_RECORD_CHARS + 1000) + "</Computer>")
    content = "\n".join([to_xml(events[1]), huge, *map(to_xml, events[2:])]).encode()
    found, diagnostics = read(damaged_copy(tmp_path, content, "huge.xml"))
    assert record_ids(found) == {event.record_id for event in events[1:]}
    assert diagnostics.counts["xml_event_too_large"] == 1


def test_a_truncated_xml_document_keeps_its_whole_events(tmp_path: Path) -> None:
    events = share_events()
    document = to_xml_document(events).encode()
    cut = document[: document.rindex(b"<Event ") + 200]
    found, diagnostics = read(damaged_copy(tmp_path, cut, "cut.xml"))
    assert record_ids(found) == {event.record_id for event in events[:-1]}
    assert "cut off" in diagnostics.examples["input_damaged"][0]


# JSON ----------------------------------------------------------------------------------------


def nxlog_lines() -> list[bytes]:
    return gzip.decompress(NXLOG.read_bytes()).splitlines(keepends=True)


def without_source_file(events: list[SmbEvent]) -> list[dict]:
    return [{**event.to_dict(), "source_file": None} for event in events]


def test_a_very_long_json_line_is_bounded_and_skipped(tmp_path: Path) -> None:
    lines = nxlog_lines()
    huge = b'{"EventID": 5145, "Message": "' + b"x" * (MAX_RECORD_CHARS + 4_000_000) + b'"}\n'
    path = damaged_copy(tmp_path, b"".join(lines[:3000] + [huge] + lines[3000:]), "huge.json")
    found, diagnostics = read(path)
    clean, _ = read(NXLOG)
    assert without_source_file(found) == without_source_file(clean) != []
    assert diagnostics.counts == {"line_too_long": 1}


def test_a_long_json_line_under_the_bound_is_read(tmp_path: Path) -> None:
    """Tens of MB in one record (a giant Message) are fine when under the bound."""
    lines = nxlog_lines()
    index, record = next(
        (i, json.loads(line)) for i, line in enumerate(lines) if b'"EventID":5145' in line
    )
    record["Message"] = "x" * 20_000_000
    lines[index] = json.dumps(record).encode() + b"\n"
    found, diagnostics = read(damaged_copy(tmp_path, b"".join(lines), "long.json"))
    clean, _ = read(NXLOG)
    assert without_source_file(found) == without_source_file(clean)
    assert not diagnostics.counts


def test_an_oversized_value_in_a_json_array_is_skipped(tmp_path: Path) -> None:
    events = share_events()
    documents = [to_winlogbeat(event) for event in events]
    documents[0]["message"] = "x" * (MAX_RECORD_CHARS + 1000)
    found, diagnostics = read(damaged_copy(tmp_path, json.dumps(documents, indent=1).encode()))
    assert record_ids(found) == {event.record_id for event in events[1:]}
    assert diagnostics.counts["json_bad_value"] == 1


def test_non_utf8_bytes_in_json_cost_nothing_but_a_warning(tmp_path: Path) -> None:
    lines = nxlog_lines()
    index = next(i for i, line in enumerate(lines) if b'"EventID":5145' in line)
    lines[index] = lines[index].replace(b"svcctl", b"svc\xc3\x28tl")
    found, diagnostics = read(damaged_copy(tmp_path, b"".join(lines), "latin.json"))
    assert "svc\ufffd(tl" in {event.path for event in found}
    assert len(found) == len(read(NXLOG)[0])
    assert diagnostics.counts == {"undecodable_bytes": 1}


HOSTILE_JSON_LINES = [
    b'{"EventID": 5145, "EventTime": "not a time"}',
    b'{"EventID": "x5145"}',
    b'{"Event": {"System": 5145}}',
    b'{"Event": {"System": {"EventID": {"#text": [5145]}}}}',
    b'{"winlog": {"event_id": "5145"}}',
    b'{"result": {"_raw": "EventCode=5145", "_time": 5145}}',
    b'{"EventCode": "5145x", "_time": "2021-01-01T00:00:00Z", "Account_Name": {"a": 5145}}',
    b"[" * 100_000 + b"5145" + b"]" * 100_000,
    b'{"EventID": 5145, "broken": ',
    b'"5145"',
]


def test_json_records_of_hostile_shapes_cost_one_record_each(tmp_path: Path) -> None:
    lines = nxlog_lines()
    content = b"".join(lines[:10] + [line + b"\n" for line in HOSTILE_JSON_LINES] + lines[10:])
    found, diagnostics = read(damaged_copy(tmp_path, content, "hostile.json"))
    assert without_source_file(found) == without_source_file(read(NXLOG)[0])
    assert diagnostics.counts["bad_record"] == 7  # the first seven: wrong types or values
    assert diagnostics.counts["json_bad_line"] == 2  # too deep, cut off; the last: no record
    assert not diagnostics.damaged_inputs


def test_a_truncated_gzip_json_keeps_its_whole_lines(tmp_path: Path) -> None:
    packed = NXLOG.read_bytes()
    cut = packed[: len(packed) * 2 // 3]
    held = zlib.decompressobj(wbits=31).decompress(cut)
    whole_lines = held[: held.rindex(b"\n") + 1]
    expected, _ = read(damaged_copy(tmp_path, whole_lines, "whole.json"))
    found, diagnostics = read(damaged_copy(tmp_path, cut, "cut.json.gz"))
    assert expected and without_source_file(found) == without_source_file(expected)
    assert diagnostics.damaged_inputs


# Splunk text and fuzzing ---------------------------------------------------------------------


def test_hostile_splunk_text_costs_only_its_events(tmp_path: Path) -> None:
    events = share_events()
    blocks = [to_splunk_text(event) for event in events]
    blocks[0] = blocks[0].replace("EventCode=", "EventCode=\x00", 1)  # unreadable header
    blocks[1] = "13/45/2021 99:99:99 PM" + blocks[1][blocks[1].index("\n") :]  # no such time
    content = "".join(blocks).encode().replace(b"PSEXESVC.exe", b"PSEXE\xff.exe")
    found, diagnostics = read(damaged_copy(tmp_path, content, "splunk.log"))
    assert record_ids(found) == {event.record_id for event in events[2:]}
    assert diagnostics.counts["bad_record"] == 1
    assert diagnostics.counts["undecodable_bytes"] >= 1


def sample_files() -> dict[str, bytes]:
    events = list(evtx_events(PSEXEC))
    return {
        "evtx": PSEXEC.read_bytes(),
        "xml": to_xml_document(events).encode(),
        "json": b"".join(json.dumps(to_winlogbeat(e)).encode() + b"\n" for e in events),
        "nxlog": b"".join(nxlog_lines()[:400]),
        "splunk": "".join(map(to_splunk_text, events)).encode(),
    }


@pytest.mark.parametrize("kind", ["evtx", "xml", "json", "nxlog", "splunk"])
def test_random_damage_never_escapes_as_an_exception(tmp_path: Path, kind: str) -> None:
    original = sample_files()[kind]
    chance = random.Random(kind)
    for trial in range(25):
        data = bytearray(original)
        for _ in range(chance.randrange(1, 40)):
            data[chance.randrange(len(data))] = chance.randrange(256)
        if trial % 3 == 0:
            data = data[: chance.randrange(len(data))]
        if trial % 4 == 0:
            data = bytearray(gzip.compress(bytes(data)))
        path = damaged_copy(tmp_path, data, f"{kind}-{trial}")
        for forced in (None, "xml", "json", "splunk"):
            diagnostics = Diagnostics()
            try:
                events = list(read_events(str(path), diagnostics, forced))
            except ValueError as error:  # NotALogError: the damage hit the format's signature
                assert forced is None and str(path) in str(error)
                continue
            assert all(isinstance(event, SmbEvent) for event in events)
