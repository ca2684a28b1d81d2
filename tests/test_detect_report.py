"""Alerts written as table, JSON lines and CSV: the DESIGN.md fields, the who/where/what as
fields, and hostile names defused."""

from __future__ import annotations

import csv
import io
import json

import pytest
from detect_support import FILE_COPY_EVTX, OTRF, PSEXEC_EVTX, host_events

from smbwatch.detect.alert import CONTEXT_FIELDS
from smbwatch.detect.engine import detect
from smbwatch.detect.report import write_alerts
from smbwatch.detect.sigma import ALERT_FIELDS, load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.unit

RULES = load_rules()
PSEXEC_ALERTS = detect(host_events(PSEXEC_EVTX), RULES)
# Kerberos sessions: the capture names no user.
SHARPSC = next(OTRF.glob("covenant_sharpsc_start_*.cap"))


def test_jsonl_has_the_alert_fields() -> None:
    out = io.StringIO()
    assert write_alerts(PSEXEC_ALERTS, "jsonl", out) == len(PSEXEC_ALERTS)
    alerts = [json.loads(line) for line in out.getvalue().splitlines()]
    assert alerts == json.loads(json.dumps([a.to_dict() for a in PSEXEC_ALERTS]))
    for alert, record in zip(alerts, PSEXEC_ALERTS, strict=True):
        assert list(alert)[: len(ALERT_FIELDS)] == list(ALERT_FIELDS)
        assert list(alert)[-1] == "evidence"
        assert set(record.group) <= set(alert)  # every group-by field, as before
        assert alert["first_time"].endswith("Z") and alert["first_time"] <= alert["last_time"]
        assert 1 <= alert["count"] <= len(alert["evidence"])
        assert all(e["source_file"] == str(PSEXEC_EVTX) for e in alert["evidence"])
        assert isinstance(alert["attack"], list)
        assert (alert["user"], alert["src_ip"]) == ("admmig", "10.23.42.22")  # always fields


def test_csv_has_alert_context_and_group_columns() -> None:
    out = io.StringIO()
    write_alerts(PSEXEC_ALERTS, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == len(PSEXEC_ALERTS)
    columns = list(rows[0])
    assert columns[: len(ALERT_FIELDS) + len(CONTEXT_FIELDS)] == [*ALERT_FIELDS, *CONTEXT_FIELDS]
    faithful = next(r for r in rows if r["title"] == "Write Executable in SMB Share")
    assert faithful["Share_Name"] == "\\\\*\\ADMIN$"  # Splunk's names, beside the contract's
    assert (faithful["user"], faithful["src_ip"], faithful["path"]) == (
        "admmig",
        "10.23.42.22",
        faithful["Relative_Target_Name"],
    )
    installed = next(r for r in rows if r["title"].startswith("Service Installed"))
    assert (installed["service_name"], installed["image_path"]) == (
        "PSEXESVC",
        "%SystemRoot%\\PSEXESVC.exe",
    )
    assert json.loads(faithful["evidence"])[0]["source_file"] == str(PSEXEC_EVTX)


def test_a_missing_user_is_said_and_not_escaped_as_a_formula() -> None:
    """A Kerberos capture names no user: the message says so in words a spreadsheet leaves
    alone (no ``-`` placeholder turned into ``'-``), and the CSV cell is empty."""
    alerts = detect(capture_events(str(SHARPSC), Diagnostics()), RULES)
    out = io.StringIO()
    write_alerts(alerts, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    started = next(r for r in rows if r["title"] == "Remote Service Started Through svcctl")
    assert started["message"].startswith("(unknown user) from 172.18.39.5 started service")
    assert started["user"] == "" and started["src_ip"] == "172.18.39.5"
    assert not any(cell.startswith("'") for row in rows for cell in row.values())


def test_hostile_names_are_defused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: no cell cut
    malwr = next(e for e in host_events(FILE_COPY_EVTX) if e.source_ref == 438297)
    hostile = malwr.copy(path='=HYPERLINK("http://x")\x1b[2J\u202etxt.exe', user="-evil")
    alerts = detect([hostile], RULES)
    assert alerts and "\x1b[2J" in alerts[0].message
    table = io.StringIO()
    write_alerts(alerts, "table", table, wide=True)
    assert "\x1b" not in table.getvalue() and "\u202e" not in table.getvalue()
    assert "\\x1b[2J" in table.getvalue()
    out = io.StringIO()
    write_alerts(alerts, "csv", out)
    for row in csv.DictReader(io.StringIO(out.getvalue())):
        assert row["path"].startswith("'=")
        assert row["message"].startswith("'-evil")


def test_empty_outputs() -> None:
    for fmt in ("jsonl", "csv", "table"):
        out = io.StringIO()
        assert write_alerts([], fmt, out) == 0
    out = io.StringIO()
    write_alerts([], "csv", out)
    assert out.getvalue().splitlines()[0].startswith("rule_id,title")
