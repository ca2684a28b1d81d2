"""Where a run's output goes and in which format: the one place that knows the formats.

``table`` for people on a terminal, ``jsonl`` for pipelines and SIEMs, ``csv`` for spreadsheets
(each sink escapes what it must), and ``parquet`` for events: a typed dataset in a directory.
A verb says what its rows are (a ``RowKind``: how a table shows them, which CSV columns they
have) and hands them to its ``Output``; nothing else switches on the format.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TextIO

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import FIELD_NAMES, SmbEvent
from smbwatch.sinks import OutputError
from smbwatch.sinks.csv import write_csv
from smbwatch.sinks.jsonl import write_jsonl
from smbwatch.sinks.table import EVENT_COLUMNS, Column, write_table

if TYPE_CHECKING:
    import pyarrow as pa

STDOUT_BUFFER: Final = 1 << 16  # bytes written to an unbuffered stdout at once
TEXT_FORMATS: Final = ("table", "jsonl", "csv")
FORMATS: Final = (*TEXT_FORMATS, "parquet")  # parquet: events only
Row = dict[str, Any]


class RowKind:
    """What rows are: a table's title and columns, and the CSV columns (fixed, or read from
    the rows themselves, as the group-by fields of alerts)."""

    title: str
    table: Sequence[Column]
    csv: Sequence[str] | Callable[[Sequence[Row]], Sequence[str]]

    def __init__(
        self,
        title: str,
        table: Sequence[Column],
        csv: Sequence[str] | Callable[[Sequence[Row]], Sequence[str]],
    ) -> None:
        self.title = title
        self.table = table
        self.csv = csv


EVENTS: Final = RowKind("SMB events", EVENT_COLUMNS, FIELD_NAMES)


def columns_kind(title: str, names: Sequence[str]) -> RowKind:
    """Rows of arbitrary named columns (a query's result), each shown as it is, the first
    ones first when not all fit."""
    table = [
        Column(name, _getter(name), priority, max(4, min(len(name), 24)))
        for priority, name in enumerate(names, start=1)
    ]
    return RowKind(title, table, list(names))


def _getter(name: str) -> Callable[[Row], Any]:
    return lambda row: row.get(name)


def write_rows(
    rows: Iterable[Row], fmt: str, kind: RowKind, out: TextIO, wide: bool = False
) -> int:
    """Write rows in a text format; the number written. ``wide``: a table with full times and
    every cell whole."""
    if fmt == "jsonl":
        return write_jsonl(rows, out)
    if fmt == "csv":
        if callable(kind.csv):
            rows = list(rows)
            return write_csv(rows, out, kind.csv(rows))
        return write_csv(rows, out, kind.csv)
    if fmt == "table":
        return write_table(rows, out, kind.table, kind.title, wide)
    raise OutputError(f"{fmt} is not a format for {kind.title.lower()}")


class Output:
    """``--format`` and ``--output`` of one run: stdout or a file (a directory for parquet);
    the format by default a table on a terminal, else JSON lines."""

    def __init__(self, fmt: str | None, path: str | None, wide: bool = False) -> None:
        if fmt == "parquet" and path is None:
            raise OutputError("-f parquet writes a dataset: name its directory with -o DIR")
        self.format = fmt
        self.path = path
        self.wide = wide  # a table with full times and every cell whole

    def rows(self, rows: Iterable[Row], kind: RowKind) -> int:
        """Write rows of ``kind`` in a text format."""
        return self.text(lambda out, fmt: write_rows(rows, fmt, kind, out, self.wide))

    def text(self, write: Callable[[TextIO, str], int]) -> int:
        """Let ``write(out, format)`` write in a text format, for a layout of its own (the
        rule listing's two tables)."""
        if self.format == "parquet":
            raise OutputError("-f parquet is for events only")
        with self._stream() as out:
            return write(out, self._chosen(out))

    def events(
        self, events: Iterable[SmbEvent], diagnostics: Diagnostics, kind: RowKind = EVENTS
    ) -> int:
        """Write events: as rows (shown as ``kind`` says), or as a Parquet dataset."""
        if self.format != "parquet":
            return self.rows(map(SmbEvent.to_dict, events), kind)
        from smbwatch.arrow import event_batches

        return self.batches(event_batches(events, diagnostics), diagnostics)

    def batches(
        self, batches: Iterable[pa.RecordBatch], diagnostics: Diagnostics, kind: RowKind = EVENTS
    ) -> int:
        """Write events that are already Arrow batches of an event schema (from the case)."""
        from smbwatch.arrow import batch_events, conformed

        if self.format == "parquet":
            from smbwatch.sinks.parquet import write_parquet

            assert self.path is not None
            return write_parquet(conformed(batches, diagnostics, "the case"), self.path)
        return self.events(batch_events(batches, diagnostics, "the case"), diagnostics, kind)

    def writes_lines(self) -> bool:
        """Whether the events are written as JSON lines, known before anything is written
        (then they can come as lines already, ``lines``): asked for, or to a standard output
        that is not a terminal."""
        return self.format == "jsonl" or (
            self.format is None and self.path is None and not sys.stdout.isatty()
        )

    def lines(self, lines: Iterable[str]) -> int:
        """Write events made into JSON lines already (``sinks.jsonl.line``)."""
        from smbwatch.sinks.jsonl import write_lines

        with self._stream() as out:
            return write_lines(lines, out)

    def _chosen(self, out: TextIO) -> str:
        if self.format:
            return self.format
        return "table" if out.isatty() else "jsonl"

    @contextmanager
    def _stream(self) -> Iterator[TextIO]:
        if self.path is None:
            with _stdout() as out:
                yield out
            return
        try:
            handle = open(self.path, "w", encoding="utf-8", errors="backslashreplace", newline="")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write: {exc.strerror}") from None
        with handle:
            yield handle


@contextmanager
def _stdout() -> Iterator[TextIO]:
    """stdout, names from the wire that do not encode written as backslash escapes.

    Where Python runs unbuffered (``PYTHONUNBUFFERED``, which many container images set, or
    ``-u``), each row written would be a system call of its own (200,000 for as many log
    records: 0.1-0.2 s of their 3 s run). Rows to a file or a pipe then go through a buffer of
    their own, written out at the end of the output, or when the run is stopped (still whole
    lines)."""
    stdout = sys.stdout
    if not isinstance(stdout, io.TextIOWrapper):
        yield stdout
        return
    stdout.reconfigure(errors="backslashreplace")
    # Buffered already (as stdout usually is), or a terminal, where rows show as they come.
    if not isinstance(stdout.buffer, io.RawIOBase) or stdout.isatty():
        yield stdout
        return
    stdout.flush()
    buffered = io.BufferedWriter(stdout.buffer, STDOUT_BUFFER)
    out = io.TextIOWrapper(
        buffered, encoding=stdout.encoding, errors="backslashreplace", newline="\n"
    )
    try:
        yield out
    finally:  # let go of stdout's file without closing it
        out.detach()
        buffered.detach()
