"""Reading a case: filters as SQL over the ``events`` view, the timeline as a database sort.

A filter names a host by its name, an alias or an address (``--src WORKSTATION5``,
``--dst 172.18.39.6``), a user in any of the forms logs use (``THESHIRE\\pgustavo``,
``pgustavo@theshire.local``, ``pgustavo``), and times as ISO 8601 (no zone: UTC) or as a length
back from the last event of the case (``--since 2h``: its last two hours). Events come out in
time order, sorted by DuckDB (what does not fit in memory is sorted on disk), as Arrow batches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import duckdb
import pyarrow as pa

from smbwatch.case import CaseError
from smbwatch.case.clocks import ClockError, parse_duration
from smbwatch.case.entities import split_user
from smbwatch.case.filters import Filters
from smbwatch.case.store import MEMORY_LIMIT_MB, THREADS, VIEW_COMPUTED, Case, short_error
from smbwatch.events import FIELD_NAMES, format_time, parse_time

# Rows a batch of a query holds. A timeline's batch becomes events (Python objects) whole: at
# 2,048 rows rather than 8,192 reading the 593-file corpus's timeline as events peaked 23 MB
# lower, bench_story's case's (625,758 events) 35 MB lower, in the same time.
BATCH_ROWS: Final = 2048
TIMELINE_ORDER: Final = "time, source, source_file, source_ref, action"
WINDOW_ROWS: Final = 16_384  # a timeline of fewer rows is sorted whole (``_layout``)
WINDOWS: Final = 4
SLOT_BYTES: Final = 16  # of a column in a row of DuckDB's sort, null or not (a string's)


@dataclass
class Where:
    """A WHERE clause and its parameters."""

    clauses: list[str] = field(default_factory=list)
    parameters: list[Any] = field(default_factory=list)

    def add(self, clause: str, *parameters: Any) -> None:
        self.clauses.append(clause)
        self.parameters.extend(parameters)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(f"({c})" for c in self.clauses) if self.clauses else ""


def where(case: Case, filters: Filters) -> Where:
    """The filters as SQL over the ``events`` view of this case."""
    found = Where()
    for column, name in (("src_host", filters.src), ("dst_host", filters.dst)):
        if name is not None:
            found.add(f"upper({column}) = upper(?)", host_of(case, name))
    if filters.user is not None:
        _user_clause(case, filters.user, found)
    for operator, text in ((">=", filters.since), ("<=", filters.until)):
        if text is not None:
            found.add(f"time {operator} ?::TIMESTAMPTZ", format_time(moment(case, text)))
    return found


def host_of(case: Case, name: str) -> str:
    """The one name of the host that ``name`` (a name, an alias or an address) names."""
    rows = case.rows("SELECT host FROM host_keys WHERE key = ? OR key = upper(?)", [name, name])
    return rows[0][0] if rows else name


def _user_clause(case: Case, text: str, found: Where) -> None:
    domain, user = split_user(None, text)
    if domain is None:  # any domain
        found.add(
            "upper(principal) = upper(?) OR ends_with(upper(principal), '\\' || upper(?))",
            user,
            user,
        )
        return
    rows = case.rows("SELECT principal FROM user_keys WHERE key = ?", [f"{domain}\\{user.upper()}"])
    found.add("upper(principal) = upper(?)", rows[0][0] if rows else f"{domain}\\{user}")


def moment(case: Case, text: str) -> int:
    """Microseconds of an ISO 8601 time, or of a length back from the case's last event."""
    try:
        return parse_time(text)
    except ValueError:
        pass
    try:
        back = parse_duration(text)
    except ClockError:
        raise CaseError(
            f"{text!r} is not a time: give ISO 8601 (2020-09-20T02:50) or a length back "
            "from the last event (2h, 30m, 1d)"
        ) from None
    last = case.rows("SELECT epoch_us(max(time)) FROM events")[0][0]
    return (last or 0) - abs(back)


def timeline(case: Case, filters: Filters) -> Iterator[pa.RecordBatch]:
    """The case's events that pass the filters, in time order, as record batches of the
    columns that hold a value somewhere in the case (the others are null: ``arrow.conform``
    reads them so).

    Sorted by one thread: DuckDB's sort of rows this wide by two threads needs more than the
    case's memory (a case of 600,000 events with their links ran out at 256 MB, and took longer
    at 320 MB, spilling, than one thread at 256 MB). DuckDB's sort holds a slot of every column
    it is given for every row, null or not; so only the columns that hold a value are sorted,
    and a large timeline is sorted a window of time after another (``_layout``)."""
    clause = where(case, filters)
    columns, edges = _layout(case)
    case.db.execute("SET threads = 1")
    try:
        found = _windowed(case, columns, clause, edges)
    except BaseException:
        case.db.execute(f"SET threads = {THREADS}")
        raise
    return _then_threads(case, found)


def _layout(case: Case) -> tuple[str, list[int | None]]:
    """The columns of ``events`` that may hold a value (a select list): those the view
    computes (``VIEW_COMPUTED``) and those with a value in some row; and the times (µs) that
    cut the timeline into ``WINDOWS`` windows of about as many events each, the first and last
    open (None). One scan of the rows' null masks and times.

    Each window's events are all earlier than the next's, so the windows sorted one after
    another are the timeline's order, and each sort holds a part of the rows. The cuts are
    quantiles of the times as recorded; a clock corrected in the view moves events between
    windows, never out of order. A window costs the view's joins again (the corrected time
    cannot be filtered before them). So the timeline is one window when it is small (under
    ``WINDOW_ROWS`` events), or when its sort would not be held in memory anyway (DuckDB spills
    a sort beyond its memory limit to disk; a column takes a slot of ``SLOT_BYTES`` in each
    row). On the 593-file corpus (71,890 events, 43 columns held) four windows and the columns
    held took the peak of ``detect`` from 316-317 to 295-300 MB, and the timeline's read from
    0.20 to 0.23-0.26 s; on bench_story's case (625,758 events, 59 columns held) windows took
    the read from 2.6 to 3.5 s for 24 MB less, so it is one window."""
    fractions = ", ".join(str(i / WINDOWS) for i in range(1, WINDOWS))
    counts = ", ".join(f'count("{n}")' for n in FIELD_NAMES)
    sql = f"SELECT count(*), quantile_disc(epoch_us(time), [{fractions}]), {counts}"
    rows, cuts, *held = case.rows(f"{sql} FROM event_rows WHERE first_copy")[0]
    names = [n for n, count in zip(FIELD_NAMES, held, strict=True) if count or n in VIEW_COMPUTED]
    held_in_memory = rows * len(names) * SLOT_BYTES < MEMORY_LIMIT_MB << 20
    cut = rows >= WINDOW_ROWS and held_in_memory
    edges = [None, *sorted(set(cuts)), None] if cut else [None, None]
    return ", ".join(f'"{n}"' for n in names), edges


def _windowed(
    case: Case, columns: str, clause: Where, edges: list[int | None]
) -> Iterator[pa.RecordBatch]:
    """The batches of each window's sort in turn: the first query runs now (its error is the
    caller's at once), each next one once the one before is read."""
    failed = f"{case.directory}: cannot read the case"
    queries = []
    for low, high in itertools.pairwise(edges):
        window = Where(list(clause.clauses), list(clause.parameters))
        if low is not None:  # the last also holds rows without a time: one sort puts them last
            last = " OR time IS NULL" if high is None else ""
            window.add(f"epoch_us(time) >= ?{last}", low)
        if high is not None:
            window.add("epoch_us(time) < ?", high)
        sql = f"SELECT {columns} FROM events{window.sql()} ORDER BY {TIMELINE_ORDER}"
        queries.append((sql, window.parameters))
    return _in_turn(case, batches(case, *queries[0], failed), queries[1:], failed)


def _in_turn(
    case: Case, first: Iterator[pa.RecordBatch], rest: list[tuple[str, list[Any]]], failed: str
) -> Iterator[pa.RecordBatch]:
    """The batches of ``first``, then of each query of ``rest``. A generator, so that closed
    early (``arrow.events_at`` reads no further than it needs) it closes the query it is in:
    the connection is free again for the next."""
    yield from first
    for sql, parameters in rest:
        yield from batches(case, sql, parameters, failed)


def _then_threads(case: Case, found: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches of a query started on one thread; the case's threads again once read."""
    try:
        yield from found
    finally:
        case.db.execute(f"SET threads = {THREADS}")


def batches(
    case: Case, sql: str, parameters: list[Any] | None = None, failed: str = "query failed"
) -> Iterator[pa.RecordBatch]:
    """A query's result as record batches (one user error, ``failed: why``, for SQL that
    fails or a case damaged where it is read)."""
    try:
        reader = case.db.sql(sql, params=parameters or None).to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as error:
        raise CaseError(f"{failed}: {short_error(error)}") from None
    return _read(reader, failed)


def _read(reader: pa.RecordBatchReader, failed: str) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    except (duckdb.Error, pa.ArrowException) as error:
        raise CaseError(f"{failed}: {short_error(error)}") from None
