"""Incidents: the alerts of one move from a host to a host, and a path of moves.

The shipped example (WKSTN01 → FILESRV → BACKUP01, examples/README.md) with the Security logs its
servers would have written (``example_log``: tshark's reading of the capture as 4624/5140/5145
records) is one incident per hop, the second carrying the whole path; the grouping itself on
alerts the tests make.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import example_log
import pytest
from lab import pe_bytes

from smbwatch.detect.alert import Alert
from smbwatch.detect.incidents import BURST_GAP, group_incidents
from smbwatch.events import format_time

pytestmark = pytest.mark.oracle

EXAMPLE = example_log.EXAMPLE
PATH = ["WKSTN01", "FILESRV", "BACKUP01"]  # examples/README.md
PAYLOAD = hashlib.sha256(pe_bytes("PSEXESVC", 8192)).hexdigest()  # what record_example.py wrote


def rows(*args: str | Path) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "smbwatch.cli", *map(str, args), "-q", "-f", "jsonl"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode in (0, 1), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def host_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_log.write(tmp_path_factory.mktemp("logs") / "security.json")


def test_the_example_and_its_servers_logs_are_one_incident_per_hop_with_the_whole_path(
    host_log: Path,
) -> None:
    incidents = rows("incidents", EXAMPLE, host_log)
    (whole,) = [i for i in incidents if i["path"] == PATH]
    (first,) = [i for i in incidents if i["path"] == PATH[:2]]
    assert len(incidents) == 2
    assert (whole["src_host"], whole["dst_host"]) == ("FILESRV", "BACKUP01")
    assert whole["previous"] == first["incident_id"]
    assert whole["first_time"] > first["first_time"]
    for incident in incidents:
        assert incident["users"] == ["Administrator"]
        assert incident["risk_score"] >= 80
        assert {"T1021.002", "T1569.002"} <= set(incident["attack"])
    alerts = rows("detect", EXAMPLE, host_log)
    assert {a["incident_id"] for a in alerts} == {i["incident_id"] for i in incidents}
    assert sum(i["count"] for i in incidents) == len(alerts)
    drops = [a for a in alerts if a["title"] == "Executable Written to an Administrative Share"]
    assert sorted(a["dst_host"] for a in drops) == ["BACKUP01", "FILESRV"]
    for drop in drops:  # the wire's CREATE and its server's 5145: one alert, seen by both
        assert drop["confirmed_by"] == ["network", "host"] and drop["sha256"] == PAYLOAD


def test_the_hosts_5145_carries_what_the_wire_saw_of_the_file(host_log: Path) -> None:
    logged = [
        e
        for e in rows("timeline", EXAMPLE, host_log)
        if e["source"] == "host" and e.get("path") == "psexesvc.exe"
    ]
    assert len(logged) == 2  # one on each server
    for event in logged:
        assert event["sha256"] == PAYLOAD and event["magic"] == "PE" and event["bytes"] == 8192
        assert event["dst_ip"] in example_log.SERVERS
        assert set(event["filled_from"]) == {"dst_ip", "bytes", "magic", "sha256"}
        assert [link["action"] for link in event["links"]] == ["create"]


def test_one_input_alone_gives_the_same_incidents(host_log: Path) -> None:
    """The capture read straight (no case) names its machines as the case does."""
    alone = rows("incidents", EXAMPLE)
    assert sorted(tuple(i["path"]) for i in alone) == [tuple(PATH[:2]), tuple(PATH)]
    through_case = rows("incidents", EXAMPLE, "--since", "2000-01-01")  # a filter: a case
    assert [i["incident_id"] for i in alone] == [i["incident_id"] for i in through_case]


def alert(
    title: str, risk: int, first: int, source: str | None, target: str | None, user: str = "u"
) -> Alert:
    return Alert(
        rule_id=title,
        title=title,
        severity="high",
        risk_score=risk,
        message=title,
        attack=["T1021.002"],
        first_time=format_time(first),
        last_time=format_time(first + 1_000_000),
        count=1,
        user=user,
        src_host=source,
        dst_host=target,
    )


def test_a_quiet_hour_ends_an_incident_and_a_nameless_source_joins_its_target() -> None:
    hour = 3600 * 1_000_000
    start = 1_600_000_000 * 1_000_000
    alerts = [
        alert("drop", 80, start, "A", "B"),
        alert("service", 80, start + 60_000_000, "A", "B"),
        alert("7045 alone", 60, start + 90_000_000, None, "B"),  # names only its server
        alert("drop again", 80, start + BURST_GAP + 2 * hour, "A", "B"),
        alert("onward", 80, start + 120_000_000, "B", "C", user="v"),
        alert("quiet", 5, start + 10 * hour, "D", "C"),
    ]
    incidents = group_incidents(alerts)
    by_first = sorted(incidents, key=lambda i: i.first)
    first, onward, again, quiet = by_first
    assert [a.title for a in first.alerts] == ["drop", "service", "7045 alone"]
    assert [a.title for a in again.alerts] == ["drop again"]
    assert onward.path == ["A", "B", "C"] and onward.previous == first.incident_id
    assert quiet.path == ["D", "C"] and quiet.previous is None  # informational: no path
    assert again.path == ["A", "B"]
    assert [i.risk_score for i in incidents] == sorted(
        (i.risk_score for i in incidents), reverse=True
    )
    assert all(a.incident_id for a in alerts)
    assert len({i.incident_id for i in incidents}) == 4
