"""The case's store: one DuckDB database in the case directory, its tables, views and lock.

A case directory holds ``case.duckdb`` (the database), ``lock`` (one smbwatch writes at a time;
readers share it) and ``spill/`` (where DuckDB sorts what does not fit in memory). The database:

  event_rows   every event of every input, typed by the event schema, with its input, its
               message key (the same SMB message or host record from another source has the
               same) and whether it is the first copy
  sightings    (view) every row, its names resolved (``src_host``, ``dst_host``,
               ``principal``) and its clock corrected
  events       (view) the first copy of each message (with its ``seen_by``) of sightings
  inputs       each input: path, content hash, format, size, time range, counts, warnings
  hosts, users one name per machine and per user, their aliases and the evidence
  host_keys, user_keys   every alias and address → the one name (what the view joins)
  clock_rules  the ``--clock-offset`` corrections; clock_hosts: those naming a host
  clocks       offsets estimated between sources that saw the same connection
  correlation  per event: its links to the other side's records, the fields filled from them,
               whether the server's log misses it (case/correlate.py)
  alerts       the alerts of the last ``smbwatch detect --case`` over the whole case
  meta         what this database is (``format``, ``version``)

Every failure a user can cause (a directory that is no case, a damaged database, no write
permission, SQL that fails) is a ``CaseError`` with one line to say, and leaves the case as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from smbwatch import schema
from smbwatch.case import CaseError

CASE_FILE: Final = "case.duckdb"
NEW_FILE: Final = ".case.duckdb.new"  # made whole, then renamed: a case exists entirely or not
LOCK_FILE: Final = "lock"
SPILL_DIR: Final = "spill"
FORMAT: Final = "smbwatch case"
VERSION: Final = "2"  # 2: correlation
MEMORY_LIMIT_MB: Final = 256  # DuckDB's own; sorts and joins beyond it spill to disk
THREADS: Final = 2
TEMPORARY_ROW_GROUP: Final = 16_384  # rows (DuckDB's own size: 122,880)

DUCKDB_TYPES: Final = {
    schema.TIME: "TIMESTAMPTZ",
    schema.TEXT: "VARCHAR",
    schema.INTEGER: "BIGINT",
    schema.UNSIGNED: "UBIGINT",
    schema.BOOLEAN: "BOOLEAN",
    schema.TEXT_LIST: "VARCHAR[]",
    schema.OBJECT: "JSON",
    schema.OBJECT_LIST: "JSON",
}
EVENT_COLUMNS: Final = ",\n    ".join(
    f'"{f.name}" {DUCKDB_TYPES[f.kind]}' for f in schema.FIELDS
)  # quoted: "offset" and "user" are SQL words
CASE_COLUMNS: Final = ("input_id", "message_key", "first_copy")
# The values correlation fills (case/correlate.py), typed as the events' own.
FILLED: Final = (
    "user",
    "domain",
    "logon_id",
    "service_name",
    "image_path",
    "start_type",
    "task_name",
    "task_command",
    "task_arguments",
    "dst_ip",
    "bytes",
    "magic",
    "sha256",
)
CORRELATION_COLUMNS: Final = ", ".join(
    f'"{name}" {DUCKDB_TYPES[schema.BY_NAME[name].kind]}' for name in FILLED
)

TABLES: Final = f"""
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE inputs (
    input_id INTEGER PRIMARY KEY,
    path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL UNIQUE,
    format VARCHAR,
    size UBIGINT,
    first_time TIMESTAMPTZ,
    last_time TIMESTAMPTZ,
    events UBIGINT,
    duplicates UBIGINT,
    warnings UBIGINT,
    warning_kinds JSON,
    damaged BOOLEAN,
    ingested_at TIMESTAMPTZ,
    clock_offset_us BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE event_rows (
    {EVENT_COLUMNS},
    input_id INTEGER NOT NULL,
    message_key UBIGINT NOT NULL,
    first_copy BOOLEAN NOT NULL
);
CREATE TABLE hosts (host VARCHAR PRIMARY KEY, addresses VARCHAR[], aliases VARCHAR[],
    evidence JSON);
CREATE TABLE host_keys (key VARCHAR PRIMARY KEY, host VARCHAR NOT NULL);
CREATE TABLE users (principal VARCHAR PRIMARY KEY, aliases VARCHAR[], evidence JSON);
CREATE TABLE user_keys (key VARCHAR PRIMARY KEY, principal VARCHAR NOT NULL);
CREATE TABLE clock_rules (source VARCHAR PRIMARY KEY, offset_us BIGINT NOT NULL);
CREATE TABLE clock_hosts (host VARCHAR PRIMARY KEY, offset_us BIGINT NOT NULL);
CREATE TABLE clocks (source_a VARCHAR, source_b VARCHAR, offset_us BIGINT, pairs UBIGINT,
    method VARCHAR);
CREATE TABLE correlation (message_key UBIGINT NOT NULL, links JSON, filled_from JSON,
    {CORRELATION_COLUMNS}, missing_from_log BOOLEAN);
-- Each alert whole is most of the table's bytes: zstd writes them at the commit several times
-- faster than the default string compressions (2,447 alerts of 7 KB: 0.04 s against 0.9 s).
CREATE TABLE alerts (rule_id VARCHAR, title VARCHAR, severity VARCHAR, risk_score INTEGER,
    message VARCHAR, attack VARCHAR[], first_time TIMESTAMPTZ, last_time TIMESTAMPTZ,
    count UBIGINT, alert JSON USING COMPRESSION zstd);
"""

# The host records' logging computer is their server (dst); their client is named by address
# or, failing that, by the workstation name the log gives.
_SRC_HOST: Final = """CASE WHEN e.source = 'host'
        THEN coalesce(a_src.host, n_ws.host, e.src_ip, upper(e.workstation))
        ELSE coalesce(a_src.host, e.src_ip) END"""
_DST_HOST: Final = """CASE WHEN e.source = 'host' THEN coalesce(n_srv.host, e.server)
        ELSE coalesce(a_dst.host, n_srv.host, e.dst_ip) END"""
# Events with what correlation filled in (the raw values first: nothing a source said is
# replaced), then their names resolved and their clocks corrected.
_CORRELATED: Final = ("links", "filled_from", "missing_from_log")
_FILLED_ROWS: Final = ",\n        ".join(
    [f'coalesce(r."{n}", c."{n}") AS "{n}"' for n in FILLED]
    + [f"coalesce(c.{n}, r.{n}) AS {n}" for n in _CORRELATED]
)
# The columns of ``events`` the view computes: they may hold a value where the event's row
# holds none (the timeline sorts only the columns that hold one somewhere: ``query.timeline``).
VIEW_COMPUTED: Final = frozenset(
    ("time", "src_host", "dst_host", "principal", *FILLED, *_CORRELATED)
)
VIEWS: Final = f"""
CREATE VIEW sightings AS
SELECT e.* REPLACE (
    e.time + to_microseconds(
        CASE WHEN i.clock_offset_us = 0 AND e.source = 'host'
        THEN coalesce(ch.offset_us, 0) ELSE i.clock_offset_us END) AS time,
    {_SRC_HOST} AS src_host,
    {_DST_HOST} AS dst_host,
    CASE WHEN e."user" IS NOT NULL THEN coalesce(u.principal,
        CASE WHEN e.domain IS NULL THEN e."user" ELSE e.domain || '\\' || e."user" END) END
        AS principal
)
FROM (
    SELECT r.* REPLACE (
        {_FILLED_ROWS})
    FROM event_rows r
    LEFT JOIN correlation c ON c.message_key = r.message_key) e
JOIN inputs i USING (input_id)
LEFT JOIN host_keys a_src ON a_src.key = e.src_ip
LEFT JOIN host_keys a_dst ON a_dst.key = e.dst_ip
LEFT JOIN host_keys n_srv ON n_srv.key = upper(e.server)
LEFT JOIN host_keys n_ws ON n_ws.key = upper(e.workstation)
LEFT JOIN user_keys u ON u.key = upper(coalesce(e.domain, '')) || '\\' || upper(e."user")
LEFT JOIN clock_hosts ch ON ch.host = coalesce(n_srv.host, e.server);
CREATE VIEW events AS
SELECT * EXCLUDE ({", ".join(CASE_COLUMNS)}) FROM sightings WHERE first_copy;
"""


def short_error(error: BaseException) -> str:
    """The first line of a DuckDB error, without its "See also" links."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(" See also ")[0]


class Case:
    """An open case: its DuckDB connection, held under the case's lock until ``close``."""

    def __init__(
        self, directory: Path, connection: duckdb.DuckDBPyConnection, lock: int | None, spill: str
    ) -> None:
        self.directory = directory
        self.db = connection
        self._lock = lock
        self._spill = spill

    @classmethod
    def open(cls, directory: str | Path, write: bool = False, temporary: bool = False) -> Case:
        """Open a case to read it, or to write it (created when the directory is new or empty).
        ``temporary``: a case made for one run and removed after it (``_connect``).

        A writer waits for another writer or readers; readers wait for a writer only.
        """
        path = Path(directory)
        database = path / CASE_FILE
        if write:
            _prepare(path)
        elif not path.is_dir():
            raise CaseError(f"{directory}: no such case (make one with smbwatch ingest --case)")
        elif not database.is_file():
            raise CaseError(f"{directory}: not a smbwatch case (it has no {CASE_FILE})")
        if database.exists() and not (path / LOCK_FILE).exists():
            _check(database, whole=write)  # no smbwatch made it: leave no lock file beside it
        lock = _lock(path, write)
        try:
            if write and not database.exists():
                _create(path)  # whole and of this version: made here, renamed into place
            else:
                _check(database, whole=write)
            spill = str(path / SPILL_DIR) if write else tempfile.mkdtemp(prefix="smbwatch-")
            return cls(path, _connect(database, write, spill, temporary), lock, spill)
        except BaseException:
            if lock is not None:
                os.close(lock)
            raise

    def abandon(self) -> None:
        """After a failure: close without the checkpoint DuckDB makes on closing, so that a
        case found damaged while writing is left exactly as it was."""
        with contextlib.suppress(duckdb.Error):
            self.db.execute("SET checkpoint_on_shutdown = false")
        self.close()

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.db.close()
        if not self._spill.startswith(str(self.directory)):
            shutil.rmtree(self._spill, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Case:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_exc: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()

    @contextlib.contextmanager
    def transaction(self, failed: str) -> Iterator[None]:
        """One transaction: committed whole, or rolled back (a DuckDB error then becomes the
        user's one line, ``failed: why``)."""
        self.db.execute("BEGIN")
        try:
            yield
            self.db.execute("COMMIT")
        except duckdb.Error as error:
            self.db.execute("ROLLBACK")
            raise CaseError(f"{failed}: {short_error(error)}") from None
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def unsettled(self) -> bool:
        """Whether inputs were added after names and clocks were last worked out (an ingest
        killed between its last input and the end)."""
        return bool(self.rows("SELECT 1 FROM meta WHERE key = 'unsettled'"))

    def insert(self, table: str, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """Rows into a table in one statement (DuckDB reads them as an Arrow table; one
        statement a row takes minutes for the 100,000 names of a big case)."""
        if not rows:
            return
        columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        self.db.register("inserted", pa.table(columns))
        try:
            self.db.execute(f"INSERT INTO {table} BY NAME SELECT * FROM inserted")
        finally:
            self.db.unregister("inserted")

    def rows(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """All rows of a query (for small results: tables of names, inputs, clocks)."""
        return self.db.execute(sql, parameters or []).fetchall()


def _create(path: Path) -> None:
    """A new, empty case database, made under another name and renamed into place."""
    new = path / NEW_FILE
    for leftover in (new, path / (NEW_FILE + ".wal")):
        leftover.unlink(missing_ok=True)  # a creation that was killed
    try:
        connection = duckdb.connect(str(new))
        try:
            connection.execute(TABLES)
            connection.execute(VIEWS)
            connection.executemany(
                "INSERT INTO meta VALUES (?, ?)", [("format", FORMAT), ("version", VERSION)]
            )
            connection.execute("CHECKPOINT")
        finally:
            connection.close()
        os.replace(new, path / CASE_FILE)
    except (duckdb.Error, OSError) as error:
        raise CaseError(f"{path}: cannot create the case: {short_error(error)}") from None


def _prepare(path: Path) -> None:
    """The directory of a case to write: made if missing; refused if it holds something else."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CaseError(f"{path}: cannot create the case: {error.strerror}") from None
    if not path.is_dir():
        raise CaseError(f"{path}: not a directory")
    ours = {LOCK_FILE, SPILL_DIR, NEW_FILE, NEW_FILE + ".wal"}
    if not (path / CASE_FILE).exists() and any(p.name not in ours for p in path.iterdir()):
        raise CaseError(
            f"{path}: not a smbwatch case (it has no {CASE_FILE}) and not empty: "
            "name a new or an empty directory"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise CaseError(f"{path}: cannot write the case: permission denied")


def _lock(path: Path, write: bool) -> int | None:
    """Hold the case's lock file: exclusively to write, shared to read (None: a read-only case
    directory without one, which no writer can be using either)."""
    lock_path = path / LOCK_FILE
    try:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT if write else os.O_RDONLY, 0o644)
    except FileNotFoundError:
        return None
    except OSError as error:
        if not write:
            return None
        raise CaseError(f"{path}: cannot write the case: {error.strerror}") from None
    mode = fcntl.LOCK_EX if write else fcntl.LOCK_SH
    try:
        fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"smbwatch: waiting: another smbwatch is writing {path}", file=sys.stderr)
        fcntl.flock(descriptor, mode)
    return descriptor


def _check(database: Path, whole: bool) -> None:
    """Refuse (reading only) a database that is damaged or is not a case. Before writing,
    every table is read whole (DuckDB checks each block's checksum as it reads it): nothing
    is ever written into a database that cannot be read, which would not be as it was after."""
    try:
        probe = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as error:
        raise CaseError(f"{database}: not a readable smbwatch case: {short_error(error)}") from None
    try:
        try:
            found = dict(probe.execute("SELECT key, value FROM meta").fetchall())
        except duckdb.CatalogException:
            found = {}
        if found.get("format") != FORMAT:
            raise CaseError(f"{database}: not a smbwatch case (a DuckDB database of another kind)")
        if found.get("version") != VERSION:
            version = found.get("version")
            raise CaseError(f"{database}: a case of another smbwatch version ({version})")
        if whole:
            tables = probe.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            for (table,) in tables:
                probe.execute(f'SELECT max(hash(COLUMNS(*))) FROM "{table}"').fetchall()
    except duckdb.Error as error:
        raise CaseError(f"{database}: a damaged case: {short_error(error)}") from None
    finally:
        probe.close()


def _connect(
    database: Path, write: bool, spill: str, temporary: bool = False
) -> duckdb.DuckDBPyConnection:
    """The case's connection. A kept case written to holds each transaction's rows in memory
    until its commit (an input is written at its commit only: a failed one leaves no trace).
    A temporary case, which no one reads after a failure, has its rows written to its file as
    they are staged, a row group of ``TEMPORARY_ROW_GROUP`` rows at a time: at its commit DuckDB
    holds a transaction's rows twice. The 593-file detect's commit peaked at 289 MB so, and at
    208 MB this way (its reading at 239 and 210 MB), in the same time."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": f"{MEMORY_LIMIT_MB}MB",
        "threads": THREADS,
        "temp_directory": spill,
    }
    try:
        if temporary:  # a row group's size is a choice of the database attached
            connection = duckdb.connect(config=config)
            name = str(database).replace("'", "''")
            connection.execute(
                f"ATTACH '{name}' AS temporary_case (ROW_GROUP_SIZE {TEMPORARY_ROW_GROUP})"
            )
            connection.execute("USE temporary_case")
            connection.execute("SET write_buffer_row_group_count = 1")  # each written when full
        else:
            connection = duckdb.connect(str(database), read_only=not write, config=config)
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET preserve_insertion_order = false")
        connection.execute("SET enable_progress_bar = false")
        # An outer join builds its hash table on the side the query puts on its right (the
        # names, hosts and clocks the events look up), not on the events: with their count
        # underestimated (8,343 of 461,468 network logons) the optimizer swapped the sides
        # and the report of a 625,758-event case ran out of DuckDB's memory. (A DuckDB that
        # names its optimizers otherwise plans as it will: the case still opens.)
        with contextlib.suppress(duckdb.Error):
            connection.execute("SET disabled_optimizers = 'build_side_probe_side'")
        if write and not temporary:  # an input is written at its commit only
            connection.execute("SET enable_optimistic_write = false")
    except duckdb.Error as error:
        raise CaseError(f"{database}: cannot open the case: {short_error(error)}") from None
    return connection
