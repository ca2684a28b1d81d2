"""Alerts and rule listings as rows for the sinks (``sinks.output``): a table for people, JSON
lines for pipelines, CSV for spreadsheets (the sinks escape hostile names and defuse formulas).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, TextIO

from smbwatch.detect.sigma import ALERT_FIELDS, RuleSet
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


ALERT_COLUMNS: list[Column] = [
    ("risk", lambda a: a["risk_score"]),
    ("severity", lambda a: a["severity"]),
    ("rule", lambda a: a["title"]),
    ("first seen", lambda a: a["first_time"]),
    ("last seen", lambda a: a["last_time"]),
    ("count", lambda a: a["count"]),
    ("message", lambda a: a["message"]),
    ("evidence", _evidence),
]

RULE_FIELDS = ("rule_id", "title", "level", "risk_score", "kind", "attack", "origin", "warnings")
RULE_COLUMNS: list[Column] = [
    ("title", lambda r: r["title"]),
    ("level", lambda r: r["level"]),
    ("risk", lambda r: r["risk_score"]),
    ("kind", lambda r: r["kind"]),
    ("ATT&CK", lambda r: " ".join(r["attack"])),
    ("from", lambda r: r["origin"]),
    ("warnings", lambda r: r["warnings"] or ""),
]


def csv_columns(alerts: Sequence[dict[str, Any]]) -> list[str]:
    """The alert fields, then every group-by field in order of first appearance, then evidence."""
    columns = list(ALERT_FIELDS)
    for alert in alerts:
        columns.extend(k for k in alert if k not in columns and k != "evidence")
    return [*columns, "evidence"]


ALERTS = RowKind("smbwatch alerts", ALERT_COLUMNS, csv_columns)
RULES = RowKind("smbwatch rules", RULE_COLUMNS, RULE_FIELDS)


def write_alerts(alerts: Sequence[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """Write alerts as ``table``, ``jsonl`` or ``csv``; the number written."""
    return write_rows(alerts, fmt, ALERTS, out)


def write_rule_listing(ruleset: RuleSet, fmt: str, out: TextIO) -> int:
    """Write what ``smbwatch rules list`` shows (one row per loaded rule); the number written."""
    return write_rows(ruleset.listing(), fmt, RULES, out)
