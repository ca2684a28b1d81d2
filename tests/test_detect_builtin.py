"""The built-in rules on real Windows logs (../shared/data/host)."""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
from detect_support import (
    ATEXEC_EVTX,
    FILE_COPY_EVTX,
    HOST,
    PSEXEC_EVTX,
    SVCCTL_EVTX,
    alert_dicts,
    host_events,
    raw_records,
)

from smbwatch.detect.sigma import RuleSet, load_rules
from smbwatch.events import format_time, parse_time

pytestmark = pytest.mark.unit

FAITHFUL = "Write Executable in SMB Share"
IMPROVED = "Executable Written to an Administrative Share"
SPLUNK_SHARES = ("\\\\*\\C$", "\\\\*\\IPC$", "\\\\*\\admin$")


@cache
def builtin() -> RuleSet:
    return load_rules()


def alerts_of(title: str, path: Path) -> list[dict]:
    return [a for a in alert_dicts(host_events(path), builtin()) if a["title"] == title]


def splunk_rows(path: Path) -> dict[tuple, list[int]]:
    """An independent reading of the Splunk search over the raw records (the oracle).

    `EventCode=5145 Relative_Target_Name IN ("*.exe","*.dll") Object_Type=File Share_Name IN (...)
    Access_Mask="0x2" | stats min(_time) max(_time) count by EventCode Share_Name
    Relative_Target_Name Object_Type Access_Mask user src_port Source_Address`; Splunk compares
    field values case-insensitively and ``*`` in IN (...) is a wildcard.
    """
    shares = [re.compile(re.escape(s).replace("\\*", ".*"), re.IGNORECASE) for s in SPLUNK_SHARES]
    rows: dict[tuple, list[int]] = defaultdict(list)
    for raw in raw_records(path):
        data = raw["data"]
        if raw["event_id"] != 5145:
            continue
        if not data["RelativeTargetName"].lower().endswith((".exe", ".dll")):
            continue
        if data["ObjectType"].lower() != "file" or data["AccessMask"].lower() != "0x2":
            continue
        if not any(s.fullmatch(data["ShareName"]) for s in shares):
            continue
        key = (
            5145,
            data["ShareName"],
            data["RelativeTargetName"],
            data["ObjectType"],
            data["AccessMask"],
            data["SubjectUserName"],
            data["IpPort"],
            data["IpAddress"],
        )
        rows[key].append(parse_time(raw["time"]))
    return rows


@pytest.mark.parametrize("path", sorted(HOST.glob("*.evtx")), ids=lambda p: p.name[:40])
def test_faithful_port_returns_the_splunk_rows(path: Path) -> None:
    expected = {
        key: (format_time(min(times)), format_time(max(times)), len(times))
        for key, times in splunk_rows(path).items()
    }
    got = {}
    for a in alerts_of(FAITHFUL, path):
        key = (
            a["EventCode"],
            a["Share_Name"],
            a["Relative_Target_Name"],
            a["Object_Type"],
            a["Access_Mask"],
            a["user"],
            str(a["src_port"]),
            a["Source_Address"],
        )
        got[key] = (a["first_time"], a["last_time"], a["count"])
    assert got == expected


def test_faithful_port_on_psexec() -> None:
    alerts = sorted(alerts_of(FAITHFUL, PSEXEC_EVTX), key=lambda a: a["first_time"])
    assert [a["Relative_Target_Name"] for a in alerts] == ["PSEXESVC.exe", "cmd.exe"]
    for alert in alerts:
        assert alert["Share_Name"] == "\\\\*\\ADMIN$"
        assert (alert["user"], alert["Source_Address"]) == ("admmig", "10.23.42.22")
        assert alert["risk_score"] == 70
        assert alert["attack"] == ["T1021", "T1021.002"]
    assert alerts[0]["message"] == (
        "admmig dropped or created an executable file in known sensitive SMB share.  "
        "Share name=\\\\*\\ADMIN$, Target name=PSEXESVC.exe, and Access mask=0x2"
    )
    assert alerts[0]["evidence"] == [{"source_file": str(PSEXEC_EVTX), "source_ref": 349325}]


def test_faithful_port_misses_the_0x17019f_copy_the_improved_rule_finds() -> None:
    assert alerts_of(FAITHFUL, FILE_COPY_EVTX) == []
    improved = alerts_of(IMPROVED, FILE_COPY_EVTX)
    assert sorted(a["path"] for a in improved) == ["Windows\\Temp\\setup.bat", "malwr.exe"]
    assert {a["share"] for a in improved} == {"\\\\*\\C$"}
    malwr = next(a for a in improved if a["path"] == "malwr.exe")
    assert malwr["count"] == 2  # records 826 and 827
    assert [e["source_ref"] for e in malwr["evidence"]] == [438297, 438298]
    assert "0x17019f" in malwr["message"] and "Administrator from 10.0.2.15" in malwr["message"]


def test_improved_rule_on_psexec_sees_every_write_access() -> None:
    improved = alerts_of(IMPROVED, PSEXEC_EVTX)
    by_path = {a["path"]: a for a in improved}
    assert sorted(by_path) == ["PSEXESVC.exe", "cmd.exe"]
    assert [e["source_ref"] for e in by_path["PSEXESVC.exe"]["evidence"]] == [
        349324,
        349325,
    ]  # 0x120196, 0x2
    assert [e["source_ref"] for e in by_path["cmd.exe"]["evidence"]] == [
        349349,
        349350,
    ]  # 0x17019f, 0x2


def test_service_installed_by_a_network_logon_session_on_psexec() -> None:
    (alert,) = alerts_of("Service Installed by a Network Logon Session", PSEXEC_EVTX)
    assert (alert["server"], alert["session_id"]) == ("srvdefender01.offsec.lan", "0x1376020")
    assert alert["message"] == (
        "admmig logged on to srvdefender01.offsec.lan from 10.23.42.22 and installed service "
        "PSEXESVC (%SystemRoot%\\PSEXESVC.exe)"
    )
    assert [e["source_ref"] for e in alert["evidence"]] == [349340, 349343]  # its 4624, the 4697


def test_building_blocks_of_a_correlation_raise_no_alert_of_their_own() -> None:
    titles = {a["title"] for a in alert_dicts(host_events(PSEXEC_EVTX), builtin())}
    assert "Network Logon From a Remote Address" not in titles
    assert "Service Installed (4697)" not in titles


def test_pipe_rules_on_host_logs() -> None:
    alerts = alert_dicts(host_events(PSEXEC_EVTX), builtin())
    pipes = sorted(a["path"] for a in alerts if a["title"] == "PsExec-Style Named Pipes")
    assert pipes == [f"PSEXESVC-WEC01-956-{s}" for s in ("stderr", "stdin", "stdout")]
    (svcctl,) = alerts_of("Service Control Pipe Opened for Writing", SVCCTL_EVTX)
    assert (svcctl["src_ip"], svcctl["user"]) == ("10.0.2.17", "Administrator")
    (atsvc,) = alerts_of("Task Scheduler Pipe Opened for Writing", ATEXEC_EVTX)
    assert atsvc["src_ip"] == "10.23.123.11"


def test_alerts_sorted_by_risk_then_time() -> None:
    alerts = alert_dicts(host_events(PSEXEC_EVTX), builtin())
    keys = [(-a["risk_score"], a["first_time"]) for a in alerts]
    assert keys == sorted(keys)
    assert len(alerts) >= 5


@pytest.mark.parametrize("name", ["empire_smbexec", "covenant_sharpsc"])
def test_service_installations_in_nxlog_json(name: str) -> None:
    """OTRF's NXLog JSON exports: the 7045 and 4697 of the same attacks as the captures, joined
    to the network logon before them, and one installation one alert (the 4697 and the 7045 of
    a service as its evidence); the raw JSON records are the oracle."""
    path = next(HOST.glob(f"{name}_*.json.gz"))
    with gzip.open(path, "rt") as log:
        records = [json.loads(line) for line in log]
    alerts = [a for a in alert_dicts(host_events(path), builtin()) if "Installed" in a["title"]]
    alert_of = {e["source_ref"]: i for i, a in enumerate(alerts) for e in a["evidence"]}
    installs: dict[str, set[int]] = defaultdict(set)
    for record in records:
        if record.get("EventID") in (4697, 7045):
            installs[record["ServiceName"]].add(alert_of[record["RecordNumber"]])
    assert installs and all(len(found) == 1 for found in installs.values())
    for alert in alerts:
        assert alert["title"].startswith("Service Installed")
        assert "from 172.18.39.5" in alert["message"]  # the attacker's workstation
