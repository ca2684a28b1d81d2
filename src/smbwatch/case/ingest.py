"""Adding inputs to a case: each input once, whole or not at all.

An input is known by the sha256 of its content: one already in the case adds nothing, whatever
its name. Each new input is decoded in batches (memory stays bounded whatever its size) into a
transaction of its own, which commits only once every event is in with its message key; killed
at any moment (SIGKILL included), the case is as it was before that input. (A temporary case,
which no one keeps, adds many inputs in one transaction: the same rows as one by one.) A message
another input already holds (a second sensor on the same connection, a second export of the same
log) is stored as a further sighting: the first copy's ``seen_by`` names both sources. After the
inputs, names, clocks and corrections are worked out again over the whole case (one
transaction), and alerts stored by an earlier ``detect`` are dropped, being out of date.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Queue
from typing import Final

import duckdb
import orjson
import pyarrow as pa

from smbwatch.arrow import event_batches, received_batch, sent_batch
from smbwatch.case import clocks, correlate, entities
from smbwatch.case.store import THREADS, Case
from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics
from smbwatch.options import Options
from smbwatch.pipeline import (
    DEFAULT_OPTIONS,
    Batching,
    InputError,
    InputRun,
    Progress,
    expand_inputs,
    input_runs,
    report_input_error,
)
from smbwatch.pipeline import sniff_format as input_format_of

READ_CHUNK: Final = 4 << 20  # hashed at a time (the GIL is let go meanwhile)
STAGED_AHEAD: Final = 2  # record batches between the decoder and the database
GROUP_INPUTS: Final = 1024  # inputs a temporary case adds in one transaction
KEPT_GROUP_INPUTS: Final = 64  # ... and a kept one (what a kill loses: the next ingest reads them)
GROUP_ROWS: Final = 100_000  # events staged at most before the inputs so far are added
STAGE_ROWS: Final = 16_384  # events staged (written into the case) at once
# Whole inputs' events as the worker processes that read them send them (``Readers.batch``).
BATCHING: Final = Batching(sent_batch, received_batch)

# The inputs of a transaction are staged straight into ``event_rows``, in the order they are
# read, as if each message were seen by that input alone: its key 0, a first copy, ``seen_by``
# its own file. Then the keys are worked out and written in place. The database so holds one
# copy of the rows: it held two while they were staged in a table of their own and copied in
# (for the 593-file corpus's 72,000 records, 0.26 s and 80 MB). Only inputs that hold copies
# of each other's messages, or of the case's, are written again, in the same order, as copies
# (``_COPIED``): a row whose list (``seen_by``) is updated would move to the table's end.
#
# What makes two rows the same SMB message (connection, session, message, command, file,
# direction of a close, RPC operation, and its rank among rows alike in that input) or the same
# host record (logging computer, event id, record id): the same from every source that saw it.
# Worked out over these few columns only (the rows are wide), then written back by row.
_MESSAGE_KEY: Final = """
CREATE TEMP TABLE keys AS
SELECT staged_row, input_id, source_file, md5_number_lower(identity || '#' || row_number() OVER (
    PARTITION BY input_id, identity ORDER BY time, source_ref, staged_row)) AS message_key
FROM (
    SELECT rowid AS staged_row, input_id, time, source_ref, source_file, CASE WHEN source = 'host'
        THEN to_json(struct_pack(server := upper(server), code := event_code, ref := source_ref,
            action := action, at := CASE WHEN source_ref IS NULL THEN epoch_us(time) END))
        ELSE to_json(struct_pack(conn := conn_id, src := src_ip, sport := src_port,
            dst := dst_ip, dport := dst_port, action := action, command := command,
            session := session_id, message := message_id, file := file_id,
            direction := direction, opnum := rpc_opnum))
        END AS identity
    FROM event_rows WHERE input_id >= $first)
"""
# The messages of these inputs the case holds already: the case's keys are scanned against
# these inputs' (the small side), not gathered.
_AGAIN: Final = """
CREATE TEMP TABLE again AS
SELECT message_key FROM event_rows
WHERE input_id < $first AND first_copy AND message_key IN (SELECT message_key FROM keys)
"""
# Each message of these inputs: the first of them that holds it, and the sources of its copies
# in the order of the inputs, each once (the first copy's ``seen_by``, or what the case's first
# copy gains): as if the inputs had been added one after the other.
_COPIES: Final = """
CREATE TEMP TABLE copies AS
SELECT message_key, min(first_input) AS first_input,
    list(source_file ORDER BY first_input) FILTER (WHERE source_file IS NOT NULL) AS files
FROM (SELECT message_key, source_file, min(input_id) AS first_input FROM keys GROUP BY ALL)
GROUP BY message_key
"""
_SEEN_AGAIN: Final = """
UPDATE event_rows SET seen_by = list_concat(event_rows.seen_by,
    list_filter(c.files, lambda f: NOT list_contains(event_rows.seen_by, f)))
FROM (SELECT * FROM copies WHERE message_key IN (SELECT message_key FROM again)) c
WHERE event_rows.message_key = c.message_key AND event_rows.first_copy
    AND event_rows.input_id < $first
"""
_KEYED: Final = """
UPDATE event_rows SET message_key = k.message_key
FROM keys k WHERE event_rows.rowid = k.staged_row
"""
# Whether a message of these inputs is in two of them.
_COPIES_BETWEEN: Final = """
SELECT EXISTS (SELECT 1 FROM keys GROUP BY message_key HAVING count(*) > 1)
"""
# These inputs' rows written again, in their order, as copies: a message's first copy (of the
# first input that holds it, if the case did not) lists the others' files after its own; the
# others are not first copies and list none.
_TAKEN_OUT: Final = """
CREATE TEMP TABLE staged AS SELECT rowid AS staged_row, * FROM event_rows WHERE input_id >= $first
"""
_COPIED: Final = """
INSERT INTO event_rows BY NAME
SELECT s.* EXCLUDE (staged_row) REPLACE (
        CASE WHEN f.first THEN list_concat(list_value(s.source_file),
            list_filter(f.files, lambda x: x IS DISTINCT FROM s.source_file)) END AS seen_by,
        f.message_key AS message_key, f.first AS first_copy)
FROM staged s JOIN (
    SELECT k.staged_row, k.message_key, c.files,
        k.input_id = c.first_input AND a.message_key IS NULL AS first
    FROM keys k JOIN copies c USING (message_key) LEFT JOIN again a USING (message_key)) f
    ON f.staged_row = s.staged_row
ORDER BY s.staged_row
"""
# Names and clocks are worked out after the inputs: until then (an ingest killed in between),
# readers are told that they are not up to date.
_UNSETTLED: Final = "INSERT OR REPLACE INTO meta VALUES ('unsettled', 'yes')"
_ADD_INPUTS: Final = """
INSERT INTO inputs BY NAME
SELECT a.*, e.first_time, e.last_time, coalesce(e.events, 0) AS events,
    coalesce(e.duplicates, 0) AS duplicates, now() AS ingested_at
FROM added a LEFT JOIN (
    SELECT input_id, min(time) AS first_time, max(time) AS last_time, count(*) AS events,
        count(*) FILTER (WHERE NOT first_copy) AS duplicates
    FROM event_rows WHERE input_id >= ? GROUP BY input_id) e USING (input_id)
"""
_ADDED_TYPES: Final = """input_id INTEGER, path VARCHAR, sha256 VARCHAR, format VARCHAR,
    size UBIGINT, warnings UBIGINT, warning_kinds JSON, damaged BOOLEAN"""
_ADDED_COLUMNS: Final = (
    "input_id",
    "path",
    "sha256",
    "format",
    "size",
    "warnings",
    "warning_kinds",
    "damaged",
)


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
    together: int = 1,
    progress: Progress | None = None,
) -> Ingested:
    """Add every new input under ``paths``; then names, clocks and corrections again.

    An input of a size no input of the case has is new whatever its hash: it is hashed on
    another thread while it is decoded (from when the workers have their first inputs: until
    then, hashing would only hold them up). One of the size of an input of the case is hashed
    first, and skipped if its content is known. (Inputs of this ingest that share a content
    are found as they are staged: the second is skipped then.)

    ``together``: up to how many inputs (and ``GROUP_ROWS`` events) share one transaction, as
    each statement costs several milliseconds however few its rows are (593 small logs one by
    one spent over 30 s in the database, several times what reading them took). A case that is
    kept adds ``KEPT_GROUP_INPUTS`` at most at once (killed, the case is as it was before
    them: the next ingest reads them again); a temporary one (a verb merging several inputs)
    ``GROUP_INPUTS``.
    ``progress`` is told of the new inputs, their events and each one read."""
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
            new.append((source, explicit))
        runs = iter(input_runs(new, input_format, jobs, options, batch=BATCHING))
        runs = _hashed_once_begun(runs, new, hashing, digests)
        if progress is not None:
            progress.begin([source for source, _ in new])
            runs = _told(runs, progress)
        group = _Group(case, digests, known, diagnostics, errors)
        while group.add(runs, together, input_format, done):
            pass
    done.warnings = settle(case, corrections or [])
    return done


def _hashed_once_begun(
    runs: Iterator[InputRun],
    new: list[tuple[InputFile, bool]],
    hashing: ThreadPoolExecutor,
    digests: dict[str, Future[str]],
) -> Iterator[InputRun]:
    """The runs; the inputs given to ``hashing`` once the first is asked for (the workers
    then have their first inputs), each digest in ``digests`` before its run comes."""
    first = next(runs, None)
    for source, _ in new:
        digests[source.name] = hashing.submit(content_hash, source)
    if first is not None:
        yield first
        yield from runs


def _told(runs: Iterator[InputRun], progress: Progress) -> Iterator[InputRun]:
    """The runs, their events counted by ``progress`` as they are added, which is told of
    each input once it is read (when the next is asked for)."""
    for run in runs:
        if run.batches is None:
            run.events = progress.counted(run.events)
        else:
            run.batches = progress.counted_rows(run.batches)
        yield run
        progress.finished(run)


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


@dataclass
class _Staged:
    """An input whose events are staged, to be added."""

    run: InputRun
    input_id: int
    content: str
    size: int | None


class _Group:
    """Inputs staged one after the other, then added together in one transaction."""

    def __init__(
        self,
        case: Case,
        digests: dict[str, Future[str]],
        known: dict[str, int | None],
        diagnostics: Diagnostics,
        errors: list[str],
    ) -> None:
        self.case = case
        self.digests = digests
        self.known = known
        self.diagnostics = diagnostics
        self.errors = errors

    def add(
        self, runs: Iterator[InputRun], together: int, input_format: str | None, done: Ingested
    ) -> bool:
        """Up to ``together`` inputs of ``runs`` (fewer once ``GROUP_ROWS`` events are staged)
        added in one transaction, reported in ``done``; False once ``runs`` are all read."""
        run = next(runs, None)
        if run is None:
            return False
        case, db = self.case, self.case.db
        failed = f"{case.directory}: {run.path}{'' if together == 1 else ' and after'} not added"
        staged: list[_Staged] = []
        with case.transaction(failed):
            first_id = case.rows("SELECT coalesce(max(input_id), 0) + 1 FROM inputs")[0][0]
            stager = _Stager(db)
            complete = False
            try:
                more = self._stage_runs(run, runs, together, first_id, stager, staged, done)
                complete = True
            finally:
                stager.close(complete)
            if staged:
                done.added += _add_staged(case, staged, input_format, first_id)
                db.execute(_UNSETTLED)
        return more

    def _stage_runs(
        self,
        run: InputRun | None,
        runs: Iterator[InputRun],
        together: int,
        first_id: int,
        stager: _Stager,
        staged: list[_Staged],
        done: Ingested,
    ) -> bool:
        """Inputs staged from ``run`` on, until ``together`` of them (or ``GROUP_ROWS`` events)
        are; False once ``runs`` are all read."""
        rows = 0
        while run is not None:
            input_id = first_id + len(staged)
            found = self._stage(run, input_id, stager)
            self.diagnostics.merge(run.diagnostics)
            if run.error is not None:
                report_input_error(
                    run.error, run.source, run.explicit, self.diagnostics, self.errors
                )
            elif found is None:
                done.known.append(run.path)
            else:
                staged.append(_Staged(run, input_id, found[0], found[1]))
                rows += found[2]
            if len(staged) >= together or rows >= GROUP_ROWS:
                return True
            run = next(runs, None)
        return False

    def _stage(
        self, run: InputRun, input_id: int, stager: _Stager
    ) -> tuple[str, int | None, int] | None:
        """The input's events staged: its content hash, size and rows; None (its rows
        taken out again) for an input that is no capture or log (``run.error`` says why) or
        whose content the case, or an input staged before it, holds already."""
        made = run.batches  # by the workers, who read the input (``parallel.Readers.batch``)
        batches = event_batches(run.events, run.diagnostics) if made is None else made
        rows = stager.stage(batches, input_id)
        content = None
        try:
            content = self.digests[run.path].result()
            size = _size(run.source)
        except OSError as error:  # the input could not be read to hash it
            run.error = InputError(f"{run.path}: cannot read: {error.strerror or error}")
        if run.error is not None or content is None or content in self.known:
            stager.discard(input_id)
            return None
        self.known[content] = size
        return content, size, rows


def _add_staged(
    case: Case, staged: list[_Staged], input_format: str | None, first_id: int
) -> list[Added]:
    """The staged inputs' events keyed, each message's copies counted, and the inputs' rows
    (inside the caller's transaction)."""
    db = case.db
    first = {"first": first_id}
    db.execute(_MESSAGE_KEY, first)
    db.execute(_AGAIN, first)
    db.execute(_COPIES)
    again = case.rows("SELECT count(*) FROM again")[0][0]
    if again:
        db.execute(_SEEN_AGAIN, first)
    if again or case.rows(_COPIES_BETWEEN)[0][0]:  # copies of the case's, or of each other's
        _add_copies(db, first)
    else:
        db.execute(_KEYED)
    db.execute(f"CREATE TEMP TABLE added ({_ADDED_TYPES})")
    rows = []
    for item in staged:
        counts = item.run.diagnostics.counts
        rows.append(
            (
                item.input_id,
                item.run.path,
                item.content,
                _format(item.run.source, input_format),
                item.size,
                sum(counts.values()),
                orjson.dumps(dict(counts)).decode(),
                bool(item.run.diagnostics.damaged_inputs),
            )
        )
    case.insert("added", _ADDED_COLUMNS, rows)
    db.execute(_ADD_INPUTS, [first_id])
    found = case.rows(
        "SELECT path, events, duplicates FROM inputs WHERE input_id >= ? ORDER BY input_id",
        [first_id],
    )
    for dropped in ("added", "copies", "again", "keys"):
        db.execute(f"DROP TABLE {dropped}")
    return [Added(path, events, duplicates) for path, events, duplicates in found]


def _add_copies(db: duckdb.DuckDBPyConnection, first: dict[str, int]) -> None:
    """These inputs' rows, some of them copies, taken out and written again in their order,
    keyed and made copies (``_COPIED``)."""
    db.execute(_TAKEN_OUT, first)
    db.execute("DELETE FROM event_rows WHERE input_id >= $first", first)
    db.execute("SET preserve_insertion_order = true")  # an INSERT keeps its ORDER BY only so
    try:
        db.execute(_COPIED)
    finally:
        db.execute("SET preserve_insertion_order = false")
    db.execute("DROP TABLE staged")


class _Stager:
    """Record batches written into ``event_rows`` (see ``_MESSAGE_KEY``), in the caller's
    transaction, on another thread (DuckDB lets go of the GIL while it writes) while this one
    decodes the next; small ones gathered into one statement of up to ``STAGE_ROWS`` rows (each
    statement costs milliseconds however few its rows), at most ``STAGED_AHEAD`` of them
    waiting for the writer, and let go once written: memory does not grow with the input.
    The rows are stored in the order they are read, input after input (the connection keeps
    the order of inserted rows, and works on one thread, until ``close``: two threads held a
    batch's rows twice over, 60 MB more for the 593-file corpus): rows the timeline's sort
    finds alike stay in that order."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        db.execute("SET preserve_insertion_order = true")
        db.execute("SET threads = 1")
        self.db = db
        self.held: list[tuple[pa.RecordBatch, int]] = []  # (batch, input id), not yet handed over
        self.held_rows = 0
        self.handed: set[int] = set()  # inputs some of whose rows went to the writer
        self.waiting: Queue[pa.Table | None] = Queue(STAGED_AHEAD)
        self.failed: list[BaseException] = []
        self.writer = threading.Thread(target=self._write, name="smbwatch-stage")
        self.writer.start()

    def _write(self) -> None:
        while True:
            table = self.waiting.get()
            if table is not None and not self.failed:  # an error is raised by the decoder
                try:  # not a registered view: the transaction would hold it until it ends
                    self.db.from_arrow(table).insert_into("event_rows")
                except BaseException as error:
                    self.failed.append(error)
            self.waiting.task_done()
            if table is None:
                return

    def stage(self, batches: Iterable[pa.RecordBatch], input_id: int) -> int:
        """The batches of input ``input_id``; how many rows they hold."""
        rows = 0
        for batch in batches:
            if self.failed:
                break
            self.held.append((batch, input_id))
            self.held_rows += batch.num_rows
            rows += batch.num_rows
            if self.held_rows >= STAGE_ROWS:
                self._hand_over()
        return rows

    def _hand_over(self) -> None:
        if not self.held:
            return
        table = pa.Table.from_batches([batch for batch, _ in self.held])
        ids = [pa.array([key] * batch.num_rows, pa.int32()) for batch, key in self.held]
        self.handed.update(key for _, key in self.held)
        rows = table.num_rows
        self.held, self.held_rows = [], 0
        files = table.column("source_file").combine_chunks()
        seen_by = pa.ListArray.from_arrays(pa.array(range(rows + 1), pa.int32()), files)
        table = table.set_column(table.schema.get_field_index("seen_by"), "seen_by", seen_by)
        table = table.append_column("input_id", pa.chunked_array(ids, pa.int32()))
        table = table.append_column("message_key", pa.repeat(pa.scalar(0, pa.uint64()), rows))
        self.waiting.put(table.append_column("first_copy", pa.repeat(pa.scalar(True), rows)))

    def discard(self, input_id: int) -> None:
        """The rows of input ``input_id`` taken out again."""
        self.held = [(batch, key) for batch, key in self.held if key != input_id]
        self.held_rows = sum(batch.num_rows for batch, _ in self.held)
        if input_id in self.handed:
            self.waiting.join()
            self._raise()
            self.db.execute("DELETE FROM event_rows WHERE input_id = ?", [input_id])

    def close(self, complete: bool) -> None:
        """The writer stopped, every row handed over first if ``complete`` (then its error,
        if it met one, raised here)."""
        try:
            if complete:
                self._hand_over()
        finally:
            self.waiting.put(None)
            self.writer.join()
            self.db.execute("SET preserve_insertion_order = false")
            self.db.execute(f"SET threads = {THREADS}")
        if complete:
            self._raise()

    def _raise(self) -> None:
        if self.failed:
            raise self.failed[0]


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
