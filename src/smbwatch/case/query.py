"""Reading a case: filters as SQL over the ``events`` view, the timeline as a database sort.

A filter names a host by its name, an alias or an address (``--src WORKSTATION5``,
``--dst 172.18.39.6``), a user in any of the forms logs use (``THESHIRE\\pgustavo``,
``pgustavo@theshire.local``, ``pgustavo``), and times as ISO 8601 (no zone: UTC) or as a length
back from the last event of the case (``--since 2h``: its last two hours). Events come out in
time order, sorted by DuckDB (what does not fit in memory is sorted on disk), as Arrow batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import duckdb
import pyarrow as pa

from smbwatch.case import CaseError
from smbwatch.case.clocks import ClockError, parse_duration
from smbwatch.case.entities import split_user
from smbwatch.case.filters import Filters
from smbwatch.case.store import THREADS, Case, short_error
from smbwatch.events import format_time, parse_time

BATCH_ROWS: Final = 8192
TIMELINE_ORDER: Final = "time, source, source_file, source_ref, action"


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
    """The case's events that pass the filters, in time order, as record batches.

    Sorted by one thread: DuckDB's sort of rows this wide by two threads needs more than the
    case's memory (a case of 600,000 events with their links ran out at 256 MB, and took longer
    at 320 MB, spilling, than one thread at 256 MB)."""
    clause = where(case, filters)
    sql = f"SELECT * FROM events{clause.sql()} ORDER BY {TIMELINE_ORDER}"
    case.db.execute("SET threads = 1")
    try:
        found = batches(case, sql, clause.parameters, f"{case.directory}: cannot read the case")
    except BaseException:
        case.db.execute(f"SET threads = {THREADS}")
        raise
    return _then_threads(case, found)


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
