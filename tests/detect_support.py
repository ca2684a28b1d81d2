"""Test support for the detection tests: the shared corpus, SmbEvents from real records, and
tshark (the independent oracle) read the way smbwatch counts frames.

``evtx_events`` is a small TEST-ONLY converter of Windows Security/System records (5140, 5145,
4624, 4697, 7045) read with the ``evtx`` package into SmbEvents. It exists only until
``smbwatch.winlog.read_events`` lands in main; the tests then move onto the real reader.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import evtx
from conftest import shared_dir

from smbwatch.detect.fields import HOST_ACTIONS
from smbwatch.events import SmbEvent, parse_time

HOST = shared_dir() / "data" / "host"
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
    """Every record of an EVTX file as (record id, System, EventData) dicts."""
    out = []
    for record in evtx.PyEvtxParser(str(path)).records_json():
        event = json.loads(record["data"])["Event"]
        system = event["System"]
        event_id = system["EventID"]
        if isinstance(event_id, dict):
            event_id = event_id["#text"]
        out.append(
            {
                "record": record["event_record_id"],
                "event_id": int(event_id),
                "time": system["TimeCreated"]["#attributes"]["SystemTime"],
                "computer": system.get("Computer"),
                "data": event.get("EventData") or {},
            }
        )
    return out


def evtx_events(path: Path) -> list[SmbEvent]:
    """TEST-ONLY: SmbEvents from the share, logon and service records of an EVTX file."""
    events = []
    for raw in raw_records(path):
        code, data = raw["event_id"], raw["data"]
        if code not in HOST_ACTIONS:
            continue
        share = data.get("ShareName")
        user_key = "TargetUserName" if code == 4624 else "SubjectUserName"
        logon_key = "TargetLogonId" if code == 4624 else "SubjectLogonId"
        mask = data.get("AccessMask")
        port = data.get("IpPort")
        events.append(
            SmbEvent(
                time=parse_time(raw["time"]),
                source="host",
                action=HOST_ACTIONS[code],
                source_format="evtx",
                source_file=str(path),
                source_ref=raw["record"],
                event_code=code,
                src_ip=data.get("IpAddress"),
                src_port=int(port) if port not in (None, "", "-") else None,
                server=raw["computer"],
                user=data.get(user_key),
                domain=data.get(user_key.replace("UserName", "DomainName")),
                session_id=data.get(logon_key),
                share=share,
                share_name=share.rsplit("\\", 1)[-1] if share else None,
                path=data.get("RelativeTargetName"),
                access_mask=int(mask, 16) if mask else None,
                object_type=data.get("ObjectType"),
                logon_type=int(data["LogonType"]) if "LogonType" in data else None,
                service_name=data.get("ServiceName"),
                image_path=data.get("ServiceFileName") or data.get("ImagePath"),
                share_path=data.get("ShareLocalPath"),
            )
        )
    return events


def tshark(capture: Path, display_filter: str, *fields: str) -> list[list[str]]:
    done = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-Y", display_filter, "-T", "fields", "-E"]
        + ["separator=|", *(arg for field in fields for arg in ("-e", field))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [line.split("|") for line in done.stdout.splitlines()]


def tshark_frames(capture: Path, display_filter: str) -> list[int]:
    """The frame where each matching message began, as smbwatch counts: the first TCP segment
    of its first DCE/RPC fragment (tshark names the frame where it was reassembled)."""
    starts = {
        int(frame): min(int(f) for f in segments.split(","))
        for frame, segments in tshark(capture, "tcp.segment", "frame.number", "tcp.segment")
    }
    frames = []
    for frame, fragments in tshark(capture, display_filter, "frame.number", "dcerpc.fragment"):
        first = min(int(f) for f in fragments.split(",")) if fragments else int(frame)
        frames.append(starts.get(first, first))
    return frames
