"""Alerts and rule listings as rows for the sinks (``sinks.output``): a table for people, JSON
lines for pipelines, CSV for spreadsheets (the sinks escape hostile names and defuse formulas).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, TextIO

from smbwatch.detect.alert import ALERT_FIELDS, CONTEXT_FIELDS, Alert
from smbwatch.detect.attack import technique_names
from smbwatch.detect.incidents import INCIDENT_FIELDS
from smbwatch.detect.sigma import RuleSet
from smbwatch.sinks.output import RowKind, write_rows
from smbwatch.sinks.table import Column


def _evidence(alert: dict[str, Any]) -> str:
    """The first piece of evidence as ``file#ref``, and how many more there are."""
    evidence = alert["evidence"]
    if not evidence:
        return ""
    first = evidence[0]
    name = PurePath(first["source_file"]).name if first["source_file"] else "?"
    more = f" (+{len(evidence) - 1})" if len(evidence) > 1 else ""
    return f"{name}#{first['source_ref']}{more}"


def _source(alert: dict[str, Any]) -> str:
    return alert.get("src_host") or alert.get("src_ip") or ""


def _target(alert: dict[str, Any]) -> str:
    return alert.get("dst_host") or alert.get("server") or alert.get("dst_ip") or ""


ALERT_COLUMNS: list[Column] = [
    Column("risk", lambda a: a["risk_score"], 1, 4),
    Column("severity", lambda a: a["severity"], 9, 8, 13),
    Column("rule", lambda a: a["title"], 3, 20, 40),
    Column("first seen", lambda a: a["first_time"], 2, 20, time=True),
    Column("last seen", lambda a: a["last_time"], 10, 20, time=True),
    Column("count", lambda a: a["count"], 5, 5, 7),
    Column("source", _source, 6, 12, 40),
    Column("target", _target, 7, 12, 40),
    Column("user", lambda a: a.get("user"), 8, 10, 30),
    Column("message", lambda a: a["message"], 4, 44),
    Column("evidence", _evidence, 11, 12, 40),
]


def _path(incident: dict[str, Any]) -> str:
    hosts = incident["path"] or [incident["src_host"] or "?", incident["dst_host"] or "?"]
    return " → ".join(str(h) for h in hosts)


def _titles(incident: dict[str, Any]) -> str:
    """The incident's rules, highest risk first, each once."""
    alerts = sorted(incident["alerts"], key=lambda a: -a["risk_score"])
    return "; ".join(dict.fromkeys(a["title"] for a in alerts))


INCIDENT_COLUMNS: list[Column] = [
    Column("risk", lambda i: i["risk_score"], 1, 4),
    Column("path", _path, 2, 24, 60),
    Column("first seen", lambda i: i["first_time"], 3, 20, time=True),
    Column("last seen", lambda i: i["last_time"], 8, 20, time=True),
    Column("users", lambda i: ", ".join(i["users"]), 5, 10, 30),
    Column("alerts", lambda i: i["count"], 6, 6, 7),
    Column("what", _titles, 4, 30),
    Column("ATT&CK", lambda i: ", ".join(i["attack"]), 9, 10, 40),
    Column("incident", lambda i: i["incident_id"], 7, 14, 14),
]

RULE_FIELDS = (
    "rule_id",
    "title",
    "level",
    "risk_score",
    "kind",
    "role",
    "attack",
    "origin",
    "warnings",
)
RULE_COLUMNS: list[Column] = [
    Column("title", lambda r: r["title"], 1, 30, 60),
    Column("level", lambda r: r["level"], 4, 8, 13),
    Column("risk", lambda r: r["risk_score"], 2, 4),
    Column("ATT&CK", lambda r: technique_names(r["attack"]), 3, 30),
    Column("kind", lambda r: r["kind"], 6, 11, 30),
    Column("from", lambda r: r["origin"], 5, 20, 50),
    Column("warnings", lambda r: r["warnings"] or "", 7, 8),
]


def csv_columns(alerts: Sequence[dict[str, Any]]) -> list[str]:
    """The alert fields, the context fields, every group-by field in order of first appearance,
    then the evidence."""
    columns = [*ALERT_FIELDS, *CONTEXT_FIELDS]
    for alert in alerts:
        columns.extend(k for k in alert if k not in columns and k != "evidence")
    return [*columns, "evidence"]


ALERTS = RowKind("smbwatch alerts", ALERT_COLUMNS, csv_columns)
INCIDENTS = RowKind("smbwatch incidents", INCIDENT_COLUMNS, INCIDENT_FIELDS)
RULES = RowKind("smbwatch rules: detections", RULE_COLUMNS, RULE_FIELDS)
HELPER_RULES = RowKind(
    "helper rules (building blocks of correlations; they raise no alert)",
    RULE_COLUMNS,
    RULE_FIELDS,
)


def write_alerts(alerts: Sequence[Alert], fmt: str, out: TextIO, wide: bool = False) -> int:
    """Write alerts as ``table``, ``jsonl`` or ``csv``; the number written. ``wide``: a table
    with full timestamps and every cell whole."""
    return write_rows([alert.to_dict() for alert in alerts], fmt, ALERTS, out, wide)


def write_rule_listing(ruleset: RuleSet, fmt: str, out: TextIO, wide: bool = False) -> int:
    """Write what ``smbwatch rules list`` shows (one row per loaded rule); the number written.
    The table shows the detections first, then the helper rules correlations are built from."""
    rows = ruleset.listing()
    if fmt != "table":
        return write_rows(rows, fmt, RULES, out, wide)
    detections = [row for row in rows if row["role"] == "detection"]
    helpers = [row for row in rows if row["role"] != "detection"]
    count = write_rows(detections, fmt, RULES, out, wide)
    if helpers:
        out.write("\n")
        count += write_rows(helpers, fmt, HELPER_RULES, out, wide)
    return count
