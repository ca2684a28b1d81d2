"""EVTX files, through the Rust ``evtx`` library (its records rendered as JSON text).

Most records of a Security log are not share events: the event id is read from the raw JSON
text with one regular expression and the record is dropped before ``orjson.loads``. Chunks
whose checksum fails are skipped by the library and counted here; a dirty (unclosed) file is
read to its last chunk whatever its header says.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson
from evtx import PyEvtxParser

from smbwatch.events import SmbEvent
from smbwatch.winlog.json_events import record_from_event_json
from smbwatch.winlog.normalize import WANTED, normalize, worth_parsing
from smbwatch.winlog.record import RECORD_ERRORS, Source

FILE_MAGIC = b"ElfFile\x00"
_FILE_HEADER_SIZE = 4096
_CHUNK_SIZE = 65536
_FLAGS_OFFSET = 0x78
_DIRTY = 0x1
_GZIP_WBITS = 31  # zlib's "gzip header and trailer" mode
_GUNZIP_READ = 1024 * 1024
_STALLED = 100  # the same failure this many times in a row: the library is not moving on
# After "EventID": comes 5145, "5145" or {"#attributes":{"Qualifiers":16384},"#text":7045};
# matched for a wanted id only, so every other record is dropped by one find and one match.
_EVENT_ID_KEY = '"EventID":'
_WANTED_EVENT_ID = re.compile(
    r'(?:\{"#attributes":\{[^{}]*\},"#text":)?"?(' + "|".join(map(str, sorted(WANTED))) + r")(?!\d)"
)


def read_evtx(path: str, compressed: bool, source: Source) -> Iterator[SmbEvent]:
    """The events of an EVTX file; a gzip one is decompressed to a temporary file first."""
    if not compressed:
        yield from _read_file(path, source)
        return
    with tempfile.NamedTemporaryFile(prefix="smbwatch-", suffix=".evtx") as copy:
        _gunzip(path, copy, source)
        copy.flush()
        yield from _read_file(copy.name, source)


def _gunzip(path: str, target: BinaryIO, source: Source) -> None:
    """Decompress all that can be, also from a truncated or corrupt gzip stream (``gzip`` keeps
    nothing of a read that hits the damage)."""
    decompressor = zlib.decompressobj(wbits=_GZIP_WBITS)
    try:
        with open(path, "rb") as packed:
            while chunk := packed.read(_GUNZIP_READ):
                while chunk:
                    target.write(decompressor.decompress(chunk))
                    chunk = decompressor.unused_data if decompressor.eof else b""
                    if chunk:  # a further gzip member follows
                        decompressor = zlib.decompressobj(wbits=_GZIP_WBITS)
    except zlib.error as error:
        source.damaged(f"corrupt gzip stream ({error}); reading what came before")
        return
    if not decompressor.eof:
        source.damaged("gzip stream ends early; reading what it held")


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
                text = record["data"]
                key = text.find(_EVENT_ID_KEY) + len(_EVENT_ID_KEY)
                match = _WANTED_EVENT_ID.match(text, key)
                if match and worth_parsing(text, int(match.group(1))):
                    event = _event(record, text, source)
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


def _event(record: dict[str, Any], text: str, source: Source) -> SmbEvent | None:
    """The event of one record that passed the filter; a malformed one costs a warning."""
    try:
        event = orjson.loads(text)["Event"]
        win_record = record_from_event_json(event, record["event_record_id"], record["timestamp"])
    except (orjson.JSONDecodeError, *RECORD_ERRORS) as error:
        source.warn("bad_record", f"record {record['event_record_id']}: {error!r}")
        return None
    return normalize(win_record, source)


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
