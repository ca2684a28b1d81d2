"""Alerts written as table, JSON lines and CSV: the DESIGN.md fields, and hostile names defused."""

from __future__ import annotations

import csv
import io
import json

import pytest
from detect_support import FILE_COPY_EVTX, PSEXEC_EVTX, host_events

from smbwatch.detect.engine import detect
from smbwatch.detect.report import write_alerts
from smbwatch.detect.sigma import ALERT_FIELDS, load_rules

pytestmark = pytest.mark.unit

RULES = load_rules()
PSEXEC_ALERTS = detect(host_events(PSEXEC_EVTX), RULES)


def test_jsonl_has_the_alert_fields() -> None:
    out = io.StringIO()
    assert write_alerts(PSEXEC_ALERTS, "jsonl", out) == len(PSEXEC_ALERTS)
    alerts = [json.loads(line) for line in out.getvalue().splitlines()]
    assert alerts == json.loads(json.dumps(PSEXEC_ALERTS))
    for alert in alerts:
        assert set(ALERT_FIELDS) | {"evidence"} <= set(alert)
        assert alert["first_time"].endswith("Z") and alert["first_time"] <= alert["last_time"]
        assert alert["count"] == len(alert["evidence"]) >= 1
        assert all(e["source_file"] == str(PSEXEC_EVTX) for e in alert["evidence"])
        assert isinstance(alert["attack"], list)


def test_csv_has_alert_and_group_columns() -> None:
    out = io.StringIO()
    write_alerts(PSEXEC_ALERTS, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == len(PSEXEC_ALERTS)
    assert list(rows[0])[: len(ALERT_FIELDS)] == list(ALERT_FIELDS)
    faithful = next(r for r in rows if r["title"] == "Write Executable in SMB Share")
    assert faithful["Share_Name"] == "\\\\*\\ADMIN$"
    assert json.loads(faithful["evidence"])[0]["source_file"] == str(PSEXEC_EVTX)


def test_hostile_names_are_defused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: no cell folded
    malwr = next(e for e in host_events(FILE_COPY_EVTX) if e.source_ref == 438297)
    hostile = malwr.copy(path='=HYPERLINK("http://x")\x1b[2J\u202etxt.exe', user="-evil")
    alerts = detect([hostile], RULES)
    assert alerts and "\x1b[2J" in alerts[0]["message"]
    table = io.StringIO()
    write_alerts(alerts, "table", table)
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
