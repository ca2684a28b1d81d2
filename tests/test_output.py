"""Outputs and smbwatch's own output as input: ``-f parquet`` writes a dataset partitioned by
date with the schema's types (read by DuckDB, an independent reader), and smbwatch reads its
JSON lines and Parquet back, hostile ones included."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import shared_dir

from smbwatch import schema
from smbwatch.case.store import DUCKDB_TYPES
from smbwatch.events import parse_time

pytestmark = pytest.mark.oracle

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lateral-movement.pcap"
HOST_LOG = next((shared_dir() / "data" / "otrf").glob("empire_psexec*.json.gz"))
# DuckDB's names for the types the case declares its columns with
DESCRIBED = {**DUCKDB_TYPES, schema.TIME: "TIMESTAMP WITH TIME ZONE"}


def smbwatch(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smbwatch.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def jsonl(*inputs: Path | str) -> list[dict]:
    done = smbwatch("events", "-q", "-f", "jsonl", *map(str, inputs))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def identity(event: dict) -> tuple:
    return (event["source_file"], event["source_ref"], event["action"], event.get("direction"))


def test_parquet_is_a_dataset_by_date_with_the_schemas_types(tmp_path: Path) -> None:
    dataset = tmp_path / "events"
    done = smbwatch("events", str(EXAMPLE), str(HOST_LOG), "-f", "parquet", "-o", str(dataset))
    assert done.returncode == 0, done.stderr
    expected = jsonl(EXAMPLE, HOST_LOG)
    days = {event["time"][:10] for event in expected}
    assert {p.name for p in dataset.iterdir()} == {f"date={day}" for day in days} and len(days) == 2

    con = duckdb.connect()
    files = f"read_parquet('{dataset}/**/*.parquet', hive_partitioning = true)"
    described = {row[0]: row[1] for row in con.sql(f"DESCRIBE SELECT * FROM {files}").fetchall()}
    assert {name: described[name] for name in schema.NAMES} == {
        f.name: DESCRIBED[f.kind] for f in schema.FIELDS
    }  # the case's own columns
    rows = con.sql(f"SELECT * EXCLUDE (date), epoch_us(time) AS micros FROM {files}")
    names = rows.columns
    found = {}
    for values in rows.fetchall():
        row = {k: v for k, v in zip(names, values, strict=True) if v is not None}
        row["time"] = row.pop("micros")
        if "rpc_args" in row:
            row["rpc_args"] = json.loads(row["rpc_args"])
        found[identity(row)] = row
    assert len(found) == len(expected)
    for event in expected:
        event["time"] = parse_time(event["time"])
        if event["source"] == "host":
            event.pop("session_id", None)  # the logon id: in logon_id, as the schema says
        assert found[identity(event)] == event


def test_its_own_output_is_read_back_as_it_was(tmp_path: Path) -> None:
    expected = jsonl(EXAMPLE, HOST_LOG)
    lines = tmp_path / "events.jsonl.gz"
    with gzip.open(lines, "wt") as out:
        out.writelines(json.dumps(event) + "\n" for event in expected)
    assert jsonl(lines) == expected
    dataset = tmp_path / "dataset"
    done = smbwatch("events", str(lines), "-f", "parquet", "-o", str(dataset))
    assert done.returncode == 0, done.stderr
    again = jsonl(dataset)  # a directory of Parquet files, one per day
    assert sorted(again, key=identity) == sorted(expected, key=identity)

    alerts = smbwatch("detect", "-q", "-f", "jsonl", str(EXAMPLE), str(HOST_LOG))
    assert alerts.returncode == 1 and alerts.stdout
    read_back = smbwatch("detect", "-q", "-f", "jsonl", str(lines))
    # the two inputs go through a case; the one file is read straight, its hosts named alike
    assert read_back.stdout.splitlines() == alerts.stdout.splitlines()


def test_a_hostile_events_file_costs_its_bad_lines_and_values(tmp_path: Path) -> None:
    good = jsonl(EXAMPLE)[:3]
    lines = [
        json.dumps(good[0]),
        "not json at all",
        json.dumps({**good[1], "src_port": "445", "access_list": [1, 2], "colour": "red"}),
        json.dumps({**good[2], "time": "yesterday"}),
        json.dumps({**good[2], "source_ref": 2**64, "bytes": -(2**70)}),
        json.dumps(["an array"]),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = smbwatch("events", "-f", "jsonl", str(path))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == 3
    assert events[0] == good[0]
    assert "src_port" not in events[1] and "access_list" not in events[1]
    assert events[1] == {k: v for k, v in good[1].items() if k != "src_port"}
    assert "source_ref" not in events[2] and "bytes" not in events[2]
    assert "3 x bad_record" in done.stderr and "4 x value_not_read" in done.stderr
    assert "1 x unknown_field" in done.stderr


def test_a_value_that_does_not_fit_its_column_costs_the_value(tmp_path: Path) -> None:
    """A host log's access mask of 64 bits (the reader takes it, a signed 64-bit column does
    not): the event is stored, without it."""
    record = {
        "EventTime": "2020-09-20 12:16:56",
        "Hostname": "WORKSTATION6.theshire.local",
        "EventID": 5145,
        "RecordNumber": 7,
        "ShareName": "\\\\*\\C$",
        "RelativeTargetName": "x.exe",
        "AccessMask": "0x" + "F" * 16,
        "SubjectUserName": "pgustavo",
        "IpAddress": "172.18.39.5",
    }
    log = tmp_path / "log.json"
    log.write_text(json.dumps(record) + "\n")
    dataset = tmp_path / "out"
    done = smbwatch("events", str(log), "-f", "parquet", "-o", str(dataset))
    assert done.returncode == 0, done.stderr
    assert "1 x value_not_stored" in done.stderr and "access_mask" in done.stderr
    (event,) = jsonl(dataset)
    assert event["path"] == "x.exe" and "access_mask" not in event


def test_parquet_needs_a_directory_and_is_for_events(tmp_path: Path) -> None:
    done = smbwatch("events", str(EXAMPLE), "-f", "parquet")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "-o DIR" in done.stderr
    taken = tmp_path / "file"
    taken.write_text("x")
    done = smbwatch("events", str(EXAMPLE), "-f", "parquet", "-o", str(taken))
    assert done.returncode == 2 and "not a directory" in done.stderr
    done = smbwatch("detect", str(EXAMPLE), "-f", "parquet", "-o", str(tmp_path))
    assert done.returncode == 2 and "invalid choice" in done.stderr
