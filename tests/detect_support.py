"""Test support for the detection tests: the shared corpus, events of real logs, the raw
records (read with the ``evtx`` package, independently of smbwatch) and tshark (the oracle)
read the way smbwatch counts frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import evtx
from conftest import shared_dir
from oracle import tshark_fields

from smbwatch.detect.engine import detect
from smbwatch.detect.sigma import RuleSet
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.winlog import read_events

HOST = shared_dir() / "data" / "host"
OTRF = shared_dir() / "data" / "otrf"
SIGMA = shared_dir() / "sigma"
PSEXEC_EVTX = (
    HOST / "MITRE-EVTX_TA0008-Lateral_Movement_T1021.002-SMB_Windows_Admin_Shares_"
    "ID468846975140-5145_PSexec_remote_execution_admin_share.evtx"
)
FILE_COPY_EVTX = HOST / "ATTACK-SAMPLES_LM_5145_Remote_FileCopy.evtx"
SVCCTL_EVTX = HOST / "ATTACK-SAMPLES_LM_Remote_Service01_5145_svcctl.evtx"
SPOOLSS_EVTX = HOST / "ATTACK-SAMPLES_spoolsample_5145.evtx"
ATEXEC_EVTX = (
    HOST / "MITRE-EVTX_TA0002-Execution_T1053.005-Scheduled_Task_ID5145-Remote_schedule_task_"
    "creation_ATexec.evtx"
)
SHARPHOUND_EVTX = (
    HOST / "MITRE-EVTX_TA0007-Discovery_T1135.xxx-Network_Share_Discovery_ID5140-5145-"
    "Bloodhound-SharpHound_enumeration_via_SMB.evtx"
)


def raw_records(path: Path) -> list[dict[str, Any]]:
    """Every record of an EVTX file: its event id, time and EventData, read independently of
    smbwatch with the ``evtx`` package."""
    out = []
    for record in evtx.PyEvtxParser(str(path)).records_json():
        event = json.loads(record["data"])["Event"]
        system = event["System"]
        event_id = system["EventID"]
        if isinstance(event_id, dict):
            event_id = event_id["#text"]
        out.append(
            {
                "event_id": int(event_id),
                "time": system["TimeCreated"]["#attributes"]["SystemTime"],
                "data": event.get("EventData") or {},
            }
        )
    return out


def alert_dicts(events: Iterable[SmbEvent], ruleset: RuleSet) -> list[dict[str, Any]]:
    """The alerts of ``ruleset`` on ``events`` as the JSON objects the sinks write."""
    return [alert.to_dict() for alert in detect(events, ruleset)]


def host_events(path: Path) -> list[SmbEvent]:
    """The SmbEvents smbwatch's Windows log reader makes of a log file."""
    return list(read_events(str(path), Diagnostics()))


def tshark_frames(capture: Path, display_filter: str) -> list[int]:
    """The frame where each matching message began, as smbwatch counts: the first TCP segment
    of its first DCE/RPC fragment (tshark names the frame where it was reassembled)."""
    starts = {
        int(frame): min(int(f) for f in segments.split(","))
        for frame, segments in tshark_fields(
            capture, "tcp.segment", ["frame.number", "tcp.segment"]
        )
    }
    frames = []
    rows = tshark_fields(capture, display_filter, ["frame.number", "dcerpc.fragment"])
    for frame, fragments in rows:
        first = min(int(f) for f in fragments.split(",")) if fragments else int(frame)
        frames.append(starts.get(first, first))
    return frames
