"""Windows event logs as a source of SmbEvents: EVTX, event XML, JSON, Splunk WinEventLog text.

``read_events`` detects the format (and gzip) from the file's content, reads it record by record,
drops what is not a share, network logon or service-install event before parsing it fully, and
yields contract events with ``source="host"``. Damage costs records, counted in the diagnostics;
only a file that is no log at all raises ``NotALogError``.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.winlog.evtx_file import FILE_MAGIC, read_evtx
from smbwatch.winlog.inputs import FORMATS, open_binary, open_text, read_head, sniff_format
from smbwatch.winlog.json_events import read_json
from smbwatch.winlog.record import Source
from smbwatch.winlog.splunk_text import read_splunk
from smbwatch.winlog.xml_events import read_xml

__all__ = ["FORMATS", "NotALogError", "read_events", "sniff_format"]

_TEXT_READERS = {"xml": read_xml, "json": read_json, "splunk": read_splunk}


class NotALogError(ValueError):
    """The file is not a Windows event log in any format smbwatch reads (one-line message)."""


def read_events(
    path: str, diagnostics: Diagnostics, input_format: str | None = None
) -> Iterator[SmbEvent]:
    """The SmbEvents of one log file, gzip-compressed or not; ``input_format`` forces the format.

    The file is recognised now (raising ``NotALogError`` if it is no log, ``OSError`` if it
    cannot be opened); its events are read as the iterator is consumed.
    """
    if input_format is not None and input_format not in FORMATS:
        raise ValueError(f"unknown input format {input_format!r} (one of {', '.join(FORMATS)})")
    try:
        head, compressed = read_head(path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise NotALogError(f"{path}: unreadable gzip file ({error})") from None
    log_format = input_format or sniff_format(head)
    if log_format is None:
        what = "empty" if not head else "not a Windows event log (EVTX, XML, JSON, Splunk text)"
        raise NotALogError(f"{path}: {what}")
    if log_format == "evtx" and not head.startswith(FILE_MAGIC):
        raise NotALogError(f"{path}: not an EVTX file (no ElfFile header)")
    return _events(path, compressed, Source(path, log_format, diagnostics))


def _events(path: str, compressed: bool, source: Source) -> Iterator[SmbEvent]:
    try:
        if source.format == "evtx":
            yield from read_evtx(path, compressed, source)
            return
        stream, _ = open_binary(path)
        with open_text(stream) as text:
            yield from _TEXT_READERS[source.format](text, source)
    except (EOFError, zlib.error, OSError) as error:  # a truncated or corrupt gzip stream
        source.damaged(f"read stopped: {error}")
