"""smbwatch's host events from every shared Windows log, checked against independent parsers.

Counts of 5140/5145 come from python-evtx (EVTX) and the json module (NXLog); every field of
every share event is then compared with the record as that parser read it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import shared_dir
from winlog_convert import moment
from winlog_oracle import SHARE_EVENT_IDS, evtx_events, nxlog_records, share_event_counts

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.winlog import read_events

pytestmark = pytest.mark.oracle

HOST_FILES = sorted((shared_dir() / "data" / "host").iterdir())
EVTX_FILES = [path for path in HOST_FILES if path.suffix == ".evtx"]
NXLOG_FILES = [path for path in HOST_FILES if path.name.endswith(".json.gz")]
ACTIONS = {5140: "tree_connect", 5145: "access_check"}


def smbwatch_events(path: Path) -> tuple[list[SmbEvent], Diagnostics]:
    diagnostics = Diagnostics()
    return list(read_events(str(path), diagnostics)), diagnostics


def by_record(events: list[SmbEvent]) -> dict[int | None, SmbEvent]:
    return {event.source_ref: event for event in events}


def micros(moment_: datetime) -> int:
    delta = moment_ - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def assert_share_fields(event: SmbEvent, data: dict, computer: str) -> None:
    """The contract fields of a 5140/5145, from the record as an independent parser read it."""
    share = data["ShareName"]
    assert event.share == share
    assert event.share_name == share.split("\\")[-1]
    assert event.path == (data.get("RelativeTargetName") or None)
    assert event.access_mask == int(data["AccessMask"], 16)
    assert event.object_type == data["ObjectType"]
    assert event.src_ip == data["IpAddress"]
    assert event.src_port == int(data["IpPort"])
    assert event.user == data["SubjectUserName"]
    assert event.domain == data["SubjectDomainName"]
    assert event.session_id == hex(int(data["SubjectLogonId"], 16))
    assert event.server == computer
    codes = data["AccessList"].split()
    assert len(event.access_list or []) == len(codes)


@pytest.mark.parametrize("path", HOST_FILES, ids=lambda path: path.name[:40])
def test_share_event_counts_match_an_independent_parser(path: Path) -> None:
    events, diagnostics = smbwatch_events(path)
    counted = Counter(event.event_code for event in events if event.event_code in SHARE_EVENT_IDS)
    expected = share_event_counts(path)
    assert sum(expected.values()) > 0
    assert counted == expected
    for event in events:
        if event.event_code in ACTIONS:
            assert event.action == ACTIONS[event.event_code]
    assert all(event.source == "host" and event.source_file == str(path) for event in events)
    assert not diagnostics.counts, diagnostics.summary_lines()


@pytest.mark.parametrize("path", EVTX_FILES, ids=lambda path: path.name[:40])
def test_every_evtx_share_event_has_the_logged_fields(path: Path) -> None:
    events, _ = smbwatch_events(path)
    found = by_record(events)
    oracle = [event for event in evtx_events(path) if event.event_id in SHARE_EVENT_IDS]
    for logged in oracle:
        event = found[logged.record_id]
        assert event.event_code == logged.event_id
        assert event.source_format == "evtx"
        assert event.time == micros(moment(logged))
        assert_share_fields(event, logged.data, logged.computer)


@pytest.mark.parametrize("path", NXLOG_FILES, ids=lambda path: path.name[:40])
def test_every_nxlog_share_event_has_the_logged_fields(path: Path) -> None:
    events, _ = smbwatch_events(path)
    found = by_record(events)
    oracle = [record for record in nxlog_records(path) if record["EventID"] in SHARE_EVENT_IDS]
    for record in oracle:
        event = found[record["RecordNumber"]]
        assert event.source_format == "json"
        assert_share_fields(event, record, record["Hostname"])
        # EventTime is the host's local time (second precision); the collector's @timestamp
        # is UTC and arrives within a second or two: the zone must have been recovered.
        received = micros(datetime.fromisoformat(record["@timestamp"].replace("Z", "+00:00")))
        assert 0 <= received - event.time < 3_000_000


def test_the_malwr_exe_drop_keeps_its_full_access_mask() -> None:
    """The remote copy of malwr.exe to C$ asks 0x17019f: WriteData without being exactly 0x2."""
    path = next(path for path in EVTX_FILES if "Remote_FileCopy" in path.name)
    events, _ = smbwatch_events(path)
    drops = [e for e in events if e.path == "malwr.exe" and e.access_mask == 0x17019F]
    oracle = [
        event
        for event in evtx_events(path)
        if event.data.get("RelativeTargetName") == "malwr.exe"
        and int(event.data["AccessMask"], 16) == 0x17019F
    ]
    assert len(drops) == len(oracle) > 0
    for drop in drops:
        assert drop.share == "\\\\*\\C$" and drop.share_name == "C$"
        assert drop.access_list is not None
        assert {"WriteData", "AppendData", "DELETE"} <= set(drop.access_list)
        assert drop.src_ip == "10.0.2.15" and drop.user == "Administrator"


def test_psexesvc_is_written_to_admin_share_with_write_data_only() -> None:
    path = next(path for path in EVTX_FILES if "PSexec" in path.name)
    events, _ = smbwatch_events(path)
    writes = [event for event in events if event.path == "PSEXESVC.exe" and event.access_mask == 2]
    assert len(writes) == 1
    (write,) = writes
    assert write.share == "\\\\*\\ADMIN$" and write.share_name == "ADMIN$"
    assert write.access_list == ["WriteData"]
    assert write.share_path == "\\??\\C:\\Windows"
    assert write.user == "admmig" and write.src_ip == "10.23.42.22"


@pytest.mark.parametrize("path", EVTX_FILES, ids=lambda path: path.name[:40])
def test_network_logons_and_service_installs_from_evtx(path: Path) -> None:
    events, _ = smbwatch_events(path)
    found = by_record(events)
    oracle = evtx_events(path)
    logons = [e for e in oracle if e.event_id == 4624 and e.data.get("LogonType") == "3"]
    other_logons = [e for e in oracle if e.event_id == 4624 and e.data.get("LogonType") != "3"]
    assert len([e for e in events if e.action == "logon"]) == len(logons)
    assert all(e.record_id not in found for e in other_logons)
    for logged in logons:
        event = found[logged.record_id]
        assert (event.action, event.logon_type) == ("logon", 3)
        assert event.user == logged.data["TargetUserName"]
        assert event.domain == logged.data["TargetDomainName"]
        assert event.session_id == hex(int(logged.data["TargetLogonId"], 16))
        assert event.src_ip == logged.data["IpAddress"]
        assert event.auth_package == logged.data["AuthenticationPackageName"]
    for logged in (e for e in oracle if e.event_id == 4697):
        event = found[logged.record_id]
        assert event.action == "service_install"
        assert event.service_name == logged.data["ServiceName"]
        assert event.image_path == logged.data["ServiceFileName"]
        assert event.account == logged.data["ServiceAccount"]
        assert event.service_type == hex(int(logged.data["ServiceType"], 16))
        start_types = {"2": "auto start", "3": "demand start"}  # Windows' words in 7045
        assert event.start_type == start_types[logged.data["ServiceStartType"]]
        assert event.user == logged.data["SubjectUserName"]


@pytest.mark.parametrize("path", NXLOG_FILES, ids=lambda path: path.name[:40])
def test_service_installs_from_nxlog_name_the_service_account(path: Path) -> None:
    """NXLog overwrites 7045's AccountName with the event's user; the Message keeps the truth."""
    events, _ = smbwatch_events(path)
    found = by_record(events)
    installs = [r for r in nxlog_records(path) if r["EventID"] in (7045, 4697)]
    assert installs
    for record in installs:
        event = found[record["RecordNumber"]]
        assert event.action == "service_install"
        assert event.service_name == record["ServiceName"]
        if record["EventID"] == 7045:
            account = re.search(r"Service Account:\s+(\S+)", record["Message"]).group(1)  # type: ignore[union-attr]
            assert event.account == account != record["AccountName"]
            assert event.image_path == record["ImagePath"]
            assert event.start_type == record["StartType"]
        else:
            assert event.account == record["ServiceAccount"]
            assert event.image_path == record["ServiceFileName"]
