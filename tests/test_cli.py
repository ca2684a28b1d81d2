"""The command line as a user meets it: formats, files, exit codes, and hostile names.

Runs the installed console script in a subprocess, so argument parsing, output encoding and exit
codes are exercised exactly as a user or a pipeline sees them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from oracle import rename_in_capture

from smbwatch.sinks.csv import cell
from smbwatch.sinks.table import safe_text

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lateral-movement.pcap"


def smbwatch(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smbwatch.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_jsonl_is_the_contract() -> None:
    done = smbwatch("events", str(EXAMPLE), "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) > 50
    hops = {("10.45.0.20", "10.45.0.10"), ("10.45.0.10", "10.45.0.30")}  # examples/README.md
    for event in events:
        assert event["source"] == "network" and event["source_format"] == "pcap"
        assert event["time"].endswith("Z") and len(event["time"]) == 27
        assert (event["src_ip"], event["dst_ip"]) in hops
        assert None not in event.values()
    assert {(event["src_ip"], event["dst_ip"]) for event in events} == hops
    actions = {event["action"] for event in events}
    assert {"logon", "tree_connect", "create", "write", "read", "close"} <= actions


def test_output_file_csv_and_directory_input(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "example.pcap").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "in" / "notes.txt").write_text("not a capture\n")
    out = tmp_path / "events.csv"
    done = smbwatch("events", str(tmp_path / "in"), "--format", "csv", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "input_skipped" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    jsonl = smbwatch("events", str(EXAMPLE), "--format", "jsonl").stdout.splitlines()
    assert len(rows) == len(jsonl)
    assert {"time", "src_ip", "action", "share", "path", "access_mask"} <= set(rows[0])


# Runs smbwatch in this process, then says on stderr how many writes (system calls) it made.
COUNTED_WRITES = """
import sys
from smbwatch.cli import main

def writes():
    with open("/proc/self/io") as counters:
        return int(next(line for line in counters if line.startswith("syscw:")).split()[1])

before = writes()
code = main(sys.argv[1:])
sys.stdout.flush()
print(writes() - before, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_unbuffered_python_still_writes_the_rows_in_blocks(fmt: str) -> None:
    """PYTHONUNBUFFERED (which many container images set) makes each write to stdout a system
    call of its own: the rows still go out in blocks, and the bytes are the same."""
    command = [sys.executable, "-c", COUNTED_WRITES, "events", "-q", "-f", fmt, str(EXAMPLE)]
    runs = {}
    for unbuffered in (True, False):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        if unbuffered:
            env["PYTHONUNBUFFERED"] = "1"
        runs[unbuffered] = done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
    rows = len(runs[True].stdout.splitlines())
    writes = int(runs[True].stderr.splitlines()[-1])
    assert runs[True].stdout == runs[False].stdout and rows > 50
    assert writes < rows / 10, f"{writes} writes for {rows} rows"


def test_rows_to_a_terminal_are_shown_as_they_come() -> None:
    """On a terminal, unbuffered Python or not, each row is written as it is made."""
    master, terminal = pty.openpty()
    shown: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(master, shown))
    reader.start()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", COUNTED_WRITES, "events", "-q", "-f", "jsonl", str(EXAMPLE)]
    try:
        done = subprocess.run(
            command, stdout=terminal, stderr=subprocess.PIPE, text=True, env=env, timeout=300
        )
    finally:
        os.close(terminal)
        reader.join()
        os.close(master)
    assert done.returncode == 0, done.stderr
    rows = b"".join(shown).count(b"\n")
    assert rows > 50 and int(done.stderr.splitlines()[-1]) >= rows


def _read_all(descriptor: int, into: list[bytes]) -> None:
    """What a terminal shows, until the last writer closes it."""
    while True:
        try:
            chunk = os.read(descriptor, 1 << 16)
        except OSError:  # EIO: no writer left
            return
        if not chunk:
            return
        into.append(chunk)


def test_parallel_output_equals_serial(tmp_path: Path) -> None:
    copies = []
    for name in ("a.pcap", "b.pcap", "c.pcap"):
        copies.append(tmp_path / name)
        copies[-1].write_bytes(EXAMPLE.read_bytes())
    serial = smbwatch("events", *map(str, copies), "-f", "jsonl", "--jobs", "1")
    parallel = smbwatch("events", *map(str, copies), "-f", "jsonl", "--jobs", "3")
    assert serial.returncode == parallel.returncode == 0
    assert serial.stdout == parallel.stdout
    assert len(serial.stdout.splitlines()) == 3 * len(
        smbwatch("events", str(EXAMPLE)).stdout.splitlines()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["events", "/nonexistent/capture.pcap"], "no such file"),
        (["events", "--format", "xml", "x"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str) -> None:
    done = smbwatch(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


def test_not_a_capture_still_writes_the_others(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pcap"
    bogus.write_bytes(b"this is not a capture at all" * 10)
    done = smbwatch("events", str(bogus), str(EXAMPLE), "-f", "jsonl")
    assert done.returncode == 2
    assert "bogus.pcap" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) > 50


def test_truncated_capture_exit_code(tmp_path: Path) -> None:
    data = EXAMPLE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    done = smbwatch("events", str(cut), "-f", "jsonl")
    assert done.returncode == 3
    assert "input_damaged" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) > 10


def test_hostile_names_are_escaped_and_defused(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.pcap"
    rename_in_capture(EXAMPLE, hostile, "psexesvc.exe", "=\x1b[2J\u202eexe.ab")
    table = smbwatch("events", str(hostile), "-f", "table")
    assert table.returncode == 0
    assert "\x1b[2J" not in table.stdout and "\u202e" not in table.stdout
    assert "\\x1b[2J" in table.stdout
    text = smbwatch("events", str(hostile), "-f", "csv").stdout
    assert "\x1b" not in text and "\u202e" not in text  # shown escaped, as in the table
    rows = list(csv.reader(io.StringIO(text)))
    paths = [row for row in rows if any("\\x1b[2J\\u202eexe.ab" in c for c in row)]
    assert paths, "the hostile name must reach the CSV"
    for row in paths:
        assert all(not c.startswith("=") for c in row)


def test_cell_and_safe_text_units() -> None:
    assert cell("=1+1") == "'=1+1" and cell("-2") == "'-2" and cell(-2) == "-2"
    assert cell({"a": 1}) == '{"a":1}' and cell(None) == "" and cell(True) == "true"
    assert safe_text("a\x07b\u202ec") == "a\\x07b\\u202ec"


def test_one_command_for_captures_and_logs(shared_data: Path) -> None:
    """A whole incident in one command: a capture, an EVTX file and an NXLog JSON export."""
    evtx = shared_data / "host" / "ATTACK-SAMPLES_LM_5145_Remote_FileCopy.evtx"
    nxlog = next((shared_data / "host").glob("empire_smbexec_*.json.gz"))
    done = smbwatch("events", str(EXAMPLE), str(evtx), str(nxlog), "-f", "jsonl")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    by_format = {e["source_format"] for e in events}
    assert by_format == {"pcap", "evtx", "json"}
    assert any(e["source"] == "host" and e.get("path") == "malwr.exe" for e in events)
    assert [e["source_file"] for e in events] == sorted(
        (e["source_file"] for e in events), key=[str(EXAMPLE), str(evtx), str(nxlog)].index
    )


def test_detect_without_hashing_fires_the_same_rules() -> None:
    def fired(*extra: str) -> list[tuple]:
        done = smbwatch("detect", str(EXAMPLE), "-f", "jsonl", *extra)
        assert done.returncode == 1, done.stderr  # alerts fired
        alerts = [json.loads(line) for line in done.stdout.splitlines()]
        return sorted((a["rule_id"], a["count"], a["first_time"]) for a in alerts)

    with_hashes = fired()
    assert len(with_hashes) >= 5
    assert fired("--no-hash") == with_hashes
