"""Reading a log file: text encoding by its BOM, format by its first bytes (gzip and zip are
looked through by ``containers``).

Text formats are read through one decoding layer (UTF-8, or UTF-16 as PowerShell's ``Out-File``
writes it); bytes that do not decode become U+FFFD and are reported by the readers. Lines are
read with a bound, so one endless line costs that line, not the memory of the machine.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from smbwatch.interrupt import check as check_interrupt
from smbwatch.winlog.record import Source

FORMATS = ("evtx", "xml", "json", "splunk")
HEAD_SIZE = 64 * 1024
MAX_RECORD_CHARS = 64 * 1024 * 1024  # one line, one XML event, one JSON value
READ_SIZE = 1024 * 1024
_EVTX_MAGIC = b"ElfFile\x00"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_XML_EVENT = re.compile(rb"<Events?[\s>]")
_SPLUNK_EVENT_CODE = re.compile(rb"(?m)^EventCode=\d+\r?$")
_EVTX_DUMP_HEADER = re.compile(rb"Record \d+\s*[\[{]")


def sniff_format(head: bytes) -> str | None:
    """The log format of a (decompressed) file from its first bytes, or None if it is none."""
    if head.startswith(_EVTX_MAGIC):
        return "evtx"
    text = _as_utf8(head).lstrip()
    if text.startswith(b"<"):
        return "xml" if _XML_EVENT.search(text) else None
    if text.startswith((b"{", b"[")) or _EVTX_DUMP_HEADER.match(text):
        return "json"
    if _SPLUNK_EVENT_CODE.search(text):
        return "splunk"
    return None


def open_text(stream: BinaryIO) -> TextIO:
    """Text over the bytes, in the encoding their BOM names (UTF-8 when there is none)."""
    bom = stream.peek(2)[:2]  # type: ignore[attr-defined]  # gzip and buffered files peek
    encoding = "utf-16" if bom in _UTF16_BOMS else "utf-8-sig"
    return io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline=None)


def bounded_lines(text: TextIO, source: Source) -> Iterator[str]:
    """The lines of the text; a line longer than the bound is skipped with a warning."""
    while line := text.readline(MAX_RECORD_CHARS):
        check_interrupt()
        if len(line) == MAX_RECORD_CHARS and not line.endswith("\n"):
            source.warn("line_too_long", f"a line over {MAX_RECORD_CHARS} characters skipped")
            while (rest := text.readline(MAX_RECORD_CHARS)) and not rest.endswith("\n"):
                pass
            continue
        yield line


def _as_utf8(head: bytes) -> bytes:
    """The head re-encoded as UTF-8 when it is UTF-16, so one set of patterns sniffs both."""
    if head[:2] in _UTF16_BOMS:
        return head.decode("utf-16", errors="ignore").encode()
    return head.removeprefix(codecs.BOM_UTF8)
