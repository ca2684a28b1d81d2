"""Progress on a terminal: with stderr a terminal (a pseudo-terminal here, as a user's shell
gives), a bar while the inputs are read and one line of summary at the end whose counts are
those of the output; piped, or with ``-q``, not a byte of it."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_dir

pytestmark = pytest.mark.unit

DATA = shared_dir() / "data"
INPUTS = [DATA / "host", DATA / "otrf"]
SUMMARY = re.compile(
    r"smbwatch: (\d+) inputs \([\d.,]+ MB\), ([\d,]+) events(?:, ([\d,]+) alerts)? in [\d.]+ s"
)


def run(args: list[str], out: Path | None, terminal: bool) -> str:
    """smbwatch with stdout to ``out`` (None: what it prints is not kept) and stderr a
    pseudo-terminal (or a pipe); what it wrote on stderr."""
    command = [sys.executable, "-m", "smbwatch.cli", *args, *(() if out is None else ("-o", out))]
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        return done.stderr
    parent, child = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=child)
    os.close(child)
    written = bytearray()
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # the terminal's other end closed: the process is done with it
            break
        if not chunk:
            break
        written += chunk
    os.close(parent)
    process.wait(timeout=300)
    return written.decode("utf-8", "replace")


def inputs_read() -> int:
    return sum(1 for folder in INPUTS for path in folder.rglob("*") if path.is_file())


def test_a_terminal_shows_a_bar_and_a_summary_of_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    shown = run(["events", "-f", "jsonl", "-j", "2", *map(str, INPUTS)], out, terminal=True)
    events = out.read_text().count("\n")
    assert events > 1000
    assert re.search(rf"\d+/{inputs_read()} inputs", shown), shown[-2000:]
    assert "━" in shown and " events" in shown  # the bar, drawn at least once
    (summary,) = SUMMARY.findall(shown)
    assert summary[0] == str(inputs_read()) and summary[1] == f"{events:,}" and not summary[2]


def test_ingest_shows_what_it_adds(tmp_path: Path) -> None:
    """A case's ingest (and so every verb that reads several inputs into a case of its own)."""
    case = tmp_path / "case"
    shown = run(["ingest", "--case", str(case), "-j", "2", *map(str, INPUTS)], None, terminal=True)
    assert re.search(rf"\d+/{inputs_read()} inputs", shown) and "━" in shown, shown[-2000:]
    (summary,) = SUMMARY.findall(shown)
    sql = "SELECT count(*) AS inputs, sum(events) AS events FROM inputs"
    query = [sys.executable, "-m", "smbwatch.cli", "query", "--case", str(case), sql, "-f", "jsonl"]
    done = subprocess.run(query, capture_output=True, text=True, timeout=300, check=True)
    stored = json.loads(done.stdout)
    assert stored["events"] > 1000
    assert summary[:2] == (str(stored["inputs"]), f"{stored['events']:,}")
    again = run(["ingest", "--case", str(case), *map(str, INPUTS)], None, terminal=False)
    assert not SUMMARY.search(again) and "━" not in again  # piped: none


def test_detect_counts_its_alerts(tmp_path: Path) -> None:
    """One log (several go through a case of their own, whose ingest shows its own bar)."""
    out = tmp_path / "alerts.jsonl"
    log = next((DATA / "host").glob("MITRE-EVTX_TA0008-*PSexec_remote_execution_admin_share.evtx"))
    shown = run(["detect", "-f", "jsonl", str(log)], out, terminal=True)
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(alerts) > 1
    (summary,) = SUMMARY.findall(shown)
    assert summary[0] == "1" and summary[2] == f"{len(alerts):,}"


def test_piped_or_quiet_there_is_none(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    piped = run(["events", "-f", "jsonl", *map(str, INPUTS)], out, terminal=False)
    quiet = run(["events", "-q", "-f", "jsonl", *map(str, INPUTS)], out, terminal=True)
    for stderr in (piped, quiet):
        assert "inputs" not in stderr and "━" not in stderr and not SUMMARY.search(stderr)
    assert "warning" in piped  # stderr still says what it always said (a damaged capture)
    assert out.read_text().count("\n") > 1000
