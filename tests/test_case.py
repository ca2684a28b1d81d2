"""The case, on the OTRF attack pairs (a capture from each workstation and the hosts' logs), as a
responder uses it: ingest, query from a fresh process, the timeline with each message once,
one name per host and user, filters, clocks, and detect counting a message once.

Every command runs the installed console script in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import shared_dir
from oracle import tool

from smbwatch.events import parse_time

pytestmark = pytest.mark.oracle

OTRF = shared_dir() / "data" / "otrf"
PSEXEC = sorted(OTRF.glob("empire_psexec*"))  # the host log, then WORKSTATION5's, WORKSTATION6's
WMI_CAPTURES = sorted(OTRF.glob("empire_wmi*.cap"))
COVENANT = sorted(OTRF.glob("covenant_sharpsc*"))  # one capture and the target's log
DATA = shared_dir() / "data"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lateral-movement.pcap"


def smbwatch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smbwatch.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def rows(*args: str | Path) -> list[dict]:
    done = smbwatch(*args, "-f", "jsonl")
    assert done.returncode in (0, 1, 3), done.stderr  # 3: the covenant capture is truncated
    return [json.loads(line) for line in done.stdout.splitlines()]


def unnamed(alert: dict) -> dict:
    """An alert without the host names only a case resolves (one input is read straight)."""
    return {k: v for k, v in alert.items() if k not in ("src_host", "dst_host")}


def query(case: Path, sql: str) -> list[dict]:
    return rows("query", "--case", case, sql)


def events_of(path: Path) -> list[dict]:
    return rows("events", "-q", path)


def identity(event: dict) -> tuple:
    """What makes a network event the same message, from its contract fields."""
    names = ("src_ip", "src_port", "dst_ip", "dst_port", "action", "command", "message_id")
    return tuple(event.get(n) for n in (*names, "rpc_opnum", "direction", "file_id"))


def ranked(events: list[dict]) -> list[tuple]:
    """Each event's identity and its rank among those alike (DCE/RPC over TCP has no message
    id: the third call on a connection is the third call from every sensor)."""
    seen: Counter[tuple] = Counter()
    out = []
    for event in sorted(events, key=lambda e: e["time"]):
        seen[identity(event)] += 1
        out.append((*identity(event), seen[identity(event)]))
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The psexec pair (two sensors and the target's log) and the covenant pair, one case."""
    directory = tmp_path_factory.mktemp("incident") / "case"
    done = smbwatch("ingest", "-q", "--case", directory, *PSEXEC)
    assert done.returncode == 0, done.stderr
    done = smbwatch("ingest", "-q", "--case", directory, *COVENANT)
    assert done.returncode == 3, done.stderr  # the covenant capture is truncated: damaged
    return directory


def test_ingest_is_idempotent_and_a_fresh_process_reads_what_was_ingested(case: Path) -> None:
    inputs = query(case, "SELECT path, events, duplicates FROM inputs ORDER BY input_id")
    assert [Path(i["path"]) for i in inputs] == [*PSEXEC, *COVENANT]
    for row in inputs:  # each input holds what smbwatch events reads from it
        assert row["events"] == len(events_of(Path(row["path"])))
    total = query(case, "SELECT count(*) AS n FROM sightings")[0]["n"]
    assert total == sum(row["events"] for row in inputs)

    again = smbwatch("ingest", "--case", case, *PSEXEC, *COVENANT)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already in the case") == len(PSEXEC) + len(COVENANT)
    assert query(case, "SELECT count(*) AS n FROM sightings")[0]["n"] == total
    assert query(case, "SELECT path, events, duplicates FROM inputs ORDER BY input_id") == inputs


def test_the_timeline_of_two_sensors_shows_each_message_once(tmp_path: Path) -> None:
    first, second = (ranked(events_of(capture)) for capture in WMI_CAPTURES)
    both = set(first) & set(second)
    assert len(both) == len(second) > 10  # the second sensor saw a part of what the first did
    timeline = rows("timeline", "-q", *WMI_CAPTURES)
    assert Counter(ranked(timeline)) == Counter(first)
    assert [e["time"] for e in timeline] == sorted(e["time"] for e in timeline)
    names = [str(c) for c in WMI_CAPTURES]
    for event, key in zip(sorted(timeline, key=lambda e: e["time"]), ranked(timeline), strict=True):
        assert event["seen_by"] == (names if key in both else names[:1])
        assert event["source_file"] == names[0]  # the copy of the input read first


def test_one_name_per_host_and_per_user(case: Path) -> None:
    hosts = {h["host"]: h for h in query(case, "SELECT * FROM hosts")}
    target = hosts["WORKSTATION6.theshire.local"]
    assert target["addresses"] == ["172.18.39.6"]
    assert target["aliases"] == ["WORKSTATION6", "WORKSTATION6.theshire.local"]
    kinds = {proof["kind"] for proof in json.loads(target["evidence"])}
    assert {"unc", "spn", "logon_port", "first_label"} <= kinds
    users = {u["principal"]: u for u in query(case, "SELECT * FROM users")}
    assert users["THESHIRE\\pgustavo"]["aliases"] == [
        "THESHIRE.LOCAL\\pgustavo",
        "THESHIRE\\pgustavo",
    ]
    # every spelling of the target selects the same events
    spellings = ("172.18.39.6", "WORKSTATION6", "workstation6.THESHIRE.local")
    found = [rows("events", "--case", case, "--dst", name) for name in spellings]
    assert found[0] == found[1] == found[2]
    assert {e["dst_host"] for e in found[0]} == {"WORKSTATION6.theshire.local"}
    assert {e["source"] for e in found[0]} == {"network", "host"}
    by_user = [
        rows("events", "--case", case, "--user", name)
        for name in ("THESHIRE\\pgustavo", "pgustavo@theshire.local", "PGUSTAVO")
    ]
    assert by_user[0] == by_user[1] == by_user[2] and len(by_user[0]) >= 4
    assert {e["principal"] for e in by_user[0]} == {"THESHIRE\\pgustavo"}
    assert {e["domain"] for e in by_user[0]} == {"THESHIRE", "THESHIRE.LOCAL"}  # raw, as logged


def test_filters_are_queries_of_the_case(case: Path) -> None:
    everything = rows("events", "--case", case)
    times = [parse_time(e["time"]) for e in everything]
    assert times == sorted(times)
    since, until = "2020-09-20T16:16:56.5", "2020-09-20T16:17:00Z"
    window = rows("timeline", "--case", case, "--since", since, "--until", until)
    low, high = parse_time(since), parse_time(until)
    assert window == [e for e in everything if low <= parse_time(e["time"]) <= high]
    assert len(window) >= 8
    recent = rows("events", "--case", case, "--since", "30s")
    assert recent == [e for e in everything if parse_time(e["time"]) >= max(times) - 30_000_000]
    assert 0 < len(recent) < len(everything)
    from_client = rows("events", "--case", case, "--src", "172.18.39.5", "--dst", "172.18.38.5")
    assert from_client and {(e["src_ip"], e["dst_ip"]) for e in from_client} == {
        ("172.18.39.5", "172.18.38.5")
    }


@pytest.mark.parametrize("since", [None, "2020-09-20T16:16:56.5"])
def test_the_timeline_sorted_in_windows_of_the_columns_held_is_the_whole_sort(
    case: Path, monkeypatch: pytest.MonkeyPatch, since: str | None
) -> None:
    """The timeline sorted a window of time after another, of only the columns that hold a
    value in the case, reads as DuckDB's one sort of every column of the view: the same
    events, every field, in the same order (filtered alike)."""
    from smbwatch.arrow import batch_events, conform, events_of
    from smbwatch.case import query as case_query
    from smbwatch.case.filters import Filters
    from smbwatch.case.store import Case
    from smbwatch.diagnostics import Diagnostics
    from smbwatch.events import FIELD_NAMES

    filters = Filters(None, None, None, since, None)
    monkeypatch.setattr(case_query, "WINDOW_ROWS", 64)  # the case is small: cut it anyway
    with Case.open(case) as opened:
        columns, edges = case_query._layout(opened)
        clause = case_query.where(opened, filters)
        whole_sql = f"SELECT * FROM events{clause.sql()} ORDER BY {case_query.TIMELINE_ORDER}"
        whole = opened.db.sql(whole_sql, params=clause.parameters or None).to_arrow_table()
        windowed = list(case_query.timeline(opened, filters))
        assert opened.rows("SELECT current_setting('threads')")[0][0] == 2  # given back
    assert len(edges) == case_query.WINDOWS + 1  # four windows of distinct times
    held = columns.split(", ")
    assert 20 < len(held) < len(FIELD_NAMES)  # network and host fields, not every one
    assert all(batch.num_columns == len(held) for batch in windowed)
    for name in FIELD_NAMES:  # a column left out holds nothing in the whole sort
        if f'"{name}"' not in held:
            assert whole.column(name).null_count == whole.num_rows, name
    diagnostics = Diagnostics()
    read = pa.concat_tables([conform(batch, diagnostics, "the case") for batch in windowed])
    assert read.to_pylist() == conform(whole, diagnostics, "the case").to_pylist()
    assert read.num_rows >= 8
    # Made events, the columns left out are null: as the events of every column.
    made = [event.to_dict() for event in batch_events(windowed, diagnostics, "the case")]
    every = events_of(conform(whole, diagnostics, "the case"), diagnostics, "the case")
    assert made == [event.to_dict() for event in every]
    assert not diagnostics.counts


def test_rows_without_a_time_come_last_in_windows_as_in_one_sort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows without a time (none of smbwatch's readers makes one) are in the last window, where
    one sort of the whole timeline puts them."""
    from datetime import UTC, datetime, timedelta

    from smbwatch.case import query as case_query
    from smbwatch.case.filters import Filters
    from smbwatch.case.store import Case

    monkeypatch.setattr(case_query, "WINDOW_ROWS", 64)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    names = ("time", "source", "action", "source_ref", "input_id", "message_key", "first_copy")
    timed = [
        (start + timedelta(seconds=i % 50), "host", "logon", i, 1, i, True) for i in range(200)
    ]
    untimed = [(None, "host", "logon", 1000 + i, 1, 1000 + i, True) for i in range(3)]
    with Case.open(tmp_path / "case", write=True) as case:
        with case.transaction("rows not added"):
            case.insert("inputs", ("input_id", "path", "sha256"), [(1, "log.json", "0" * 64)])
            case.insert("event_rows", names, untimed[:1] + timed + untimed[1:])
        assert len(case_query._layout(case)[1]) == case_query.WINDOWS + 1
        read = [
            (r["time"], r["source_ref"])
            for b in case_query.timeline(case, Filters())
            for r in b.to_pylist()
        ]
        whole = case.rows(
            f"SELECT time, source_ref FROM events ORDER BY {case_query.TIMELINE_ORDER}"
        )
    assert read == [tuple(row) for row in whole] and len(read) == 203
    assert [ref for _, ref in read[-3:]] == [1000, 1001, 1002] and read[-1][0] is None


@pytest.mark.parametrize("temporary", [False, True])
def test_a_temporary_case_writes_rows_as_they_come_a_kept_one_at_its_commit(
    tmp_path: Path, temporary: bool
) -> None:
    """Rows added inside a transaction: a kept case's file is as it was until the commit (a
    failed input leaves no trace); a temporary case's grows a row group at a time before it
    (DuckDB holds no transaction's rows whole in memory, twice at its commit); both read
    the rows back alike."""
    from datetime import UTC, datetime, timedelta

    from smbwatch.case.store import TEMPORARY_ROW_GROUP, Case

    rows = 3 * TEMPORARY_ROW_GROUP
    names = ("time", "source", "action", "path", "input_id", "message_key", "first_copy")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    values = [
        (start + timedelta(milliseconds=i), "host", "access_check", f"dir\\file{i}.txt", 1, i, True)
        for i in range(rows)
    ]
    database = tmp_path / "case" / "case.duckdb"
    with Case.open(tmp_path / "case", write=True, temporary=temporary) as case:
        case.db.execute("CHECKPOINT")
        before = database.stat().st_size
        with case.transaction("rows not added"):
            case.insert("event_rows", names, values)
            grown = database.stat().st_size - before
        assert case.rows("SELECT count(*), count(DISTINCT path) FROM event_rows") == [(rows, rows)]
    assert (grown > 0) == temporary, grown
    with Case.open(tmp_path / "case") as case:  # a fresh process would read the same
        assert case.rows("SELECT sum(message_key) FROM event_rows") == [(rows * (rows - 1) // 2,)]


def test_host_records_with_whole_seconds_say_so(case: Path) -> None:
    host = [e for e in rows("events", "--case", case) if e["source"] == "host"]
    assert host and all(e["time_precision"] == "s" for e in host)
    assert all(len(e["time"]) == len("2020-09-20T16:16:56Z") for e in host)


def test_detect_counts_a_message_seen_by_two_sensors_once(tmp_path: Path) -> None:
    captures = PSEXEC[1:]
    alone = rows("detect", "-q", captures[0])
    both = rows("detect", "-q", *captures)  # through a case: each message once
    created = "Remote Service Created or Reconfigured Through svcctl"
    service = [a for a in both if a["title"] == created]
    assert len(service) == 1 and service[0]["count"] == 1
    assert [unnamed(a) for a in both] == [unnamed(a) for a in alone]
    high = rows("detect", "-q", "--min-risk", "80", *PSEXEC)
    every = rows("detect", "-q", *PSEXEC)
    assert high == [a for a in every if a["risk_score"] >= 80] and len(high) < len(every)


def test_detect_over_a_whole_case_stores_its_alerts(tmp_path: Path) -> None:
    directory = tmp_path / "case"
    assert smbwatch("ingest", "-q", "--case", directory, *PSEXEC).returncode == 0
    alerts = rows("detect", "-q", "--case", directory)
    stored = query(directory, "SELECT alert FROM alerts ORDER BY risk_score DESC, first_time")
    assert [json.loads(row["alert"]) for row in stored] == alerts and alerts
    # Each alert whole, with its evidence, is the bulk of the table: stored with zstd, which
    # DuckDB writes at the commit many times faster than its default string compressions.
    kinds = query(
        directory,
        "SELECT DISTINCT compression FROM pragma_storage_info('alerts')"
        " WHERE column_name = 'alert' AND segment_type = 'JSON'",
    )
    assert [row["compression"] for row in kinds] == ["ZSTD"]
    high = rows("detect", "-q", "--case", directory, "--min-risk", "80")
    assert high == [a for a in alerts if a["risk_score"] >= 80]
    assert len(query(directory, "SELECT * FROM alerts")) == len(alerts)  # filtered: not stored


def test_a_clock_five_hours_off_is_reported_and_corrected(tmp_path: Path) -> None:
    """A second sensor whose clock is five hours ahead (editcap shifts the capture's times)."""
    shifted = tmp_path / "sensor2.pcap"
    done = subprocess.run(
        [tool("editcap"), "-t", "18000", str(WMI_CAPTURES[1]), str(shifted)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    timeline = smbwatch("timeline", "-f", "jsonl", WMI_CAPTURES[0], shifted)
    assert timeline.returncode == 0
    (warning,) = [line for line in timeline.stderr.splitlines() if "clocks differ" in line]
    assert str(shifted) in warning and str(WMI_CAPTURES[0]) in warning
    assert "+5h00m00s" in warning and "--clock-offset 'sensor2.pcap=-5h00m00s'" in warning
    merged = [json.loads(line) for line in timeline.stdout.splitlines()]
    assert len(merged) == len(events_of(WMI_CAPTURES[0]))  # the same messages all the same

    fixed = smbwatch(
        "timeline", "-f", "jsonl", "--clock-offset", "sensor2.pcap=-5h", *[WMI_CAPTURES[0], shifted]
    )
    assert fixed.returncode == 0 and "clocks differ" not in fixed.stderr
    assert fixed.stdout == timeline.stdout


def test_a_host_clock_corrected_by_host_name(tmp_path: Path) -> None:
    """The covenant target's log moved five hours by its host's name: the offset against the
    capture (the 4624's client port is the connection's) shows, and goes when undone."""
    directory = tmp_path / "case"
    moved = smbwatch("ingest", "--case", directory, "--clock-offset", "WORKSTATION6=+5h", *COVENANT)
    assert moved.returncode == 3, moved.stderr  # the capture is truncated
    (warning,) = [line for line in moved.stderr.splitlines() if "clocks differ" in line]
    assert "+5h00m" in warning and COVENANT[1].name in warning and COVENANT[0].name in warning
    host = rows("events", "--case", directory, "--dst", "WORKSTATION6", "--user", "pgustavo")
    original = [e for e in events_of(COVENANT[1]) if e.get("user") == "pgustavo"]
    assert [e["source_ref"] for e in host if e["source"] == "host"] == [
        e["source_ref"] for e in original
    ]
    assert all(h["time"][:13] == "2020-08-06T12" for h in host if h["source"] == "host")
    undone = smbwatch("ingest", "--case", directory, "--clock-offset", "WORKSTATION6=0s")
    assert undone.returncode == 0 and "clocks differ" not in undone.stderr


def test_a_relative_time_or_a_correction_that_is_no_time_is_one_line(case: Path) -> None:
    for args in (
        ("events", "--case", case, "--since", "yesterday"),
        ("ingest", "--case", case, "--clock-offset", "x.cap=+5 hours"),
        ("events", "--case", case, "--clock-offset", "x.cap=+5h"),
        ("events", "--case", case, PSEXEC[0]),
        ("timeline",),
    ):
        done = smbwatch(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_parquet_of_a_case_is_its_events(case: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "events"
    assert smbwatch("events", "--case", case, "-f", "parquet", "-o", dataset).returncode == 0
    db = duckdb.connect()
    files = f"read_parquet('{dataset}/**/*.parquet', hive_partitioning = true)"
    in_files = db.sql(f"DESCRIBE SELECT * EXCLUDE (date) FROM {files}").fetchall()
    db.execute(f"ATTACH '{case / 'case.duckdb'}' AS incident (READ_ONLY)")
    assert in_files == db.sql("DESCRIBE SELECT * FROM incident.events").fetchall()
    assert sorted(rows("events", "-q", dataset), key=lambda e: (e["time"], e["source_ref"])) == (
        sorted(rows("events", "--case", case), key=lambda e: (e["time"], e["source_ref"]))
    )


def test_copies_of_a_case_are_cases(case: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(case, copy)
    assert query(copy, "SELECT count(*) AS n FROM events") == query(
        case, "SELECT count(*) AS n FROM events"
    )


def test_a_forged_workstation_name_does_not_merge_two_machines(tmp_path: Path) -> None:
    """A logon from the attacker's address claiming the target's name (NTLM lets a client name
    itself as it likes) is refused, and kept as a refused claim; a computer account logging on
    from an address of its own machine names it."""
    forged = {
        "EventTime": "2020-08-06 07:02:30",
        "Hostname": "WORKSTATION6.theshire.local",
        "EventID": 4624,
        "RecordNumber": 99001,
        "LogonType": 3,
        "TargetUserName": "eve",
        "TargetDomainName": "THESHIRE",
        "TargetLogonId": "0x99",
        "WorkstationName": "WORKSTATION6",
        "IpAddress": "172.18.39.5",
        "IpPort": "50999",
        "AuthenticationPackageName": "NTLM",
    }
    log = tmp_path / "forged.json"
    log.write_text(json.dumps(forged) + "\n")
    directory = tmp_path / "case"
    done = smbwatch("ingest", "-q", "--case", directory, *COVENANT, PSEXEC[0], log)
    assert done.returncode == 3, done.stderr  # the covenant capture is truncated
    hosts = {h["host"]: h for h in query(directory, "SELECT * FROM hosts")}
    target = hosts["WORKSTATION6.theshire.local"]
    assert target["addresses"] == ["172.18.39.6"]
    refused = [e for e in json.loads(target["evidence"]) if e.get("refused")]
    assert refused == [
        {"kind": "workstation", "address": "172.18.39.5", "name": "WORKSTATION6", "events": 1,
         "refused": True}
    ]  # fmt: skip
    assert hosts["172.18.39.5"]["aliases"] == []  # the attacker keeps its address
    # MORDORDC$ logs on to itself from its IPv4 and link-local IPv6 addresses
    assert "172.18.38.5" in hosts["MORDORDC.theshire.local"]["addresses"]


def test_inputs_added_together_make_the_case_that_one_by_one_makes(tmp_path: Path) -> None:
    """A temporary case adds many inputs in one transaction: the same rows, message keys,
    copies (``seen_by``, ``first_copy``), inputs and names as one transaction per input, with
    the same copy met within a group, across groups and in the case already, and the same
    timeline, rows alike in time in the same order; an input known by its content, or
    unreadable, left out alike."""
    from smbwatch.case.filters import Filters
    from smbwatch.case.ingest import GROUP_INPUTS, ingest
    from smbwatch.case.query import timeline
    from smbwatch.case.store import Case
    from smbwatch.diagnostics import Diagnostics

    again = tmp_path / "again.cap"  # the same content as the first capture, another name
    shutil.copyfile(WMI_CAPTURES[0], again)
    text = tmp_path / "notes.txt"  # no capture or log: an error, its rows left out
    text.write_text("not an input\n")
    first = [*WMI_CAPTURES[:1], *PSEXEC]
    # The first capture known by then; the corpus's other logs and captures (many alike in
    # time: the timeline keeps them as read).
    then = [*WMI_CAPTURES, again, text, *COVENANT, DATA, EXAMPLE]
    sql = (
        "SELECT * FROM event_rows ORDER BY input_id, time, source_ref, message_key",
        "SELECT * EXCLUDE (ingested_at) FROM inputs ORDER BY input_id",
        "SELECT * FROM hosts ORDER BY host",
        "SELECT * FROM correlation ORDER BY message_key",
    )
    found = []
    for together in (1, 2, GROUP_INPUTS):
        with Case.open(tmp_path / f"case-{together}", write=True) as case:
            said = []
            for paths in (first, then):
                errors: list[str] = []
                done = ingest(case, map(str, paths), Diagnostics(), errors, together=together)
                said.append((done, errors))
            ordered = [row for batch in timeline(case, Filters()) for row in batch.to_pylist()]
            found.append((said, [case.rows(query) for query in sql], ordered))
    one_by_one = found[0]
    (_, first_errors), (done, errors) = one_by_one[0]
    assert not first_errors and len(errors) == 1 and str(text) in errors[0]
    # Known: the first ingest's, the copy, and what DATA holds again after naming it.
    assert set(done.known) == {str(path) for path in [*first, again, *WMI_CAPTURES, *COVENANT]}
    inputs = {row[1]: row for row in one_by_one[1][1]}  # by path: id, path, ... duplicates
    assert {str(path) for path in [*first, WMI_CAPTURES[1], *COVENANT]} < set(inputs)
    assert inputs[str(WMI_CAPTURES[1])][8] > 0  # the second sensor saw what the first did
    assert found[1] == one_by_one and found[2] == one_by_one


def test_staged_batches_are_let_go_once_written_not_at_the_commit(tmp_path: Path) -> None:
    """An input is staged a batch at a time inside its transaction: each batch's Arrow memory
    is let go once the database has it, not held until the commit (a view registered inside a
    transaction is, so memory grew with the input: 820 MB for a 191 MB log)."""
    import pyarrow as pa

    from smbwatch import pipeline
    from smbwatch.arrow import event_batches
    from smbwatch.case.ingest import STAGE_ROWS, _Stager
    from smbwatch.case.store import Case
    from smbwatch.diagnostics import Diagnostics

    diagnostics = Diagnostics()
    events = pipeline.iter_events(list(map(str, PSEXEC)), diagnostics)
    (batch,) = event_batches(events, diagnostics, size=1 << 20)
    every_row = pa.array(range(batch.num_rows))
    copies = 4 * STAGE_ROWS // batch.num_rows + 8  # several statements' worth
    with Case.open(tmp_path / "case", write=True) as case, case.transaction("staging failed"):
        before = pa.total_allocated_bytes()
        stager = _Stager(case.db)
        made = 0
        for input_id in range(copies):
            copy = batch.take(every_row)  # a batch of its own, as the decoder makes each
            made += copy.nbytes
            assert stager.stage([copy], input_id) == batch.num_rows
            del copy
        stager.close(complete=True)
        held = pa.total_allocated_bytes() - before
        staged = case.rows("SELECT count(*), count(DISTINCT input_id) FROM event_rows")[0]
    assert staged == (copies * batch.num_rows, copies)
    assert held < made / 4, f"{held >> 20} MB of {made >> 20} MB still held before the commit"


def test_inputs_are_hashed_once_the_first_is_asked_for() -> None:
    """The inputs' contents are hashed on another thread from when the first input is asked
    for (the workers have theirs then), not while the inputs are listed, when hashing would
    only hold up their start; each digest is there before its input is staged."""
    import hashlib
    from concurrent.futures import Future, ThreadPoolExecutor

    from smbwatch.case.ingest import _hashed_once_begun
    from smbwatch.containers import InputFile
    from smbwatch.parallel import InputRun

    new = [(InputFile(str(path)), True) for path in PSEXEC]
    asked: list[int] = []

    def runs() -> Iterator[InputRun]:
        for source, explicit in new:
            asked.append(len(digests))  # digests handed out before this run was asked for
            yield InputRun(source, explicit)

    digests: dict[str, Future[str]] = {}
    with ThreadPoolExecutor(max_workers=1) as hashing:
        taken = _hashed_once_begun(runs(), new, hashing, digests)
        assert not digests
        for run in taken:
            expected = hashlib.sha256(Path(run.path).read_bytes()).hexdigest()
            assert digests[run.path].result() == expected
    assert asked == [0, len(new), len(new)]


@pytest.mark.parametrize("copies", [False, True])
def test_the_rows_of_inputs_added_together_lie_in_the_order_they_were_read(
    copies: bool, tmp_path: Path
) -> None:
    """Inputs added in one transaction are staged straight into the case's rows and keyed in
    place; inputs that hold copies of each other's messages (two sensors' captures of the same
    traffic) are written again as copies. Either way the rows lie in the order the inputs'
    events are read, input after input (what keeps rows alike in the timeline's sort in that
    order), with the same keys whichever way they were written."""
    from smbwatch import pipeline
    from smbwatch.case.ingest import GROUP_INPUTS, ingest
    from smbwatch.case.store import Case
    from smbwatch.diagnostics import Diagnostics

    inputs = (
        [*WMI_CAPTURES, *PSEXEC, EXAMPLE] if copies else [*WMI_CAPTURES[:1], PSEXEC[0], EXAMPLE]
    )
    read = [
        (number, event.source_ref, event.action)
        for number, path in enumerate(inputs, start=1)
        for event in pipeline.iter_events([str(path)], Diagnostics())
    ]
    with Case.open(tmp_path / "case", write=True) as case:
        ingest(case, [str(path) for path in inputs], Diagnostics(), [], together=GROUP_INPUTS)
        case.db.execute("SET preserve_insertion_order = true")
        case.db.execute("SET threads = 1")
        lying = case.rows("SELECT input_id, source_ref, action FROM event_rows")
        duplicates = case.rows("SELECT count(*) FROM event_rows WHERE NOT first_copy")[0][0]
        keys = case.rows("SELECT count(DISTINCT message_key), min(message_key) FROM event_rows")
    assert lying == read and len(read) > 200
    assert duplicates > 10 if copies else duplicates == 0
    assert keys[0][0] == len(read) - duplicates and keys[0][1] > 0
