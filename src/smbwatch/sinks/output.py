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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import FIELD_NAMES, SmbEvent
from smbwatch.sinks.csv import write_csv
from smbwatch.sinks.jsonl import write_jsonl
from smbwatch.sinks.table import EVENT_COLUMNS, Column, write_table

if TYPE_CHECKING:
    import pyarrow as pa

TEXT_FORMATS: Final = ("table", "jsonl", "csv")
FORMATS: Final = (*TEXT_FORMATS, "parquet")  # parquet: events only
Row = dict[str, Any]


class OutputError(Exception):
    """The output cannot be written as asked (a file that cannot be opened, a bad format)."""


@dataclass(frozen=True)
class RowKind:
    """What rows are: a table's title and columns, and the CSV columns (fixed, or read from
    the rows themselves, as the group-by fields of alerts)."""

    title: str
    table: Sequence[Column]
    csv: Sequence[str] | Callable[[Sequence[Row]], Sequence[str]]


EVENTS: Final = RowKind("SMB events", EVENT_COLUMNS, FIELD_NAMES)


def columns_kind(title: str, names: Sequence[str]) -> RowKind:
    """Rows of arbitrary named columns (a query's result), each shown as it is."""
    table = [(name, _getter(name)) for name in names]
    return RowKind(title, table, list(names))


def _getter(name: str) -> Callable[[Row], Any]:
    return lambda row: row.get(name)


def write_rows(rows: Iterable[Row], fmt: str, kind: RowKind, out: TextIO) -> int:
    """Write rows in a text format; the number written."""
    if fmt == "jsonl":
        return write_jsonl(rows, out)
    if fmt == "csv":
        if callable(kind.csv):
            rows = list(rows)
            return write_csv(rows, out, kind.csv(rows))
        return write_csv(rows, out, kind.csv)
    if fmt == "table":
        return write_table(rows, out, kind.table, kind.title)
    raise OutputError(f"{fmt} is not a format for {kind.title.lower()}")


class Output:
    """``--format`` and ``--output`` of one run: stdout or a file (a directory for parquet);
    the format by default a table on a terminal, else JSON lines."""

    def __init__(self, fmt: str | None, path: str | None) -> None:
        if fmt == "parquet" and path is None:
            raise OutputError("-f parquet writes a dataset: name its directory with -o DIR")
        self.format = fmt
        self.path = path

    def rows(self, rows: Iterable[Row], kind: RowKind) -> int:
        """Write rows of ``kind`` in a text format."""
        if self.format == "parquet":
            raise OutputError(f"-f parquet is for events, not {kind.title.lower()}")
        with self._stream() as out:
            return write_rows(rows, self._chosen(out), kind, out)

    def events(
        self, events: Iterable[SmbEvent], diagnostics: Diagnostics, kind: RowKind = EVENTS
    ) -> int:
        """Write events: as rows (shown as ``kind`` says), or as a Parquet dataset."""
        if self.format != "parquet":
            return self.rows(map(SmbEvent.to_dict, events), kind)
        from smbwatch.sinks.arrow import event_batches

        return self.batches(event_batches(events, diagnostics), diagnostics)

    def batches(
        self, batches: Iterable[pa.RecordBatch], diagnostics: Diagnostics, kind: RowKind = EVENTS
    ) -> int:
        """Write events that are already Arrow batches of an event schema (from the case)."""
        from smbwatch.sinks.arrow import batch_events, conformed

        if self.format == "parquet":
            from smbwatch.sinks.parquet import write_parquet

            assert self.path is not None
            return write_parquet(conformed(batches, diagnostics, "the case"), self.path)
        return self.events(batch_events(batches, diagnostics, "the case"), diagnostics, kind)

    def _chosen(self, out: TextIO) -> str:
        if self.format:
            return self.format
        return "table" if out.isatty() else "jsonl"

    @contextmanager
    def _stream(self) -> Iterator[TextIO]:
        if self.path is None:
            if isinstance(sys.stdout, io.TextIOWrapper):  # names from the wire may not encode
                sys.stdout.reconfigure(errors="backslashreplace")
            yield sys.stdout
            return
        try:
            handle = open(self.path, "w", encoding="utf-8", errors="backslashreplace", newline="")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write: {exc.strerror}") from None
        with handle:
            yield handle
