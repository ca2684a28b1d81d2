"""EVTX files, through the Rust ``evtx`` library (its records rendered as JSON text).

Most records of a Security log are not events smbwatch reports: their event id is read from the
raw JSON text (one find, one set lookup) and they are dropped unparsed. Of the others, only
EventData is parsed; the System fields are taken where the library writes them. Chunks whose
checksum fails are skipped by the library and counted here; a dirty (unclosed) file is read to
its last chunk whatever its header says.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import orjson
from evtx import PyEvtxParser

from smbwatch.containers import READ_SIZE, InputFile, damage
from smbwatch.events import SmbEvent
from smbwatch.interrupt import check as check_interrupt
from smbwatch.winlog.json_events import record_from_event_json
from smbwatch.winlog.normalize import WANTED, normalize, worth_parsing
from smbwatch.winlog.record import RECORD_ERRORS, Source, WinRecord
from smbwatch.winlog.timestamps import system_time

FILE_MAGIC = b"ElfFile\x00"
_FILE_HEADER_SIZE = 4096
_CHUNK_SIZE = 65536
_FLAGS_OFFSET = 0x78
_DIRTY = 0x1
_STALLED = 100  # the same failure this many times in a row: the library is not moving on
# After "EventID": comes 5145 (nearly always), "5145" or, with qualifiers (7045),
# {"#attributes":{"Qualifiers":16384},"#text":7045}: every other record is dropped after one
# find and one set lookup, the rarer shapes after one match.
_EVENT_ID_KEY = '"EventID":'
_WANTED_IDS = frozenset(map(str, WANTED))
_WANTED_ID_LENGTH = 4
assert {len(code) for code in _WANTED_IDS} == {_WANTED_ID_LENGTH}, "the fast path relies on it"
_EVENT_DATA_KEY = '"EventData":'
_SYSTEM_TIME_KEY = '"SystemTime":"'
_RECORD_ID_KEY = '"EventRecordID":'
_COMPUTER_KEY = '"Computer":"'
_WANTED_EVENT_ID = re.compile(
    r'(?:\{"#attributes":\{[^{}]*\},"#text":)?"?(' + "|".join(map(str, sorted(WANTED))) + r")(?!\d)"
)


def read_evtx(log: InputFile, source: Source) -> Iterator[SmbEvent]:
    """The events of an EVTX file; one compressed or in a zip archive is copied out to a
    temporary file first (the library reads a file), as far as it can be (damage is said)."""
    if log.plain_file():
        yield from _read_file(log.path, source)
        return
    with tempfile.NamedTemporaryFile(prefix="smbwatch-", suffix=".evtx") as copy:
        _copy_out(log, copy, source)
        copy.flush()
        yield from _read_file(copy.name, source)


def _copy_out(log: InputFile, target: IO[bytes], source: Source) -> None:
    """Copy the content out in bounded pieces (``containers`` caps what a container may hold)."""
    with log.open_raw() as content:
        while chunk := content.read(READ_SIZE):
            check_interrupt()
            target.write(chunk)
        problem = damage(content)
    if problem is not None:  # truncated, corrupt, a bomb
        source.damaged(f"{problem}; reading what came before")


def _read_file(path: str, source: Source) -> Iterator[SmbEvent]:
    if not _layout_ok(path, source):
        return
    try:
        # One thread: the pipeline reads files in parallel, and Python is the bottleneck here.
        parser = PyEvtxParser(path, number_of_threads=1, validate_checksums=True)
        records = parser.records_json()
    except (OSError, RuntimeError) as error:
        source.damaged(f"unreadable EVTX: {error}")
        return
    # The library reports a bad chunk or record by raising from the iterator, then goes on with
    # the next one; each failure names its chunk or record, so a repeated one means a stall.
    last_failure, repeats = "", 0
    while True:
        try:
            for record in records:
                check_interrupt()
                if record is None:  # the library's typing allows it; nothing to read
                    continue
                text = record["data"]
                code = _wanted_event_id(text)
                if code and worth_parsing(text, code):
                    event = _event(record, text, code, source)
                    if event is not None:
                        yield event
            return
        except (OSError, RuntimeError) as error:
            message = str(error)
            kind = "evtx_chunk_skipped" if "parse chunk" in message else "evtx_record_skipped"
            source.warn(kind, message)
            repeats = repeats + 1 if message == last_failure else 0
            last_failure = message
            if repeats >= _STALLED:
                source.damaged("the EVTX library stopped making progress")
                return


def _wanted_event_id(text: str) -> int | None:
    """The record's event id if it is one smbwatch reports, read from the raw JSON text."""
    start = text.find(_EVENT_ID_KEY) + len(_EVENT_ID_KEY)
    end = start + _WANTED_ID_LENGTH
    if text[start:end] in _WANTED_IDS and not text[end : end + 1].isdigit():
        return int(text[start:end])
    if text[start : start + 1] in ('"', "{") and (match := _WANTED_EVENT_ID.match(text, start)):
        return int(match.group(1))
    return None


def _event(record: dict[str, Any], text: str, code: int, source: Source) -> SmbEvent | None:
    """The event of one record that passed the filter; a malformed one costs a warning."""
    try:
        win_record = _record_from_text(text, code) or record_from_event_json(
            orjson.loads(text)["Event"], source, record["event_record_id"], record["timestamp"]
        )
    except (orjson.JSONDecodeError, *RECORD_ERRORS) as error:
        source.warn("bad_record", f"record {record['event_record_id']}: {error!r}")
        return None
    return normalize(win_record, source)


def _record_from_text(text: str, code: int) -> WinRecord | None:
    """The record read where the library puts things, or None to take the general path.

    The library renders System before EventData and EventData last; taking the three System
    fields smbwatch needs by position and parsing only EventData saves a third of the cost of
    a reported record (the System objects are a dozen dicts). Any other layout returns None.
    """
    data_at = text.find(_EVENT_DATA_KEY)
    if data_at < 0 or not text.endswith("}}"):
        return None
    try:
        time_at = _value_start(text, _SYSTEM_TIME_KEY, 0, data_at)
        id_at = _value_start(text, _RECORD_ID_KEY, time_at, data_at)
        computer_at = _value_start(text, _COMPUTER_KEY, id_at, data_at)
        computer = text[computer_at : text.index('"', computer_at)]
        data = orjson.loads(text[data_at + len(_EVENT_DATA_KEY) : -2])
        record = WinRecord(
            code,
            system_time(text[time_at : text.index('"', time_at)]),
            int(text[id_at : text.index(",", id_at)].strip('"')),
            computer,
            data if isinstance(data, dict) else {},
        )
    except ValueError:  # not where it should be (orjson's error is a ValueError too)
        return None
    return None if "\\" in computer else record  # an escape: leave it to the JSON parser


def _value_start(text: str, key: str, start: int, end: int) -> int:
    at = text.find(key, start, end)
    if at < 0:
        raise ValueError(key)
    return at + len(key)


def _layout_ok(path: str, source: Source) -> bool:
    """Check the file header and size: report a dirty or truncated file, refuse a headless one."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        header = file.read(_FILE_HEADER_SIZE)
    if len(header) < _FILE_HEADER_SIZE:
        source.damaged(f"truncated in its file header ({size} bytes)")
        return False
    if not header.startswith(FILE_MAGIC):
        source.damaged("no EVTX file header")
        return False
    (flags,) = struct.unpack_from("<I", header, _FLAGS_OFFSET)
    if flags & _DIRTY:
        source.warn_once("evtx_dirty", "not closed cleanly (dirty): every chunk is read")
    partial = (size - _FILE_HEADER_SIZE) % _CHUNK_SIZE
    if partial:
        source.damaged(f"truncated: its last chunk has {partial} of {_CHUNK_SIZE} bytes, lost")
    return True
