"""Events as Arrow record batches, typed by the event schema: what Parquet files and the case's
store are written from and read back into.

The column types come from ``smbwatch.schema`` (one place). A value that does not fit its
column (a hostile log's 80-digit access mask, a number where text belongs) costs that value, with
a counted warning, never the batch; text that is not valid Unicode (a name from the wire with a
lone UTF-16 surrogate) is kept with that code unit written as ``\udc80``, also counted.
``session_id`` holds the SMB SessionId only: a host record's legacy copy of its logon id is in
``logon_id``, and is put back when events are read.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smbwatch import schema
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent, columns, from_columns

BATCH: Final = 8192  # events per record batch: columns of this many values are held at once
SHARED_REPEATS: Final = 4  # text columns whose values repeat this often are read by value (_text)
ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    schema.TIME: pa.timestamp("us", tz="UTC"),
    schema.TEXT: pa.string(),
    schema.INTEGER: pa.int64(),
    schema.UNSIGNED: pa.uint64(),
    schema.BOOLEAN: pa.bool_(),
    schema.TEXT_LIST: pa.list_(pa.string()),
    schema.OBJECT: pa.json_(),
    schema.OBJECT_LIST: pa.json_(),
}
_JSON_KINDS: Final = (schema.OBJECT, schema.OBJECT_LIST)
EVENT_SCHEMA: Final = pa.schema(
    [pa.field(f.name, ARROW_TYPES[f.kind], nullable=not f.required) for f in schema.FIELDS]
)
# As read from elsewhere: a row without a time is skipped, not the file.
_READ_SCHEMA: Final = pa.schema([field.with_nullable(True) for field in EVENT_SCHEMA])
_REQUIRED: Final = frozenset(("time", "source", "action"))  # an event's (``_complete``)
_INTEGER_RANGES: Final = {schema.INTEGER: (-(2**63), 2**63 - 1), schema.UNSIGNED: (0, 2**64 - 1)}
_PYTHON_TYPES: Final[dict[str, type | tuple[type, ...]]] = {
    schema.TEXT: str,
    schema.BOOLEAN: bool,
    schema.TEXT_LIST: list,
    schema.OBJECT: str,  # encoded first
    schema.OBJECT_LIST: str,
}


def event_batches(
    events: Iterable[SmbEvent], diagnostics: Diagnostics, size: int = BATCH
) -> Iterator[pa.RecordBatch]:
    """The events in record batches of up to ``size`` rows, in order."""
    held: list[SmbEvent] = []
    for event in events:
        held.append(event)
        if len(held) >= size:
            yield event_batch(held, diagnostics)
            held = []
    if held:
        yield event_batch(held, diagnostics)


def event_batch(events: list[SmbEvent], diagnostics: Diagnostics) -> pa.RecordBatch:
    """One record batch of these events, with the schema's columns and types."""
    count = len(events)
    arrays = []
    for field, found in zip(schema.FIELDS, columns(events), strict=True):
        if found.count(None) == count:
            arrays.append(pa.nulls(count, ARROW_TYPES[field.kind]))
        else:
            arrays.append(_array(field, found, diagnostics))
    return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)


def sent_batch(events: list[SmbEvent], diagnostics: Diagnostics) -> pa.Buffer:
    """``event_batch`` as a worker process sends it: its data without its schema, which both
    ends know (a pickled batch carries its schema, which costs more to pickle and load than
    the batch of a small input costs to make)."""
    return event_batch(events, diagnostics).serialize()


def received_batch(message: pa.Buffer) -> pa.RecordBatch:
    """A batch ``sent_batch`` sent."""
    return pa.ipc.read_record_batch(message, EVENT_SCHEMA)


def _array(field: schema.Field, values: list[Any], diagnostics: Diagnostics) -> pa.Array:
    if field.name == "session_id":  # a host record's logon id, kept as text, is in logon_id
        values = [v if type(v) is int else None for v in values]
    elif field.kind in _JSON_KINDS:
        values = [None if v is None else _json(v) for v in values]
    kind_type = ARROW_TYPES[field.kind]
    storage = kind_type.storage_type if isinstance(kind_type, pa.ExtensionType) else kind_type
    try:
        array = pa.array(values, type=storage)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, UnicodeError):
        array = pa.array(_fitting(field, values, diagnostics), type=storage)
    if storage is not kind_type:
        return pa.ExtensionArray.from_storage(kind_type, array)
    return array


def _json(value: Any) -> str:
    """An object as JSON text; one with lone surrogates (names from the wire) as escapes."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return json.dumps(value, default=str, separators=(",", ":"))


def _fitting(field: schema.Field, values: list[Any], diagnostics: Diagnostics) -> list[Any]:
    """The values with those that do not fit the column left out, and text that is not valid
    Unicode escaped (each a warning)."""
    kept = []
    for value in values:
        if value is not None and field.kind in (schema.TEXT, schema.TEXT_LIST):
            value = _unicode(field, value, diagnostics)
        if value is not None and not _fits(field.kind, value):
            diagnostics.warn(
                "value_not_stored", f"{field.name}: {str(value)[:40]!r} is not {field.kind}"
            )
            value = None
        kept.append(value)
    return kept


def _unicode(field: schema.Field, value: Any, diagnostics: Diagnostics) -> Any:
    """Text with lone surrogates written as ``\\udc80`` (Arrow's strings are UTF-8)."""
    items = value if isinstance(value, list) else [value]
    if all(not isinstance(item, str) or item.isascii() or _encodes(item) for item in items):
        return value
    diagnostics.warn("value_escaped", f"{field.name}: text that is not valid Unicode escaped")
    escaped = [
        item.encode("utf-8", "backslashreplace").decode() if isinstance(item, str) else item
        for item in items
    ]
    return escaped if isinstance(value, list) else escaped[0]


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _fits(kind: str, value: Any) -> bool:
    if kind in _INTEGER_RANGES or kind == schema.TIME:
        low, high = _INTEGER_RANGES.get(kind, _INTEGER_RANGES[schema.INTEGER])
        return type(value) is int and low <= value <= high
    if kind == schema.TEXT_LIST:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, _PYTHON_TYPES[kind])


def conform(
    table: pa.Table | pa.RecordBatch, diagnostics: Diagnostics, name: str, whole: bool = True
) -> pa.Table:
    """A table of events read from elsewhere (a Parquet file, a query) with the event schema:
    columns it lacks are null, others are ignored, and a column that will not convert to its
    type is dropped with a warning naming ``name``.

    Not ``whole``: the columns it lacks (but time, source and action) stay out, for
    ``events_of``, which reads an absent column as null. A case's timeline holds only the
    columns with a value (``case.query.timeline``): making the 40 others null arrays, batch
    after batch, took 0.7 s of the 6.4 s of detect over bench_story's case."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    present = set(table.column_names)
    arrays, names = [], []
    for field in EVENT_SCHEMA:
        column = table.column(field.name) if field.name in present else None
        if column is not None:
            try:
                column = _cast(column, field.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
                diagnostics.warn("column_not_read", f"{name}: {field.name}: {error}")
                column = None
        if column is None:
            if not whole and field.name not in _REQUIRED:
                continue
            column = pa.nulls(table.num_rows, field.type)
        arrays.append(column)
        names.append(field.name)
    if whole:
        return pa.Table.from_arrays(arrays, schema=_READ_SCHEMA)
    return pa.Table.from_arrays(arrays, names=names)


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    if pa.types.is_timestamp(target):  # nanoseconds (pandas) are cut to microseconds
        return column.cast(target, safe=False)
    if isinstance(target, pa.ExtensionType):
        if column.type == target:
            return column
        storage = column.cast(target.storage_type)
        chunks = [pa.ExtensionArray.from_storage(target, chunk) for chunk in storage.chunks]
        return pa.chunked_array(chunks, type=target)
    return column.cast(target)


def events_of(table: pa.Table, diagnostics: Diagnostics, name: str) -> list[SmbEvent]:
    """The events of a table with the event schema (``conform``): a row without a time, source
    or action is skipped with a warning."""
    complete = _complete(table)
    missing = table.num_rows - pc.sum(complete).as_py() if table.num_rows else 0
    if missing:
        diagnostics.warn(
            "event_incomplete", f"{name}: {missing} rows without a time, source or action"
        )
        table = table.filter(complete)
    values: dict[str, list[Any]] = {}
    present = set(table.column_names)
    for field in schema.FIELDS:
        if field.name not in present:  # ``conform`` not ``whole``: null
            continue
        column = table.column(field.name)
        if column.null_count == len(column):
            continue
        if field.kind == schema.TIME:
            column = column.cast(pa.int64())
        elif field.kind in _JSON_KINDS:
            column = column.cast(pa.string()) if column.type != pa.string() else column
        found = _text(column) if field.kind == schema.TEXT else column.to_pylist()
        if field.kind in _JSON_KINDS:
            found = [None if v is None else _object(field, v, diagnostics, name) for v in found]
        values[field.name] = found
    if "logon_id" in values:  # a host record's session_id: its logon id, for older readers
        sessions = values.setdefault("session_id", [None] * table.num_rows)
        sources = values["source"]
        for row, logon_id in enumerate(values["logon_id"]):
            if sessions[row] is None and logon_id is not None and sources[row] == "host":
                sessions[row] = logon_id
    return from_columns(values, table.num_rows)


def _complete(table: pa.Table) -> pa.ChunkedArray:
    """Which rows make an event: those with a time, a source and an action."""
    return pc.and_(
        pc.and_(pc.is_valid(table.column("time")), pc.is_valid(table.column("source"))),
        pc.is_valid(table.column("action")),
    )


def _text(column: pa.ChunkedArray) -> list[str | None]:
    """A text column's values, each distinct one made once and shared by the rows that hold
    it, where most rows hold a value and the values repeat (``SHARED_REPEATS`` times or more).

    A case's text repeats a few values over and over (its source, action, server, user, domain
    and file: 2 to 500 values over the 625,758 events of bench_story's case), and whatever holds
    events (the detector, for its correlations) held a copy of each: those events took 1.93 GB
    made a string a row, 1.43 GB made one a value, in the same time. A column of mostly
    distinct values, or mostly empty, is read as it is (encoding it first costs more)."""
    present = len(column) - column.null_count
    if present * 2 < len(column):
        return column.to_pylist()
    encoded = pc.dictionary_encode(column.combine_chunks())
    if len(encoded.dictionary) * SHARED_REPEATS > present:
        return column.to_pylist()
    values: list[str | None] = encoded.dictionary.to_pylist()
    values.append(None)
    indices = pc.fill_null(encoded.indices, len(values) - 1).to_pylist()
    return list(map(values.__getitem__, indices))


def _object(field: schema.Field, text: str, diagnostics: Diagnostics, name: str) -> Any:
    """The JSON of an object (or object list) column, or None for what is not one."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        diagnostics.warn("value_not_read", f"{name}: an object column holds {text[:40]!r}")
        return None
    return value if schema.is_json_of(field.kind, value) else None


def conformed(
    batches: Iterable[pa.RecordBatch], diagnostics: Diagnostics, name: str
) -> Iterator[pa.RecordBatch]:
    """Record batches of any event-like schema with the event schema (see ``conform``)."""
    for batch in batches:
        yield from conform(batch, diagnostics, name).cast(EVENT_SCHEMA).to_batches()


def batch_events(
    batches: Iterable[pa.RecordBatch], diagnostics: Diagnostics, name: str
) -> Iterator[SmbEvent]:
    """The events of record batches in any event-like schema (see ``conform``)."""
    for batch in batches:
        yield from events_of(conform(batch, diagnostics, name, whole=False), diagnostics, name)


def events_at(
    batches: Iterable[pa.RecordBatch], places: Sequence[int], diagnostics: Diagnostics, name: str
) -> Iterator[SmbEvent]:
    """The events ``batch_events`` makes of the same batches at ``places`` (their positions in
    its stream, ascending), made of those rows alone; the batches are read no further than the
    last place."""
    if not places:
        return
    wanted = pa.array(places, pa.int64())
    start = 0  # the stream's position of the batch's first event
    for batch in batches:
        table = conform(batch, diagnostics, name, whole=False)
        table = table.filter(_complete(table))
        end = start + table.num_rows
        first = bisect_left(places, start)
        stop = bisect_left(places, end, first)
        if first < stop:
            rows = pc.subtract(wanted[first:stop], pa.scalar(start, pa.int64()))
            yield from events_of(table.take(rows), diagnostics, name)
        if end > places[-1]:
            return
        start = end
