"""Adding inputs to a case: each input once, whole or not at all.

An input is known by the sha256 of its content: one already in the case adds nothing, whatever
its name. Each new input is decoded in batches (memory stays bounded whatever its size) into a
transaction of its own, which commits only once every event is in with its message key; killed
at any moment (SIGKILL included), the case is as it was before that input. A message another
input already holds (a second sensor on the same connection, a second export of the same log) is
stored as a further sighting: the first copy's ``seen_by`` names both sources. After the inputs,
names, clocks and corrections are worked out again over the whole case (one transaction), and
alerts stored by an earlier ``detect`` are dropped, being out of date.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Queue
from typing import Final

import duckdb
import orjson
import pyarrow as pa

from smbwatch.arrow import event_batches
from smbwatch.case import clocks, correlate, entities
from smbwatch.case.store import EVENT_COLUMNS, Case
from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics
from smbwatch.options import Options
from smbwatch.pipeline import (
    DEFAULT_OPTIONS,
    InputError,
    InputRun,
    expand_inputs,
    input_runs,
    report_input_error,
)
from smbwatch.pipeline import sniff_format as input_format_of

READ_CHUNK: Final = 4 << 20  # hashed at a time (the GIL is let go meanwhile)
STAGED_AHEAD: Final = 2  # record batches between the decoder and the database

# What makes two rows the same SMB message (connection, session, message, command, file,
# direction of a close, RPC operation, and its rank among rows alike in that input) or the same
# host record (logging computer, event id, record id): the same from every source that saw it.
# Worked out over these few columns only (the rows are wide), then joined back by row.
_MESSAGE_KEY: Final = """
CREATE TEMP TABLE keys AS
SELECT staged_row, md5_number_lower(identity || '#' || row_number() OVER (
    PARTITION BY identity ORDER BY time, source_ref)) AS message_key
FROM (
    SELECT rowid AS staged_row, time, source_ref, CASE WHEN source = 'host'
        THEN to_json(struct_pack(server := upper(server), code := event_code, ref := source_ref,
            action := action, at := CASE WHEN source_ref IS NULL THEN epoch_us(time) END))
        ELSE to_json(struct_pack(conn := conn_id, src := src_ip, sport := src_port,
            dst := dst_ip, dport := dst_port, action := action, command := command,
            session := session_id, message := message_id, file := file_id,
            direction := direction, opnum := rpc_opnum))
        END AS identity
    FROM staged)
"""
_KEYED: Final = """
CREATE TEMP VIEW keyed AS
SELECT s.*, k.message_key FROM staged s JOIN keys k ON k.staged_row = s.rowid
"""
# The messages of this input the case holds already: the case's keys are scanned against
# this input's (the small side), not gathered.
_AGAIN: Final = """
CREATE TEMP TABLE again AS
SELECT message_key FROM event_rows
WHERE first_copy AND message_key IN (SELECT message_key FROM keys)
"""
_SEEN_AGAIN: Final = """
UPDATE event_rows SET seen_by = list_append(event_rows.seen_by, k.source_file)
FROM (SELECT * FROM keyed WHERE message_key IN (SELECT message_key FROM again)) k
WHERE event_rows.message_key = k.message_key AND event_rows.first_copy
    AND k.source_file IS NOT NULL AND NOT list_contains(event_rows.seen_by, k.source_file)
"""
_ADD_ROWS: Final = """
INSERT INTO event_rows BY NAME
SELECT k.* REPLACE (
        CASE WHEN o.message_key IS NULL THEN list_value(k.source_file) END AS seen_by),
    ? AS input_id, o.message_key IS NULL AS first_copy
FROM keyed k
LEFT JOIN again o USING (message_key)
"""
# Names and clocks are worked out after the inputs: until then (an ingest killed in between),
# readers are told that they are not up to date.
_UNSETTLED: Final = "INSERT OR REPLACE INTO meta VALUES ('unsettled', 'yes')"
_ADD_INPUT: Final = """
INSERT INTO inputs BY NAME
SELECT ? AS input_id, ? AS path, ? AS sha256, ? AS format, ? AS size,
    min(time) AS first_time, max(time) AS last_time, count(*) AS events,
    count(*) FILTER (WHERE NOT first_copy) AS duplicates, ? AS warnings,
    ?::JSON AS warning_kinds, ? AS damaged, now() AS ingested_at
FROM event_rows WHERE input_id = ?
"""


@dataclass
class Added:
    """One input added to the case."""

    path: str
    events: int
    duplicates: int


@dataclass
class Ingested:
    """What an ingest did."""

    added: list[Added] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # already in the case (same content)
    warnings: list[str] = field(default_factory=list)  # clocks and corrections


def ingest(
    case: Case,
    paths: Iterable[str],
    diagnostics: Diagnostics,
    errors: list[str],
    input_format: str | None = None,
    jobs: int = 1,
    options: Options = DEFAULT_OPTIONS,
    corrections: list[tuple[str, int]] | None = None,
) -> Ingested:
    """Add every new input under ``paths``; then names, clocks and corrections again.

    An input of a size no input of the case has is new whatever its hash: it is hashed on
    another thread while it is decoded. One of a known size is hashed first, and skipped if
    its content is known."""
    done = Ingested()
    known = {digest: size for digest, size in case.rows("SELECT sha256, size FROM inputs")}
    sizes = set(known.values())
    new: list[tuple[InputFile, bool]] = []
    digests: dict[str, Future[str]] = {}
    with ThreadPoolExecutor(max_workers=1) as hashing:
        for source, explicit in expand_inputs(paths, errors, options.zip_password):
            try:
                size = _size(source)
                if size in sizes and content_hash(source) in known:
                    done.known.append(source.name)
                    continue
            except OSError as error:
                problem = InputError(f"{source.name}: cannot read: {error.strerror or error}")
                report_input_error(problem, source, explicit, diagnostics, errors)
                continue
            sizes.add(size)
            digests[source.name] = hashing.submit(content_hash, source)
            new.append((source, explicit))
        for run in input_runs(new, input_format, jobs, options):
            try:
                digest = digests[run.path]
                added = _add(case, run, digest, input_format, known)
            except OSError as error:  # the input could not be read to hash it
                run.error = InputError(f"{run.path}: cannot read: {error.strerror or error}")
                added = None
            diagnostics.merge(run.diagnostics)
            if run.error is not None:
                report_input_error(run.error, run.source, run.explicit, diagnostics, errors)
            elif added is None:
                done.known.append(run.path)
            else:
                done.added.append(added)
    done.warnings = settle(case, corrections or [])
    return done


def content_hash(source: InputFile) -> str:
    """The sha256 of the input's bytes: what the case knows an input by (read into one buffer
    over and over: the file is not held, nor mapped, which would count as the process's). A
    file on disk is hashed as it is; a zip member as it comes out of the archive."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    on_disk = source.member is None
    with open(source.path, "rb", buffering=0) if on_disk else source.open_raw() as handle:  # noqa: SIM115
        while size := handle.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


class _NotAdded(Exception):
    """The input turned out to be no capture or log, or known after all: nothing is kept."""


def _add(
    case: Case,
    run: InputRun,
    digest: Future[str],
    input_format: str | None,
    known: dict[str, int | None],
) -> Added | None:
    """One input in one transaction; None (and nothing stored) for an input that is no
    capture or log (``run.error`` says why) or whose content the case holds already."""
    db = case.db
    try:
        with case.transaction(f"{case.directory}: {run.path} not added"):
            db.execute(f"CREATE TEMP TABLE staged ({EVENT_COLUMNS})")
            _stage(db, event_batches(run.events, run.diagnostics))
            content = digest.result()
            if run.error is not None or content in known:
                raise _NotAdded
            input_id = case.rows("SELECT coalesce(max(input_id), 0) + 1 FROM inputs")[0][0]
            db.execute(_MESSAGE_KEY)
            db.execute(_KEYED)
            db.execute(_AGAIN)
            if case.rows("SELECT count(*) FROM again")[0][0]:
                db.execute(_SEEN_AGAIN)
            db.execute(_ADD_ROWS, [input_id])
            counts = run.diagnostics.counts
            size = _size(run.source)
            db.execute(
                _ADD_INPUT,
                [
                    input_id,
                    run.path,
                    content,
                    _format(run.source, input_format),
                    size,
                    sum(counts.values()),
                    orjson.dumps(dict(counts)).decode(),
                    bool(run.diagnostics.damaged_inputs),
                    input_id,
                ],
            )
            events, duplicates = case.rows(
                "SELECT events, duplicates FROM inputs WHERE input_id = ?", [input_id]
            )[0]
            for dropped in ("VIEW keyed", "TABLE again", "TABLE keys", "TABLE staged"):
                db.execute(f"DROP {dropped}")
            db.execute(_UNSETTLED)
    except _NotAdded:
        return None
    known[content] = size
    return Added(run.path, events, duplicates)


def _stage(db: duckdb.DuckDBPyConnection, batches: Iterable[pa.RecordBatch]) -> None:
    """Write the batches into ``staged`` on another thread (DuckDB lets go of the GIL while
    it writes), while this one decodes the next; at most ``STAGED_AHEAD`` wait between them."""
    waiting: Queue[pa.RecordBatch | None] = Queue(STAGED_AHEAD)
    failed: list[BaseException] = []

    def write() -> None:
        while (batch := waiting.get()) is not None:
            if failed:
                continue  # the error is raised once the decoder stops
            try:
                db.register("batch", batch)
                db.execute("INSERT INTO staged SELECT * FROM batch")
                db.unregister("batch")
            except BaseException as error:
                failed.append(error)

    writer = threading.Thread(target=write, name="smbwatch-stage")
    writer.start()
    try:
        for batch in batches:
            if failed:
                break
            waiting.put(batch)
    finally:
        waiting.put(None)
        writer.join()
    if failed:
        raise failed[0]


def _format(source: InputFile, forced: str | None) -> str | None:
    try:
        return forced or input_format_of(source)
    except InputError:
        return None


def _size(source: InputFile) -> int | None:
    """The size of a file on disk (None for a zip member: it is always hashed)."""
    return os.stat(source.path).st_size if source.member is None else None


def settle(case: Case, corrections: list[tuple[str, int]]) -> list[str]:
    """Names, corrections and clocks over the whole case again, in one transaction, then the
    wire ↔ host correlation in another (a transaction's writes are held in memory until it
    commits); stored alerts dropped. The case reads as settled once both are in. The warnings
    for the user."""
    with case.transaction(str(case.directory)):
        case.db.execute("DELETE FROM correlation")  # what the names and clocks are read without
        entities.resolve_hosts(case)
        entities.resolve_users(case)
        warnings = clocks.apply_corrections(case, corrections)
        warnings += clocks.warnings(clocks.estimate(case))
        case.db.execute("DELETE FROM alerts")
    with case.transaction(str(case.directory)):
        correlate.correlate(case)
        case.db.execute("DELETE FROM meta WHERE key = 'unsettled'")
    return warnings
