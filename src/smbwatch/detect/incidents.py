"""Incidents: the alerts of one move, from a source host to a target host in one burst of
activity, instead of rows.

An incident is every alert from one machine to another (by their one names: ``src_host`` and
``dst_host``, else their addresses) whose activity follows the previous alert of that pair within
``BURST_GAP``; a quiet hour ends it. An alert that names no source (a 7045 alone names only the
server it was logged on) joins the incident into its target whose time it falls in, the one of
highest risk, or else stands as an incident of an unknown source. An incident carries the
users, its first and last time, the techniques and the highest risk of its alerts, and the alerts
in time order; each alert carries its ``incident_id``.

Moves of risk ``PATH_RISK`` or more chain into paths: a move from B that began after a move into
B (A → B, then B → C) follows it (``previous``), and ``path`` is the machines from the first
move's source to this one's target (A, B, C).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

from smbwatch.detect.alert import Alert
from smbwatch.events import MIN_TIME, parse_time

BURST_GAP: Final = 3600 * 1_000_000  # µs without an alert between two moves of one pair
PATH_RISK: Final = 50  # remote execution and credential theft (README: risk)
INCIDENT_FIELDS: Final = (
    "incident_id",
    "risk_score",
    "severity",
    "src_host",
    "dst_host",
    "path",
    "previous",
    "users",
    "first_time",
    "last_time",
    "attack",
    "count",
    "alerts",
)
ALERT_SUMMARY: Final = ("rule_id", "title", "risk_score", "first_time", "last_time", "message")


@dataclass(slots=True)
class Incident:
    """One move from ``src_host`` to ``dst_host`` (None: unknown) in one burst."""

    incident_id: str
    src_host: str | None
    dst_host: str | None
    alerts: list[Alert] = field(default_factory=list)
    first: int = 0  # µs
    last: int = 0
    path: list[str] = field(default_factory=list)
    previous: str | None = None  # the incident of the move into src_host this one follows

    @property
    def risk_score(self) -> int:
        return max(alert.risk_score for alert in self.alerts)

    @property
    def severity(self) -> str | None:
        return max(self.alerts, key=lambda a: a.risk_score).severity

    def to_dict(self) -> dict[str, Any]:
        """The incident as JSON: its fields and a summary of each alert, in time order."""
        alerts = self.alerts
        return {
            "incident_id": self.incident_id,
            "risk_score": self.risk_score,
            "severity": self.severity,
            "src_host": self.src_host,
            "dst_host": self.dst_host,
            "path": self.path,
            "previous": self.previous,
            "users": sorted({a.user for a in alerts if a.user is not None}),
            "first_time": min((a.first_time for a in alerts if a.first_time), default=None),
            "last_time": max((a.last_time for a in alerts if a.last_time), default=None),
            "attack": list(dict.fromkeys(t for a in alerts for t in a.attack)),
            "count": len(alerts),
            "alerts": [{name: getattr(a, name) for name in ALERT_SUMMARY} for a in alerts],
        }


def source_of(alert: Alert) -> str | None:
    return alert.src_host or alert.src_ip


def target_of(alert: Alert) -> str | None:
    server = alert.group.get("server")
    return alert.dst_host or (server if isinstance(server, str) else None) or alert.dst_ip


def group_incidents(alerts: list[Alert]) -> list[Incident]:
    """The incidents of these alerts, highest risk first (then earliest); each alert's
    ``incident_id`` is set."""
    timed = sorted(
        ((_moment(a.first_time), _moment(a.last_time), a) for a in alerts),
        key=lambda item: (item[0], item[2].title),
    )
    open_: dict[tuple[str | None, str | None], Incident] = {}
    found: list[Incident] = []
    unplaced: list[tuple[int, int, Alert]] = []
    for first, last, alert in timed:
        source, target = source_of(alert), target_of(alert)
        if source is None and target is not None:
            unplaced.append((first, last, alert))
            continue
        current = open_.get((source, target))
        if current is None or first > current.last + BURST_GAP:
            current = open_[(source, target)] = Incident("", source, target, first=first)
            found.append(current)
        _add(current, first, last, alert)
    by_target: dict[str | None, list[Incident]] = defaultdict(list)
    for incident in found:
        by_target[incident.dst_host].append(incident)
    for first, last, alert in unplaced:
        target = target_of(alert)
        around = [
            i
            for i in by_target.get(target, ())
            if i.first - BURST_GAP <= first <= i.last + BURST_GAP
        ]
        if around:
            _add(max(around, key=lambda i: (i.risk_score, -i.first)), first, last, alert)
            continue
        incident = Incident("", None, target, first=first)
        _add(incident, first, last, alert)
        found.append(incident)
        by_target[target].append(incident)
    for incident in found:
        incident.alerts.sort(key=lambda a: (a.first_time or "", -a.risk_score, a.title))
        incident.incident_id = _identity(incident)
        for alert in incident.alerts:
            alert.incident_id = incident.incident_id
    _chain(found)
    found.sort(key=lambda i: (-i.risk_score, i.first, i.incident_id))
    return found


def _moment(text: str | None) -> int:
    """An alert's time in µs; one no date can show (None: the reader warned) as the earliest."""
    return parse_time(text) if text is not None else MIN_TIME


def _add(incident: Incident, first: int, last: int, alert: Alert) -> None:
    if not incident.alerts:
        incident.first, incident.last = first, last
    incident.first = min(incident.first, first)
    incident.last = max(incident.last, last)
    incident.alerts.append(alert)


def _identity(incident: Incident) -> str:
    """A stable id: the pair, the first alert's time and rule."""
    first = incident.alerts[0]
    text = f"{incident.src_host}|{incident.dst_host}|{first.first_time}|{first.rule_id}"
    return "INC-" + hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:10]


def _chain(incidents: list[Incident]) -> None:
    """Each risky move follows the latest risky move into its source that began before it;
    its path is that move's path and its own target."""
    moves = sorted(
        (i for i in incidents if i.risk_score >= PATH_RISK), key=lambda i: (i.first, i.incident_id)
    )
    into: dict[str, list[Incident]] = defaultdict(list)
    for incident in incidents:
        incident.path = [h for h in (incident.src_host, incident.dst_host) if h is not None]
    for move in moves:
        before = [i for i in into.get(move.src_host or "", ()) if i.first <= move.first]
        if before and move.dst_host is not None:
            previous = max(before, key=lambda i: (i.first, i.risk_score))
            if move.dst_host not in previous.path:
                move.previous = previous.incident_id
                move.path = [*previous.path, move.dst_host]
        if move.dst_host is not None:
            into[move.dst_host].append(move)
