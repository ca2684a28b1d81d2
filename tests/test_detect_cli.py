"""``smbwatch detect`` and ``smbwatch rules list`` as a user or a pipeline meets them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from detect_support import FILE_COPY_EVTX, OTRF, PSEXEC_EVTX, SIGMA

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lateral-movement.pcap"
# The target's logs of a WMI attack: no SMB share access, service or task in them.
WMI_HOST_LOG = next(OTRF.glob("empire_wmi_*.json.gz"))


def smbwatch(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smbwatch.cli", *args]
    env = {**os.environ, "COLUMNS": "250"}  # a wide terminal: table cells on one line
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=env
    )


def test_rules_list_shows_what_is_loaded_and_from_where() -> None:
    done = smbwatch("rules", "list", "--rules", str(SIGMA), "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    origins = {row["origin"] for row in rows}
    assert {str(p) for p in SIGMA.rglob("*.yml")} <= origins
    builtin = [row for row in rows if row["origin"].startswith("built-in/")]
    assert any(row["title"] == "Write Executable in SMB Share" for row in builtin)
    assert all(row["rule_id"] and row["level"] for row in rows)
    warned = [row["title"] for row in rows if row["warnings"]]
    assert "Remote Registry Management Using Reg Utility" in warned
    lines = done.stderr.splitlines()  # one line per construct, naming the rule
    assert any("'Remote Registry Management Using Reg Utility'" in line for line in lines)
    assert smbwatch("rules", "list", "-q", "--rules", str(SIGMA), "-f", "csv").stderr == ""


def test_rules_list_csv_and_table() -> None:
    done = smbwatch("rules", "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {row["origin"] for row in rows} == {
        f"built-in/{p.name}" for p in (REPO / "src/smbwatch/detect/rules").glob("*.yml")
    }
    table = smbwatch("rules", "list", "--format", "table")
    assert "Write Executable in SMB Share" in table.stdout


def test_bad_rules_are_one_line_user_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("title: x\ndetection: [\n")
    for args in (["--rules", str(bad)], ["--rules", str(tmp_path / "missing")]):
        done = smbwatch("detect", str(EXAMPLE), *args)
        assert done.returncode == 2
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and errors[0].startswith("smbwatch: error: ")
        assert "Traceback" not in done.stderr


def test_missing_input_is_a_user_error() -> None:
    done = smbwatch("detect", "/nonexistent/capture.pcap", "-f", "jsonl")
    assert done.returncode == 2
    assert "no such file" in done.stderr


def test_detect_exit_codes_and_formats(tmp_path: Path) -> None:
    """1 when alerts fired (jsonl, csv to a file, table), 0 when nothing did."""
    done = smbwatch("detect", str(PSEXEC_EVTX), "--format", "jsonl")
    assert done.returncode == 1, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"Write Executable in SMB Share", "PsExec-Style Named Pipes"} <= {
        a["title"] for a in alerts
    }
    risks = [a["risk_score"] for a in alerts]
    assert risks == sorted(risks, reverse=True)
    out = tmp_path / "alerts.csv"
    done = smbwatch(
        "detect", str(FILE_COPY_EVTX), "--rules", str(SIGMA), "-f", "csv", "-o", str(out)
    )
    assert done.returncode == 1 and done.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["title"] for r in rows} == {"Executable Written to an Administrative Share"}
    table = smbwatch("detect", str(PSEXEC_EVTX), "--format", "table")
    assert table.returncode == 1 and "Write Executable in SMB Share" in table.stdout
    quiet = smbwatch("detect", str(WMI_HOST_LOG), "--rules", str(SIGMA), "-f", "jsonl", "-q")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_detect_reads_logs_and_captures_together() -> None:
    done = smbwatch("detect", str(PSEXEC_EVTX), str(EXAMPLE), "-f", "jsonl", "-j", "2")
    assert done.returncode == 1, done.stderr
    sources = {
        e["source_file"] for line in done.stdout.splitlines() for e in json.loads(line)["evidence"]
    }
    assert sources == {str(PSEXEC_EVTX), str(EXAMPLE)}


def test_the_built_in_rules_load_cleanly() -> None:
    """Every built-in rule is understood whole, once: no warning, no rule loaded twice (as a
    stale copy of a renamed rule file would be)."""
    done = smbwatch("rules", "list", "-f", "jsonl")
    assert done.returncode == 0 and done.stderr == ""
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(row["warnings"] == 0 for row in rows)
    assert len({row["rule_id"] for row in rows}) == len(rows)
