"""Windows event logs as a source of SmbEvents: EVTX, event XML, JSON, Splunk WinEventLog text.

``read_events`` detects the format (and gzip) from the file's content, reads it record by record,
drops what is not a share, network logon or service-install event before parsing it fully, and
yields contract events with ``source="host"``. Damage costs records, counted in the diagnostics;
only a file that is no log at all raises ``NotALogError``.
"""

from __future__ import annotations

from collections.abc import Iterator

from smbwatch.containers import InputFile, as_input, damage, read_head
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.winlog.evtx_file import FILE_MAGIC, read_evtx
from smbwatch.winlog.inputs import FORMATS, HEAD_SIZE, open_text, sniff_format
from smbwatch.winlog.json_events import read_json
from smbwatch.winlog.record import Source
from smbwatch.winlog.splunk_text import read_splunk
from smbwatch.winlog.xml_events import read_xml

__all__ = ["FORMATS", "NotALogError", "read_events", "sniff_format"]

_TEXT_READERS = {"xml": read_xml, "json": read_json, "splunk": read_splunk}


class NotALogError(ValueError):
    """The file is not a Windows event log in any format smbwatch reads (one-line message)."""


def read_events(
    path: str | InputFile, diagnostics: Diagnostics, input_format: str | None = None
) -> Iterator[SmbEvent]:
    """The SmbEvents of one log, gzip-compressed or not, on disk or in a zip archive;
    ``input_format`` forces the format.

    The file is recognised now (raising ``NotALogError`` if it is no log, ``OSError`` if it
    cannot be opened); its events are read as the iterator is consumed.
    """
    if input_format is not None and input_format not in FORMATS:
        raise ValueError(f"unknown input format {input_format!r} (one of {', '.join(FORMATS)})")
    log = as_input(path)
    name = log.name
    head, damage = read_head(log, HEAD_SIZE)
    if not head and damage:
        raise NotALogError(f"{name}: unreadable ({damage})")
    log_format = input_format or sniff_format(head)
    if log_format is None:
        what = "empty" if not head else "not a Windows event log (EVTX, XML, JSON, Splunk text)"
        raise NotALogError(f"{name}: {what}")
    if log_format == "evtx" and not head.startswith(FILE_MAGIC):
        raise NotALogError(f"{name}: not an EVTX file (no ElfFile header)")
    return _events(log, Source(name, log_format, diagnostics))


def _events(log: InputFile, source: Source) -> Iterator[SmbEvent]:
    if source.format == "evtx":
        yield from read_evtx(log, source)
        return
    try:
        stream = log.open()
    except OSError as error:
        source.damaged(f"unreadable: {error}")
        return
    with open_text(stream) as text:
        yield from _TEXT_READERS[source.format](text, source)
        problem = damage(stream)
    if problem is not None:  # a truncated or corrupt stream, a bomb: read up to there
        source.damaged(problem)
